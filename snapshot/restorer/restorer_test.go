package restorer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

var (
	t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	t1 = time.Date(2023, 1, 2, 3, 4, 5, 987654321, time.UTC)
)

// fileNode stores content in chunks of chunk bytes and returns its node.
func fileNode(f *fakeRepo, name string, content []byte, chunk int) *snapshot.Node {
	n := &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, Size: uint64(len(content)),
		ModTime: t0, AccessTime: t1, UID: 1234, GID: 5678, Links: 1}
	for len(content) > 0 {
		c := content[:min(chunk, len(content))]
		n.Content = append(n.Content, f.addData(c))
		content = content[len(c):]
	}
	return n
}

func dirNode(name string, id backend.ID) *snapshot.Node {
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, Subtree: &id,
		ModTime: t1, AccessTime: t0, UID: 1234, GID: 5678}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// reported collects what Options.Error receives.
type reported struct {
	mu   sync.Mutex
	errs map[string][]error
}

func (r *reported) fn(p string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs == nil {
		r.errs = map[string][]error{}
	}
	r.errs[p] = append(r.errs[p], err)
	return nil
}

func (r *reported) paths() []string {
	var out []string
	for p := range r.errs {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func restoreT(t *testing.T, repo Repository, root backend.ID, opts Options, target string) (Stats, *reported) {
	t.Helper()
	rep := &reported{}
	if opts.Error == nil {
		opts.Error = rep.fn
	}
	r, err := New(repo, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.Restore(context.Background(), target)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	n := 0
	for _, e := range rep.errs {
		n += len(e)
	}
	if st.Errors != uint64(n) {
		t.Errorf("Stats.Errors = %d, %d reported: %v", st.Errors, n, rep.errs)
	}
	return st, rep
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: content differs (%d bytes, want %d)", p, len(got), len(want))
	}
}

func checkTimes(t *testing.T, p string, mtime, atime time.Time) {
	t.Helper()
	st := lstat(t, p)
	if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
		t.Errorf("%s: mtime %v, want %v", p, got, mtime)
	}
	if got := time.Unix(st.Atim.Unix()); !got.Equal(atime) {
		t.Errorf("%s: atime %v, want %v", p, got, atime)
	}
}

func TestRestoreEveryNodeType(t *testing.T) {
	repo := newFakeRepo()
	rnd := rand.New(rand.NewPCG(1, 2))
	big := randBytes(rnd, 100_000)
	small := []byte("hello\n")

	setuid := fileNode(repo, "setuid", small, 4)
	setuid.Mode = os.ModeSetuid | os.ModeSetgid | 0o755
	xattrFile := fileNode(repo, "xattr", small, 100)
	xattrFile.ExtendedAttributes = []snapshot.ExtendedAttribute{{Name: "user.one", Value: []byte("1")}, {Name: "user.bin", Value: []byte{0, 1, 2}}}
	empty := fileNode(repo, "empty", nil, 10)
	link := &snapshot.Node{Name: "link", Type: snapshot.NodeSymlink, LinkTarget: "../../somewhere/else",
		ModTime: t0, AccessTime: t1, UID: 1234, GID: 5678}
	fifo := &snapshot.Node{Name: "fifo", Type: snapshot.NodeFifo, Mode: os.ModeNamedPipe | 0o640, ModTime: t0, AccessTime: t1, UID: 1234, GID: 5678}
	dev := &snapshot.Node{Name: "null", Type: snapshot.NodeCharDev, Mode: os.ModeDevice | os.ModeCharDevice | 0o666,
		Device: unix.Mkdev(1, 3), ModTime: t0, AccessTime: t1}
	sock := &snapshot.Node{Name: "sock", Type: snapshot.NodeSocket, Mode: os.ModeSocket | 0o777}

	inner := repo.addTree(t, fileNode(repo, "deep.bin", big, 7000))
	ro := dirNode("readonly", repo.addTree(t, fileNode(repo, "in-ro", small, 100)))
	ro.Mode = os.ModeDir | 0o555
	sticky := dirNode("sticky", repo.addTree(t))
	sticky.Mode = os.ModeDir | os.ModeSticky | 0o1777
	xdir := dirNode("xdir", repo.addTree(t, dirNode("inner", inner)))
	xdir.ExtendedAttributes = []snapshot.ExtendedAttribute{{Name: "user.dir", Value: []byte("d")}}
	root := repo.addTree(t, setuid, xattrFile, empty, link, fifo, dev, sock, ro, sticky, xdir)

	target := filepath.Join(t.TempDir(), "target")
	st, rep := restoreT(t, repo, root, Options{}, target)
	if len(rep.errs) > 0 {
		t.Fatalf("errors: %v", rep.errs)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(target, "readonly"), 0o755) })
	want := Stats{Files: 5, Dirs: 4, Symlinks: 1, Special: 2, Skipped: 1,
		Bytes: uint64(3*len(small) + len(big)), Packs: st.Packs}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}

	// Times first: reading a file or a link would change its atime.
	for _, p := range []string{"setuid", "xattr", "fifo", "null", "link", "xdir/inner/deep.bin"} {
		st := lstat(t, filepath.Join(target, p))
		if os.Geteuid() == 0 && p != "null" && (st.Uid != 1234 || st.Gid != 5678) {
			t.Errorf("%s: owner %d:%d", p, st.Uid, st.Gid)
		}
		checkTimes(t, filepath.Join(target, p), t0, t1)
	}
	// Directory times are set after their contents were written.
	for _, p := range []string{"readonly", "sticky", "xdir", "xdir/inner"} {
		checkTimes(t, filepath.Join(target, p), t1, t0)
	}
	checkFile(t, filepath.Join(target, "setuid"), small)
	checkFile(t, filepath.Join(target, "xdir/inner/deep.bin"), big)
	checkFile(t, filepath.Join(target, "readonly/in-ro"), small)
	checkFile(t, filepath.Join(target, "empty"), nil)

	modes := map[string]uint32{
		"setuid":   unix.S_IFREG | unix.S_ISUID | unix.S_ISGID | 0o755,
		"xattr":    unix.S_IFREG | 0o644,
		"fifo":     unix.S_IFIFO | 0o640,
		"null":     unix.S_IFCHR | 0o666,
		"readonly": unix.S_IFDIR | 0o555,
		"sticky":   unix.S_IFDIR | unix.S_ISVTX | 0o777,
		"link":     unix.S_IFLNK | 0o777,
	}
	for name, mode := range modes {
		if got := lstat(t, filepath.Join(target, name)).Mode; got != mode {
			t.Errorf("%s: mode %o, want %o", name, got, mode)
		}
	}
	if got := lstat(t, filepath.Join(target, "null")).Rdev; got != unix.Mkdev(1, 3) {
		t.Errorf("device number %x", got)
	}
	if _, err := os.Lstat(filepath.Join(target, "sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket restored: %v", err)
	}
	if got, err := os.Readlink(filepath.Join(target, "link")); err != nil || got != link.LinkTarget {
		t.Errorf("symlink %q %v", got, err)
	}
	buf := make([]byte, 16)
	n, err := unix.Getxattr(filepath.Join(target, "xattr"), "user.bin", buf)
	if err != nil || !bytes.Equal(buf[:n], []byte{0, 1, 2}) {
		t.Errorf("file xattr %q %v", buf[:n], err)
	}
	n, err = unix.Getxattr(filepath.Join(target, "xdir"), "user.dir", buf)
	if err != nil || string(buf[:n]) != "d" {
		t.Errorf("dir xattr %q %v", buf[:n], err)
	}

	// Restoring again over the result replaces everything without errors.
	if err := os.Chmod(filepath.Join(target, "readonly"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, rep = restoreT(t, repo, root, Options{}, target)
	if len(rep.errs) > 0 {
		t.Fatalf("second restore: %v", rep.errs)
	}
	checkFile(t, filepath.Join(target, "xdir/inner/deep.bin"), big)
}

func TestRestoreNotRootSkipsChown(t *testing.T) {
	repo := newFakeRepo()
	root := repo.addTree(t, fileNode(repo, "f", []byte("x"), 10))
	r, err := New(repo, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.chown = false
	target := t.TempDir()
	st, err := r.Restore(context.Background(), target)
	if err != nil || st.Errors != 0 {
		t.Fatalf("Restore: %v %+v", err, st)
	}
	if s := lstat(t, filepath.Join(target, "f")); s.Uid != uint32(os.Geteuid()) {
		t.Errorf("owner %d changed without chown", s.Uid)
	}
}

func TestRestoreHardlinks(t *testing.T) {
	repo := newFakeRepo()
	content := []byte("shared content")
	a := fileNode(repo, "a", content, 5)
	a.Links, a.Inode, a.DeviceID = 3, 77, 9
	b := fileNode(repo, "b", content, 5)
	b.Links, b.Inode, b.DeviceID = 3, 77, 9
	c := fileNode(repo, "c", content, 5)
	c.Links, c.Inode, c.DeviceID = 3, 77, 9
	other := fileNode(repo, "other", content, 5)
	other.Links, other.Inode, other.DeviceID = 2, 77, 10 // another device: not the same file
	root := repo.addTree(t, a, dirNode("sub", repo.addTree(t, b)), dirNode("sub2", repo.addTree(t, c)), other)

	target := t.TempDir()
	// BatchFiles 1 puts the links in later batches than the first name.
	st, rep := restoreT(t, repo, root, Options{BatchFiles: 1}, target)
	if len(rep.errs) > 0 {
		t.Fatal(rep.errs)
	}
	if st.Files != 2 || st.Hardlinks != 2 || st.Bytes != uint64(2*len(content)) {
		t.Errorf("stats %+v", st)
	}
	ino := lstat(t, filepath.Join(target, "a")).Ino
	for _, p := range []string{"sub/b", "sub2/c"} {
		s := lstat(t, filepath.Join(target, p))
		if s.Ino != ino || s.Nlink != 3 {
			t.Errorf("%s: inode %d nlink %d, want %d and 3", p, s.Ino, s.Nlink, ino)
		}
		checkFile(t, filepath.Join(target, p), content)
	}
	if s := lstat(t, filepath.Join(target, "other")); s.Ino == ino || s.Nlink != 1 {
		t.Errorf("other: linked to a")
	}
	// With include, a link whose first name is not restored is a file.
	target2 := t.TempDir()
	st, _ = restoreT(t, repo, root, Options{Include: []string{"/sub2"}}, target2)
	if st.Files != 1 || st.Hardlinks != 0 {
		t.Errorf("include: %+v", st)
	}
	checkFile(t, filepath.Join(target2, "sub2/c"), content)
}

// TestRestoreTotalsUpFront: Totals gives the whole restore's files and
// bytes once, before any content is written, however many batches the
// restore is planned in, counting a hardlinked file once and only what
// --include and --exclude select.
func TestRestoreTotalsUpFront(t *testing.T) {
	repo := newFakeRepo()
	rnd := rand.New(rand.NewPCG(11, 12))
	shared := randBytes(rnd, 700)
	a := fileNode(repo, "a", shared, 100)
	a.Links, a.Inode, a.DeviceID = 2, 5, 1
	b := fileNode(repo, "b", shared, 100)
	b.Links, b.Inode, b.DeviceID = 2, 5, 1
	var files []*snapshot.Node
	sizes := map[string]uint64{}
	for i := range 30 {
		name := fmt.Sprintf("f%02d", i)
		files = append(files, fileNode(repo, name, randBytes(rnd, 50*i), 100))
		sizes[name] = uint64(50 * i)
	}
	root := repo.addTree(t, a, dirNode("d", repo.addTree(t, files...)), dirNode("e", repo.addTree(t, b)),
		dirNode("x", repo.addTree(t, fileNode(repo, "big", randBytes(rnd, 5000), 1000))))
	var all uint64
	for _, n := range sizes {
		all += n
	}
	for _, tc := range []struct {
		name         string
		opts         Options
		files, bytes uint64
	}{
		{"all", Options{}, 32, 700 + all + 5000},
		{"exclude", Options{Exclude: []string{"/x", "f0*"}}, 21, 700 + all - (0+1+2+3+4+5+6+7+8+9)*50},
		{"include", Options{Include: []string{"/e", "/d/f29"}}, 2, 700 + 29*50},
	} {
		prog := &countProgress{seen: map[string]int{}}
		tc.opts.Progress, tc.opts.BatchBlobs = prog, 4 // many batches
		st, rep := restoreT(t, repo, root, tc.opts, t.TempDir())
		if len(rep.errs) > 0 {
			t.Fatal(rep.errs)
		}
		if prog.totalsCalls.Load() != 1 || prog.lateTotals.Load() != 0 {
			t.Errorf("%s: Totals called %d times, %d after content was written", tc.name, prog.totalsCalls.Load(), prog.lateTotals.Load())
		}
		if f, b := prog.plannedFiles.Load(), prog.plannedBytes.Load(); f != tc.files || b != tc.bytes || f != st.Files || b != st.Bytes {
			t.Errorf("%s: totals %d files %d bytes, want %d and %d; restored %d files %d bytes", tc.name, f, b, tc.files, tc.bytes, st.Files, st.Bytes)
		}
	}
}

func TestRestoreSparse(t *testing.T) {
	repo := newFakeRepo()
	const chunk = 256 << 10
	content := make([]byte, 8*chunk)
	copy(content, "start")
	copy(content[len(content)-3:], "end")
	n := fileNode(repo, "sparse", content, chunk)
	root := repo.addTree(t, n)
	target := t.TempDir()
	// An existing file full of data must not leave its bytes in the holes.
	old := bytes.Repeat([]byte{0xee}, len(content))
	if err := os.WriteFile(filepath.Join(target, "sparse"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	st, rep := restoreT(t, repo, root, Options{Verify: true}, target)
	if len(rep.errs) > 0 {
		t.Fatal(rep.errs)
	}
	if st.Bytes != uint64(len(content)) || st.Verified != 1 {
		t.Errorf("stats %+v", st)
	}
	checkFile(t, filepath.Join(target, "sparse"), content)
	s := lstat(t, filepath.Join(target, "sparse"))
	if allocated := s.Blocks * 512; allocated > 3*chunk {
		t.Errorf("%d bytes allocated for a file of %d with 6 zero chunks: holes not made", allocated, len(content))
	}
}

func TestRestoreIncludeExclude(t *testing.T) {
	repo := newFakeRepo()
	f := func(name string) *snapshot.Node { return fileNode(repo, name, []byte(name), 100) }
	docs := repo.addTree(t, f("a.txt"), f("b.TXT"), f("c.md"), dirNode("sub", repo.addTree(t, f("d.txt"))))
	u := repo.addTree(t, dirNode("docs", docs), f("notes.txt"))
	root := repo.addTree(t, dirNode("home", repo.addTree(t, dirNode("u", u))), dirNode("etc", repo.addTree(t, f("passwd"))))

	list := func(dir string) []string {
		var out []string
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if rel != "." {
				out = append(out, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"include glob", Options{Include: []string{"/home/u/docs/*.txt"}},
			[]string{"home", "home/u", "home/u/docs", "home/u/docs/a.txt"}},
		{"include glob ignore case", Options{Include: []string{"/home/u/docs/*.txt"}, IgnoreCase: true},
			[]string{"home", "home/u", "home/u/docs", "home/u/docs/a.txt", "home/u/docs/b.TXT"}},
		{"include dir", Options{Include: []string{"/home/u/docs/sub"}},
			[]string{"home", "home/u", "home/u/docs", "home/u/docs/sub", "home/u/docs/sub/d.txt"}},
		{"include relative", Options{Include: []string{"*.txt"}},
			[]string{"home", "home/u", "home/u/docs", "home/u/docs/a.txt", "home/u/docs/sub", "home/u/docs/sub/d.txt", "home/u/notes.txt"}},
		{"exclude dir", Options{Exclude: []string{"/home/u/docs"}},
			[]string{"etc", "etc/passwd", "home", "home/u", "home/u/notes.txt"}},
		{"exclude glob", Options{Exclude: []string{"*.txt", "etc"}},
			[]string{"home", "home/u", "home/u/docs", "home/u/docs/b.TXT", "home/u/docs/c.md", "home/u/docs/sub"}},
		{"include and exclude", Options{Include: []string{"/home"}, Exclude: []string{"sub", "*.md"}},
			[]string{"home", "home/u", "home/u/docs", "home/u/docs/a.txt", "home/u/docs/b.TXT", "home/u/notes.txt"}},
		{"nothing matches", Options{Include: []string{"/nope"}}, nil},
		{"root path", Options{RootPath: "/srv", Include: []string{"/srv/etc"}}, []string{"etc", "etc/passwd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := t.TempDir()
			_, rep := restoreT(t, repo, root, tt.opts, target)
			if len(rep.errs) > 0 {
				t.Fatal(rep.errs)
			}
			if got := list(target); !slices.Equal(got, tt.want) {
				t.Errorf("restored\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
	// Parent directories created for an included file get their metadata.
	target := t.TempDir()
	restoreT(t, repo, root, Options{Include: []string{"/home/u/docs/a.txt"}}, target)
	checkTimes(t, filepath.Join(target, "home/u"), t1, t0)

	if _, err := New(repo, root, Options{Include: []string{"[bad"}}); !errors.Is(err, snapshot.ErrBadPattern) {
		t.Errorf("bad include: %v", err)
	}
	if _, err := New(repo, root, Options{Exclude: []string{"[bad"}}); !errors.Is(err, snapshot.ErrBadPattern) {
		t.Errorf("bad exclude: %v", err)
	}
}

func TestRestoreDamagedBlob(t *testing.T) {
	repo := newFakeRepo()
	rnd := rand.New(rand.NewPCG(3, 4))
	chunks := [][]byte{randBytes(rnd, 1000), randBytes(rnd, 1500), randBytes(rnd, 700), randBytes(rnd, 900)}
	whole := bytes.Join(chunks, nil)
	f1 := fileNode(repo, "one", whole, 1000)
	f1.Content = nil
	for _, c := range chunks {
		f1.Content = append(f1.Content, repo.addData(c))
	}
	f2 := &snapshot.Node{Name: "two", Type: snapshot.NodeFile, Mode: 0o644, Size: 1500, Content: []backend.ID{f1.Content[1]}}
	intact := randBytes(rnd, 5000)
	ok := fileNode(repo, "intact", intact, 1000)
	// three: its middle chunk is not in the index at all.
	f3 := &snapshot.Node{Name: "three", Type: snapshot.NodeFile, Mode: 0o644, Size: uint64(len(whole)), Content: f1.Content}
	repo.damaged[f1.Content[1]] = true
	missing := repo.addData(randBytes(rnd, 1500))
	repo.unindexed[missing] = true
	f3.Content = []backend.ID{f1.Content[0], missing, f1.Content[2], f1.Content[3]}
	root := repo.addTree(t, dirNode("d", repo.addTree(t, f1, f2)), ok, f3)

	target := t.TempDir()
	st, rep := restoreT(t, repo, root, Options{Verify: true}, target)
	if got, want := rep.paths(), []string{"/d/one", "/d/two", "/three"}; !slices.Equal(got, want) {
		t.Fatalf("errors for %q, want %q: %v", got, want, rep.errs)
	}
	for _, p := range []string{"/d/one", "/d/two"} {
		if len(rep.errs[p]) != 1 || !errors.Is(rep.errs[p][0], errDamaged) {
			t.Errorf("%s: %v", p, rep.errs[p])
		}
	}
	if len(rep.errs["/three"]) != 1 || !errors.Is(rep.errs["/three"][0], ErrBlobMissing) {
		t.Errorf("/three: %v", rep.errs["/three"])
	}
	if st.Errors != 3 || st.Verified != 1 {
		t.Errorf("stats %+v", st)
	}
	checkFile(t, filepath.Join(target, "intact"), intact)
	// The damaged range is zeros; everything else is in place.
	want := slices.Clone(whole)
	clear(want[1000:2500])
	checkFile(t, filepath.Join(target, "d/one"), want)
	// The chunks after the unindexed one were placed from the end.
	checkFile(t, filepath.Join(target, "three"), want)
	// A file restored whole has its times; one that is not keeps the
	// restore's, so that it does not pass for complete.
	for _, p := range []string{"intact", "d/one", "d/two", "three"} {
		st := lstat(t, filepath.Join(target, p))
		got := time.Unix(st.Mtim.Unix())
		if whole := p == "intact"; got.Equal(t0) != whole {
			t.Errorf("%s: mtime %v; restored whole: %v", p, got, whole)
		}
	}
	if st.Files != 1 {
		t.Errorf("%d files restored whole, want 1 (intact)", st.Files)
	}
}

func TestRestoreBrokenTree(t *testing.T) {
	repo := newFakeRepo()
	evil := []string{
		`{"nodes":[{"name":"../x","type":"file"}]}`,
		`{"nodes":[{"name":"a/b","type":"file"}]}`,
		`{"nodes":[{"name":"..","type":"dir","subtree":"` + backend.Hash(nil).String() + `"}]}`,
		`not json`,
	}
	var nodes []*snapshot.Node
	for i, e := range evil {
		nodes = append(nodes, dirNode(string(rune('a'+i)), repo.addTreeRaw([]byte(e))))
	}
	nodes = append(nodes, dirNode("gone", backend.Hash([]byte("missing tree"))))
	nodes = append(nodes, fileNode(repo, "fine", []byte("fine"), 10))
	root := repo.addTree(t, nodes...)

	parent := t.TempDir()
	target := filepath.Join(parent, "target")
	st, rep := restoreT(t, repo, root, Options{}, target)
	if got, want := rep.paths(), []string{"/a", "/b", "/c", "/d", "/gone"}; !slices.Equal(got, want) {
		t.Errorf("errors for %q, want %q", got, want)
	}
	for _, p := range []string{"/a", "/b", "/c", "/d"} {
		if !errors.Is(rep.errs[p][0], snapshot.ErrFormat) {
			t.Errorf("%s: %v", p, rep.errs[p][0])
		}
	}
	if st.Errors != 5 || st.Files != 1 {
		t.Errorf("stats %+v", st)
	}
	checkFile(t, filepath.Join(target, "fine"), []byte("fine"))
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("restore wrote next to the target: %v", ents)
	}
	for _, p := range []string{"a", "b", "c", "d"} {
		if ents, err := os.ReadDir(filepath.Join(target, p)); err != nil || len(ents) != 0 {
			t.Errorf("%s: %v %v", p, ents, err)
		}
	}
}

func TestRestoreExistingContentInTarget(t *testing.T) {
	repo := newFakeRepo()
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(parent, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	// target/dir -> outside: the snapshot has a directory "dir".
	if err := os.Symlink(outside, filepath.Join(target, "dir")); err != nil {
		t.Fatal(err)
	}
	// target/viasymlink -> outside/secret, target/hardlink is outside/secret:
	// the snapshot has files there.
	if err := os.Symlink(secret, filepath.Join(target, "viasymlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, filepath.Join(target, "hardlink")); err != nil {
		t.Fatal(err)
	}
	// target/isdir is a directory where the snapshot has a file.
	if err := os.Mkdir(filepath.Join(target, "isdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "unrelated"), []byte("stays"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := repo.addTree(t,
		dirNode("dir", repo.addTree(t, fileNode(repo, "secret", []byte("overwritten!"), 100))),
		fileNode(repo, "viasymlink", []byte("new"), 100),
		fileNode(repo, "hardlink", []byte("new too"), 100),
		fileNode(repo, "isdir", []byte("file"), 100),
	)
	_, rep := restoreT(t, repo, root, Options{}, target)
	if got, want := rep.paths(), []string{"/dir", "/isdir"}; !slices.Equal(got, want) {
		t.Fatalf("errors for %q, want %q: %v", got, want, rep.errs)
	}
	if !errors.Is(rep.errs["/dir"][0], ErrSymlinkInTarget) || !errors.Is(rep.errs["/isdir"][0], ErrDirInTarget) {
		t.Errorf("errors %v", rep.errs)
	}
	checkFile(t, secret, []byte("keep me"))
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("files written outside the target: %v", ents)
	}
	checkFile(t, filepath.Join(target, "viasymlink"), []byte("new"))
	if lstat(t, filepath.Join(target, "viasymlink")).Mode&unix.S_IFMT != unix.S_IFREG {
		t.Error("symlink not replaced by a file")
	}
	checkFile(t, filepath.Join(target, "hardlink"), []byte("new too"))
	checkFile(t, filepath.Join(target, "unrelated"), []byte("stays"))
	if dest, err := os.Readlink(filepath.Join(target, "dir")); err != nil || dest != outside {
		t.Errorf("symlink in target changed: %q %v", dest, err)
	}
}

func TestRestoreVerifyCatchesCorruption(t *testing.T) {
	repo := newFakeRepo()
	rnd := rand.New(rand.NewPCG(5, 6))
	good := randBytes(rnd, 3000)
	bad := randBytes(rnd, 3000)
	gn := fileNode(repo, "good", good, 1000)
	bn := fileNode(repo, "bad", bad, 1000)
	repo.lying[bn.Content[2]] = true // the repository breaks its contract
	root := repo.addTree(t, gn, bn)

	st, rep := restoreT(t, repo, root, Options{Verify: true}, t.TempDir())
	if got := rep.paths(); !slices.Equal(got, []string{"/bad"}) {
		t.Fatalf("errors for %q: %v", got, rep.errs)
	}
	if err := rep.errs["/bad"][0]; !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "chunk 2") {
		t.Errorf("verify error %v", err)
	}
	if st.Verified != 1 || st.Errors != 1 {
		t.Errorf("stats %+v", st)
	}
	// Without Verify the corruption goes unnoticed: the check is real.
	_, rep = restoreT(t, repo, root, Options{}, t.TempDir())
	if len(rep.errs) != 0 {
		t.Errorf("errors without verify: %v", rep.errs)
	}
}

func TestRestoreErrorStops(t *testing.T) {
	repo := newFakeRepo()
	n := fileNode(repo, "f", []byte("data"), 10)
	repo.damaged[n.Content[0]] = true
	root := repo.addTree(t, n, fileNode(repo, "g", []byte("more"), 10))
	stop := errors.New("stop here")
	r, err := New(repo, root, Options{Error: func(string, error) error { return stop }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Restore(context.Background(), t.TempDir()); err != stop {
		t.Errorf("Restore = %v, want the Error callback's error", err)
	}
	// Without an Error callback the first error stops the restore.
	r, _ = New(repo, root, Options{})
	st, err := r.Restore(context.Background(), t.TempDir())
	if !errors.Is(err, errDamaged) || st.Errors != 1 {
		t.Errorf("Restore = %v %+v", err, st)
	}
	// A cancelled context stops it too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Restore(ctx, t.TempDir()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Restore = %v", err)
	}
}

// countProgress counts progress reports from many goroutines.
type countProgress struct {
	plannedFiles, plannedBytes, restored, done atomic.Uint64
	// totalsCalls counts Totals calls, lateTotals those made after
	// content was written.
	totalsCalls, lateTotals atomic.Uint64
	mu                      sync.Mutex
	seen                    map[string]int
}

func (p *countProgress) Totals(files, bytes uint64) {
	p.totalsCalls.Add(1)
	if p.restored.Load() > 0 {
		p.lateTotals.Add(1)
	}
	p.plannedFiles.Add(files)
	p.plannedBytes.Add(bytes)
}
func (p *countProgress) Restored(n uint64) { p.restored.Add(n) }
func (p *countProgress) FileDone(path string) {
	p.done.Add(1)
	p.mu.Lock()
	p.seen[path]++
	p.mu.Unlock()
}

func TestRestoreParallel(t *testing.T) {
	repo := newFakeRepo()
	repo.blobsPerPack = 3
	rnd := rand.New(rand.NewPCG(7, 8))
	want := map[string][]byte{}
	shared := randBytes(rnd, 512) // a chunk many files use
	var dirs []*snapshot.Node
	var total int
	for d := range 6 {
		var files []*snapshot.Node
		for i := range 40 {
			content := append(randBytes(rnd, rnd.IntN(3000)), shared...)
			name := string(rune('a'+d)) + "/" + string(rune('a'+i%26)) + string(rune('0'+i/26))
			want[name] = content
			files = append(files, fileNode(repo, filepath.Base(name), content, 512))
			total += len(content)
		}
		dirs = append(dirs, dirNode(string(rune('a'+d)), repo.addTree(t, files...)))
	}
	root := repo.addTree(t, dirs...)
	prog := &countProgress{seen: map[string]int{}}
	target := t.TempDir()
	st, rep := restoreT(t, repo, root, Options{Workers: 8, BatchFiles: 50, Verify: true, Progress: prog}, target)
	if len(rep.errs) > 0 {
		t.Fatal(rep.errs)
	}
	for name, content := range want {
		checkFile(t, filepath.Join(target, name), content)
	}
	if st.Files != 240 || st.Verified != 240 || st.Bytes != uint64(total) {
		t.Errorf("stats %+v", st)
	}
	if prog.totalsCalls.Load() != 1 || prog.lateTotals.Load() != 0 {
		t.Errorf("Totals called %d times, %d of them after content was written; want once, before", prog.totalsCalls.Load(), prog.lateTotals.Load())
	}
	if prog.plannedFiles.Load() != 240 || prog.plannedBytes.Load() != uint64(total) || prog.restored.Load() != uint64(total) || prog.done.Load() != 240 {
		t.Errorf("progress: planned %d files %d bytes, restored %d, done %d",
			prog.plannedFiles.Load(), prog.plannedBytes.Load(), prog.restored.Load(), prog.done.Load())
	}
	for p, n := range prog.seen {
		if n != 1 {
			t.Errorf("FileDone(%s) called %d times", p, n)
		}
	}
	if repo.maxActive.Load() > 8 {
		t.Errorf("%d packs loaded at once, limit 8", repo.maxActive.Load())
	}
	t.Logf("packs read %d, at most %d at once", st.Packs, repo.maxActive.Load())
}

func TestRestoreReadsEachPackOnce(t *testing.T) {
	repo := newFakeRepo()
	rnd := rand.New(rand.NewPCG(9, 10))
	var files []*snapshot.Node
	for i := range 30 {
		files = append(files, fileNode(repo, string(rune('a'+i%26))+string(rune('0'+i/26)), randBytes(rnd, 2000), 300))
	}
	root := repo.addTree(t, files...)
	st, rep := restoreT(t, repo, root, Options{}, t.TempDir())
	if len(rep.errs) > 0 {
		t.Fatal(rep.errs)
	}
	for id, n := range repo.packLoads {
		if n != 1 {
			t.Errorf("pack %s read %d times", id.Str(), n)
		}
	}
	if int(st.Packs) != len(repo.packLoads) {
		t.Errorf("Packs %d, %d distinct", st.Packs, len(repo.packLoads))
	}
}

func BenchmarkRestore(b *testing.B) {
	repo := newFakeRepo()
	repo.blobsPerPack = 16
	rnd := rand.New(rand.NewPCG(11, 12))
	var files []*snapshot.Node
	var total int64
	for i := range 64 {
		content := randBytes(rnd, 256<<10)
		files = append(files, fileNode(repo, string(rune('a'+i%26))+string(rune('0'+i/26)), content, 64<<10))
		total += int64(len(content))
	}
	root := repo.addTree(b, files...)
	b.SetBytes(total)
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		r, err := New(repo, root, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Restore(context.Background(), filepath.Join(dir, string(rune('a'+i%26)))); err != nil {
			b.Fatal(err)
		}
	}
}
