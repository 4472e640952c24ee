package restorer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// errDamaged is what fakeRepo reports for a blob marked damaged.
var errDamaged = errors.New("blob damaged")

// fakeRepo is an in-memory Repository: data blobs are spread over "packs"
// of blobsPerPack blobs each.
type fakeRepo struct {
	blobsPerPack int

	mu        sync.Mutex
	trees     map[backend.ID][]byte
	data      map[backend.ID][]byte
	where     map[backend.ID]index.PackedBlob
	damaged   map[backend.ID]bool // LoadPack passes an error
	lying     map[backend.ID]bool // LoadPack passes wrong bytes without an error
	unindexed map[backend.ID]bool // Lookup does not find it
	packLoads map[backend.ID]int
	nextPack  int
	inPack    int
	nextOff   uint32

	active, maxActive atomic.Int32
}

func newFakeRepo() *fakeRepo {
	return &fakeRepo{
		blobsPerPack: 4,
		trees:        map[backend.ID][]byte{},
		data:         map[backend.ID][]byte{},
		where:        map[backend.ID]index.PackedBlob{},
		damaged:      map[backend.ID]bool{},
		lying:        map[backend.ID]bool{},
		unindexed:    map[backend.ID]bool{},
		packLoads:    map[backend.ID]int{},
	}
}

func (f *fakeRepo) packID(n int) backend.ID { return backend.Hash(fmt.Appendf(nil, "pack %d", n)) }

// addData stores a data blob and returns its ID.
func (f *fakeRepo) addData(b []byte) backend.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := backend.Hash(b)
	if _, ok := f.data[id]; ok {
		return id
	}
	if f.inPack == f.blobsPerPack {
		f.nextPack++
		f.inPack, f.nextOff = 0, 0
	}
	f.data[id] = append([]byte(nil), b...)
	f.where[id] = index.PackedBlob{
		Blob:   pack.Blob{Type: pack.DataBlob, ID: id, Offset: f.nextOff, Length: uint32(len(b)) + 40, RawLength: uint32(len(b))},
		PackID: f.packID(f.nextPack),
	}
	f.inPack++
	f.nextOff += uint32(len(b)) + 40
	return id
}

func (f *fakeRepo) addTreeRaw(b []byte) backend.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := backend.Hash(b)
	f.trees[id] = b
	return id
}

func (f *fakeRepo) addTree(t testing.TB, nodes ...*snapshot.Node) backend.ID {
	t.Helper()
	var tree snapshot.Tree
	for _, n := range nodes {
		if err := tree.Insert(n); err != nil {
			t.Fatal(err)
		}
	}
	b, err := snapshot.EncodeTree(&tree)
	if err != nil {
		t.Fatal(err)
	}
	return f.addTreeRaw(b)
}

func (f *fakeRepo) LoadBlob(_ context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b []byte
	var ok bool
	if t == pack.TreeBlob {
		b, ok = f.trees[id]
	} else {
		b, ok = f.data[id]
	}
	if !ok {
		return nil, fmt.Errorf("load %s blob %s: not found", t, id.Str())
	}
	return append(buf[:0], b...), nil
}

func (f *fakeRepo) Lookup(t pack.BlobType, id backend.ID) (index.PackedBlob, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pb, ok := f.where[id]
	if !ok || t != pack.DataBlob || f.unindexed[id] {
		return index.PackedBlob{}, false
	}
	return pb, true
}

func (f *fakeRepo) LoadPack(ctx context.Context, packID backend.ID, blobs []pack.Blob, fn func(b pack.Blob, plaintext []byte, err error) error) error {
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for {
		m := f.maxActive.Load()
		if n <= m || f.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.packLoads[packID]++
	f.mu.Unlock()
	if !slices.IsSortedFunc(blobs, func(a, b pack.Blob) int { return int(a.Offset) - int(b.Offset) }) {
		return errors.New("fakeRepo: blobs not in offset order")
	}
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		f.mu.Lock()
		pb, ok := f.where[b.ID]
		plain := f.data[b.ID]
		damaged, lying := f.damaged[b.ID], f.lying[b.ID]
		f.mu.Unlock()
		if !ok || pb.PackID != packID {
			return fmt.Errorf("fakeRepo: blob %s is not in pack %s", b.ID.Str(), packID.Str())
		}
		var err error
		switch {
		case damaged:
			plain, err = nil, fmt.Errorf("blob %s: %w", b.ID.Str(), errDamaged)
		case lying:
			plain = slices.Clone(plain)
			plain[0] ^= 0xff
		default:
			plain = slices.Clone(plain) // fn must not keep it: scribble over it afterwards
			defer clear(plain)
		}
		if err := fn(b, plain, err); err != nil {
			return err
		}
	}
	return nil
}
