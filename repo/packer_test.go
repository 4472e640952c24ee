package repo

import (
	"context"
	"io"
	"math/rand"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo/pack"
)

// gatedBackend holds pack uploads until released, and says when one has
// started.
type gatedBackend struct {
	*mem.Backend
	mu      sync.Mutex
	hold    chan struct{} // nil: no gate
	started chan struct{} // receives once per held Put
}

func (g *gatedBackend) gate() {
	g.mu.Lock()
	g.hold = make(chan struct{})
	g.started = make(chan struct{}, 100)
	g.mu.Unlock()
}

func (g *gatedBackend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	g.mu.Lock()
	hold, started := g.hold, g.started
	g.mu.Unlock()
	if hold != nil && h.Type == backend.PackFile {
		started <- struct{}{}
		<-hold
	}
	return g.Backend.Put(ctx, h, rd)
}

// TestUploadOutlivesCallerContext: a pack filled by a SaveBlob whose
// context is cancelled right after it returns (as the archiver's is when
// Snapshot returns) must still be uploaded, and Flush must succeed.
func TestUploadOutlivesCallerContext(t *testing.T) {
	be := &gatedBackend{Backend: mem.New()}
	r := testInit(t, be, InitOptions{PackSize: MinPackSize})
	be.gate()

	ctx, cancel := context.WithCancel(context.Background())
	rnd := rand.New(rand.NewSource(5))
	var ids []backend.ID
	for len(ids) < 3 {
		data := randomBlob(rnd, 600_000, false)
		id := backend.Hash(data)
		if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	<-be.started // the first pack is being uploaded
	cancel()
	close(be.hold)

	if err := r.Flush(context.Background()); err != nil {
		t.Fatalf("flush after the saver's context ended: %v", err)
	}
	r2 := testOpen(t, be.Backend, Options{})
	for _, id := range ids {
		if _, err := r2.LoadBlob(context.Background(), pack.DataBlob, id, nil); err != nil {
			t.Errorf("blob %s: %v", id.Str(), err)
		}
	}
}

// TestPackWritersReused: many packs in a row come out intact while the
// packer recycles its writers between them.
func TestPackWritersReused(t *testing.T) {
	be := mem.New()
	r := testInit(t, be, InitOptions{PackSize: MinPackSize})
	ctx := context.Background()
	want := map[backend.ID][]byte{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 4 {
		wg.Go(func() {
			rnd := rand.New(rand.NewSource(int64(100 + w)))
			for i := range 20 {
				data := randomBlob(rnd, 100_000+rnd.Intn(300_000), i%2 == 0)
				id := backend.Hash(data)
				if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[id] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	packs := 0
	if err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error { packs++; return nil }); err != nil {
		t.Fatal(err)
	}
	if packs < 5 {
		t.Fatalf("only %d packs: the test needs several to reuse writers", packs)
	}
	r2 := testOpen(t, be, Options{})
	for id, data := range want {
		got, err := r2.LoadBlob(ctx, pack.DataBlob, id, nil)
		if err != nil {
			t.Fatalf("blob %s: %v", id.Str(), err)
		}
		if string(got) != string(data) {
			t.Fatalf("blob %s: content differs", id.Str())
		}
	}
}

// TestPartsReader: reads in any buffer size, WriteTo and Rewind all give
// the concatenation of the parts.
func TestPartsReader(t *testing.T) {
	parts := [][]byte{[]byte("abc"), {}, []byte("defgh"), []byte("i"), {}}
	want := "abcdefghi"
	r := newPartsReader(parts)
	if r.Length() != int64(len(want)) {
		t.Fatalf("Length %d, want %d", r.Length(), len(want))
	}
	for _, size := range []int{1, 2, 4, 100} {
		if err := r.Rewind(); err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, size)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != want {
			t.Errorf("read with %d-byte buffer: %q", size, got)
		}
	}
	_ = r.Rewind()
	one := make([]byte, 2)
	_, _ = r.Read(one)
	var sb strings.Builder
	if n, err := r.WriteTo(&sb); err != nil || n != int64(len(want)-2) || sb.String() != want[2:] {
		t.Errorf("WriteTo after 2 bytes: %d %q %v", n, sb.String(), err)
	}
}

// TestTreePackNotInDataWriter: a tree pack never takes an idle data pack
// writer (which would hold a pack-sized buffer for a few small trees while
// the next data pack allocates another), and an uploaded tree writer is
// not kept among the data writers.
func TestTreePackNotInDataWriter(t *testing.T) {
	be := mem.New()
	r := testInit(t, be, InitOptions{PackSize: MinPackSize})
	ctx := context.Background()
	rnd := rand.New(rand.NewSource(7))
	for i := range 8 {
		data := randomBlob(rnd, 200_000, i%2 == 0)
		if _, err := r.SaveBlob(ctx, pack.DataBlob, backend.Hash(data), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p := r.packer
	p.mu.Lock()
	idle := append([]*pack.Writer(nil), p.idle...)
	p.mu.Unlock()
	if len(idle) == 0 {
		t.Fatal("no idle data writer after the uploads: the test needs one")
	}

	tree := []byte(`{"nodes":[]}`)
	if _, err := r.SaveBlob(ctx, pack.TreeBlob, backend.Hash(tree), tree); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	tw := p.writers[pack.TreeBlob]
	nIdle := len(p.idle)
	p.mu.Unlock()
	for _, w := range idle {
		if tw == w {
			t.Fatal("the tree pack took an idle data pack writer")
		}
	}
	if nIdle != len(idle) {
		t.Fatalf("idle data writers: %d before the tree blob, %d after", len(idle), nIdle)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.idle {
		if w == tw {
			t.Fatal("the uploaded tree writer went to the idle data writers")
		}
	}
	if p.idleTree != tw {
		t.Fatal("the uploaded tree writer was not kept for the next tree pack")
	}
}

// TestBlobBufSizes: getBuf always has room for the blob it is asked for,
// whatever the pools hold, the pools keep no buffer beyond
// maxPooledBlobBuf, and each pool only buffers of its class.
func TestBlobBufSizes(t *testing.T) {
	p := &packer{}
	for _, n := range []int{0, 1, 4 << 10, smallBlobBuf, 1 << 20, 2 << 20, 2<<20 + 1, 8 << 20, 20 << 20, 4 << 10} {
		b := p.getBuf(n)
		if cap(*b) < sealedBufSize(n) {
			t.Fatalf("getBuf(%d): cap %d, need %d", n, cap(*b), sealedBufSize(n))
		}
		p.putBuf(b)
	}
	for class := range p.bufs {
		for range 20 {
			b, _ := p.bufs[class].Get().(*[]byte)
			if b == nil {
				break
			}
			if cap(*b) > maxPooledBlobBuf {
				t.Fatalf("the pool kept a buffer of %d bytes", cap(*b))
			}
			if got := blobBufClass(cap(*b)); got != class {
				t.Fatalf("pool %d holds a buffer of %d bytes, of class %d", class, cap(*b), got)
			}
		}
	}
}

// TestUploadedPackBytes: the repository counts the bytes of the packs it
// uploads (a backup's data_added_packed), which is what data/ holds.
func TestUploadedPackBytes(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	if n := r.UploadedPackBytes(); n != 0 {
		t.Fatalf("a new repository uploaded %d bytes", n)
	}
	rnd := rand.New(rand.NewSource(3))
	for i := range 40 {
		b := randomBlob(rnd, 50<<10, i%2 == 0)
		if _, err := r.SaveBlob(ctx, pack.DataBlob, backend.Hash(b), b); err != nil {
			t.Fatal(err)
		}
	}
	tree := []byte("a tree")
	if _, err := r.SaveBlob(ctx, pack.TreeBlob, backend.Hash(tree), tree); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var stored int64
	if err := r.ListFiles(ctx, backend.PackFile, func(_ backend.ID, size int64) error {
		stored += size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := r.UploadedPackBytes(); got == 0 || int64(got) != stored {
		t.Fatalf("uploaded %d bytes, data/ holds %d", got, stored)
	}
}
