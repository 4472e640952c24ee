package archiver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/restic/chunker"
	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// TestFileTypes backs up one of every kind of item and compares the
// snapshot with the file system.
func TestFileTypes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "empty"), nil)
	writeFile(t, filepath.Join(dir, "small"), []byte("hello, world\n"))
	big := randomBytes(1, 5<<20) // several chunks
	writeFile(t, filepath.Join(dir, "sub", "big"), big)
	writeFile(t, filepath.Join(dir, "sub", "deeper", "x"), []byte("x"))
	if err := os.Symlink("small", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/target", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "small"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "socket"))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	special := filepath.Join(dir, "special")
	writeFile(t, special, []byte("#!/bin/sh\n"))
	if err := os.Chmod(special, 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	sticky := filepath.Join(dir, "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	nanos := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "small"), nanos.Add(time.Hour), nanos); err != nil {
		t.Fatal(err)
	}
	devices := os.Geteuid() == 0
	if devices {
		if err := unix.Mknod(filepath.Join(dir, "chardev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(filepath.Join(dir, "blockdev"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("not root: device nodes not tested")
	}

	// First, before anything reads the files: with WithAtime the real
	// access time is recorded.
	arepo := newFakeRepo()
	withAtime, _ := snap(t, newArchiver(t, arepo, Options{WithAtime: true}), dir)
	if n := arepo.lookup(t, withAtime, filepath.Join(dir, "small")); !n.AccessTime.Equal(nanos.Add(time.Hour)) {
		t.Errorf("WithAtime: atime %v, want %v", n.AccessTime, nanos.Add(time.Hour))
	}

	repo := newFakeRepo()
	root, sum := snap(t, newArchiver(t, repo, Options{}), dir)
	checkSnapshot(t, repo, root, []string{dir}, nil)

	small := repo.lookup(t, root, filepath.Join(dir, "small"))
	if !small.ModTime.Equal(nanos) || small.ModTime.Nanosecond() != 123456789 {
		t.Errorf("mtime %v, want %v with nanoseconds", small.ModTime, nanos)
	}
	if !small.AccessTime.Equal(nanos) {
		t.Errorf("atime %v, want the mtime %v (WithAtime not set)", small.AccessTime, nanos)
	}
	hard := repo.lookup(t, root, filepath.Join(dir, "hardlink"))
	if hard.Links != 2 || small.Links != 2 || hard.Inode != small.Inode || hard.DeviceID == 0 ||
		hard.DeviceID != small.DeviceID || !slices.Equal(hard.Content, small.Content) || len(hard.Content) != 1 {
		t.Errorf("hard links not recorded: %+v / %+v", hard, small)
	}
	if n := repo.lookup(t, root, filepath.Join(dir, "empty")); n.DeviceID != 0 || n.Links != 1 {
		t.Errorf("single-link file: device ID %d, links %d", n.DeviceID, n.Links)
	}
	if n := repo.lookup(t, root, special); n.Mode&(os.ModeSetuid|os.ModeSetgid) != os.ModeSetuid|os.ModeSetgid {
		t.Errorf("setuid/setgid lost: %v", n.Mode)
	}
	if n := repo.lookup(t, root, sticky); n.Mode&os.ModeSticky == 0 {
		t.Errorf("sticky bit lost: %v", n.Mode)
	}
	if n := repo.lookup(t, root, filepath.Join(dir, "sub", "big")); len(n.Content) < 2 {
		t.Errorf("5 MiB file in %d chunks", len(n.Content))
	}
	if devices {
		if n := repo.lookup(t, root, filepath.Join(dir, "chardev")); n.Type != snapshot.NodeCharDev || n.Device != unix.Mkdev(1, 3) {
			t.Errorf("char device: %+v", n)
		}
		if n := repo.lookup(t, root, filepath.Join(dir, "blockdev")); n.Type != snapshot.NodeDev || n.Device != unix.Mkdev(7, 0) {
			t.Errorf("block device: %+v", n)
		}
	}
	if n := repo.lookup(t, root, filepath.Join(dir, "small")); n.User == "" && os.Geteuid() == 0 {
		t.Errorf("no user name recorded for uid %d", n.UID)
	}

	// empty, small, big, x, special, and the hard link: six regular files.
	if sum.TotalFilesProcessed != 6 || sum.FilesNew != 6 {
		t.Errorf("files processed %d, new %d; want 6", sum.TotalFilesProcessed, sum.FilesNew)
	}
	wantBytes := uint64(len(big) + 2*len("hello, world\n") + 1 + len("#!/bin/sh\n"))
	if sum.TotalBytesProcessed != wantBytes {
		t.Errorf("bytes processed %d, want %d", sum.TotalBytesProcessed, wantBytes)
	}
	if sum.DataBlobs != repo.count(pack.DataBlob) || sum.TreeBlobs != repo.count(pack.TreeBlob) {
		t.Errorf("summary counts %d data, %d tree blobs; repo holds %d, %d",
			sum.DataBlobs, sum.TreeBlobs, repo.count(pack.DataBlob), repo.count(pack.TreeBlob))
	}
	if sum.ErrorCount != 0 || sum.FilesChanged != 0 || sum.FilesUnmodified != 0 {
		t.Errorf("summary %+v", sum)
	}
}

func TestXattrs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeFile(t, p, []byte("data"))
	if err := unix.Lsetxattr(p, "user.cairn.b", []byte("second"), 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			t.Skip("file system without user xattrs")
		}
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(p, "user.cairn.a", []byte{0, 1, 2, 0xff}, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(p, "user.cairn.empty", nil, 0); err != nil {
		t.Fatal(err)
	}
	repo := newFakeRepo()
	root, _ := snap(t, newArchiver(t, repo, Options{}), dir)
	n := repo.lookup(t, root, p)
	var got []string
	for _, x := range n.ExtendedAttributes {
		if strings.HasPrefix(x.Name, "user.cairn.") {
			got = append(got, x.Name+"="+string(x.Value))
		}
	}
	want := []string{"user.cairn.a=\x00\x01\x02\xff", "user.cairn.b=second", "user.cairn.empty="}
	if !slices.Equal(got, want) {
		t.Errorf("xattrs %q, want %q", got, want)
	}
}

// TestTargets checks the root tree mirrors absolute paths from "/",
// directories above the targets carry the real directories' metadata and
// only the children leading to targets, overlapping targets are backed up
// once, and relative paths are made absolute.
func TestTargets(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "home", "u", "docs", "a.txt"), []byte("a"))
	writeFile(t, filepath.Join(dir, "home", "u", "other"), []byte("not backed up"))
	writeFile(t, filepath.Join(dir, "etc", "conf"), []byte("c"))
	writeFile(t, filepath.Join(dir, "etc", "sub", "x"), []byte("x"))
	if err := os.Chmod(filepath.Join(dir, "home", "u"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "home"), old, old); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)

	repo := newFakeRepo()
	a := newArchiver(t, repo, Options{})
	docs := filepath.Join(dir, "home", "u", "docs")
	root, _ := snap(t, a, "home/u/docs", filepath.Join(dir, "etc"), filepath.Join(dir, "etc", "sub"), docs+"/")
	// Backing up the same paths in another order gives the same root (the
	// archiver does not touch atimes; checkSnapshot below does).
	root2, _ := snap(t, a, filepath.Join(dir, "etc", "sub"), filepath.Join(dir, "etc"), docs)
	// Compare at dir: the folders above it (/tmp) change whenever another
	// process writes there.
	sub1, err1 := snapshot.FindSubtree(context.Background(), repo, root, dir)
	sub2, err2 := snapshot.FindSubtree(context.Background(), repo, root2, dir)
	if err1 != nil || err2 != nil || sub1 != sub2 {
		t.Errorf("tree of %s: %s, then %s (%v, %v)", dir, sub1.Str(), sub2.Str(), err1, err2)
	}
	checkSnapshot(t, repo, root, []string{docs, filepath.Join(dir, "etc")}, nil)

	// Every directory from / down to dir holds exactly the next component.
	comps := splitPath(dir)
	id := root
	for i, name := range comps {
		tree := repo.tree(t, id)
		if len(tree.Nodes) != 1 || tree.Nodes[0].Name != name {
			t.Fatalf("tree at /%s: %d nodes, want only %q", strings.Join(comps[:i], "/"), len(tree.Nodes), name)
		}
		id = *tree.Nodes[0].Subtree
	}
	tree := repo.tree(t, id)
	if len(tree.Nodes) != 2 || tree.Nodes[0].Name != "etc" || tree.Nodes[1].Name != "home" {
		t.Fatalf("tree of %s: %v", dir, tree.Nodes)
	}
	home := tree.Nodes[1]
	if !home.ModTime.Equal(old) || !home.Mode.IsDir() {
		t.Errorf("intermediate dir home: mtime %v mode %v, want the real directory's", home.ModTime, home.Mode)
	}
	u := repo.tree(t, *home.Subtree).Nodes
	if len(u) != 1 || u[0].Name != "u" || u[0].Mode.Perm() != 0o700 {
		t.Fatalf("home holds %v, want only u with mode 0700", u)
	}
	if names := repo.tree(t, *u[0].Subtree).Nodes; len(names) != 1 || names[0].Name != "docs" {
		t.Errorf("u holds %v, want only docs", names)
	}
}

