package archiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/restic/chunker"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// testPol is an irreducible polynomial of degree 53 (the one restic's
// chunker tests use).
const testPol = chunker.Pol(0x3DA3358B4DC173)

// fakeRepo is an in-memory Repository.
type fakeRepo struct {
	mu    sync.Mutex // guards the fields below
	blobs map[blobKey][]byte
	saves map[pack.BlobType]int // SaveBlob calls, known blobs included

	// saveHook, if set, runs at the start of every SaveBlob; an error from
	// it is returned.
	saveHook func(ctx context.Context, t pack.BlobType) error
}

var _ Repository = (*fakeRepo)(nil)

func newFakeRepo() *fakeRepo {
	return &fakeRepo{blobs: map[blobKey][]byte{}, saves: map[pack.BlobType]int{}}
}

func (r *fakeRepo) ChunkerPolynomial() chunker.Pol { return testPol }

func (r *fakeRepo) SaveBlob(ctx context.Context, t pack.BlobType, id backend.ID, data []byte) (bool, error) {
	if r.saveHook != nil {
		if err := r.saveHook(ctx, t); err != nil {
			return false, err
		}
	}
	if backend.Hash(data) != id {
		return false, fmt.Errorf("fake repo: blob %s does not hash to its ID", id.Str())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.saves[t]++
	k := blobKey{t, id}
	if _, ok := r.blobs[k]; ok {
		return true, nil
	}
	r.blobs[k] = bytes.Clone(data)
	return false, nil
}

func (r *fakeRepo) LoadBlob(_ context.Context, t pack.BlobType, id backend.ID, _ []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.blobs[blobKey{t, id}]
	if !ok {
		return nil, fmt.Errorf("fake repo: %v blob %s: %w", t, id.Str(), backend.ErrNotExist)
	}
	return bytes.Clone(b), nil
}

func (r *fakeRepo) Has(t pack.BlobType, id backend.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.blobs[blobKey{t, id}]
	return ok
}

func (r *fakeRepo) count(t pack.BlobType) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n uint64
	for k := range r.blobs {
		if k.t == t {
			n++
		}
	}
	return n
}

