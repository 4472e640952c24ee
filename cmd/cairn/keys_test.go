package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 11, items 5, 8 and 12 (first half): a flood of key files never
// locks the real password out, a key file cannot make a command costly, an
// init killed between its key file and its config is finished by running
// init again, and key files keep who made them sealed.

// fakeKey is one kind of key file an attacker who can add files to the
// repository (a friend's server, an append-only client) could upload,
// without knowing any password.
type fakeKey int

const (
	fakeRandom    fakeKey = iota // random bytes
	fakeNewest                   // well-formed, bogus salt and data, the newest possible "created", as cheap as the test KDF
	fakeCheaper                  // well-formed, newest "created", cheaper than the test KDF: tried before the real key
	fakeMaxCost                  // well-formed, the costliest parameters cairn still tries (256 MiB × 4 passes)
	fakeTooCostly                // well-formed, argon2id 1 GiB × 2 passes: beyond the cost limit
)

// fakeKeyFile makes the bytes of a fake key file of kind k.
func fakeKeyFile(t *testing.T, k fakeKey) []byte {
	t.Helper()
	rnd := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	if k == fakeRandom {
		return rnd(200 + int(rnd(1)[0]))
	}
	params := map[fakeKey]string{
		fakeNewest:    `"time": 1, "memory_kib": 64, "threads": 1`,
		fakeCheaper:   `"time": 1, "memory_kib": 8, "threads": 1`,
		fakeMaxCost:   `"time": 4, "memory_kib": 262144, "threads": 2`,
		fakeTooCostly: `"time": 2, "memory_kib": 1048576, "threads": 2`,
	}[k]
	// A sealed file: version 1, the all-zero key ID of a password-derived
	// key, nonce, a one-key ring's worth of ciphertext, tag.
	sealed := append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, rnd(24+45+16)...)
	return fmt.Appendf(nil, `{"version": 1, "created": "9999-12-31T23:59:59.999999999Z", "hostname": "evil", "username": "evil",
 "kdf": {"algorithm": "argon2id", %s, "salt": %q}, "data": %q}`+"\n",
		params, base64.StdEncoding.EncodeToString(rnd(16)), base64.StdEncoding.EncodeToString(sealed))
}

// addKeyFile stores data in the repository's keys/ under its hash, as a
// client uploading it would.
func (e *testEnv) addKeyFile(data []byte) string {
	e.t.Helper()
	sum := sha256.Sum256(data)
	name := hex.EncodeToString(sum[:])
	e.writeFile(filepath.Join(e.repo, "keys", name), string(data))
	return name
}

// keyFiles lists the names in the repository's keys/.
func (e *testEnv) keyFiles() []string {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.repo, "keys"))
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	return names
}

// freshDevice returns the global flags of a device that has never opened
// the repository: its own, empty config dir.
func (e *testEnv) freshDevice() []string {
	e.t.Helper()
	dir, err := os.MkdirTemp(e.dir, "device-")
	if err != nil {
		e.t.Fatal(err)
	}
	return []string{"--config-dir", dir}
}

// runRSS runs cairn to its end under GNU time and also returns its peak
// resident set size in MiB. Not the rusage os/exec reports: Go starts a
// child with vfork, and Linux then counts the test process's own peak in
// the child's (scripts/test-deps.sh installs /usr/bin/time).
func (e *testEnv) runRSS(args ...string) (result, int64) {
	e.t.Helper()
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		e.t.Fatalf("GNU time is needed to measure peak memory (scripts/test-deps.sh installs it): %v", err)
	}
	out := filepath.Join(e.dir, "rss")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-f", "%M", "-o", out, cairnBin}, args...)...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("cairn %q did not finish", args)
	}
	r := result{args: args, code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	b, err := os.ReadFile(out)
	if err != nil {
		e.t.Fatal(err)
	}
	// GNU time writes "Command exited with non-zero status N" first then.
	lines := strings.Fields(string(b))
	kib, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		e.t.Fatalf("GNU time wrote %q: %v", b, err)
	}
	return r, kib >> 10
}