func TestTargetMissing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), []byte("a"))
	var reported []string
	opts := Options{Error: func(path string, err error) error {
		reported = append(reported, path)
		return nil
	}}
	repo := newFakeRepo()
	a := newArchiver(t, repo, opts)
	root, sum := snap(t, a, filepath.Join(dir, "a"), filepath.Join(dir, "missing"))
	if sum.ErrorCount != 1 || !slices.Equal(reported, []string{filepath.Join(dir, "missing")}) {
		t.Errorf("errors %d, reported %q", sum.ErrorCount, reported)
	}
	if repo.lookup(t, root, filepath.Join(dir, "a")) == nil {
		t.Error("a is not in the snapshot")
	}
	_, _, err := a.Snapshot(context.Background(), []string{filepath.Join(dir, "missing")})
	if !errors.Is(err, ErrNoTargets) {
		t.Errorf("only a missing target: %v, want ErrNoTargets", err)
	}
	if _, _, err := a.Snapshot(context.Background(), nil); err == nil {
		t.Error("no paths: no error")
	}
}

// TestParent checks a second run with the parent reads no file content
// and adds no data, and that changes are detected even when size and
// mtime are kept.
func TestParent(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		writeFile(t, filepath.Join(dir, "d", string(rune('a'+i))), randomBytes(uint64(i), 1000*i))
	}
	writeFile(t, filepath.Join(dir, "big"), randomBytes(99, 3<<20))
	repo := newFakeRepo()

	first, sum1 := snap(t, newArchiver(t, repo, Options{}), dir)
	if sum1.FilesNew != 21 {
		t.Fatalf("first run: %+v", sum1)
	}

	a := newArchiver(t, repo, Options{Parent: first})
	opens := countingOpen(a)
	saves := repo.saves[pack.DataBlob]
	second, sum := snap(t, a, dir)
	if got := opens.get(); len(got) != 0 {
		t.Errorf("second run opened %d files: %q", len(got), got)
	}
	if repo.saves[pack.DataBlob] != saves || sum.DataBlobs != 0 {
		t.Errorf("second run saved %d data blobs", repo.saves[pack.DataBlob]-saves)
	}
	if sum.FilesUnmodified != 21 || sum.FilesNew != 0 || sum.FilesChanged != 0 || sum.TotalFilesProcessed != 21 {
		t.Errorf("second run: %+v", sum)
	}
	if sum.TotalBytesProcessed != sum1.TotalBytesProcessed {
		t.Errorf("bytes processed %d, first run %d", sum.TotalBytesProcessed, sum1.TotalBytesProcessed)
	}
	checkSnapshot(t, repo, second, []string{dir}, nil)

	// Same size, new content, mtime put back: ctime gives it away.
	p := filepath.Join(dir, "d", "c")
	fi, _ := os.Stat(p)
	writeFile(t, p, randomBytes(1234, int(fi.Size())))
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	// Same content, only mtime changed.
	q := filepath.Join(dir, "d", "e")
	if err := os.Chtimes(q, time.Now(), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A new file.
	writeFile(t, filepath.Join(dir, "d", "new"), []byte("new"))

	a = newArchiver(t, repo, Options{Parent: second})
	opens = countingOpen(a)
	third, sum := snap(t, a, dir)
	got := opens.get()
	slices.Sort(got)
	want := []string{p, q, filepath.Join(dir, "d", "new")}
	if !slices.Equal(got, want) {
		t.Errorf("third run read %q, want %q", got, want)
	}
	if sum.FilesChanged != 2 || sum.FilesNew != 1 || sum.FilesUnmodified != 19 {
		t.Errorf("third run: %+v", sum)
	}
	if sum.DirsChanged == 0 {
		t.Errorf("third run: no changed directories: %+v", sum)
	}
	checkSnapshot(t, repo, third, []string{dir}, nil)

	// Force reads everything again.
	a = newArchiver(t, repo, Options{Parent: third, Force: true})
	opens = countingOpen(a)
	_, sum = snap(t, a, dir)
	if n := len(opens.get()); n != 22 {
		t.Errorf("forced run read %d files, want 22", n)
	}
	if sum.DataBlobs != 0 {
		t.Errorf("forced run added %d data blobs", sum.DataBlobs)
	}
}

