package index

import (
	mrand "math/rand/v2"
	"runtime"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// blobsPerPack is the synthetic packs' blob count: a 16 MiB data pack of
// ~1 MiB chunks. Few blobs per pack is the pessimistic case for memory,
// since each pack costs ~100 bytes (ID, key, map slot).
const blobsPerPack = 16

// fill adds n synthetic blobs in packs of blobsPerPack, as loading index
// files does, and returns their IDs.
func fill(x *Index, rng *mrand.Rand, n int, keepIDs bool) []backend.ID {
	var ids []backend.ID
	if keepIDs {
		ids = make([]backend.ID, 0, n)
	}
	blobs := make([]pack.Blob, blobsPerPack)
	key := crypt.KeyID{1}
	for added := 0; added < n; added += blobsPerPack {
		var off uint32
		for i := range blobs {
			l := 500_000 + uint32(rng.IntN(1_000_000))
			blobs[i] = pack.Blob{Type: pack.DataBlob, ID: randID(rng), Offset: off, Length: l, RawLength: l + 100, KeyID: key}
			off += l
			if keepIDs {
				ids = append(ids, blobs[i].ID)
			}
		}
		x.AddPack(randID(rng), blobs)
	}
	return ids
}

// BenchmarkIndex10M adds 10 million blobs and reports the heap the index
// holds per blob (target: under 64), measured after a GC.
func BenchmarkIndex10M(b *testing.B) {
	const n = 10_000_000
	for i := 0; i < b.N; i++ {
		rng := mrand.New(mrand.NewPCG(1, uint64(i)))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := New()
		fill(x, rng, n, false)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if x.Len() != n {
			b.Fatalf("Len %d, want %d", x.Len(), n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/blob")
		over := 0
		for i := range x.shards {
			over += x.shards[i].over.n
		}
		b.ReportMetric(float64(over)/n*100, "%overflow")
		runtime.KeepAlive(x)
	}
}

// BenchmarkIndexLookup looks up blobs from parallel goroutines in an index
// of one million blobs: hits (present blobs) and misses (new blobs).
func BenchmarkIndexLookup(b *testing.B) {
	const n = 1_000_000
	rng := mrand.New(mrand.NewPCG(2, 3))
	x := New()
	ids := fill(x, rng, n, true)
	missing := make([]backend.ID, n)
	for i := range missing {
		missing[i] = randID(rng)
	}
	b.Run("hit", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := mrand.IntN(len(ids))
			for pb.Next() {
				if _, ok := x.Lookup(pack.DataBlob, ids[i]); !ok {
					b.Error("miss")
					return
				}
				i = (i + 7919) % len(ids)
			}
		})
	})
	b.Run("miss", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if x.Has(pack.DataBlob, missing[i%len(missing)]) {
					b.Error("hit")
					return
				}
				i++
			}
		})
	})
	// Lookups while another goroutine keeps adding packs (and merging).
	b.Run("hit-during-adds", func(b *testing.B) {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			r := mrand.New(mrand.NewPCG(4, 5))
			for {
				select {
				case <-stop:
					return
				default:
					fill(x, r, 1024, false)
				}
			}
		}()
		b.RunParallel(func(pb *testing.PB) {
			i := mrand.IntN(len(ids))
			for pb.Next() {
				if _, ok := x.Lookup(pack.DataBlob, ids[i]); !ok {
					b.Error("miss")
					return
				}
				i = (i + 7919) % len(ids)
			}
		})
		close(stop)
		<-done
	})
}
