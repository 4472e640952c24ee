package main

import (
	"bufio"
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireFUSE skips a mount test unless this machine lets root mount
// FUSE file systems (/dev/fuse), and with forOthers, other users too
// (through fusermount3, which opens /dev/fuse as the user); when
// CAIRN_TEST_REQUIRE names fuse (as `make test` does) it fails instead.
// scripts/test-deps.sh installs fusermount3 and opens /dev/fuse to all
// users as udev does.
func requireFUSE(t *testing.T, forOthers bool) {
	t.Helper()
	var why string
	fi, statErr := os.Stat("/dev/fuse")
	_, lookErr := exec.LookPath("fusermount3")
	if os.Geteuid() != 0 {
		why = "not root"
	} else if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		why = err.Error()
	} else if f.Close(); forOthers && statErr == nil && fi.Mode().Perm()&0o006 != 0o006 {
		why = "/dev/fuse is not open to other users (mode " + fi.Mode().Perm().String() + ")"
	} else if forOthers && lookErr != nil {
		why = lookErr.Error()
	} else {
		return
	}
	for _, r := range strings.FieldsFunc(os.Getenv("CAIRN_TEST_REQUIRE"), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if r == "fuse" {
			t.Fatalf("CAIRN_TEST_REQUIRE names fuse, but cannot mount: %s", why)
		}
	}
	t.Skipf("cannot mount FUSE (%s); set CAIRN_TEST_REQUIRE=fuse to make this a failure", why)
}

// isMounted reports whether dir is a mountpoint now (/proc/self/mountinfo).
func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// mountRun is a running "cairn mount".
type mountRun struct {
	t      *testing.T
	dir    string
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan struct{}
	err    error // what Wait returned; set before done is closed
}

// startMount runs "cairn mount ARGS... DIR" and returns once it says it
// serves the mount (in text, or with --json its "mounted" message): an
// event on its stdout, not a guess at a delay.
func (e *testEnv) startMount(dir string, args ...string) *mountRun {
	e.t.Helper()
	args = append(append([]string{"mount"}, args...), dir)
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	if e.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	m := &mountRun{t: e.t, dir: dir, cmd: cmd, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { m.stderr.WriteString(string(b)); return len(b), nil })
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		said := false
		for sc.Scan() {
			m.stdout.WriteString(sc.Text() + "\n")
			if !said && (strings.HasPrefix(sc.Text(), "serving ") || strings.HasPrefix(sc.Text(), `{"message_type":"mounted",`)) {
				said = true
				close(serving)
			}
		}
		m.err = cmd.Wait()
		close(m.done)
	}()
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-m.done
		if isMounted(e.t, dir) {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	select {
	case <-serving:
	case <-m.done:
		e.t.Fatalf("cairn %q exited before serving\nstdout:\n%s\nstderr:\n%s", args, m.stdout.String(), m.stderr.String())
	case <-time.After(2 * time.Minute):
		e.t.Fatalf("cairn %q did not serve within 2 minutes\nstderr:\n%s", args, m.stderr.String())
	}
	if !isMounted(e.t, dir) {
		e.t.Fatalf("cairn %q says it serves, but %s is not mounted", args, dir)
	}
	return m
}