func (r *fakeRepo) tree(t testing.TB, id backend.ID) *snapshot.Tree {
	t.Helper()
	data, err := r.LoadBlob(context.Background(), pack.TreeBlob, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := snapshot.DecodeTree(data)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// content concatenates a file node's chunks.
func (r *fakeRepo) content(t testing.TB, n *snapshot.Node) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, id := range n.Content {
		b, err := r.LoadBlob(context.Background(), pack.DataBlob, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	return buf.Bytes()
}

// lookup finds the node of an absolute path in the snapshot with root
// tree root; nil if it is not there.
func (r *fakeRepo) lookup(t testing.TB, root backend.ID, path string) *snapshot.Node {
	t.Helper()
	node := &snapshot.Node{Type: snapshot.NodeDir, Subtree: &root}
	for _, name := range splitPath(path) {
		if node.Type != snapshot.NodeDir {
			return nil
		}
		node = r.tree(t, *node.Subtree).Find(name)
		if node == nil {
			return nil
		}
	}
	return node
}

// checkSnapshot compares the snapshot with the file system: for each
// path, the node at that path and everything below it must match what is
// on disk (type, mode, times, owner, size, content, symlink target,
// device, directory listings). skip names paths expected to be left out.
func checkSnapshot(t testing.TB, repo *fakeRepo, root backend.ID, paths []string, skip func(path string) bool) {
	t.Helper()
	for _, p := range paths {
		n := repo.lookup(t, root, p)
		if n == nil {
			t.Errorf("%s: not in the snapshot", p)
			continue
		}
		compareItem(t, repo, p, n, skip)
	}
}

func compareItem(t testing.TB, repo *fakeRepo, path string, n *snapshot.Node, skip func(string) bool) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if n.Name != filepath.Base(path) {
		t.Errorf("%s: node name %q", path, n.Name)
	}
	if n.Mode != fi.Mode() {
		t.Errorf("%s: mode %v, want %v", path, n.Mode, fi.Mode())
	}
	if !n.ModTime.Equal(time.Unix(st.Mtim.Sec, st.Mtim.Nsec)) {
		t.Errorf("%s: mtime %v, want %v", path, n.ModTime, fi.ModTime())
	}
	if !n.ChangeTime.Equal(time.Unix(st.Ctim.Sec, st.Ctim.Nsec)) {
		t.Errorf("%s: ctime %v", path, n.ChangeTime)
	}
	if n.UID != st.Uid || n.GID != st.Gid || n.Inode != st.Ino {
		t.Errorf("%s: uid/gid/inode %d/%d/%d, want %d/%d/%d", path, n.UID, n.GID, n.Inode, st.Uid, st.Gid, st.Ino)
	}
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		if n.Type != snapshot.NodeFile {
			t.Errorf("%s: type %s, want file", path, n.Type)
			return
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := repo.content(t, n); !bytes.Equal(got, want) {
			t.Errorf("%s: content differs (%d bytes in snapshot, %d on disk)", path, len(got), len(want))
		}
		if n.Size != uint64(len(want)) {
			t.Errorf("%s: size %d, want %d", path, n.Size, len(want))
		}
	case mode.IsDir():
		if n.Type != snapshot.NodeDir || n.Subtree == nil {
			t.Errorf("%s: type %s, want dir", path, n.Type)
			return
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, e := range entries {
			if skip == nil || !skip(filepath.Join(path, e.Name())) {
				want = append(want, e.Name())
			}
		}
		tree := repo.tree(t, *n.Subtree)
		var got []string
		for _, c := range tree.Nodes {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: entries %q, want %q", path, got, want)
			return
		}
		for _, c := range tree.Nodes {
			compareItem(t, repo, filepath.Join(path, c.Name), c, skip)
		}
	case mode&os.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		if n.Type != snapshot.NodeSymlink || n.LinkTarget != target {
			t.Errorf("%s: %s -> %q, want symlink -> %q", path, n.Type, n.LinkTarget, target)
		}
	case mode&os.ModeDevice != 0:
		want := snapshot.NodeDev
		if mode&os.ModeCharDevice != 0 {
			want = snapshot.NodeCharDev
		}
		if n.Type != want || n.Device != st.Rdev {
			t.Errorf("%s: %s device %#x, want %s %#x", path, n.Type, n.Device, want, st.Rdev)
		}
	case mode&os.ModeNamedPipe != 0:
		if n.Type != snapshot.NodeFifo {
			t.Errorf("%s: type %s, want fifo", path, n.Type)
		}
	case mode&os.ModeSocket != 0:
		if n.Type != snapshot.NodeSocket {
			t.Errorf("%s: type %s, want socket", path, n.Type)
		}
	}
}

// writeFile creates a file with the given content and its parents.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// randomBytes returns n deterministic pseudo-random bytes (seeded so
// failures reproduce).
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
	return b
}

// newArchiver returns an Archiver whose errors fail the test unless
// opts.Error is set.
func newArchiver(t testing.TB, repo Repository, opts Options) *Archiver {
	t.Helper()
	if opts.Error == nil {
		opts.Error = func(path string, err error) error {
			t.Errorf("unexpected item error %s: %v", path, err)
			return nil
		}
	}
	a, err := New(repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func snap(t testing.TB, a *Archiver, paths ...string) (backend.ID, snapshot.Summary) {
	t.Helper()
	id, sum, err := a.Snapshot(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	return id, sum
}

// countingOpen wraps the Archiver's open seam and counts opens of
// regular files (not directories).
func countingOpen(a *Archiver) *countedOpens {
	c := &countedOpens{}
	inner := a.open
	a.open = func(name string, flag int) (fsFile, error) {
		if flag&syscall.O_DIRECTORY == 0 {
			c.mu.Lock()
			c.paths = append(c.paths, name)
			c.mu.Unlock()
		}
		return inner(name, flag)
	}
	return c
}

type countedOpens struct {
	mu    sync.Mutex
	paths []string
}

func (c *countedOpens) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.paths)
}

var errInjected = errors.New("injected read error")

// failingFile is an open file whose reads fail after limit bytes.
type failingFile struct {
	*os.File
	limit int
}

func (f *failingFile) Read(b []byte) (int, error) {
	if f.limit <= 0 {
		return 0, errInjected
	}
	if len(b) > f.limit {
		b = b[:f.limit]
	}
	n, err := f.File.Read(b)
	f.limit -= n
	return n, err
}
