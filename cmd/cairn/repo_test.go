package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// TestKeys walks through key add, list, remove and passwd and checks which
// passwords open the repository after each step.
func TestKeys(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	pw2 := filepath.Join(e.dir, "pw2")
	pw3 := filepath.Join(e.dir, "pw3")
	e.writeFile(pw2, "second password\r\n")
	e.writeFile(pw3, "third password\n")
	opens := func(pwFile string) int {
		t.Helper()
		return e.runWith(runOpts{env: []string{envPasswordFile + "=" + pwFile}}, "snapshots").code
	}

	r := e.run("key", "add")
	if r.code != 1 {
		t.Fatalf("key add without a new password\n%s", r)
	}
	checkOneErrorLine(t, r, `no new password given \(use --new-password-file\)`)

	r = e.must("key", "add", "--new-password-file", pw2)
	if !matches(`^saved new key as [0-9a-f]{8}\n$`, r.stdout) {
		t.Fatalf("key add\n%s", r)
	}
	newKey := strings.Fields(r.stdout)[4]
	if opens(pw2) != 0 || opens(e.pwFile) != 0 {
		t.Fatal("after key add, both passwords must open the repository")
	}
	r = e.must("key", "list")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || strings.Count(r.stdout, "*") != 1 {
		t.Fatalf("key list\n%s", r)
	}

	// The key in use cannot be removed; another one can.
	r = e.runWith(runOpts{env: []string{envPasswordFile + "=" + pw2}}, "key", "remove", newKey)
	if r.code != 1 {
		t.Fatalf("removing the key in use\n%s", r)
	}
	checkOneErrorLine(t, r, `key in use`)
	e.must("key", "remove", newKey)
	if opens(pw2) != 12 {
		t.Fatal("a removed key still opens the repository")
	}
	r = e.run("key", "remove", "ffff")
	if r.code != 1 {
		t.Fatalf("removing an unknown key\n%s", r)
	}

	r = e.must("key", "passwd", "--new-password-file", pw3)
	if !strings.Contains(r.stdout, "password changed") {
		t.Fatalf("key passwd\n%s", r)
	}
	if opens(e.pwFile) != 12 || opens(pw3) != 0 {
		t.Fatal("after key passwd only the new password may open the repository")
	}
}

// TestLockConflict holds an exclusive lock from this test process and
// checks that cairn exits 11, that unlock leaves a live lock alone, and
// that unlock --remove-all clears it.
func TestLockConflict(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	ctx := context.Background()
	be, err := local.Open(ctx, e.repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, []byte(testPassword), repo.Options{Hostname: hostname()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lock, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"snapshots"}, {"backup", e.dir}, {"key", "add", "--new-password-file", e.pwFile}} {
		res := e.run(args...)
		if res.code != 11 {
			t.Fatalf("want exit 11 while locked\n%s", res)
		}
		checkOneErrorLine(t, res, `repository is locked exclusively by PID \d+`)
	}
	res := e.must("unlock")
	if !strings.Contains(res.stdout, "removed 0 lock") {
		t.Fatalf("unlock removed a live lock\n%s", res)
	}
	if e.run("snapshots").code != 11 {
		t.Fatal("lock gone after plain unlock")
	}
	e.must("unlock", "--remove-all")
	e.must("snapshots")
	// Our lock file is gone; unlocking it reports that, harmlessly.
	_ = lock.Unlock(ctx)
	if entries, _ := os.ReadDir(filepath.Join(e.repo, "locks")); len(entries) != 0 {
		t.Fatalf("locks left: %v", entries)
	}
}

// TestInterrupt sends SIGINT while cairn waits for a password command:
// exit status 130, promptly, no lock left behind.
func TestInterrupt(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	marker := filepath.Join(e.dir, "started")
	cmd := exec.Command(cairnBin, "snapshots", "--password-command", "touch "+marker+"; exec sleep 60")
	cmd.Env = append(append([]string(nil), e.env...), envPasswordFile+"=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("password command never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("cairn did not stop after SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130; stderr:\n%s", code, stderr.String())
	}
	if !strings.HasSuffix(stderr.String(), "cairn: interrupted\n") {
		t.Fatalf("stderr %q", stderr.String())
	}
	t.Logf("stopped %v after SIGINT", time.Since(start))
	if entries, _ := os.ReadDir(filepath.Join(e.repo, "locks")); len(entries) != 0 {
		t.Fatalf("locks left: %v", entries)
	}
}

// TestNoControlCharacters backs up files whose names hold control
// characters: off a terminal no output may hold any.
func TestNoControlCharacters(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"evil\x1b[31mred", "two\nlines", "bell\a", "tab\there", "plain"} {
		e.writeFile(filepath.Join(src, name), name)
	}
	e.init()
	for _, args := range [][]string{
		{"backup", src}, {"-v", "backup", src}, {"snapshots"}, {"ls", "latest"}, {"ls", "-l", "latest"},
		{"find", "*e*"}, {"stats"}, {"key", "list"}, {"diff", "latest", "latest"}, {"restore", "latest", "--target", filepath.Join(e.dir, "r")},
	} {
		r := e.must(args...)
		checkNoControl(t, strings.Join(args, " ")+" stdout", r.stdout)
		checkNoControl(t, strings.Join(args, " ")+" stderr", r.stderr)
	}
	r := e.must("ls", "latest")
	for _, want := range []string{`evil\x1b[31mred`, `two\x0alines`, `bell\x07`, `tab\x09here`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ls output lacks escaped name %q\n%s", want, r.stdout)
		}
	}
}

