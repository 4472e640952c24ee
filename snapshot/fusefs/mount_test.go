package fusefs

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// requireFUSE skips a test that mounts unless this process may mount
// FUSE file systems itself (root, /dev/fuse); when CAIRN_TEST_REQUIRE
// names fuse (as `make test` does) it fails instead.
func requireFUSE(t *testing.T) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "not root"
	} else if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		why = err.Error()
	} else {
		f.Close()
		return
	}
	for _, r := range strings.FieldsFunc(os.Getenv("CAIRN_TEST_REQUIRE"), func(r rune) bool { return r == ',' || r == ' ' }) {
		if r == "fuse" {
			t.Fatalf("CAIRN_TEST_REQUIRE names fuse, but cannot mount: %s", why)
		}
	}
	t.Skipf("cannot mount FUSE (%s); set CAIRN_TEST_REQUIRE=fuse to make this a failure", why)
}

func putTree(t *testing.T, m *memRepo, nodes ...*snapshot.Node) backend.ID {
	t.Helper()
	tree := &snapshot.Tree{Nodes: nodes}
	tree.Sort()
	b, err := snapshot.EncodeTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	return m.add(pack.TreeBlob, b)
}

// The file system mounted in this process: listing, attributes, a
// multi-chunk file read by several readers at once, symlinks, xattrs, a
// refused write, and a clean unmount. With -race it checks the caches
// and nodes under the kernel's concurrent requests.
func TestMountInProcess(t *testing.T) {
	requireFUSE(t)
	rng := rand.New(rand.NewPCG(3, 4))
	big := make([]byte, 3<<20+12345)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	m := newMemRepo()
	var sizes []int
	for left := len(big); left > 0; {
		n := min(left, 1+rng.IntN(400<<10))
		sizes = append(sizes, n)
		left -= n
	}
	mtime := time.Date(2023, 4, 5, 6, 7, 8, 900, time.UTC)
	ctime := mtime.Add(time.Hour)
	fileNode := &snapshot.Node{Name: "big", Type: snapshot.NodeFile, Mode: 0o640 | os.ModeSetgid, ModTime: mtime, ChangeTime: ctime,
		UID: 1234, GID: 5678, Size: uint64(len(big)), Content: m.chunked(big, sizes),
		ExtendedAttributes: []snapshot.ExtendedAttribute{{Name: "user.note", Value: []byte("kept")}}}
	sub := putTree(t, m,
		fileNode,
		&snapshot.Node{Name: "empty", Type: snapshot.NodeFile, Mode: 0o600, ModTime: mtime, Content: []backend.ID{}},
		&snapshot.Node{Name: "link", Type: snapshot.NodeSymlink, Mode: os.ModeSymlink | 0o777, ModTime: mtime, LinkTarget: "big"},
		&snapshot.Node{Name: "fifo", Type: snapshot.NodeFifo, Mode: os.ModeNamedPipe | 0o644, ModTime: mtime},
	)
	root := putTree(t, m, &snapshot.Node{Name: "data", Type: snapshot.NodeDir, Mode: os.ModeDir | 0o750, ModTime: mtime, Subtree: &sub})
	snTime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	sn := testSnap(7, snTime, "host1", "tag1")
	sn.Tree = root

	var warnMu sync.Mutex
	var warnings []string
	fsys, w, err := New(m, []*snapshot.Snapshot{sn}, Options{
		TimeTemplate: "2006-01-02", UID: 42, GID: 43, Now: snTime,
		BlobCacheSize: 1 << 20, // smaller than the file: chunks are evicted and read again
		Warn: func(s string) {
			warnMu.Lock()
			warnings = append(warnings, s)
			warnMu.Unlock()
		},
	})
	if err != nil || len(w) > 0 {
		t.Fatal(err, w)
	}
	dir := t.TempDir()
	srv, err := fsys.Mount(dir, MountOptions{FsName: "cairn:test"})
	if err != nil {
		t.Fatal(err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = srv.Unmount()
		}
	})

	names := func(p string) []string {
		t.Helper()
		ents, err := os.ReadDir(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	for p, want := range map[string][]string{
		"":                         {"hosts", "ids", "snapshots", "tags"},
		"ids":                      {sn.ID.Str()},
		"hosts/host1":              {"2024-01-02", "latest"},
		"tags/tag1":                {"2024-01-02", "latest"},
		"snapshots/latest/data":    {"big", "empty", "fifo", "link"},
		"ids/07000000/data":        {"big", "empty", "fifo", "link"},
		"hosts/host1/latest/data/": {"big", "empty", "fifo", "link"},
	} {
		if got := names(p); !slices.Equal(got, want) {
			t.Errorf("ls %q: %v, want %v", p, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "snapshots/latest")); err != nil || target != "2024-01-02" {
		t.Errorf("snapshots/latest -> %q, %v", target, err)
	}
	data := filepath.Join(dir, "ids", sn.ID.Str(), "data")
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(data, "big"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(big)) || st.Mode != syscall.S_IFREG|syscall.S_ISGID|0o640 || st.Uid != 1234 || st.Gid != 5678 ||
		st.Mtim.Sec != mtime.Unix() || st.Mtim.Nsec != int64(mtime.Nanosecond()) || st.Ctim.Sec != ctime.Unix() {
		t.Errorf("stat big: size %d mode %o uid %d gid %d mtime %d.%d ctime %d", st.Size, st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec)
	}
	if err := syscall.Lstat(filepath.Join(dir, "ids", sn.ID.Str()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != syscall.S_IFDIR|0o555 || st.Uid != 42 || st.Mtim.Sec != snTime.Unix() {
		t.Errorf("snapshot folder: mode %o uid %d mtime %d", st.Mode, st.Uid, st.Mtim.Sec)
	}
	if err := syscall.Lstat(filepath.Join(data, "fifo"), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		t.Errorf("fifo: mode %o, %v", st.Mode, err)
	}
	if target, err := os.Readlink(filepath.Join(data, "link")); err != nil || target != "big" {
		t.Errorf("link -> %q, %v", target, err)
	}
	buf := make([]byte, 16)
	if n, err := syscall.Getxattr(filepath.Join(data, "big"), "user.note", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("xattr: %q, %v", buf[:n], err)
	}
	if n, err := syscall.Listxattr(filepath.Join(data, "big"), buf); err != nil || string(buf[:n]) != "user.note\x00" {
		t.Errorf("xattr list: %q, %v", buf[:n], err)
	}
	if b, err := os.ReadFile(filepath.Join(data, "empty")); err != nil || len(b) != 0 {
		t.Errorf("empty: %d bytes, %v", len(b), err)
	}

	// Several readers at random offsets, each range checked. Direct
	// reads through separate opens so the page cache does not serve them
	// all from the first.
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(r), 9))
			f, err := os.Open(filepath.Join(data, "big"))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for range 50 {
				off := rr.IntN(len(big))
				n := 1 + rr.IntN(300<<10)
				got := make([]byte, n)
				k, err := f.ReadAt(got, int64(off))
				if err != nil && !errors.Is(err, io.EOF) {
					t.Errorf("read %d+%d: %v", off, n, err)
					return
				}
				if !bytes.Equal(got[:k], big[off:min(off+n, len(big))]) {
					t.Errorf("read %d+%d: bytes differ", off, n)
					return
				}
			}
		})
	}
	wg.Wait()
	if whole, err := os.ReadFile(filepath.Join(data, "big")); err != nil || !bytes.Equal(whole, big) {
		t.Errorf("whole file differs (%d bytes, %v)", len(whole), err)
	}
	// Bounded: what the caches hold never exceeds their size.
	if _, used := fsys.blobs.stats(); used > 1<<20 {
		t.Errorf("blob cache holds %d bytes, bound 1 MiB", used)
	}

	if err := os.WriteFile(filepath.Join(data, "new"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create: %v, want EROFS", err)
	}
	if _, err := os.OpenFile(filepath.Join(data, "big"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "ids", "x"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir: %v, want EROFS", err)
	}

	if err := srv.Unmount(); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("after unmount the mountpoint holds %d entries (%v)", len(ents), err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %q", warnings)
	}
}

// A chunk that cannot be loaded fails the read with EIO and a warning
// naming the file; the mount goes on serving.
func TestMountDamagedChunk(t *testing.T) {
	requireFUSE(t)
	m := newMemRepo()
	content := m.chunked([]byte("0123456789"), []int{4, 6})
	sub := putTree(t, m,
		&snapshot.Node{Name: "bad", Type: snapshot.NodeFile, Mode: 0o644, Size: 10, Content: content},
		&snapshot.Node{Name: "good", Type: snapshot.NodeFile, Mode: 0o644, Size: 4, Content: content[:1]},
	)
	m.fail[content[1]] = true // the index still lists it
	sn := testSnap(1, time.Unix(1e9, 0), "h")
	sn.Tree = sub
	var warnMu sync.Mutex
	var warnings []string
	fsys, _, err := New(m, []*snapshot.Snapshot{sn}, Options{Warn: func(s string) {
		warnMu.Lock()
		warnings = append(warnings, s)
		warnMu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := fsys.Mount(dir, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Unmount()
	snapDir := filepath.Join(dir, "ids", sn.ID.Str())
	if _, err := os.ReadFile(filepath.Join(snapDir, "bad")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read bad: %v, want EIO", err)
	}
	if b, err := os.ReadFile(filepath.Join(snapDir, "good")); err != nil || string(b) != "0123" {
		t.Errorf("read good: %q, %v", b, err)
	}
	warnMu.Lock()
	defer warnMu.Unlock()
	if len(warnings) == 0 || !strings.Contains(warnings[0], "ids/"+sn.ID.Str()+"/bad") {
		t.Errorf("warnings %q, want one naming the file", warnings)
	}
}
