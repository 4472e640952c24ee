package fusefs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// memRepo is a Repository of plaintext blobs in memory; loads counts the
// data blobs loaded.
type memRepo struct {
	mu    sync.Mutex // guards loads: the kernel reads on many goroutines
	blobs map[backend.ID][]byte
	trees map[backend.ID][]byte
	loads map[backend.ID]int
	// fail names blobs that the index lists but that fail to load.
	fail map[backend.ID]bool
}

func newMemRepo() *memRepo {
	return &memRepo{blobs: map[backend.ID][]byte{}, trees: map[backend.ID][]byte{}, loads: map[backend.ID]int{}, fail: map[backend.ID]bool{}}
}

func (m *memRepo) add(t pack.BlobType, b []byte) backend.ID {
	id := backend.Hash(b)
	if t == pack.TreeBlob {
		m.trees[id] = b
	} else {
		m.blobs[id] = b
	}
	return id
}

func (m *memRepo) LoadBlob(_ context.Context, t pack.BlobType, id backend.ID, _ []byte) ([]byte, error) {
	src := m.blobs
	if t == pack.TreeBlob {
		src = m.trees
	} else {
		m.mu.Lock()
		m.loads[id]++
		m.mu.Unlock()
	}
	b, ok := src[id]
	if !ok || m.fail[id] {
		return nil, fmt.Errorf("%s blob %s: not found", t, id.Str())
	}
	return bytes.Clone(b), nil
}

func (m *memRepo) Lookup(t pack.BlobType, id backend.ID) (index.PackedBlob, bool) {
	b, ok := m.blobs[id]
	if t == pack.TreeBlob {
		b, ok = m.trees[id]
	}
	if !ok {
		return index.PackedBlob{}, false
	}
	return index.PackedBlob{Blob: pack.Blob{Type: t, ID: id, Length: uint32(len(b)) + crypt.Overhead}}, true
}

// chunked stores data as chunks of the given sizes.
func (m *memRepo) chunked(data []byte, sizes []int) []backend.ID {
	var ids []backend.ID
	for _, n := range sizes {
		ids = append(ids, m.add(pack.DataBlob, data[:n]))
		data = data[n:]
	}
	return ids
}

// Reads at any offset and of any length return exactly the file's bytes,
// loading only the chunks the range covers.
func TestContentRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1000, 1, 4096, 3, 70000, 1000}
	total := 0
	for _, n := range sizes {
		total += n
	}
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	m := newMemRepo()
	ids := m.chunked(data, sizes)
	c, err := newContent(m, ids)
	if err != nil {
		t.Fatal(err)
	}
	load := func(ctx context.Context, id backend.ID) ([]byte, error) {
		return m.LoadBlob(ctx, pack.DataBlob, id, nil)
	}
	check := func(off, n int) {
		t.Helper()
		clear(m.loads)
		dest := make([]byte, n)
		got, err := c.read(context.Background(), load, dest, int64(off))
		if err != nil {
			t.Fatalf("read %d+%d: %v", off, n, err)
		}
		off0, end := min(off, total), min(off+n, total)
		if !bytes.Equal(dest[:got], data[off0:end]) {
			t.Fatalf("read %d+%d: got %d bytes that differ from the file's", off, n, got)
		}
		// Only the chunks overlapping [off, end) were loaded.
		start := 0
		for i, size := range sizes {
			overlaps := start < end && off0 < start+size
			if loaded := m.loads[ids[i]] > 0; loaded != overlaps {
				t.Fatalf("read %d+%d: chunk %d [%d, %d) loaded=%v", off, n, i, start, start+size, loaded)
			}
			start += size
		}
	}
	check(0, total)
	check(0, 1)
	check(999, 2)       // across the first boundary
	check(1000, 1)      // the one-byte chunk
	check(1000, 4097)   // exactly chunks 1 and 2
	check(5096, 70004)  // from chunk 3 into the last
	check(total-1, 100) // the last byte, asked for more
	check(total, 10)    // at the end: nothing
	check(total+5, 10)  // past the end: nothing
	for range 500 {
		check(rng.IntN(total+10), 1+rng.IntN(80000))
	}
}

func TestContentMissingChunk(t *testing.T) {
	m := newMemRepo()
	var id backend.ID
	id[0] = 9
	if _, err := newContent(m, []backend.ID{id}); err == nil {
		t.Fatal("a file with a chunk the index lacks opened")
	}
}

// A chunk whose plaintext length differs from the index's is an error,
// not a read of the wrong bytes.
func TestContentLengthMismatch(t *testing.T) {
	m := newMemRepo()
	ids := m.chunked([]byte("hello world"), []int{5, 6})
	c, err := newContent(m, ids)
	if err != nil {
		t.Fatal(err)
	}
	load := func(ctx context.Context, id backend.ID) ([]byte, error) { return []byte("hell"), nil }
	if _, err := c.read(context.Background(), load, make([]byte, 11), 0); err == nil {
		t.Fatal("a short chunk was read as the file")
	}
}
