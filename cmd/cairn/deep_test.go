package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// A snapshot of a chain of folders thousands deep, restored and listed by
// the real binary under a descriptor limit of 1024, with its peak memory.
// Such a tree cannot be named by one path (PATH_MAX is 4096 bytes), so the
// test builds the snapshot through the library and checks the restored
// copy through descriptors, one level at a time.

// deepFileDepths are the levels (1 = the top folder) that hold a file
// "f" besides the folder "d" below.
func deepFileDepths(depth int) []int { return []int{1, 2, depth / 2, depth - 1, depth} }

func deepHasFile(depth, k int) bool {
	for _, d := range deepFileDepths(depth) {
		if d == k {
			return true
		}
	}
	return false
}

// deepDirMeta is what the folder at level k records: a mode, an owner and
// times of its own, so a level restored with another level's metadata is
// caught.
func deepDirMeta(k int) (mode os.FileMode, uid, gid uint32, mtime, atime time.Time) {
	base := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	perm := os.FileMode(0o700 | (k%8)<<3 | (k/8)%8)
	return os.ModeDir | perm, uint32(1000 + k%7), uint32(2000 + k%5),
		base.Add(time.Duration(k)*time.Second + time.Duration(k)*time.Nanosecond),
		base.Add(time.Duration(k) * time.Minute)
}

func deepFileContent(k int) []byte { return fmt.Appendf(nil, "the file at level %d\n", k) }

