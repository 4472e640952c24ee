package archiver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/restic/chunker"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

// shrunkStat is a FileInfo whose size (and stat data's size) is smaller
// than the file's: the file grew after the size was taken.
type shrunkStat struct {
	os.FileInfo
	st syscall.Stat_t
}

func (s *shrunkStat) Size() int64 { return s.st.Size }
func (s *shrunkStat) Sys() any    { return &s.st }

// lyingFile reports a size of claim bytes from Stat, whatever it holds.
type lyingFile struct {
	*os.File
	claim int64
}

func (f *lyingFile) Stat() (os.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, err
	}
	s := &shrunkStat{FileInfo: fi, st: *fi.Sys().(*syscall.Stat_t)}
	s.st.Size = f.claim
	return s, nil
}

// TestSmallFileOutgrowsBuffer: a file larger than the size it had when it
// was opened (it grew meanwhile) is read whole all the same, through as
// many buffer classes as it needs, or through the chunker once it is no
// longer small; its chunks are the ones the chunker cuts, and a warning
// says its size changed.
func TestSmallFileOutgrowsBuffer(t *testing.T) {
	for _, size := range []int{smallClasses[0], smallClasses[0] + 1, 40 << 10, smallClasses[1] + 7, smallFile - 1, smallFile, 3 << 20} {
		dir := t.TempDir()
		data := randomBytes(uint64(size), size)
		p := filepath.Join(dir, "f")
		writeFile(t, p, data)
		rec := &recorder{}
		repo := newFakeRepo()
		a := newArchiver(t, repo, Options{Progress: rec})
		inner := a.open
		a.open = func(name string, flag int) (fsFile, error) {
			f, err := inner(name, flag)
			if err != nil || filepath.Base(name) != "f" {
				return f, err
			}
			return &lyingFile{File: f.(*os.File), claim: 100}, nil
		}
		root, _ := snap(t, a, dir)
		n := repo.lookup(t, root, p)
		if n.Size != uint64(size) {
			t.Errorf("%d bytes: node size %d", size, n.Size)
		}
		chk := chunker.New(bytes.NewReader(data), testPol)
		var want []backend.ID
		for {
			c, err := chk.Next(nil)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, backend.Hash(c.Data))
		}
		if len(n.Content) != len(want) {
			t.Fatalf("%d bytes: %d chunks, the chunker cuts %d", size, len(n.Content), len(want))
		}
		for i := range want {
			if n.Content[i] != want[i] {
				t.Fatalf("%d bytes: chunk %d differs from the chunker's", size, i)
			}
		}
		if len(rec.warnings) != 1 {
			t.Errorf("%d bytes: warnings %v, want one for the size change", size, rec.warnings)
		}
	}
}

// TestSmallClassOf: each small file goes into the smallest buffer that
// holds it with room to spare (so reading it finds EOF).
func TestSmallClassOf(t *testing.T) {
	for _, c := range []struct {
		size uint64
		want int
	}{{0, 0}, {1, 0}, {16<<10 - 1, 0}, {16 << 10, 1}, {128<<10 - 1, 1}, {128 << 10, 2}, {smallFile - 1, 2}, {smallFile, 3}, {1 << 40, 3}} {
		if got := smallClassOf(c.size); got != c.want {
			t.Errorf("smallClassOf(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

// gatedRepo holds data blob saves until gate is closed and counts the
// chunks read (Progress.BytesRead) meanwhile.
type gatedRepo struct {
	*fakeRepo
	gate    chan struct{}
	waiting chan struct{} // receives once per held save
}

func (g *gatedRepo) SaveBlob(ctx context.Context, t pack.BlobType, id backend.ID, data []byte) (bool, error) {
	if t == pack.DataBlob {
		g.waiting <- struct{}{}
		<-g.gate
	}
	return g.fakeRepo.SaveBlob(ctx, t, id, data)
}

type readCounter struct {
	nopProgress
	chunks atomic.Int64
}

func (c *readCounter) BytesRead(string, uint64) { c.chunks.Add(1) }

// TestChunksInFlightBounded: with the savers stuck in SaveBlob, the
// readers cut at most one chunk more than the savers hold, however many
// readers there are and files are waiting.
func TestChunksInFlightBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range 12 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), randomBytes(uint64(i), 20<<10))
	}
	repo := &gatedRepo{fakeRepo: newFakeRepo(), gate: make(chan struct{}), waiting: make(chan struct{}, 100)}
	prog := &readCounter{}
	const savers = 2
	a := newArchiver(t, repo, Options{ReadConcurrency: 6, SaveConcurrency: savers, Progress: prog})
	done := make(chan struct{})
	go func() {
		defer close(done)
		snap(t, a, dir)
	}()
	for range savers {
		<-repo.waiting
	}
	// Give the readers time to take whatever they can; more than
	// savers+1 chunks read means the bound does not hold.
	time.Sleep(200 * time.Millisecond)
	if n := prog.chunks.Load(); n > savers+1 {
		t.Errorf("%d chunks read while the %d savers were stuck, want at most %d", n, savers, savers+1)
	}
	close(repo.gate)
	<-done
}
