package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/repo"
)

// holdExclusive takes an exclusive lock as a process on another host
// would, until the test ends.
func holdExclusive(t *testing.T, e *testEnv) {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, e.repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, []byte(testPassword), repo.Options{Hostname: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.Unlock(ctx)
		r.Close()
		_ = be.Close()
	})
}

// TestNoLock is issue 11 item 6: --no-lock runs the commands that only
// read, and dry runs, without a lock (they work while a prune holds the
// exclusive lock), and commands that write refuse it with one line.
func TestNoLock(t *testing.T) {
	e := newTestEnv(t)
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 200<<10, 1)
	e.init()
	e.must("backup", data)
	e.must("backup", data)
	holdExclusive(t, e)

	target := filepath.Join(e.dir, "restored")
	reads := [][]string{
		{"snapshots"}, {"ls", "latest"}, {"find", "a"}, {"stats"}, {"log"},
		{"diff", "latest", "latest"}, {"check", "--read-data"},
		{"restore", "latest", "--target", target},
		{"backup", "--dry-run", data},
		{"forget", "--dry-run", "--keep-last", "1"},
		{"prune", "--dry-run"},
		{"repair", "index", "--dry-run"},
		{"key", "list"},
	}
	for _, args := range reads {
		if r := e.run(args...); r.code != exitLocked && args[0] != "key" {
			t.Fatalf("without --no-lock: want exit %d (the exclusive lock is held)\n%s", exitLocked, r)
		}
		r := e.run(append([]string{"--no-lock"}, args...)...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("with --no-lock: want exit 0 and nothing on stderr\n%s", r)
		}
	}
	compareTrees(t, data, filepath.Join(target, data), false)

	for _, args := range [][]string{
		{"backup", data},
		{"forget", "--keep-last", "1"},
		{"prune"},
		{"repair", "index"},
		{"repair", "snapshots"},
		{"key", "add", "--new-password-file", e.pwFile},
		{"key", "passwd", "--new-password-file", e.pwFile},
		{"key", "remove", "0123abcd"},
	} {
		before := listing(t, e.repo)
		r := e.run(append(args, "--no-lock")...)
		if r.code != exitError {
			t.Fatalf("want exit %d\n%s", exitError, r)
		}
		checkOneErrorLine(t, r, `^cairn: --no-lock: "`+args[0]+`.*" writes to the repository and must lock it`)
		if after := listing(t, e.repo); after != before {
			t.Fatalf("a refused command changed the repository\n%s", r)
		}
	}
}

// readOnlyCopy makes a read-only view of the repository: as root, a
// read-only bind mount (the kernel refuses every write: EROFS); otherwise
// the repository is made unwritable by mode (EACCES), which is all an
// unprivileged test can do.
func readOnlyCopy(t *testing.T, e *testEnv) string {
	t.Helper()
	ro := filepath.Join(e.dir, "ro-mount")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the repository is made read-only by mode, not by a read-only mount")
		if err := exec.Command("chmod", "-R", "a-w", e.repo).Run(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = exec.Command("chmod", "-R", "u+w", e.repo).Run() })
		return e.repo
	}
	for _, args := range [][]string{{"--bind", e.repo, ro}, {"-o", "remount,ro,bind", ro}} {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			_ = exec.Command("umount", ro).Run()
			t.Fatalf("mount %q: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", ro).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", ro, err, out)
		}
	})
	return ro
}

// TestReadOnlyLocation is issue 11 item 6: commands that only read work
// on a read-only copy of the repository, with one warning line, without
// --no-lock; a command that writes fails.
func TestReadOnlyLocation(t *testing.T) {
	e := newTestEnv(t)
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300<<10, 2)
	writeRandom(t, filepath.Join(data, "sub", "b"), 40<<10, 3)
	e.init()
	e.must("backup", data)
	ro := readOnlyCopy(t, e)
	before := listing(t, e.repo)

	target := filepath.Join(e.dir, "restored")
	for _, args := range [][]string{
		{"snapshots"}, {"ls", "latest"}, {"check", "--read-data"},
		{"restore", "latest", "--target", target},
	} {
		r := e.run(append([]string{"-r", ro}, args...)...)
		if r.code != 0 {
			t.Fatalf("want exit 0 on a read-only copy\n%s", r)
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if len(lines) != 1 || !matches(`^cairn: warning: lock: the repository location refuses writes: .*(read-only file system|permission denied); reading without a lock`, lines[0]) {
			t.Fatalf("want one warning line about the lock\n%s", r)
		}
	}
	compareTrees(t, data, filepath.Join(target, data), false)

	r := e.run("-r", ro, "backup", data)
	if r.code != exitError {
		t.Fatalf("backup to a read-only copy: want exit %d\n%s", exitError, r)
	}
	checkOneErrorLine(t, r, `refuses writes`)
	if after := listing(t, e.repo); after != before {
		t.Fatal("the read-only copy changed")
	}
}

// TestPeerAtQuotaRestores is issue 11 item 6: a friend's copy that is at
// its quota refuses the lock file; restore from it goes on without a lock,
// with a warning, and restores byte for byte.
func TestPeerAtQuotaRestores(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 3<<20, 4)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	cfg, root := filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "root")
	friend := startPeerServer(t, e, cfg, root, "--allow", owner, "--quota", "20M")
	e.must("mirror", friend.loc("laptop"))
	friend.stop()

	// The copy now holds over 3 MiB: a quota of 1 MiB refuses any file.
	friend = startPeerServer(t, e, cfg, root, "--allow", owner, "--quota", "1M")
	loc := friend.loc("laptop")
	if r := e.run("-r", loc, "backup", data); r.code != exitError || !strings.Contains(r.stderr, "quota") {
		t.Fatalf("backup to the full copy: want exit %d naming the quota\n%s", exitError, r)
	}
	target := filepath.Join(e.dir, "restored")
	r := e.run("-r", loc, "restore", "latest", "--target", target)
	if r.code != 0 {
		t.Fatalf("restore from a copy at its quota: want exit 0\n%s", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !matches(`^cairn: warning: lock: the repository location refuses writes: .*quota exceeded.*; reading without a lock`, lines[0]) {
		t.Fatalf("want one warning line naming the quota\n%s", r)
	}
	compareTrees(t, data, filepath.Join(target, data), false)
}