// TestParentBlobMissing: a file unchanged on disk is read again when the
// repository lost one of its blobs.
func TestParentBlobMissing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), []byte("content"))
	repo := newFakeRepo()
	first, _ := snap(t, newArchiver(t, repo, Options{}), dir)
	n := repo.lookup(t, first, filepath.Join(dir, "f"))
	delete(repo.blobs, blobKey{pack.DataBlob, n.Content[0]})

	a := newArchiver(t, repo, Options{Parent: first})
	opens := countingOpen(a)
	_, sum := snap(t, a, dir)
	if len(opens.get()) != 1 || sum.DataBlobs != 1 {
		t.Errorf("read %q, added %d blobs; want the file read and its blob saved again", opens.get(), sum.DataBlobs)
	}
}

// TestParentTreeMissing: a parent whose trees cannot be loaded gives a
// warning and a full backup.
func TestParentTreeMissing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), []byte("content"))
	repo := newFakeRepo()
	first, _ := snap(t, newArchiver(t, repo, Options{}), dir)
	delete(repo.blobs, blobKey{pack.TreeBlob, first})
	rec := &recorder{}
	a := newArchiver(t, repo, Options{Parent: first, Progress: rec})
	_, sum := snap(t, a, dir)
	if sum.FilesNew != 1 || len(rec.warnings) != 1 {
		t.Errorf("summary %+v, warnings %v", sum, rec.warnings)
	}
}