// deepSnapshot adds a snapshot of a chain of depth folders, each named
// "d", to e's repository (which must already hold a snapshot made by this
// device) and returns its ID. Folder k holds folder k+1 and, at the
// levels of deepFileDepths, a file "f".
func deepSnapshot(t *testing.T, e *testEnv, depth int) string {
	t.Helper()
	ctx := context.Background()
	be, err := openBackend(ctx, e.repo, locEnv{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Open(ctx, be, []byte(testPassword), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	save := func(tp pack.BlobType, b []byte) backend.ID {
		id := backend.Hash(b)
		if _, err := r.SaveBlob(ctx, tp, id, b); err != nil {
			t.Fatal(err)
		}
		return id
	}
	var below *backend.ID // the tree of level k+1
	for k := depth; k >= 0; k-- {
		var tree snapshot.Tree
		if below != nil {
			mode, uid, gid, mtime, atime := deepDirMeta(k + 1)
			id := *below
			tree.Nodes = append(tree.Nodes, &snapshot.Node{Name: "d", Type: snapshot.NodeDir, Mode: mode,
				UID: uid, GID: gid, ModTime: mtime, AccessTime: atime, Subtree: &id})
		}
		if k > 0 && deepHasFile(depth, k) {
			content := deepFileContent(k)
			tree.Nodes = append(tree.Nodes, &snapshot.Node{Name: "f", Type: snapshot.NodeFile, Mode: 0o640,
				UID: 1000, GID: 2000, Size: uint64(len(content)), Links: 1,
				ModTime: time.Unix(int64(1e9+k), 0), Content: []backend.ID{save(pack.DataBlob, content)}})
		}
		b, err := snapshot.EncodeTree(&tree)
		if err != nil {
			t.Fatal(err)
		}
		id := save(pack.TreeBlob, b)
		below = &id
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := crypt.LoadOrCreateIdentity(filepath.Join(e.dir, "home", ".config", "cairn"))
	if err != nil {
		t.Fatal(err)
	}
	sn := *l.Snapshots()[0]
	sn.Tree, sn.Paths, sn.Parent, sn.Summary = *below, []string{"/deep"}, nil, nil
	sn.Time = sn.Time.Add(time.Duration(depth) * time.Second)
	id, err := l.AddSnapshot(ctx, r, ident, &sn, sn.Time)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// checkDeepRestore walks the restored chain under target with openat and
// compares every level with the snapshot: names, mode, owner (as root),
// times, file content.
func checkDeepRestore(t *testing.T, target string, depth int) {
	t.Helper()
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { unix.Close(fd) }()
	buf := make([]byte, 4096)
	for k := 1; k <= depth+1; k++ {
		// fd is level k-1: it must hold "d" (unless k-1 is the last) and
		// "f" where the snapshot has one.
		names := readDirNames(t, fd, buf)
		want := []string{}
		if k <= depth {
			want = append(want, "d")
		}
		if k-1 >= 1 && deepHasFile(depth, k-1) {
			want = append(want, "f")
		}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Fatalf("level %d holds %q, want %q", k-1, names, want)
		}
		if len(want) > 0 && want[len(want)-1] == "f" {
			ffd, err := unix.Openat(fd, "f", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatalf("level %d: open f: %v", k-1, err)
			}
			f := os.NewFile(uintptr(ffd), "f")
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || !bytes.Equal(got, deepFileContent(k-1)) {
				t.Fatalf("level %d: f holds %q (%v)", k-1, got, err)
			}
		}
		if k > depth {
			break
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("level %d: open: %v", k, err)
		}
		unix.Close(fd)
		fd = next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		mode, uid, gid, mtime, _ := deepDirMeta(k)
		if got, want := st.Mode&0o7777, uint32(mode.Perm()); got != want {
			t.Fatalf("level %d: mode %o, want %o", k, got, want)
		}
		if os.Geteuid() == 0 && (st.Uid != uid || st.Gid != gid) {
			t.Fatalf("level %d: owner %d:%d, want %d:%d", k, st.Uid, st.Gid, uid, gid)
		}
		// atime is not compared: reading the folder's entries changes it.
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
			t.Fatalf("level %d: mtime %v, want %v", k, got, mtime)
		}
	}
}

func readDirNames(t *testing.T, fd int, buf []byte) []string {
	t.Helper()
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
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
	// Getdents order is the file system's; the snapshot's is by name.
	if len(names) == 2 && names[0] > names[1] {
		names[0], names[1] = names[1], names[0]
	}
	return names
}

// deepRun runs cairn with at most nofile descriptors (soft and hard
// limit), stdout to out, and returns its exit code, stderr and peak
// resident memory in bytes.
func (e *testEnv) deepRun(out io.Writer, nofile int, args ...string) (code int, stderr string, maxRSS int64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sh := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile)
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", sh, cairnBin}, args...)...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	var errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errBuf
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.t.Fatalf("cairn %.200q did not finish (hung?)\n%s", args, errBuf.String())
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		e.t.Fatalf("run cairn: %v", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return code, errBuf.String(), ru.Maxrss << 10
}

// deepListing checks "cairn ls" output line by line as it streams (the
// listing of a chain 5,000 deep is 25 MB; of one 25,000 deep, 625 MB).
type deepListing struct {
	depth    int
	lines    int
	mismatch string
	r        *io.PipeReader
	w        *io.PipeWriter
	done     chan struct{}
}

func newDeepListing(depth int) *deepListing {
	l := &deepListing{depth: depth, done: make(chan struct{})}
	l.r, l.w = io.Pipe()
	go l.check()
	return l
}

// check reads the listing: a header line, then /d, /d/d, ... with the
// file "f" of a level right after the folder below it (name order: "d"
// before "f"), that is after the whole rest of the chain.
func (l *deepListing) check() {
	defer close(l.done)
	br := bufio.NewReaderSize(l.r, 1<<20)
	var expect []string // paths of files still to come, innermost last
	next := func() ([]byte, bool) {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: read the rest.
			full := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if err != nil {
			return nil, false
		}
		l.lines++
		return bytes.TrimSuffix(line, []byte("\n")), true
	}
	fail := func(format string, args ...any) {
		if l.mismatch == "" {
			l.mismatch = fmt.Sprintf(format, args...)
		}
		_, _ = io.Copy(io.Discard, br)
	}
	if _, ok := next(); !ok { // "snapshot ... of [/deep] at ...:"
		fail("no header")
		return
	}
	path := []byte{}
	for k := 1; k <= l.depth; k++ {
		path = append(path, "/d"...)
		line, ok := next()
		if !ok || !bytes.Equal(line, path) {
			fail("line %d: got %.80q..., want level %d", l.lines, line, k)
			return
		}
		if deepHasFile(l.depth, k) {
			expect = append(expect, string(path)+"/f")
		}
	}
	for i := len(expect) - 1; i >= 0; i-- {
		line, ok := next()
		if !ok || string(line) != expect[i] {
			fail("line %d: got %.80q, want the file %.80q...", l.lines, line, expect[i])
			return
		}
	}
	if line, ok := next(); ok {
		fail("extra line %.80q", line)
	}
}

// TestDeepTree restores and lists chains of 5,000 and 25,000 folders with
// the real binary under a limit of 1024 descriptors, checks the restored
// copy level by level and the listing line by line, and checks that the
// peak memory of both grows at most linearly with the depth.
func TestDeepTree(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	small := filepath.Join(e.dir, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(small, "x"), "x\n")
	e.must("backup", small)

	// The floor: the same commands on a one-file snapshot.
	code, stderr, baseLs := e.deepRun(io.Discard, 1024, "ls", "latest")
	if code != 0 {
		t.Fatalf("ls: exit %d\n%s", code, stderr)
	}
	code, stderr, baseRestore := e.deepRun(io.Discard, 1024, "restore", "latest", "--target", filepath.Join(e.dir, "r-small"))
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, stderr)
	}

	type figures struct{ restore, ls int64 }
	measured := map[int]figures{}
	for _, depth := range []int{5000, 25000} {
		id := deepSnapshot(t, e, depth)
		target := filepath.Join(e.dir, fmt.Sprintf("r%d", depth))
		code, stderr, restoreRSS := e.deepRun(io.Discard, 1024, "restore", id, "--target", target)
		if code != 0 {
			t.Fatalf("restore of %d levels: exit %d\n%.2000s", depth, code, stderr)
		}
		checkDeepRestore(t, target, depth)

		// ls of the deepest folder walks the whole chain but prints two
		// lines; the full listing is checked at the smaller depth.
		deepest := strings.Repeat("/d", depth)
		var out bytes.Buffer
		code, stderr, lsRSS := e.deepRun(&out, 1024, "ls", id, deepest)
		if code != 0 {
			t.Fatalf("ls of %d levels: exit %d\n%.2000s", depth, code, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 3 || lines[1] != deepest || lines[2] != deepest+"/f" {
			t.Fatalf("ls %s...: %d lines, %.200q", deepest[:20], len(lines), out.String())
		}
		if depth == 5000 {
			l := newDeepListing(depth)
			code, stderr, _ := e.deepRun(l.w, 1024, "ls", id)
			l.w.Close()
			<-l.done
			if code != 0 || l.mismatch != "" {
				t.Fatalf("full ls of %d levels: exit %d, %s\n%.2000s", depth, code, l.mismatch, stderr)
			}
		}
		measured[depth] = figures{restoreRSS, lsRSS}
		t.Logf("depth %d: restore peak RSS %.1f MiB, ls %.1f MiB (one file: %.1f, %.1f)", depth,
			float64(restoreRSS)/(1<<20), float64(lsRSS)/(1<<20), float64(baseRestore)/(1<<20), float64(baseLs)/(1<<20))
		removeDeep(t, target)
	}
	// Linear growth makes the memory above the one-file floor about 5
	// times larger at 25,000 levels than at 5,000; quadratic, 25 times.
	// Allow 8 times, plus 32 MiB for the garbage collector's timing.
	check := func(what string, base, at5, at25 int64) {
		d5, d25 := max(at5-base, 0), max(at25-base, 0)
		if d25 > 8*d5+32<<20 {
			t.Errorf("%s: %d MiB above the floor at 25,000 levels, %d MiB at 5,000: grows faster than the depth",
				what, d25>>20, d5>>20)
		}
	}
	check("restore", baseRestore, measured[5000].restore, measured[25000].restore)
	check("ls", baseLs, measured[5000].ls, measured[25000].ls)
}

// removeDeep removes dir and everything in it, however deep (os.RemoveAll
// holds a descriptor per level), with two descriptors at a time: down
// through the first folder of each level, up through "..".
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
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
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
