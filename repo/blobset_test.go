package repo

import (
	"math/rand"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

func TestBlobSet(t *testing.T) {
	rnd := rand.New(rand.NewSource(7))
	var s BlobSet // the zero value works
	want := map[blobKey]bool{}
	// Enough IDs to go through several merges of the sorted slice.
	for i := 0; i < 30000; i++ {
		var id backend.ID
		rnd.Read(id[:])
		tp := pack.DataBlob
		if i%7 == 0 {
			tp = pack.TreeBlob
		}
		if !s.Insert(tp, id) {
			t.Fatalf("insert %d: reported as present", i)
		}
		want[blobKey{tp, id}] = true
		if i%3 == 0 { // re-inserting is a no-op
			if s.Insert(tp, id) {
				t.Fatalf("insert %d again: reported as new", i)
			}
		}
	}
	if s.Len() != len(want) {
		t.Fatalf("Len %d, want %d", s.Len(), len(want))
	}
	for k := range want {
		if !s.Has(k.t, k.id) {
			t.Fatalf("%v missing", k)
		}
		other := pack.DataBlob
		if k.t == pack.DataBlob {
			other = pack.TreeBlob
		}
		if s.Has(other, k.id) {
			t.Fatalf("%v present under the other type", k)
		}
	}
	var absent backend.ID
	rnd.Read(absent[:])
	if s.Has(pack.DataBlob, absent) {
		t.Fatal("absent ID reported present")
	}

	// Each: every blob once, data first, each type in ID order; pos
	// numbers them in the same order.
	seen := 0
	var prev blobKey
	s.Each(func(tp pack.BlobType, id backend.ID) bool {
		k := blobKey{tp, id}
		if !want[k] {
			t.Fatalf("Each yields %v, not in the set", k)
		}
		if seen > 0 && (prev.t > tp || prev.t == tp && !prev.id.Less(id)) {
			t.Fatalf("Each out of order at %d", seen)
		}
		if p, ok := s.pos(tp, id); !ok || p != seen {
			t.Fatalf("pos of blob %d is %d, %v", seen, p, ok)
		}
		prev = k
		seen++
		return true
	})
	if seen != len(want) {
		t.Fatalf("Each yielded %d, want %d", seen, len(want))
	}
}

func TestBlobSetInvalidTypePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for an invalid blob type")
		}
	}()
	NewBlobSet().Insert(pack.BlobType(9), backend.ID{})
}

func BenchmarkBlobSetInsert(b *testing.B) {
	rnd := rand.New(rand.NewSource(1))
	ids := make([]backend.ID, 1<<20)
	for i := range ids {
		rnd.Read(ids[i][:])
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var s BlobSet
		for _, id := range ids {
			s.Insert(pack.DataBlob, id)
		}
	}
}