func TestDryRun(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), randomBytes(1, 2<<20))
	writeFile(t, filepath.Join(dir, "b"), randomBytes(1, 2<<20)) // same content
	writeFile(t, filepath.Join(dir, "c"), []byte("c"))
	// With relatime, a listing updates a folder's atime while it is not
	// after its mtime, which can be the same clock tick here; an atime
	// ahead keeps the folder's node, and so its tree, the same in every run.
	if err := os.Chtimes(dir, time.Now().Add(time.Hour), time.Time{}); err != nil {
		t.Fatal(err)
	}

	repo := newFakeRepo()
	_, dry := snap(t, newArchiver(t, repo, Options{DryRun: true}), dir)
	if len(repo.blobs) != 0 {
		t.Fatalf("dry run stored %d blobs", len(repo.blobs))
	}
	_, real := snap(t, newArchiver(t, repo, Options{}), dir)
	// The trees of the folders above dir hold the times of /tmp and its
	// parents, which other processes change between the two runs; a time
	// can then encode a few bytes longer or shorter (RFC 3339 drops
	// trailing zeros of the nanoseconds), so the bytes added may differ by
	// that much per tree, never by a data blob.
	slack := uint64(real.TreeBlobs) * 64
	if dry.DataBlobs != real.DataBlobs || dry.TreeBlobs != real.TreeBlobs ||
		dry.DataAdded+slack < real.DataAdded || real.DataAdded+slack < dry.DataAdded {
		t.Errorf("dry run reported %d/%d/%d, real run %d/%d/%d", dry.DataBlobs, dry.TreeBlobs, dry.DataAdded,
			real.DataBlobs, real.TreeBlobs, real.DataAdded)
	}
	_, again := snap(t, newArchiver(t, repo, Options{DryRun: true}), dir)
	// Only data blobs are compared: the trees of the folders above dir
	// (/tmp among them) change whenever another process writes there, and
	// DataAdded counts new trees too.
	if again.DataBlobs != 0 || again.DataAdded > uint64(again.TreeBlobs)*4096 {
		t.Errorf("dry run after a real run would add %d data blobs, %d bytes in all", again.DataBlobs, again.DataAdded)
	}
}