// TestKeyFloodRealPasswordOpens uploads 20 and 100 fake key files, all
// claiming to be the newest, the costliest allowed among them: the real
// password must open the repository on a device that has never opened it
// (nothing remembered), and a wrong one must still be "wrong password".
func TestKeyFloodRealPasswordOpens(t *testing.T) {
	for _, n := range []int{20, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newTestEnv(t)
			e.init()
			kinds := []fakeKey{fakeNewest, fakeCheaper, fakeRandom, fakeMaxCost}
			if n == 20 {
				// Before: the 20 newest by "created" were all it tried.
				kinds = []fakeKey{fakeNewest, fakeCheaper}
			}
			for i := range n {
				e.addKeyFile(fakeKeyFile(t, kinds[i%len(kinds)]))
			}
			dev := e.freshDevice()
			start := time.Now()
			r := e.run(append(dev, "-v", "snapshots")...)
			took := time.Since(start)
			if r.code != 0 {
				t.Fatalf("the real password did not open the repository among %d fake key files\n%s", n, r)
			}
			t.Logf("%d fake key files: opened in %v (%s)", n, took.Round(time.Millisecond), strings.TrimSpace(firstLine(r.stdout)))
			if n == 100 {
				if !strings.Contains(r.stderr, "warning: 101 key files: the password is tried on each") {
					t.Errorf("no warning about the number of key files\n%s", r)
				}
				// 25 random ones: 5 named, the rest counted.
				if strings.Count(r.stderr, "warning: skipping key file") != 5 || !strings.Contains(r.stderr, "warning: skipped 20 more key files") {
					t.Errorf("want 5 skipped key files named and 20 counted\n%s", r)
				}
				// The same device again: its key first, nothing else read.
				r = e.must(append(dev, "-v", "snapshots")...)
				if !strings.Contains(r.stdout, "(tried 1)") || r.stderr != "" {
					t.Errorf("same device: want the remembered key, no warnings\n%s", r)
				}
			}
			if n == 20 {
				wrong := filepath.Join(e.dir, "wrong")
				e.writeFile(wrong, "not the password\n")
				r := e.run(append(e.freshDevice(), "--password-file", wrong, "snapshots")...)
				if r.code != exitWrongPass {
					t.Fatalf("wrong password: want exit %d\n%s", exitWrongPass, r)
				}
				checkOneErrorLine(t, r, `wrong password.*tried 21 key files`)
			}
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestKeyFileTooCostlySkipped uploads a key file asking for argon2id with
// 1 GiB and 2 passes, the newest by its "created": it must be skipped with
// a warning, unrun: the command's peak memory stays far below 1 GiB.
func TestKeyFileTooCostlySkipped(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	name := e.addKeyFile(fakeKeyFile(t, fakeTooCostly))
	r, rss := e.runRSS(append(e.freshDevice(), "snapshots")...)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	t.Logf("peak RSS with a 1 GiB key file present: %d MiB", rss)
	if !matches(`warning: skipping key file `+name[:8]+`: .*exceed the cost limit: argon2id needs 1024 MiB of memory, more than 256 MiB`, r.stderr) {
		t.Errorf("no warning naming the costly key file\n%s", r)
	}
	if rss > 200 {
		t.Errorf("peak RSS %d MiB: the 1 GiB derivation ran", rss)
	}
	// key list shows it, marked, and the command still works.
	r = e.must("key", "list")
	if !matches(name[:8]+`.*argon2id \(too costly\)`, r.stdout) {
		t.Errorf("key list does not mark the costly key\n%s", r)
	}
	// Nothing else to try: a distinct message, not "wrong password".
	if err := os.Remove(filepath.Join(e.repo, "keys", e.currentKey())); err != nil {
		t.Fatal(err)
	}
	r = e.run(append(e.freshDevice(), "snapshots")...)
	if r.code != exitError || !matches(`(?m)^cairn: open .*: no key file could be tried: all 1 key files were skipped`, r.stderr) {
		t.Fatalf("want exit 1 and \"no key file could be tried\"\n%s", r)
	}
}

// currentKey is the ID of the key file "key list" marks as current.
func (e *testEnv) currentKey() string {
	e.t.Helper()
	var keys []keyJSON
	r := e.must("--json", "key", "list")
	if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil {
		e.t.Fatalf("key list --json: %v\n%s", err, r)
	}
	for _, k := range keys {
		if k.Current {
			return k.ID
		}
	}
	e.t.Fatalf("no current key\n%s", r)
	return ""
}

// TestManyRealKeysAllOpen adds 21 passwords: every one of the 22, the
// oldest included, must open the repository on a new device.
func TestManyRealKeysAllOpen(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	var pwFiles []string
	for i := range 21 {
		f := filepath.Join(e.dir, fmt.Sprintf("pw%d", i))
		e.writeFile(f, fmt.Sprintf("password number %d\n", i))
		e.must("key", "add", "--new-password-file", f)
		pwFiles = append(pwFiles, f)
	}
	if n := len(e.keyFiles()); n != 22 {
		t.Fatalf("%d key files, want 22", n)
	}
	for _, f := range append([]string{e.pwFile}, pwFiles...) {
		if r := e.run(append(e.freshDevice(), "--password-file", f, "snapshots")...); r.code != 0 {
			t.Fatalf("password in %s does not open the repository\n%s", filepath.Base(f), r)
		}
	}
}

// TestRememberedKeyTriedFirst: a device remembers the key file that
// opened a repository and tries it first; a new device tries the key
// files cheapest first, so 30 cheaper fakes all cost it a try.
func TestRememberedKeyTriedFirst(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	real := e.currentKey()
	for range 30 {
		e.addKeyFile(fakeKeyFile(t, fakeCheaper))
	}
	tried := func(r result) string {
		m := regexp.MustCompile(`opened with key file (\w+) \(tried (\d+)\)`).FindStringSubmatch(r.stdout)
		if m == nil || m[1] != real[:8] {
			t.Fatalf("no \"opened with key file %s\" line\n%s", real[:8], r)
		}
		return m[2]
	}
	dev := e.freshDevice()
	if got := tried(e.must(append(dev, "-v", "snapshots")...)); got != "31" {
		t.Errorf("new device: tried %s key files, want 31 (the cheaper fakes first)", got)
	}
	if got := tried(e.must(append(dev, "-v", "snapshots")...)); got != "1" {
		t.Errorf("same device again: tried %s key files, want 1 (the remembered one)", got)
	}
	if got := tried(e.must(append(e.freshDevice(), "-v", "snapshots")...)); got != "31" {
		t.Errorf("another new device: tried %s key files, want 31", got)
	}
	// What is remembered: the key file's ID, under the hash of the config.
	cfg, err := os.ReadFile(filepath.Join(e.repo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cfg)
	b, err := os.ReadFile(filepath.Join(dev[1], "last-key", hex.EncodeToString(sum[:])))
	if err != nil || string(b) != real+"\n" {
		t.Fatalf("remembered %q, %v; want %s", b, err, real)
	}
	// A new password replaces the remembered key; a remembered key that is
	// gone costs nothing but a fall back to the full search.
	f := filepath.Join(e.dir, "new-pw")
	e.writeFile(f, "new password\n")
	e.must(append(dev, "key", "passwd", "--new-password-file", f)...)
	r := e.must(append(dev, "--password-file", f, "-v", "snapshots")...)
	if !matches(`\(tried 1\)`, r.stdout) {
		t.Errorf("after key passwd: want the new key tried first\n%s", r)
	}
	other := e.freshDevice()
	e.must(append(other, "--password-file", f, "snapshots")...)
	e.must(append(dev, "--password-file", f, "key", "passwd", "--new-password-file", e.writePW("third password"))...)
	r = e.must(append(other, "--password-file", filepath.Join(e.dir, "pw-third password"), "-v", "snapshots")...)
	if !matches(`\(tried 31\)`, r.stdout) {
		t.Errorf("remembered key removed: want the full search\n%s", r)
	}
}

// writePW writes a password file named after the password.
func (e *testEnv) writePW(pw string) string {
	f := filepath.Join(e.dir, "pw-"+pw)
	e.writeFile(f, pw+"\n")
	return f
}

// TestInitKilledBetweenKeyAndConfig kills init (SIGKILL) right after it
// wrote its key file, before the config. Every other command must then
// say that initialisation was interrupted (exit 10); init with another
// password must refuse (exit 12) and remove nothing; init with the same
// password must finish the repository, which then backs up and restores.
func TestInitKilledBetweenKeyAndConfig(t *testing.T) {
	e := newTestEnv(t)
	cmd := exec.Command(cairnBin, "init")
	cmd.Env = append(slices.Clone(e.env), envTestPauseInit+"=1")
	cmd.Dir = e.dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the pause line (an event, not a sleep); a watchdog ends a
	// hung child so the scan cannot block forever.
	watchdog := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(stderr)
	paused := false
	for !paused && sc.Scan() {
		paused = sc.Text() == testPauseInitLine
	}
	watchdog.Stop()
	if !paused {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("init did not pause between key file and config")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("init was not killed: %v", cmd.ProcessState)
	}
	checkHalfMade(t, e)
}

// TestInitInterruptedRepositoryFinished makes the same half-made
// repository without the test seam: a whole init, then its config
// removed, which leaves what a kill between the two writes leaves.
func TestInitInterruptedRepositoryFinished(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	if err := os.Remove(filepath.Join(e.repo, "config")); err != nil {
		t.Fatal(err)
	}
	checkHalfMade(t, e)
}

// checkHalfMade checks what commands do on a location holding one key
// file and no config, then finishes it with init and uses it.
func checkHalfMade(t *testing.T, e *testEnv) {
	t.Helper()
	keys := e.keyFiles()
	if len(keys) != 1 {
		t.Fatalf("%d key files, want the 1 init wrote", len(keys))
	}
	if _, err := os.Stat(filepath.Join(e.repo, "config")); !os.IsNotExist(err) {
		t.Fatalf("config present: %v", err)
	}
	for _, args := range [][]string{{"snapshots"}, {"backup", e.dir}, {"check"}, {"key", "list"}} {
		r := e.run(args...)
		if r.code != exitNoRepo {
			t.Fatalf("want exit %d\n%s", exitNoRepo, r)
		}
		checkOneErrorLine(t, r, `repository initialisation was interrupted; run cairn init again$`)
	}
	before := listing(t, e.repo)
	r := e.run("--password-file", e.writePW("another password"), "init")
	if r.code != exitWrongPass {
		t.Fatalf("init with another password: want exit %d\n%s", exitWrongPass, r)
	}
	checkOneErrorLine(t, r, `an interrupted init left key files, and none opens with this password`)
	if after := listing(t, e.repo); after != before {
		t.Fatalf("a refused init changed the location:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	r = e.must("init")
	if !matches(`warning: finishing an interrupted initialisation with its key file `+keys[0][:8], r.stderr) {
		t.Errorf("init did not say it finished an interrupted one\n%s", r)
	}
	if got := e.keyFiles(); !slices.Equal(got, keys) {
		t.Errorf("key files %v, want the one init wrote first, %v", got, keys)
	}
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	content := strings.Repeat("nothing lost, nobody locked out\n", 5000)
	e.writeFile(filepath.Join(src, "sub", "file"), content)
	e.must("backup", src)
	e.must("check", "--read-data")
	dst := filepath.Join(e.dir, "restored")
	e.must("restore", "latest", "--target", dst)
	got, err := os.ReadFile(filepath.Join(dst, src, "sub", "file"))
	if err != nil || string(got) != content {
		t.Fatalf("restored file differs (%v)", err)
	}
	// A repository: init refuses it now.
	if r := e.run("init"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("init over a repository\n%s", r)
	}
}

// TestKeyFileHidesHostAndUser: a new key file's bytes name neither the
// host nor the user that made it, while "key list" shows both for the key
// in use, "-" for other new key files, and both for a format 1 key file
// (the fixture's, written by an earlier cairn).
func TestKeyFileHidesHostAndUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, for a UTS namespace with a distinctive host name (CI runs as root)")
	}
	e := newTestEnv(t)
	const host = "cairn-privacy-test-host"
	user := username()
	// init runs in its own UTS namespace, under a host name that cannot
	// appear in base64 by chance.
	cmd := exec.Command("unshare", "--uts", "sh", "-c", `hostname "$0" && exec "$@"`, host, cairnBin, "init")
	cmd.Env = e.env
	cmd.Dir = e.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init in a UTS namespace: %v\n%s", err, out)
	}
	keys := e.keyFiles()
	if len(keys) != 1 {
		t.Fatalf("%d key files", len(keys))
	}
	data, err := os.ReadFile(filepath.Join(e.repo, "keys", keys[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{host, user, "hostname", "username", "created"} {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("key file holds %q in plain text:\n%s", s, data)
		}
	}
	var members map[string]any
	if err := json.Unmarshal(data, &members); err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 || members["version"] != float64(2) {
		t.Errorf("key file members %v, want version 2, kdf, data", members)
	}
	// key list: the current key shows who made it, from its sealed part.
	e.must("key", "add", "--new-password-file", e.writePW("second"))
	r := e.must("key", "list")
	if !matches(`(?m)^\*`+keys[0][:8]+` +`+regexp.QuoteMeta(user)+` +`+host+` +\d{4}-`, r.stdout) {
		t.Errorf("key list does not show the current key's user and host\n%s", r)
	}
	if !matches(`(?m)^ [0-9a-f]{8} +- +- +- +argon2id$`, r.stdout) {
		t.Errorf("key list does not show the other key as sealed\n%s", r)
	}
	// The fixture's format 1 key file lists with its plain-text names,
	// also when another key opened the repository.
	fx := newTestEnv(t)
	fx.repo = filepath.Join(fx.dir, "fixture-copy")
	copyFiles(t, filepath.Join("testdata", "repo-v1"), fx.repo)
	fx.env = append(fx.env, envRepository+"="+fx.repo)
	fx.writeFile(fx.pwFile, fixturePassword+"\n")
	fx.must("key", "add", "--new-password-file", fx.writePW("second"))
	r = fx.must("--password-file", filepath.Join(fx.dir, "pw-second"), "key", "list")
	if !matches(`(?m)^ [0-9a-f]{8} +root +vm +2026-11-23 `, r.stdout) {
		t.Errorf("key list does not show the format 1 key's names\n%s", r)
	}
}

// TestInitInterruptedRemote: over sftp and the peer protocol too, a
// location that an interrupted init left is reported as such, and init
// finishes it.
func TestInitInterruptedRemote(t *testing.T) {
	check := func(t *testing.T, e *testEnv, loc, dir string) {
		e.must("-r", loc, "init")
		if err := os.Remove(filepath.Join(dir, "config")); err != nil {
			t.Fatal(err)
		}
		r := e.run("-r", loc, "snapshots")
		if r.code != exitNoRepo {
			t.Fatalf("want exit %d\n%s", exitNoRepo, r)
		}
		checkOneErrorLine(t, r, `repository initialisation was interrupted; run cairn init again$`)
		if r := e.must("-r", loc, "init"); !strings.Contains(r.stderr, "finishing an interrupted initialisation") {
			t.Errorf("init did not finish the interrupted one\n%s", r)
		}
		e.must("-r", loc, "snapshots")
		// A location that does not exist is still just that.
		r = e.run("-r", strings.TrimSuffix(loc, "/repo")+"/nothing-here", "snapshots")
		if r.code != exitNoRepo || strings.Contains(r.stderr, "interrupted") {
			t.Fatalf("missing repository\n%s", r)
		}
	}
	t.Run("sftp", func(t *testing.T) {
		e := newTestEnv(t)
		s := sftpServer(t, e)
		dir := filepath.Join(e.dir, "on-server", "repo")
		check(t, e, s.Location(dir), dir)
	})
	t.Run("peer", func(t *testing.T) {
		e := newTestEnv(t)
		owner := peerID(t, e, "")
		root := filepath.Join(e.dir, "friend-root")
		friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), root, "--allow", owner)
		check(t, e, friend.loc("repo"), friend.folder(owner, "repo"))
	})
}
