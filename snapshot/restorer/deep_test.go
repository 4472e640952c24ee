package restorer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// watchRepo passes calls to a fakeRepo and, each time it loads the tree
// of the deepest level, runs atBottom: an event in the middle of the
// walk, where the walker holds the most.
type watchRepo struct {
	*fakeRepo
	bottom   backend.ID
	atBottom func()
}

func (w *watchRepo) LoadBlob(ctx context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error) {
	if t == pack.TreeBlob && id == w.bottom {
		w.atBottom()
	}
	return w.fakeRepo.LoadBlob(ctx, t, id, buf)
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// deepLevelMeta is the mode and mtime of folder k of a chain.
func deepLevelMeta(k int) (os.FileMode, time.Time) {
	return os.ModeDir | os.FileMode(0o700|(k%8)<<3|(k/8)%8), t0.Add(time.Duration(k) * time.Second)
}

// deepChainTree stores a chain of depth folders named "d": folder k
// holds "f" (content "level k") at the levels in files, and the deepest
// a fifo, a symlink and a hardlink "h" to the file "f" of level 2 (the
// link count of both says so). It returns the root tree and the tree of
// the deepest folder.
func deepChainTree(t *testing.T, repo *fakeRepo, depth int, files []int) (root, bottom backend.ID) {
	t.Helper()
	fileAt := func(k int) *snapshot.Node {
		n := fileNode(repo, "f", fmt.Appendf(nil, "level %d\n", k), 100)
		if k == 2 {
			n.Links, n.Inode, n.DeviceID = 2, 42, 1
		}
		return n
	}
	h := fileAt(2)
	h.Name = "h"
	leaf := []*snapshot.Node{h,
		{Name: "fifo", Type: snapshot.NodeFifo, Mode: os.ModeNamedPipe | 0o640, ModTime: t0},
		{Name: "link", Type: snapshot.NodeSymlink, LinkTarget: "../../x", ModTime: t0}}
	if slices.Contains(files, depth) {
		leaf = append(leaf, fileAt(depth))
	}
	id := repo.addTree(t, leaf...)
	bottom = id
	for k := depth; k >= 1; k-- {
		d := dirNode("d", id)
		d.Mode, d.ModTime = deepLevelMeta(k)
		nodes := []*snapshot.Node{d}
		if k-1 >= 1 && slices.Contains(files, k-1) {
			nodes = append(nodes, fileAt(k-1))
		}
		id = repo.addTree(t, nodes...)
	}
	return id, bottom
}

// checkDeepChain walks the restored chain with openat, level by level,
// and compares names, modes, mtimes and contents with deepChainTree's.
func checkDeepChain(t *testing.T, target string, depth int, files []int) {
	t.Helper()
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { unix.Close(fd) }()
	readAt := func(name string) string {
		ffd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		f := os.NewFile(uintptr(ffd), name)
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var fileIno uint64
	for k := 1; k <= depth; k++ {
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("level %d: %v", k, err)
		}
		unix.Close(fd)
		fd = next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		mode, mtime := deepLevelMeta(k)
		if st.Mode&0o7777 != uint32(mode.Perm()) || !time.Unix(st.Mtim.Unix()).Equal(mtime) {
			t.Fatalf("level %d: mode %o mtime %v, want %o %v", k, st.Mode&0o7777, time.Unix(st.Mtim.Unix()), mode.Perm(), mtime)
		}
		want := []string{}
		if k < depth {
			want = append(want, "d")
		}
		if slices.Contains(files, k) {
			want = append(want, "f")
			if got := readAt("f"); got != fmt.Sprintf("level %d\n", k) {
				t.Fatalf("level %d: f holds %q", k, got)
			}
			if k == 2 {
				var fst unix.Stat_t
				if err := unix.Fstatat(fd, "f", &fst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					t.Fatal(err)
				}
				fileIno = fst.Ino
			}
		}
		if k == depth {
			want = append(want, "fifo", "h", "link")
		}
		slices.Sort(want)
		names := dirNames(t, fd)
		if !slices.Equal(names, want) {
			t.Fatalf("level %d holds %q, want %q", k, names, want)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(fd, "h", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Ino != fileIno || st.Nlink != 2 {
		t.Errorf("h at the bottom: inode %d nlink %d (%v), want a link to level 2's f (inode %d)", st.Ino, st.Nlink, err, fileIno)
	}
	if err := unix.Fstatat(fd, "fifo", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode != unix.S_IFIFO|0o640 {
		t.Errorf("fifo at the bottom: mode %o (%v)", st.Mode, err)
	}
}

// dirNames lists the directory open as fd, sorted.
func dirNames(t *testing.T, fd int) []string {
	t.Helper()
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	slices.Sort(names)
	return names
}

// deepRestore restores a chain of depth folders with BatchFiles 64 and
// returns the descriptors and the live heap (after a collection) the
// process holds when the walk reaches the bottom, above what it held
// before the restore.
func deepRestore(t *testing.T, depth int) (fds int, heap uint64) {
	t.Helper()
	files := []int{1, 2, 3, depth / 2, depth - 1, depth}
	repo := newFakeRepo()
	root, bottom := deepChainTree(t, repo, depth, files)
	live := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	target := t.TempDir()
	t.Cleanup(func() { removeDeep(t, target) })
	baseFDs, baseHeap := openFDs(t), live()
	var once sync.Once
	w := &watchRepo{fakeRepo: repo, bottom: bottom, atBottom: func() {
		once.Do(func() {
			fds = openFDs(t) - baseFDs
			h := live()
			heap = h - min(h, baseHeap)
		})
	}}
	_, rep := restoreT(t, w, root, Options{BatchFiles: 64}, target)
	if len(rep.errs) > 0 {
		for p, errs := range rep.errs {
			t.Fatalf("%.60s...: %v (and %d more)", p, errs[0], len(rep.errs)-1)
		}
	}
	if heap == 0 && fds == 0 {
		t.Fatal("the bottom of the chain was never loaded")
	}
	checkDeepChain(t, target, depth, files)
	return fds, heap
}

// TestRestoreDeepTree restores chains of 5,000 and 25,000 folders (paths
// of 10 and 50 KB, far past PATH_MAX) with files, a fifo, a symlink and a
// hardlink at depth, compares them level by level, and checks that the
// restore holds at most maxOpenDirs descriptors of the walk's path plus
// its batch's, and memory linear in the depth, at the bottom.
func TestRestoreDeepTree(t *testing.T) {
	fds5, heap5 := deepRestore(t, 5000)
	fds25, heap25 := deepRestore(t, 25000)
	t.Logf("at the bottom: 5,000 levels: %d descriptors, %d KiB; 25,000 levels: %d descriptors, %d KiB",
		fds5, heap5>>10, fds25, heap25>>10)
	// The batch of 64 may hold some more: a kept directory is counted
	// with the entries that name it, and flushing waits for the next
	// node. 16 covers the workers' and the runtime's own.
	if limit := maxOpenDirs + 64 + 16; fds25 > limit || fds5 > limit {
		t.Errorf("%d and %d descriptors open at the bottom, limit %d", fds5, fds25, limit)
	}
	// Linear: about 5 times as much at 25,000 levels; quadratic: 25.
	if heap25 > 8*heap5+1<<20 {
		t.Errorf("live heap %d KiB at 25,000 levels, %d KiB at 5,000: more than linear", heap25>>10, heap5>>10)
	}
}

// removeDeep removes everything in dir, however deep (os.RemoveAll holds
// a descriptor per level), with two descriptors at a time: down through
// the first folder of each level, up through "..".
func removeDeep(t *testing.T, dir string) {
	t.Helper()
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(dir, flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string // the way down from dir
	for {
		f := os.NewFile(uintptr(fd), "dir")
		ents, err := f.ReadDir(-1)
		if err != nil {
			t.Fatal(err)
		}
		sub := ""
		for _, ent := range ents {
			if ent.IsDir() {
				sub = ent.Name()
				continue
			}
			if err := unix.Unlinkat(fd, ent.Name(), 0); err != nil {
				t.Fatal(err)
			}
		}
		if sub != "" {
			next, err := unix.Openat(fd, sub, flags, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			fd, names = next, append(names, sub)
			continue
		}
		if len(names) == 0 {
			f.Close()
			return
		}
		up, err := unix.Openat(fd, "..", flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := unix.Unlinkat(up, names[len(names)-1], unix.AT_REMOVEDIR); err != nil {
			t.Fatal(err)
		}
		fd, names = up, names[:len(names)-1]
	}
}

// TestRestoreDeepTreeMovedUnderTheRestore moves a folder of a chain 100
// deep to another place in the target while the restore is 30 levels
// below it, the descriptors of the folders above long released: on the
// way back up, ".." of the moved folder is no longer the folder the
// restore made above it, so that one is opened again by name from the
// top, checked level by level; the moved folder's name is gone, so it is
// reported and its metadata not set. Everything else is restored, and no
// descriptor is left open.
func TestRestoreDeepTreeMovedUnderTheRestore(t *testing.T) {
	const depth = 100
	repo := newFakeRepo()
	root, _ := deepChainTree(t, repo, depth, []int{1, 49, 50, depth})
	target := t.TempDir()
	level := func(k int) string { return filepath.Join(target, strings.Repeat("d/", k)) }
	var once sync.Once
	moved := false
	opts := Options{TestOnlyBetween: func(p string, made bool) {
		if !made || p != strings.Repeat("/d", 80) {
			return
		}
		once.Do(func() {
			// Level 50 goes from level 49 to level 10.
			if err := os.Rename(level(50), filepath.Join(level(10), "x")); err != nil {
				t.Error(err)
				return
			}
			moved = true
		})
	}}
	baseFDs := openFDs(t)
	_, rep := restoreT(t, repo, root, opts, target)
	if !moved {
		t.Fatal("the seam never ran")
	}
	if n := openFDs(t) - baseFDs; n != 0 {
		t.Errorf("%d descriptors left open", n)
	}
	want50 := strings.Repeat("/d", 50)
	if got := rep.paths(); !slices.Equal(got, []string{want50}) {
		t.Fatalf("errors for %q, want only level 50: %v", got, rep.errs)
	}
	if err := rep.errs[want50][0]; !errors.Is(err, ErrChangedInTarget) {
		t.Errorf("level 50: %v", err)
	}
	check := func(p string, k int) {
		t.Helper()
		st := lstat(t, p)
		mode, mtime := deepLevelMeta(k)
		if st.Mode&0o7777 != uint32(mode.Perm()) || !time.Unix(st.Mtim.Unix()).Equal(mtime) {
			t.Errorf("level %d: mode %o mtime %v, want %o %v", k, st.Mode&0o7777, time.Unix(st.Mtim.Unix()), mode.Perm(), mtime)
		}
	}
	for k := 1; k <= 49; k++ {
		check(level(k), k)
	}
	checkFile(t, filepath.Join(level(49), "f"), []byte("level 49\n"))
	if _, err := os.Lstat(level(50)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("level 50 is back in its place: %v", err)
	}
	movedTo := filepath.Join(level(10), "x")
	if st := lstat(t, movedTo); st.Mode&0o7777 != 0o700 {
		t.Errorf("the moved folder got metadata: mode %o", st.Mode&0o7777)
	}
	for k := 51; k <= depth; k++ {
		check(filepath.Join(movedTo, strings.Repeat("d/", k-50)), k)
	}
	checkFile(t, filepath.Join(movedTo, "f"), []byte("level 50\n"))
	checkFile(t, filepath.Join(movedTo, strings.Repeat("d/", depth-50), "f"), []byte(fmt.Sprintf("level %d\n", depth)))
}