// TestItemErrors uses the open seam: root can read every file, so a
// permission error cannot be staged with chmod.
func TestItemErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok"), []byte("ok"))
	writeFile(t, filepath.Join(dir, "unreadable"), []byte("secret"))
	writeFile(t, filepath.Join(dir, "vanishes"), []byte("gone"))
	writeFile(t, filepath.Join(dir, "fails-late"), randomBytes(3, 4<<20))
	writeFile(t, filepath.Join(dir, "baddir", "f"), []byte("f"))

	var mu sync.Mutex
	var reported []string
	repo := newFakeRepo()
	a := newArchiver(t, repo, Options{Error: func(path string, err error) error {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, filepath.Base(path))
		return nil
	}})
	inner := a.open
	a.open = func(name string, flag int) (fsFile, error) {
		switch filepath.Base(name) {
		case "unreadable", "baddir":
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EACCES}
		case "vanishes":
			// Deleted between listing and reading: a real ENOENT.
			if err := os.Remove(name); err != nil {
				t.Error(err)
			}
		case "fails-late":
			f, err := inner(name, flag)
			if err != nil {
				return nil, err
			}
			return &failingFile{File: f.(*os.File), limit: 3 << 20}, nil
		}
		return inner(name, flag)
	}
	root, sum := snap(t, a, dir)
	slices.Sort(reported)
	if want := []string{"baddir", "fails-late", "unreadable", "vanishes"}; !slices.Equal(reported, want) {
		t.Errorf("reported %q, want %q", reported, want)
	}
	if sum.ErrorCount != 4 {
		t.Errorf("summary counts %d errors, want 4", sum.ErrorCount)
	}
	tree := repo.tree(t, *repo.lookup(t, root, dir).Subtree)
	if len(tree.Nodes) != 1 || tree.Nodes[0].Name != "ok" {
		t.Errorf("snapshot holds %v, want only ok", tree.Nodes)
	}

	// Returning the error aborts the backup with it.
	stop := errors.New("stop")
	a.opts.Error = func(string, error) error { return stop }
	if _, _, err := a.Snapshot(context.Background(), []string{dir}); !errors.Is(err, stop) {
		t.Errorf("Snapshot returned %v, want the Error callback's error", err)
	}
}

