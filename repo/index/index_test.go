package index

import (
	"bytes"
	"cmp"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

func randID(rng *mrand.Rand) (id backend.ID) {
	for i := 0; i < len(id); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	return id
}

type key struct {
	t  pack.BlobType
	id backend.ID
}

// model is the reference: a map from key to the set of locations.
type model struct {
	locs map[key]map[PackedBlob]bool
}

func (m *model) add(packID backend.ID, blobs []pack.Blob) {
	for _, b := range blobs {
		k := key{b.Type, b.ID}
		if m.locs[k] == nil {
			m.locs[k] = make(map[PackedBlob]bool)
		}
		m.locs[k][PackedBlob{Blob: b, PackID: packID}] = true
	}
}

func (m *model) remove(ids map[backend.ID]bool) {
	for k, set := range m.locs {
		for pb := range set {
			if ids[pb.PackID] {
				delete(set, pb)
			}
		}
		if len(set) == 0 {
			delete(m.locs, k)
		}
	}
}

func cmpPacked(a, b PackedBlob) int {
	if c := bytes.Compare(a.PackID[:], b.PackID[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.Offset, b.Offset)
}

func (m *model) all(k key) []PackedBlob {
	var out []PackedBlob
	for pb := range m.locs[k] {
		out = append(out, pb)
	}
	slices.SortFunc(out, cmpPacked)
	return out
}

func (m *model) len() int {
	n := 0
	for _, set := range m.locs {
		n += len(set)
	}
	return n
}

func (m *model) packs() []backend.ID {
	seen := map[backend.ID]bool{}
	var ids []backend.ID
	for _, set := range m.locs {
		for pb := range set {
			if !seen[pb.PackID] {
				seen[pb.PackID] = true
				ids = append(ids, pb.PackID)
			}
		}
	}
	slices.SortFunc(ids, func(a, b backend.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// testPack is a pack with a fixed, consistent layout.
type testPack struct {
	id    backend.ID
	blobs []pack.Blob
}

// makePacks returns n packs whose blobs are drawn from a pool of blob IDs
// (so blobs recur across packs, and an ID may be both data and tree).
func makePacks(rng *mrand.Rand, n, maxBlobs int, pool []backend.ID) []testPack {
	keys := []crypt.KeyID{{1}, {2}}
	packs := make([]testPack, n)
	for i := range packs {
		p := testPack{id: randID(rng)}
		key := keys[rng.IntN(len(keys))]
		var off uint32
		for range 1 + rng.IntN(maxBlobs) {
			b := pack.Blob{Type: pack.DataBlob, ID: pool[rng.IntN(len(pool))], Offset: off, Length: 40 + uint32(rng.IntN(2000)), KeyID: key}
			if rng.IntN(4) == 0 {
				b.Type = pack.TreeBlob
			}
			if rng.IntN(2) == 0 {
				b.RawLength = uint32(rng.IntN(5000)) + 1
			}
			off += b.Length
			p.blobs = append(p.blobs, b)
		}
		packs[i] = p
	}
	return packs
}

// check compares every query of x with the model.
func check(t *testing.T, x *Index, m *model, pool []backend.ID) {
	t.Helper()
	if x.Len() != m.len() {
		t.Fatalf("Len %d, model %d", x.Len(), m.len())
	}
	for _, bid := range pool {
		for _, bt := range []pack.BlobType{pack.DataBlob, pack.TreeBlob} {
			want := m.all(key{bt, bid})
			got := x.LookupAll(bt, bid)
			if !slices.Equal(got, want) {
				t.Fatalf("LookupAll(%s %s) = %v, want %v", bt, bid.Str(), got, want)
			}
			pb, ok := x.Lookup(bt, bid)
			if ok != (len(want) > 0) || x.Has(bt, bid) != ok {
				t.Fatalf("Lookup/Has(%s %s) = %v/%v, want %v", bt, bid.Str(), ok, x.Has(bt, bid), len(want) > 0)
			}
			if ok && pb != want[0] {
				t.Fatalf("Lookup(%s %s) = %v, want %v", bt, bid.Str(), pb, want[0])
			}
		}
	}
	packs := x.Packs()
	slices.SortFunc(packs, func(a, b backend.ID) int { return bytes.Compare(a[:], b[:]) })
	if want := m.packs(); !slices.Equal(packs, want) {
		t.Fatalf("Packs: %d packs, model %d", len(packs), len(want))
	}
	seen := map[PackedBlob]int{}
	x.Each(func(pb PackedBlob) bool {
		seen[pb]++
		return true
	})
	for k, set := range m.locs {
		for pb := range set {
			if seen[pb] != 1 {
				t.Fatalf("Each visited %v (%v) %d times", pb, k, seen[pb])
			}
		}
	}
	if len(seen) != m.len() {
		t.Fatalf("Each visited %d entries, model has %d", len(seen), m.len())
	}
}

// TestModel runs random adds, re-adds and removals, with merges forced
// often, and compares every query with a map model.
func TestModel(t *testing.T) {
	seed := mrand.Uint64()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 0))
	pool := make([]backend.ID, 300)
	for i := range pool {
		pool[i] = randID(rng)
	}
	packs := makePacks(rng, 60, 30, pool)
	x := New()
	// ~1 blob of the pool per shard: merge often, and sometimes not.
	x.mergeMin = 1 + rng.IntN(3)
	m := &model{locs: map[key]map[PackedBlob]bool{}}
	for step := range 400 {
		switch r := rng.IntN(10); {
		case r < 7:
			// Add a pack, whole or in part; re-adds give exact duplicates.
			p := packs[rng.IntN(len(packs))]
			blobs := p.blobs
			if rng.IntN(2) == 0 {
				lo := rng.IntN(len(blobs))
				blobs = blobs[lo : lo+1+rng.IntN(len(blobs)-lo)]
			}
			x.AddPack(p.id, blobs)
			m.add(p.id, blobs)
		case r < 8:
			ids := map[backend.ID]bool{}
			for range 1 + rng.IntN(4) {
				ids[packs[rng.IntN(len(packs))].id] = true
			}
			ids[randID(rng)] = true // unknown packs are ignored
			x.RemovePacks(ids)
			m.remove(ids)
		case r < 9:
			// Round trip through index files into a fresh index.
			y := New()
			y.mergeMin = x.mergeMin
			limit := rng.IntN(100)
			for _, f := range x.ToFiles(limit) {
				nb := 0
				for _, p := range f.Packs {
					nb += len(p.Blobs)
				}
				if limit > 0 && nb > limit && len(f.Packs) > 1 {
					t.Fatalf("file of %d blobs in %d packs exceeds the limit %d", nb, len(f.Packs), limit)
				}
				g, err := Decode(Encode(f))
				if err != nil {
					t.Fatalf("step %d: decode ToFiles output: %v", step, err)
				}
				y.AddFile(g)
			}
			check(t, y, m, pool)
		default:
			x.AddPack(randID(rng), nil) // no blobs: no pack
		}
		check(t, x, m, pool)
	}
	if inMain(x) == 0 {
		t.Error("no merge happened")
	}
}

// inMain counts the entries in the shards' sorted slices.
func inMain(x *Index) int {
	n := 0
	for i := range x.shards {
		n += len(x.shards[i].main)
	}
	return n
}

func TestTypesAreDistinct(t *testing.T) {
	x := New()
	bid := id(7)
	x.AddPack(id(1), []pack.Blob{{Type: pack.DataBlob, ID: bid, Offset: 0, Length: 100}})
	if x.Has(pack.TreeBlob, bid) {
		t.Fatal("a data blob is found as a tree")
	}
	x.AddPack(id(2), []pack.Blob{{Type: pack.TreeBlob, ID: bid, Offset: 0, Length: 50}})
	d, okd := x.Lookup(pack.DataBlob, bid)
	tr, okt := x.Lookup(pack.TreeBlob, bid)
	if !okd || !okt || d.PackID != id(1) || tr.PackID != id(2) {
		t.Fatalf("data %v %v, tree %v %v", d, okd, tr, okt)
	}
}

// TestLookupPrefersSmallestPackID checks that the answer does not depend on
// the order packs were added in, before and after a merge.
func TestLookupPrefersSmallestPackID(t *testing.T) {
	bid := id(7)
	for _, merge := range []bool{false, true} {
		x := New()
		if merge {
			x.mergeMin = 1
		}
		x.AddPack(id(9), []pack.Blob{{Type: pack.DataBlob, ID: bid, Offset: 0, Length: 100}})
		x.AddPack(id(3), []pack.Blob{{Type: pack.DataBlob, ID: bid, Offset: 500, Length: 100}})
		x.AddPack(id(5), []pack.Blob{{Type: pack.DataBlob, ID: bid, Offset: 0, Length: 100}})
		pb, ok := x.Lookup(pack.DataBlob, bid)
		if !ok || pb.PackID != id(3) || pb.Offset != 500 {
			t.Errorf("merge %v: Lookup = %v, want pack %s", merge, pb, id(3).Str())
		}
	}
}

func TestToFilesDropsOverlaps(t *testing.T) {
	x := New()
	x.AddPack(id(1), []pack.Blob{{Type: pack.DataBlob, ID: id(2), Offset: 0, Length: 100}, {Type: pack.DataBlob, ID: id(3), Offset: 100, Length: 100}})
	// A second, inconsistent description of the same pack.
	x.AddPack(id(1), []pack.Blob{{Type: pack.DataBlob, ID: id(4), Offset: 50, Length: 100}})
	files := x.ToFiles(0)
	if len(files) != 1 || len(files[0].Packs) != 1 || len(files[0].Packs[0].Blobs) != 2 {
		t.Fatalf("ToFiles = %+v", files)
	}
	if _, err := Decode(Encode(files[0])); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent looks blobs up from several goroutines while others add
// packs (forcing many merges) and read the whole index; run with -race.
func TestConcurrent(t *testing.T) {
	seed := mrand.Uint64()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 1))
	pool := make([]backend.ID, 2000)
	for i := range pool {
		pool[i] = randID(rng)
	}
	x := New()
	x.mergeMin = 2
	initial := makePacks(rng, 50, 20, pool)
	for _, p := range initial {
		x.AddPack(p.id, p.blobs)
	}
	// 50 + 3*400 packs: the pack table grows a page while readers use it.
	const writers, perWriter = 3, 400
	more := make([][]testPack, writers)
	for w := range more {
		more[w] = makePacks(rng, perWriter, 6, pool)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			for _, p := range more[w] {
				x.AddPack(p.id, p.blobs)
			}
		})
	}
	for r := range 4 {
		wg.Go(func() {
			i := r
			for {
				select {
				case <-done:
					return
				default:
				}
				p := initial[i%len(initial)]
				b := p.blobs[i%len(p.blobs)]
				if !x.Has(b.Type, b.ID) {
					t.Errorf("lost %v", b)
					return
				}
				found := false
				for _, pb := range x.LookupAll(b.Type, b.ID) {
					found = found || (pb.PackID == p.id && pb.Blob == b)
				}
				if !found {
					t.Errorf("LookupAll lost %v of pack %s", b, p.id.Str())
					return
				}
				if _, ok := x.Lookup(b.Type, b.ID); !ok {
					t.Errorf("Lookup lost %v", b)
					return
				}
				i += 7
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			// Entries only grow here, shard by shard, so Each (which
			// takes its snapshot after the first Len) must see at least
			// what Len counted before it and at most what Len counts
			// after it, however the goroutines are scheduled.
			before := x.Len()
			n := 0
			x.Each(func(PackedBlob) bool { n++; return true })
			if after := x.Len(); n < before || n > after {
				t.Errorf("Each visited %d entries, Len %d before and %d after", n, before, after)
			}
			_ = x.ToFiles(500)
		}
	})
	writersWG.Wait()
	close(done)
	wg.Wait()

	m := &model{locs: map[key]map[PackedBlob]bool{}}
	for _, p := range initial {
		m.add(p.id, p.blobs)
	}
	for _, ps := range more {
		for _, p := range ps {
			m.add(p.id, p.blobs)
		}
	}
	check(t, x, m, pool)
	if inMain(x) < x.Len()/2 {
		t.Errorf("only %d of %d entries merged", inMain(x), x.Len())
	}
}

func ExampleIndex() {
	x := New()
	blobID := backend.Hash([]byte("hello"))
	x.AddPack(backend.Hash([]byte("a pack")), []pack.Blob{{Type: pack.DataBlob, ID: blobID, Offset: 0, Length: 45}})
	pb, ok := x.Lookup(pack.DataBlob, blobID)
	fmt.Println(ok, pb.PackID.Str(), pb.Offset, pb.Length, x.Has(pack.TreeBlob, blobID))
	// Output: true d55b1796 0 45 false
}

// TestSearchLarge checks lookups in shards large enough for the directory
// and the interpolation guess, with uniform IDs and with IDs crowded into
// one directory slot (where every guess is wrong).
func TestSearchLarge(t *testing.T) {
	seed := mrand.Uint64()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 2))
	for name, mkID := range map[string]func() backend.ID{
		"uniform": func() backend.ID { return randID(rng) },
		"crowded": func() backend.ID {
			id := randID(rng)
			id[0] = 5
			for i := 1; i < 9; i++ {
				id[i] = 0
			}
			id[8] = byte(rng.IntN(3))
			return id
		},
	} {
		t.Run(name, func(t *testing.T) {
			x := New()
			x.mergeMin = 8
			var all []PackedBlob
			for range 2000 {
				packID := randID(rng)
				var blobs []pack.Blob
				for i := range 16 {
					b := pack.Blob{Type: pack.BlobType(1 + rng.IntN(2)), ID: mkID(), Offset: uint32(i) * 100, Length: 100}
					blobs = append(blobs, b)
					all = append(all, PackedBlob{Blob: b, PackID: packID})
				}
				x.AddPack(packID, blobs)
			}
			if inMain(x) < x.Len()*3/4 {
				t.Fatalf("only %d of %d entries in main", inMain(x), x.Len())
			}
			for _, want := range all {
				got, ok := x.Lookup(want.Type, want.ID)
				if !ok || got != want {
					t.Fatalf("Lookup(%v) = %v, %v", want, got, ok)
				}
				other := pack.DataBlob
				if want.Type == pack.DataBlob {
					other = pack.TreeBlob
				}
				if x.Has(other, want.ID) {
					t.Fatalf("%v found as %s", want, other)
				}
				near := want.ID
				near[31] ^= 1
				if x.Has(want.Type, near) {
					t.Fatalf("absent %s found", near.Str())
				}
			}
		})
	}
}