// TestRollbackWarning removes the newest log entry behind cairn's back:
// every command that reads the log must warn, and keep warning.
func TestRollbackWarning(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "f"), "data\n")
	e.init()
	e.must("backup", src)
	logDir := filepath.Join(e.repo, "log")
	before, err := os.ReadDir(logDir)
	if err != nil {
		t.Fatal(err)
	}
	e.must("backup", src)
	after, err := os.ReadDir(logDir)
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]bool{}
	for _, d := range before {
		old[d.Name()] = true
	}
	for _, d := range after {
		if !old[d.Name()] {
			if err := os.Remove(filepath.Join(logDir, d.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 2 {
		r := e.must("snapshots")
		if !strings.Contains(r.stderr, "cairn: warning: snapshot log: log rolled back") {
			t.Fatalf("no rollback warning\n%s", r)
		}
	}
}

// TestCacheDir checks where the local cache goes: the default under
// $HOME/.cache, --cache-dir, or nowhere with --no-cache.
func TestCacheDir(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "f"), "data\n")
	home := filepath.Join(e.dir, "home")
	e.must("init", "--no-cache")
	e.must("--no-cache", "backup", src)
	if _, err := os.Stat(filepath.Join(home, ".cache", "cairn")); err == nil {
		t.Fatal("--no-cache made a cache")
	}
	custom := filepath.Join(e.dir, "mycache")
	e.must("backup", "--cache-dir", custom, src)
	if entries, _ := os.ReadDir(custom); len(entries) == 0 {
		t.Fatal("--cache-dir left empty")
	}
	e.must("backup", src)
	if entries, _ := os.ReadDir(filepath.Join(home, ".cache", "cairn")); len(entries) == 0 {
		t.Fatal("default cache dir left empty")
	}
	e.must("restore", "latest", "--target", filepath.Join(e.dir, "r"))
}

// TestCorruptIndex damages every index file: commands warn (one line per
// problem) and carry on from the pack headers; a restore is still exact.
func TestCorruptIndex(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	makeTree(t, src, 4)
	e.init()
	e.must("backup", src)
	idx, err := filepath.Glob(filepath.Join(e.repo, "index", "*"))
	if err != nil || len(idx) == 0 {
		t.Fatalf("no index files: %v", err)
	}
	for _, f := range idx {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x40
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
		e.writeFile(f, string(data))
	}
	target := filepath.Join(e.dir, "restored")
	r := e.must("--no-cache", "restore", "latest:"+src, "--target", target)
	if !strings.Contains(r.stderr, "cairn: warning: ") || !strings.Contains(r.stderr, "index") {
		t.Fatalf("no warning about the damaged index\n%s", r)
	}
	checkNoControl(t, "stderr", r.stderr)
	compareTrees(t, src, target, false)
}

// TestDamagedPack flips a byte in the middle of the data pack: restore
// names the file whose data is damaged, restores the rest, and exits 1.
func TestDamagedPack(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "small.txt"), "small and fine\n")
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>9)
	}
	e.writeFile(filepath.Join(src, "big.bin"), string(big))
	e.init()
	e.must("backup", src)
	// Find where big.bin's first chunk lies and flip a byte inside it.
	ctx := context.Background()
	be, err := local.Open(ctx, e.repo)
	if err != nil {
		t.Fatal(err)
	}
	rp, _, err := repo.OpenForJob(ctx, be, []byte(testPassword), repo.Options{}, repo.NoLock)
	if err != nil {
		t.Fatal(err)
	}
	l, err := snapshot.LoadLog(ctx, rp)
	if err != nil || len(l.Snapshots()) != 1 {
		t.Fatalf("log: %v", err)
	}
	subtree, err := snapshot.FindSubtree(ctx, rp, l.Snapshots()[0].Tree, src)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := snapshot.LoadTree(ctx, rp, subtree)
	if err != nil {
		t.Fatal(err)
	}
	node := tree.Find("big.bin")
	if node == nil || len(node.Content) == 0 {
		t.Fatalf("big.bin not in the snapshot: %+v", tree)
	}
	pb, ok := rp.Lookup(pack.DataBlob, node.Content[0])
	if !ok {
		t.Fatal("big.bin's first chunk is not in the index")
	}
	rp.Close()
	packFile := filepath.Join(e.repo, "data", pb.PackID.String()[:2], pb.PackID.String())
	data, err := os.ReadFile(packFile)
	if err != nil {
		t.Fatal(err)
	}
	data[pb.Offset+pb.Length/2] ^= 0xff
	if err := os.Chmod(packFile, 0o600); err != nil {
		t.Fatal(err)
	}
	e.writeFile(packFile, string(data))
	target := filepath.Join(e.dir, "restored")
	r := e.run("--no-cache", "restore", "latest:"+src, "--target", target)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	if !matches(`(?m)^cairn: warning: .*big\.bin`, r.stderr) || !matches(`(?m)^cairn: restore: \d+ error\(s\)`, r.stderr) {
		t.Fatalf("stderr does not name the damaged file\n%s", r)
	}
	if got, err := os.ReadFile(filepath.Join(target, "small.txt")); err != nil || string(got) != "small and fine\n" {
		t.Fatalf("small.txt not restored: %q, %v", got, err)
	}
}