func TestNotUTF8(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok"), []byte("ok"))
	writeFile(t, filepath.Join(dir, "bad\xff"), []byte("x"))
	var errs []error
	repo := newFakeRepo()
	a := newArchiver(t, repo, Options{Error: func(_ string, err error) error {
		errs = append(errs, err)
		return nil
	}})
	root, _ := snap(t, a, dir)
	if len(errs) != 1 || !errors.Is(errs[0], errNotUTF8) {
		t.Errorf("errors %v", errs)
	}
	if tree := repo.tree(t, *repo.lookup(t, root, dir).Subtree); len(tree.Nodes) != 1 {
		t.Errorf("tree %v", tree.Nodes)
	}
}

// TestRepoError: a failing SaveBlob aborts the backup with its error and
// leaves no goroutine behind.
func TestRepoError(t *testing.T) {
	dir := t.TempDir()
	for i := range 30 {
		writeFile(t, filepath.Join(dir, string(rune('a'+i))), randomBytes(uint64(i), 100_000))
	}
	boom := errors.New("disk full")
	repo := newFakeRepo()
	var calls sync.Mutex
	n := 0
	repo.saveHook = func(context.Context, pack.BlobType) error {
		calls.Lock()
		defer calls.Unlock()
		n++
		if n > 5 {
			return boom
		}
		return nil
	}
	before := runtime.NumGoroutine()
	_, _, err := newArchiver(t, repo, Options{}).Snapshot(context.Background(), []string{dir})
	if !errors.Is(err, boom) {
		t.Fatalf("Snapshot returned %v, want %v", err, boom)
	}
	checkGoroutines(t, before)
}

// TestCancel cancels a backup while SaveBlob is blocked and checks it
// returns promptly with the context's error.
func TestCancel(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		writeFile(t, filepath.Join(dir, string(rune('a'+i))), randomBytes(uint64(i), 2<<20))
	}
	repo := newFakeRepo()
	started := make(chan struct{})
	var once sync.Once
	repo.saveHook = func(ctx context.Context, _ pack.BlobType) error {
		once.Do(func() { close(started) })
		<-ctx.Done() // back-pressure forever, until cancelled
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	before := runtime.NumGoroutine()
	done := make(chan error, 1)
	go func() {
		_, _, err := newArchiver(t, repo, Options{}).Snapshot(ctx, []string{dir})
		done <- err
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Snapshot returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Snapshot did not return after cancel")
	}
	checkGoroutines(t, before)
}

func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Errorf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
}

// TestSparseFile backs up a large sparse file: its zero chunks dedupe,
// and it streams through the chunker (memory stays at a few chunks).
func TestSparseFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("island"), 20<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	repo := newFakeRepo()
	root, sum := snap(t, newArchiver(t, repo, Options{ReadConcurrency: 1, SaveConcurrency: 1}), p)
	n := repo.lookup(t, root, p)
	if n.Size != 32<<20 || len(n.Content) < 4 {
		t.Fatalf("size %d in %d chunks", n.Size, len(n.Content))
	}
	if sum.DataBlobs > 4 {
		t.Errorf("%d distinct blobs for a file of zeros and one island", sum.DataBlobs)
	}
	checkSnapshot(t, repo, root, []string{p}, nil)
}

// TestSmallFileShortcut checks that reading a small file whole gives the
// chunk the chunker would have cut.
func TestSmallFileShortcut(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(7, smallFile-1)
	writeFile(t, filepath.Join(dir, "f"), data)
	repo := newFakeRepo()
	root, _ := snap(t, newArchiver(t, repo, Options{}), dir)
	n := repo.lookup(t, root, filepath.Join(dir, "f"))
	if len(n.Content) != 1 {
		t.Fatalf("small file in %d chunks", len(n.Content))
	}
	c, err := chunker.New(bytes.NewReader(data), testPol).Next(nil)
	if err != nil || int(c.Length) != len(data) {
		t.Fatalf("chunker: %v, %d bytes", err, c.Length)
	}
	if backend.Hash(c.Data) != n.Content[0] {
		t.Error("the shortcut's chunk differs from the chunker's")
	}
}