// wait waits for the mount process to exit and returns how it did.
func (m *mountRun) wait() result {
	m.t.Helper()
	select {
	case <-m.done:
	case <-time.After(2 * time.Minute):
		m.t.Fatalf("cairn mount did not exit within 2 minutes\nstderr:\n%s", m.stderr.String())
	}
	res := result{args: m.cmd.Args[1:], stdout: m.stdout.String(), stderr: m.stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case m.err == nil:
	case errors.As(m.err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		m.t.Fatalf("cairn mount: %v", m.err)
	}
	return res
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func lockFiles(t *testing.T, e *testEnv) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.repo, "locks"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, ent := range ents {
		names = append(names, ent.Name())
	}
	return names
}

// mountFixture backs data up twice: as host alpha with tag daily, then,
// with small changed, as host beta. It returns the data folder, its big
// file's bytes and the two snapshots' short IDs.
func mountFixture(t *testing.T, e *testEnv) (data string, big []byte, ids []string) {
	t.Helper()
	data = filepath.Join(e.dir, "data")
	// 12 MiB of random bytes: a dozen chunks or so (1 MiB on average,
	// at most 8 MiB), so reads cross chunk boundaries.
	writeRandom(t, filepath.Join(data, "big"), 12<<20, 42)
	e.writeFile(filepath.Join(data, "small"), "hello\n")
	if err := os.Symlink("small", filepath.Join(data, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "sub", "deeper"), 0o750); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(data, "sub", "deeper", "f"), "deep\n")
	bigPath := filepath.Join(data, "big")
	if err := os.Chmod(bigPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(bigPath, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	if err := os.Chtimes(bigPath, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	var err error
	if big, err = os.ReadFile(bigPath); err != nil {
		t.Fatal(err)
	}
	e.init()
	e.must("backup", "--host", "alpha", "--tag", "daily", data)
	e.writeFile(filepath.Join(data, "small"), "changed\n")
	e.must("backup", "--host", "beta", data)
	for _, sn := range e.snapshotsJSON() {
		ids = append(ids, sn["short_id"].(string))
	}
	if len(ids) != 2 {
		t.Fatalf("%d snapshots, want 2", len(ids))
	}
	return data, big, ids
}

// TestMount is issue 13's mount: the snapshots browsed as a read-only
// file system by ID, time, host and tag; a multi-chunk file read whole
// and at random offsets byte for byte; stored modes, owner and times;
// symlinks; writes refused with EROFS; a shared lock held while mounted;
// and SIGINT unmounting, removing the lock and exiting 0.
func TestMount(t *testing.T) {
	requireFUSE(t, false)
	e := newTestEnv(t)
	data, big, ids := mountFixture(t, e)
	mnt := filepath.Join(e.dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m := e.startMount(mnt)

	if locks := lockFiles(t, e); len(locks) != 1 {
		t.Errorf("while mounted: %d lock files, want 1 (a shared lock)", len(locks))
	}
	if got := dirNames(t, mnt); !slices.Equal(got, []string{"hosts", "ids", "snapshots", "tags"}) {
		t.Errorf("mount root: %v", got)
	}
	if got, want := dirNames(t, filepath.Join(mnt, "ids")), slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Errorf("ids/: %v, want %v", got, want)
	}
	if got := dirNames(t, filepath.Join(mnt, "hosts")); !slices.Equal(got, []string{"alpha", "beta"}) {
		t.Errorf("hosts/: %v", got)
	}
	if got := dirNames(t, filepath.Join(mnt, "tags")); !slices.Equal(got, []string{"daily"}) {
		t.Errorf("tags/: %v", got)
	}
	times := dirNames(t, filepath.Join(mnt, "snapshots"))
	if len(times) != 3 || times[2] != "latest" {
		t.Fatalf("snapshots/: %v, want two times and latest", times)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "snapshots", "latest")); err != nil || target != times[1] {
		t.Errorf("snapshots/latest -> %q (%v), want %q", target, err, times[1])
	}

	first := filepath.Join(mnt, "ids", ids[0], data)
	if got := dirNames(t, first); !slices.Equal(got, []string{"big", "link", "small", "sub"}) {
		t.Errorf("snapshot's data folder: %v", got)
	}
	// Reads at random offsets first, on a fresh mount, so that they are
	// served by the file system rather than the page cache; spans of up
	// to 3 MiB cross chunk boundaries.
	f, err := os.Open(filepath.Join(first, "big"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 60 {
		off := rng.IntN(len(big))
		n := 1 + rng.IntN(3<<20)
		if i%3 == 0 {
			off = (1+rng.IntN(11))<<20 - rng.IntN(64) // around each MiB
		}
		buf := make([]byte, n)
		k, err := f.ReadAt(buf, int64(off))
		if k != min(n, len(big)-off) || (err != nil && k == n) {
			t.Fatalf("read %d+%d: %d bytes, %v", off, n, k, err)
		}
		if !bytes.Equal(buf[:k], big[off:off+k]) {
			t.Fatalf("read %d+%d: bytes differ from the original", off, n)
		}
	}
	f.Close()
	if got, err := os.ReadFile(filepath.Join(first, "big")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big read whole: %d bytes (%v), differs from the original", len(got), err)
	}

	var st, orig syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(first, "big"), &st); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Lstat(filepath.Join(data, "big"), &orig); err != nil {
		t.Fatal(err)
	}
	if st.Size != orig.Size || st.Mode != orig.Mode || st.Uid != orig.Uid || st.Gid != orig.Gid || st.Mtim != orig.Mtim {
		t.Errorf("stat big in the mount: size %d mode %o owner %d:%d mtime %v; original: size %d mode %o owner %d:%d mtime %v",
			st.Size, st.Mode, st.Uid, st.Gid, st.Mtim, orig.Size, orig.Mode, orig.Uid, orig.Gid, orig.Mtim)
	}
	if err := syscall.Lstat(filepath.Join(first, "sub"), &st); err != nil || st.Mode != syscall.S_IFDIR|0o750 {
		t.Errorf("stat sub: mode %o (%v), want dir 0750", st.Mode, err)
	}
	if target, err := os.Readlink(filepath.Join(first, "link")); err != nil || target != "small" {
		t.Errorf("readlink link: %q (%v), want small", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(first, "link")); err != nil || string(b) != "hello\n" {
		t.Errorf("first snapshot's small through link: %q (%v)", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "hosts", "beta", "latest", data, "small")); err != nil || string(b) != "changed\n" {
		t.Errorf("beta's small: %q (%v)", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "tags", "daily", "latest", data, "sub", "deeper", "f")); err != nil || string(b) != "deep\n" {
		t.Errorf("tags/daily/latest/.../f: %q (%v)", b, err)
	}

	if err := os.WriteFile(filepath.Join(first, "new"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create in the mount: %v, want EROFS", err)
	}
	if _, err := os.OpenFile(filepath.Join(first, "big"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	if err := os.Remove(filepath.Join(first, "small")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("remove: %v, want EROFS", err)
	}

	if err := m.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	r := m.wait()
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "unmounted "+mnt) {
		t.Fatalf("after SIGINT: want exit 0, no warning and \"unmounted\"\n%s", r)
	}
	if isMounted(t, mnt) {
		t.Fatal("still mounted after SIGINT")
	}
	if locks := lockFiles(t, e); len(locks) != 0 {
		t.Errorf("lock files left after the mount ended: %v", locks)
	}
	if got := e.must("check"); got.code != 0 {
		t.Fatal(got)
	}
}

// Unmounting from outside ends cairn mount (exit 0). With --no-lock it
// holds no lock; --host filters the snapshots and --path-template and
// --time-template lay them out.
func TestMountExternalUnmount(t *testing.T) {
	requireFUSE(t, false)
	e := newTestEnv(t)
	data, _, ids := mountFixture(t, e)
	mnt := filepath.Join(e.dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m := e.startMount(mnt, "--no-lock", "--host", "alpha", "--owner-root",
		"--path-template", "by,host/%h/%i", "--path-template", "day/%T", "--time-template", "2006-01-02")
	if locks := lockFiles(t, e); len(locks) != 0 {
		t.Errorf("--no-lock: %d lock files while mounted", len(locks))
	}
	if got := dirNames(t, filepath.Join(mnt, "by,host")); !slices.Equal(got, []string{"alpha"}) {
		t.Errorf("by,host/: %v (beta is filtered out)", got)
	}
	if got := dirNames(t, filepath.Join(mnt, "by,host", "alpha")); !slices.Equal(got, []string{ids[0]}) {
		t.Errorf("by,host/alpha/: %v, want %s", got, ids[0])
	}
	day := dirNames(t, filepath.Join(mnt, "day"))
	if len(day) != 2 || day[1] != "latest" || len(day[0]) != len("2006-01-02") {
		t.Errorf("day/: %v", day)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(mnt, "day", "latest", data, "big"), &st); err != nil || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("--owner-root: big is owned by %d:%d (%v)", st.Uid, st.Gid, err)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	r := m.wait()
	if r.code != 0 || !strings.Contains(r.stdout, mnt+" was unmounted") {
		t.Fatalf("after umount: want exit 0 and \"was unmounted\"\n%s", r)
	}
}

// A user other than root mounts through fusermount3 and unmounts with
// "fusermount3 -u": the way most users run it. (With --json, which says
// when the mount is ready in a JSON line.)
func TestMountUnprivileged(t *testing.T) {
	requireFUSE(t, true)
	fusermount, err := exec.LookPath("fusermount3")
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t)
	data, _, ids := mountFixture(t, e)
	mnt := filepath.Join(e.dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	chownTree(t, e.dir, nobody, nobody)
	e.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	m := e.startMount(mnt, "--json")
	if !strings.Contains(m.stdout.String(), `{"message_type":"mounted","mountpoint":"`+mnt+`","snapshots":2}`) {
		t.Errorf("--json: no mounted message\n%s", m.stdout.String())
	}
	if len(lockFiles(t, e)) != 1 {
		t.Errorf("want one lock file while mounted")
	}
	// Without --allow-other only nobody may look in: check as nobody.
	asNobody := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return c
	}
	if out, err := asNobody("cmp", filepath.Join(data, "big"), filepath.Join(mnt, "ids", ids[1], data, "big")).CombinedOutput(); err != nil {
		t.Errorf("cmp as nobody: %v\n%s", err, out)
	}
	if out, err := asNobody(fusermount, "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u as nobody: %v\n%s", err, out)
	}
	r := m.wait()
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	if isMounted(t, mnt) || len(lockFiles(t, e)) != 0 {
		t.Fatalf("after fusermount3 -u: mounted %v, locks %v", isMounted(t, mnt), lockFiles(t, e))
	}
}

// Bad mount arguments fail at once with one line and exit 1, mounting
// nothing.
func TestMountErrors(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	file := filepath.Join(e.dir, "file")
	e.writeFile(file, "x")
	mnt := filepath.Join(e.dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"mount"}, `mount: missing argument \(usage: cairn mount MOUNTPOINT\)`},
		{[]string{"mount", mnt, "extra"}, `unexpected argument "extra"`},
		{[]string{"mount", filepath.Join(e.dir, "nope")}, `mountpoint .*nope does not exist`},
		{[]string{"mount", file}, `mountpoint .*file is not a folder`},
		{[]string{"mount", e.repo}, `overlap: the mount would read itself`},
		{[]string{"mount", e.dir}, `overlap: the mount would read itself`},
		{[]string{"mount", "--path-template", "ids/%q", mnt}, `bad template: path template "ids/%q": unknown %q`},
		{[]string{"mount", "--time-template", "/2006", mnt}, `bad template: time template "/2006" starts or ends with "/"`},
		{[]string{"mount", "--no-default-permissions", mnt}, `--no-default-permissions only applies with --allow-other`},
	} {
		r := e.run(tc.args...)
		if r.code != exitError {
			t.Errorf("want exit 1\n%s", r)
			continue
		}
		checkOneErrorLine(t, r, tc.pattern)
		if isMounted(t, mnt) {
			t.Fatalf("%q mounted something", tc.args)
		}
	}
}

// SIGTERM while a file in the mount is open: the mount is busy, so it is
// detached lazily with a warning; the mountpoint is free, the lock
// removed, the exit status 0, and the open file fails from then on
// instead of hanging.
func TestMountBusySIGTERM(t *testing.T) {
	requireFUSE(t, false)
	e := newTestEnv(t)
	data, _, ids := mountFixture(t, e)
	mnt := filepath.Join(e.dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	m := e.startMount(mnt)
	f, err := os.Open(filepath.Join(mnt, "ids", ids[0], data, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := m.wait()
	if r.code != 0 || !strings.Contains(r.stderr, "cairn: warning: mount: "+mnt+": the mount was in use: detached it") {
		t.Fatalf("want exit 0 and a warning that the busy mount was detached\n%s", r)
	}
	if isMounted(t, mnt) || len(lockFiles(t, e)) != 0 {
		t.Fatalf("after SIGTERM: mounted %v, locks %v", isMounted(t, mnt), lockFiles(t, e))
	}
	if _, err := f.ReadAt(make([]byte, 10), 1<<20); err == nil {
		t.Error("a read from the detached mount's open file succeeded after cairn exited")
	}
}

// --allow-other lets another user in, with the kernel checking each
// file's stored mode and owner; --no-default-permissions lets that user
// read every file. Without --allow-other (TestMount) only the mounting
// user may look in.
func TestMountAllowOther(t *testing.T) {
	requireFUSE(t, false)
	e := newTestEnv(t)
	data, big, ids := mountFixture(t, e) // big: 0640, owned by 1234:5678
	mnt := filepath.Join(e.dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) ([]byte, error) {
		c := exec.Command(args[0], args[1:]...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return c.CombinedOutput()
	}
	snap := filepath.Join(mnt, "ids", ids[0], data)
	for _, tc := range []struct {
		flags       []string
		small, bigR bool // whether nobody may read them
	}{
		{nil, false, false},
		{[]string{"--allow-other"}, true, false},
		{[]string{"--allow-other", "--no-default-permissions"}, true, true},
	} {
		m := e.startMount(mnt, tc.flags...)
		out, err := asNobody("cat", filepath.Join(snap, "small"))
		if (err == nil) != tc.small || (tc.small && string(out) != "hello\n") {
			t.Errorf("%q: nobody reads small: %q, %v; want readable %v", tc.flags, out, err, tc.small)
		}
		out, err = asNobody("cat", filepath.Join(snap, "big"))
		if (err == nil) != tc.bigR || (tc.bigR && !bytes.Equal(out, big)) {
			t.Errorf("%q: nobody reads big (0640, owner 1234): %.60q, %v; want readable %v", tc.flags, out, err, tc.bigR)
		}
		if err := m.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if r := m.wait(); r.code != 0 {
			t.Fatalf("%q: want exit 0\n%s", tc.flags, r)
		}
	}
}