type recorder struct {
	mu        sync.Mutex
	started   map[string]bool
	read      map[string]uint64
	completed map[string]Status
	errors    []string
	warnings  []string
}

func (r *recorder) StartFile(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started == nil {
		r.started = map[string]bool{}
	}
	r.started[path] = true
}

func (r *recorder) BytesRead(path string, n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.read == nil {
		r.read = map[string]uint64{}
	}
	r.read[path] += n
}

func (r *recorder) CompleteItem(path string, _ *snapshot.Node, s Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.completed == nil {
		r.completed = map[string]Status{}
	}
	r.completed[path] = s
}

func (r *recorder) Error(path string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, path)
}

func (r *recorder) Warn(path string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, path)
}

func TestProgress(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), randomBytes(1, 3<<20))
	writeFile(t, filepath.Join(dir, "sub", "b"), []byte("bb"))
	if err := os.Symlink("a", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	repo := newFakeRepo()
	first, _ := snap(t, newArchiver(t, repo, Options{Progress: rec}), dir)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "sub", "b")
	if !rec.started[a] || !rec.started[b] || rec.read[a] != 3<<20 || rec.read[b] != 2 {
		t.Errorf("started %v, read %v", rec.started, rec.read)
	}
	for _, p := range []string{a, b, filepath.Join(dir, "l"), filepath.Join(dir, "sub"), dir} {
		if s, ok := rec.completed[p]; !ok || s != StatusNew {
			t.Errorf("%s: completed %v %v", p, ok, s)
		}
	}

	rec = &recorder{}
	snap(t, newArchiver(t, repo, Options{Progress: rec, Parent: first}), dir)
	if len(rec.started) != 0 {
		t.Errorf("unchanged files started: %v", rec.started)
	}
	if rec.completed[a] != StatusUnmodified || rec.completed[filepath.Join(dir, "sub")] != StatusUnmodified {
		t.Errorf("second run: %v", rec.completed)
	}
}

// TestOneFileSystem mounts a tmpfs inside the backup (root only) and
// checks the mount point is recorded empty.
func TestOneFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), []byte("f"))
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("cairn-test", mnt, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	writeFile(t, filepath.Join(mnt, "inside"), []byte("other file system"))

	repo := newFakeRepo()
	root, _ := snap(t, newArchiver(t, repo, Options{OneFileSystem: true}), dir)
	n := repo.lookup(t, root, mnt)
	if n == nil || n.Type != snapshot.NodeDir {
		t.Fatalf("mount point %v", n)
	}
	if tree := repo.tree(t, *n.Subtree); len(tree.Nodes) != 0 {
		t.Errorf("mount point holds %d entries, want none", len(tree.Nodes))
	}
	if repo.lookup(t, root, filepath.Join(dir, "f")) == nil {
		t.Error("f missing")
	}

	// Without the option the mount is entered; a target on the other file
	// system is itself allowed.
	root, _ = snap(t, newArchiver(t, repo, Options{}), dir)
	if repo.lookup(t, root, filepath.Join(mnt, "inside")) == nil {
		t.Error("mount not entered without OneFileSystem")
	}
	root, _ = snap(t, newArchiver(t, repo, Options{OneFileSystem: true}), dir, mnt)
	if repo.lookup(t, root, filepath.Join(mnt, "inside")) == nil {
		t.Error("mount given as a target not entered")
	}
}

// TestRootUnlistable: backing up "/" when "/" cannot be listed is an
// error, not an empty snapshot. Every open fails, so nothing is read.
func TestRootUnlistable(t *testing.T) {
	a := newArchiver(t, newFakeRepo(), Options{Error: func(string, error) error { return nil }})
	a.open = func(name string, _ int) (fsFile, error) {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EACCES}
	}
	if _, _, err := a.Snapshot(context.Background(), []string{"/"}); !errors.Is(err, ErrNoTargets) {
		t.Errorf("Snapshot returned %v, want ErrNoTargets", err)
	}
}
