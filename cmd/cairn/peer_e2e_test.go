package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of peers: real "cairn peer serve" processes on
// 127.0.0.1 and real clients, all the built binary. Each simulated device
// has its own config dir (its identity); the owner's is the default one
// under the test's HOME.

// peerServer is a running "cairn peer serve".
type peerServer struct {
	t    *testing.T
	cmd  *exec.Cmd
	id   string // the server's peer ID
	addr string // host:port it listens on
	root string
	log  *lockedBuffer // its stderr
	done chan struct{} // closed when the process has exited
	once sync.Once
}

// startPeerServer runs "cairn --config-dir cfgDir peer serve" on a free
// port of 127.0.0.1 with the folder root and the extra args (--allow,
// --quota), and stops it when the test ends.
func startPeerServer(t *testing.T, e *testEnv, cfgDir, root string, args ...string) *peerServer {
	t.Helper()
	return startPeerServerOn(t, e, "127.0.0.1:0", cfgDir, root, args...)
}

// startPeerServerOn is startPeerServer listening on addr.
func startPeerServerOn(t *testing.T, e *testEnv, addr, cfgDir, root string, args ...string) *peerServer {
	t.Helper()
	full := append([]string{"--config-dir", cfgDir, "peer", "serve", "--listen", addr, "--root", root}, args...)
	cmd := exec.Command(cairnBin, full...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &peerServer{t: t, cmd: cmd, root: root, log: &lockedBuffer{}, done: make(chan struct{})}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		n := 0
		for sc.Scan() {
			if n == 0 {
				first <- sc.Text()
			}
			n++
			s.log.WriteString(sc.Text() + "\n")
		}
		if n == 0 {
			close(first)
		}
		_ = cmd.Wait() // the exit status is checked in stop
		close(s.done)
	}()
	t.Cleanup(s.stop)
	select {
	case line, ok := <-first:
		m := regexp.MustCompile(`^serving peer (\S+) on (\S+)$`).FindStringSubmatch(line)
		if !ok || m == nil {
			<-s.done
			t.Fatalf("peer serve did not start: first line %q\n%s", line, s.log.String())
		}
		s.id, s.addr = m[1], m[2]
	case <-time.After(20 * time.Second):
		t.Fatal("peer serve did not say where it listens within 20 s")
	}
	return s
}

// loc is the location of the repository NAME of the connecting device.
func (s *peerServer) loc(name string) string {
	return fmt.Sprintf("peer://%s@%s/%s", s.id, s.addr, name)
}

// folder is where the server keeps the repository NAME of the device
// with peer ID client.
func (s *peerServer) folder(client, name string) string {
	return filepath.Join(s.root, client, name)
}

// stop ends the server with SIGTERM, which must make it exit 0.
// logged waits, up to ten seconds, for the server's log to hold want:
// the server writes a line once its reply is on the way, so a client can
// finish before the line is there.
func (s *peerServer) logged(want string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(s.log.String(), want) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func (s *peerServer) stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.t.Errorf("peer serve did not stop within 15 s of SIGTERM\n%s", s.log.String())
			return
		}
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			s.t.Errorf("peer serve exited %d after SIGTERM\n%s", code, s.log.String())
		}
		if s.t.Failed() {
			s.t.Logf("peer server log:\n%s", s.log.String())
		}
	})
}

// lockedBuffer collects a child's output from the goroutine reading it.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// peerID returns the peer ID of the device whose config dir is cfgDir
// ("" for the test's default device).
func peerID(t *testing.T, e *testEnv, cfgDir string) string {
	t.Helper()
	args := []string{"peer", "id"}
	if cfgDir != "" {
		args = append([]string{"--config-dir", cfgDir}, args...)
	}
	id := strings.TrimSpace(e.must(args...).stdout)
	if !matches(`^[A-Z2-7-]{20,}$`, id) {
		t.Fatalf("peer id printed %q", id)
	}
	return id
}

// writeRandom writes a file of n random bytes from a seeded generator.
func writeRandom(t *testing.T, name string, n int, seed uint64) {
	t.Helper()
	rng := mathrand.New(mathrand.NewPCG(seed, seed*7+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// repoFiles lists the files of a repository kept in a local folder (as
// the source is, and as the friend's server and sshd keep theirs): path
// relative to dir -> size, without locks, meta records and temporary
// files.
func repoFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p == dir && errors.Is(err, fs.ErrNotExist) {
			return nil // nothing arrived yet
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel == "locks" || rel == "meta" {
				return filepath.SkipDir // meta: the receipts mirror keeps after copying
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[rel] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// repoFilesMeta is repoFiles with the meta records (meta/NAME), which a
// mirror copies like any file: what a mirror's summary counts.
func repoFilesMeta(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := repoFiles(t, dir)
	entries, err := os.ReadDir(filepath.Join(dir, "meta"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, d := range entries {
		if fi, err := d.Info(); err == nil && !strings.HasPrefix(d.Name(), ".tmp-") {
			out["meta/"+d.Name()] = fi.Size()
		}
	}
	return out
}

// heldBoth counts the files of a that b holds too.
func heldBoth(a, b map[string]int64) int {
	n := 0
	for rel := range a {
		if _, ok := b[rel]; ok {
			n++
		}
	}
	return n
}

func totalSize(files map[string]int64) int64 {
	var n int64
	for _, s := range files {
		n += s
	}
	return n
}

// tempFiles lists the temporary files of unfinished uploads under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitNoTempFiles waits until the server has removed the temporary files
// of uploads a client broke off.
func waitNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tmp := tempFiles(t, dir)
		if len(tmp) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporary files stay on the server: %q", tmp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkHashNames checks that every file of a repository folder other than
// the config holds what its name says: nothing half-written is visible.
func checkHashNames(t *testing.T, dir string) {
	t.Helper()
	for rel := range repoFiles(t, dir) {
		if rel == "config" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != filepath.Base(rel) {
			t.Errorf("%s: content does not hash to its name (%d bytes)", rel, len(b))
		}
	}
}

// mirrorSummaries runs "cairn --json mirror ARGS", which must exit 0, and
// returns its summary lines by destination.
func mirrorSummaries(t *testing.T, e *testEnv, args ...string) map[string]map[string]any {
	t.Helper()
	r := e.must(append([]string{"--json", "mirror"}, args...)...)
	out := map[string]map[string]any{}
	for _, m := range jsonLines(t, r.stdout) {
		if m["message_type"] == "summary" {
			out[m["destination"].(string)] = m
		}
	}
	return out
}

// mirrorSummary runs "cairn --json mirror ARGS DEST" and returns DEST's
// summary.
func mirrorSummary(t *testing.T, e *testEnv, dest string, args ...string) map[string]any {
	t.Helper()
	sums := mirrorSummaries(t, e, append(args, dest)...)
	sum, ok := sums[dest]
	if !ok || len(sums) != 1 {
		t.Fatalf("mirror --json to %s gave summaries %v", dest, sums)
	}
	return sum
}

// num reads a number field of a JSON message, failing if it is missing.
func num(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("JSON message lacks number %q: %v", key, m)
	}
	return int64(v)
}

// secrets is what must never reach a friend's disk or a server's log:
// file contents and names, paths, the password and the host name.
type secrets map[string][]byte

// plainSecrets adds a file with a distinctive name and content to src
// (made by makeTree) and returns what of the backup must stay secret.
func plainSecrets(t *testing.T, e *testEnv, src, host string) secrets {
	t.Helper()
	name := "zebra-unicorn-tax-return-2025.txt"
	text := "account 4716-2215-9034, sort code 12-34-56: the e2e marker\n"
	e.writeFile(filepath.Join(src, name), text)
	random, err := os.ReadFile(filepath.Join(src, "sub/deeper/random.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return secrets{
		"file content":          []byte(text),
		"file content (random)": random[1<<20 : 1<<20+64],
		"file name":             []byte(name),
		"file name (unicode)":   []byte("name with spaces ü ñ 日本"),
		"file name (random)":    []byte("random.bin"),
		"source path":           []byte(src),
		"password":              []byte(testPassword),
		"host name":             []byte(host),
	}
}

// checkNoPlaintext fails if any file name or content under root holds one
// of the secrets.
func checkNoPlaintext(t *testing.T, root string, s secrets) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for what, v := range s {
			if strings.Contains(p, string(v)) {
				t.Errorf("%s appears in the name %s", what, p)
			}
		}
		if !d.Type().IsRegular() {
			return nil
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for what, v := range s {
			if bytes.Contains(b, v) {
				t.Errorf("%s appears in %s", what, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files under %s: nothing to search", files, root)
	}
}

// flipFiles inverts every byte of the repository's files other than the
// config, keeping their sizes: a command that reads any of them fails.
// Calling it again undoes it.
func flipFiles(t *testing.T, dir string) {
	t.Helper()
	for rel := range repoFiles(t, dir) {
		if rel == "config" {
			continue
		}
		p := filepath.Join(dir, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] ^= 0xff
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkMirrorSummary checks a mirror's JSON summary against the files
// the destination was expected to receive and to have already.
func checkMirrorSummary(t *testing.T, sum map[string]any, dest string, copied, skipped map[string]int64) {
	t.Helper()
	for _, k := range []string{"files_copied", "bytes_copied", "files_skipped", "bytes_skipped", "files_removed",
		"bytes_removed", "files_kept", "files_to_copy", "bytes_to_copy"} {
		num(t, sum, k)
	}
	if sum["destination"] != dest || sum["dry_run"] != false {
		t.Errorf("summary names destination %v, dry_run %v; want %s, false", sum["destination"], sum["dry_run"], dest)
	}
	want := map[string]int64{
		"files_copied": int64(len(copied)), "bytes_copied": totalSize(copied),
		"files_to_copy": int64(len(copied)), "bytes_to_copy": totalSize(copied),
		"files_skipped": int64(len(skipped)), "bytes_skipped": totalSize(skipped),
		"files_removed": 0, "bytes_removed": 0, "files_kept": 0,
	}
	for k, v := range want {
		if got := num(t, sum, k); got != v {
			t.Errorf("summary %s = %d, want %d: %v", k, got, v, sum)
		}
	}
}

// TestPeerMirrorRestore mirrors a repository to a friend's server,
// restores from it exactly, checks it, and checks that the friend's disk
// and log hold no plaintext; then that a mirror with nothing new reads no
// file, and that --dry-run changes nothing.
func TestPeerMirrorRestore(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 41)
	const host = "alice-laptop-e2e-7f3c"
	sec := plainSecrets(t, e, src, host)
	e.init()
	e.backupJSON(0, "--host", host, src)

	owner := peerID(t, e, "")
	friendCfg := filepath.Join(e.dir, "friend-config")
	root := filepath.Join(e.dir, "friend-root")
	friend := startPeerServer(t, e, friendCfg, root, "--allow", owner)
	loc := friend.loc("laptop")
	onFriend := friend.folder(owner, "laptop")

	want := repoFiles(t, e.repo)
	sum := mirrorSummary(t, e, loc)
	checkMirrorSummary(t, sum, loc, want, nil)
	if got := repoFiles(t, onFriend); !sameSizes(got, want) {
		t.Fatalf("the friend holds %v\nthe source %v", got, want)
	}
	checkHashNames(t, onFriend)

	// Restore straight from the friend, as after losing the disk.
	target := filepath.Join(e.dir, "restored")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	if r := e.must("-r", loc, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check on the peer\n%s", r)
	}
	if r := e.must("-r", loc, "snapshots", "--json"); !strings.Contains(r.stdout, host) {
		t.Fatalf("snapshots on the peer do not name the host\n%s", r)
	}

	// Nothing new: everything is skipped, and no file is read (every
	// source file but the config is garbled, at its size, meanwhile;
	// the receipt the first mirror kept is there too).
	held := repoFilesMeta(t, e.repo)
	flipFiles(t, e.repo)
	sum = mirrorSummary(t, e, loc)
	flipFiles(t, e.repo)
	checkMirrorSummary(t, sum, loc, nil, held)

	// --dry-run reports and changes nothing, also for a destination with
	// no repository yet.
	writeRandom(t, filepath.Join(src, "new.bin"), 200_000, 5)
	e.backupJSON(0, "--host", host, src)
	before := withoutLocks(listing(t, root))
	sum = mirrorSummary(t, e, loc, "--dry-run")
	if sum["dry_run"] != true || num(t, sum, "files_copied") != 0 || num(t, sum, "files_to_copy") < 3 {
		t.Errorf("dry run summary: %v", sum)
	}
	toCopy := num(t, sum, "files_to_copy")
	other := friend.loc("other")
	r := e.must("mirror", "--dry-run", other)
	all := repoFilesMeta(t, e.repo)
	if !strings.Contains(r.stdout, "holds no repository yet") || !strings.Contains(r.stdout, fmt.Sprintf("would copy %d files", len(all))) {
		t.Errorf("dry run to an empty destination\n%s", r)
	}
	sum = mirrorSummary(t, e, other, "--dry-run")
	if sum["dry_run"] != true || num(t, sum, "files_to_copy") != int64(len(all)) || num(t, sum, "bytes_to_copy") != totalSize(all) ||
		num(t, sum, "files_copied") != 0 || num(t, sum, "files_skipped") != 0 {
		t.Errorf("dry run to an empty destination: %v; the source has %d files, %d bytes", sum, len(all), totalSize(all))
	}
	if after := withoutLocks(listing(t, root)); after != before {
		t.Fatalf("dry run changed the friend's folder\nbefore:\n%s\nafter:\n%s", before, after)
	}
	already := heldBoth(repoFilesMeta(t, e.repo), repoFilesMeta(t, onFriend))
	r = e.must("mirror", loc)
	if !matches(fmt.Sprintf(`: copied %d files \(.*\), %d already there`, toCopy, already), r.stdout) {
		t.Errorf("text summary of the mirror after the dry run\n%s", r)
	}
	if got := repoFiles(t, onFriend); !sameSizes(got, repoFiles(t, e.repo)) {
		t.Fatal("the friend's copy differs from the source after the last mirror")
	}

	// After losing the disk: the friend's copy mirrored back to a new one.
	home := filepath.Join(e.dir, "new-disk", "repo")
	e.must("-r", loc, "mirror", home)
	if got := repoFiles(t, home); !sameSizes(got, repoFiles(t, e.repo)) {
		t.Fatal("the copy brought back from the friend differs from the source")
	}
	if r := e.must("-r", home, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check of the copy brought back\n%s", r)
	}

	checkNoPlaintext(t, root, sec)
	for what, v := range sec {
		if strings.Contains(friend.log.String(), string(v)) {
			t.Errorf("%s appears in the server's log", what)
		}
	}
}

func sameSizes(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPeerRefusals checks that a server refuses a device it does not
// know, that a client refuses a server that is not the one it pinned, and
// that both say so in one clear line.
func TestPeerRefusals(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "f"), 10_000, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "root"), "--allow", owner)
	strangerCfg := filepath.Join(e.dir, "stranger-config")
	stranger := peerID(t, e, strangerCfg)
	loc := friend.loc("laptop")

	// A stranger, as a client: refused by the server.
	for _, args := range [][]string{{"-r", e.repo, "mirror", loc}, {"-r", loc, "snapshots"}} {
		r := e.run(append([]string{"--config-dir", strangerCfg}, args...)...)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, `refused this device.*`+regexp.QuoteMeta(stranger)+`.*--allow`)
	}
	if !strings.Contains(friend.log.String(), "is not in the allow list") {
		t.Errorf("the server's log does not say why it refused\n%s", friend.log.String())
	}
	if _, err := os.Stat(filepath.Join(friend.root, stranger)); err == nil {
		t.Error("the server made a folder for the stranger")
	}

	// The right server under another pinned ID: refused by the client.
	wrong := strings.Replace(loc, friend.id, stranger, 1)
	r := e.run("mirror", wrong)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `does not match.*presented peer ID `+regexp.QuoteMeta(friend.id)+`, the location pins `+regexp.QuoteMeta(stranger))
	if _, err := os.Stat(friend.folder(owner, "laptop")); err == nil {
		t.Error("the client sent files to a server whose ID it did not pin")
	}

	// The owner is served all along.
	e.must("mirror", loc)
	e.must("-r", loc, "check")
}

// TestPeerGarbage sends random bytes, half TLS handshakes and a stalled
// connection to a server while a good client mirrors through it: the good
// client succeeds, and new connections are served while the attackers
// still hold theirs.
func TestPeerGarbage(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 3<<20, 1)
	writeRandom(t, filepath.Join(data, "b"), 1<<20, 2)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "root"), "--allow", owner)
	loc := friend.loc("laptop")

	// The good client: slowed down so the attack happens while it runs.
	started := time.Now()
	mirror := exec.Command(cairnBin, "mirror", "--limit-upload", "1536", loc)
	mirror.Env, mirror.Dir = e.env, e.dir
	var mout bytes.Buffer
	mirror.Stdout, mirror.Stderr = &mout, &mout
	if err := mirror.Start(); err != nil {
		t.Fatal(err)
	}
	mirrorDone := make(chan error, 1)
	go func() { mirrorDone <- mirror.Wait() }()
	waitFor(t, 20*time.Second, "the mirror to start copying", func() bool {
		_, err := os.Stat(friend.folder(owner, "laptop"))
		return err == nil
	})

	// Connections held open until the test ends: half TLS handshakes
	// (one stopped after the ClientHello, one after the server's first
	// flight) and a connection that says nothing.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			_ = c.Close() // ends the attack
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", friend.addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	hello := dial()
	if _, err := hello.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}); err != nil {
		t.Fatal(err)
	}
	held = append(held, hello, dial())
	half := &stallWrites{Conn: dial(), after: 1, stall: make(chan struct{})}
	held = append(held, half)
	go func() {
		tc := tls.Client(half, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"cairn-peer/1"}, MinVersion: tls.VersionTLS13})
		_ = tc.Handshake() // stalls in its second write; fails when the conn is closed
	}()
	defer close(half.stall)

	// Random bytes, over and over, each connection closed after.
	for i := range 30 {
		c := dial()
		b := make([]byte, 1+i*997%(64<<10))
		_, _ = rand.Read(b)
		_, _ = c.Write(b) // the server may hang up first
		_ = c.Close()
	}
	// A TLS record header announcing more than TLS allows.
	c := dial()
	_, _ = c.Write([]byte{0x16, 0x03, 0x03, 0xff, 0xff})
	_ = c.Close()

	select {
	case <-mirrorDone:
		t.Fatalf("the good client finished before the attack did: it proves nothing\n%s", mout.String())
	default:
	}

	// New connections are served while the attackers hold theirs: a
	// second repository of the same owner.
	second := friend.loc("second")
	e.must("mirror", second)

	select {
	case err := <-mirrorDone:
		if err != nil {
			t.Fatalf("the good client's mirror failed: %v\n%s", err, mout.String())
		}
	case <-time.After(2 * time.Minute):
		_ = mirror.Process.Kill()
		t.Fatalf("the good client's mirror did not finish\n%s", mout.String())
	}
	// 4 MiB at 1.5 MiB/s: --limit-upload held the good client back.
	if d := time.Since(started); d < 2*time.Second {
		t.Errorf("4 MiB mirrored in %v despite --limit-upload 1536", d)
	}
	half.mu.Lock()
	stalled := half.n > 1
	half.mu.Unlock()
	if !stalled {
		t.Error("the half handshake never got the server's answer to its ClientHello")
	}
	for _, l := range []string{loc, second} {
		if r := e.must("-r", l, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
			t.Fatalf("check\n%s", r)
		}
	}
	if !strings.Contains(friend.log.String(), "handshake") {
		t.Errorf("the server logged nothing about the garbage\n%s", friend.log.String())
	}
}

// stallWrites passes the first writes through and blocks the later ones
// until stall is closed: a TLS client that stops half way.
type stallWrites struct {
	net.Conn
	after int
	stall chan struct{}

	mu sync.Mutex // guards n
	n  int
}

func (s *stallWrites) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	if n > s.after {
		<-s.stall
		return 0, net.ErrClosed
	}
	return s.Conn.Write(p)
}

// waitFor polls cond every 20 ms until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeerServerLate starts a mirror before the friend's server is up, as
// when cron runs while the friend's machine reboots: the client retries
// the connection, says so, and succeeds once the server is there.
func TestPeerServerLate(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 100_000, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	cfg := filepath.Join(e.dir, "friend-config")
	friendID := peerID(t, e, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // the port is free again for the server, started late
	loc := fmt.Sprintf("peer://%s@%s/laptop", friendID, addr)

	mirror := exec.Command(cairnBin, "mirror", loc)
	mirror.Env, mirror.Dir = e.env, e.dir
	var stdout, stderr bytes.Buffer
	mirror.Stdout, mirror.Stderr = &stdout, &stderr
	if err := mirror.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	friend := startPeerServerOn(t, e, addr, cfg, filepath.Join(e.dir, "root"), "--allow", owner)
	if err := mirror.Wait(); err != nil {
		t.Fatalf("mirror: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !matches(`(?m)^cairn: warning: connect .*connection refused; retrying in `, stderr.String()) {
		t.Errorf("the mirror did not say it retried\n%s", stderr.String())
	}
	e.must("-r", friend.loc("laptop"), "check", "--read-data")
}

// TestPeerPruneModes mirrors to an append-only and a read-write peer,
// then forgets and prunes the owner's oldest snapshot and mirrors with
// --prune: the append-only peer keeps every file, and the old snapshot
// still restores exactly from it; the read-write peer drops the files.
func TestPeerPruneModes(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "old-only.bin"), 1<<20, 1)
	writeRandom(t, filepath.Join(data, "kept.bin"), 300_000, 2)
	e.writeFile(filepath.Join(data, "notes.txt"), "version one\n")
	e.init()
	e.must("backup", data)
	v1 := filepath.Join(e.dir, "data-v1")
	if out, err := exec.Command("cp", "-a", data, v1).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(data, "old-only.bin")); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(data, "notes.txt"), "version two\n")
	e.must("backup", data)
	snaps := e.snapshotsJSON()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots", len(snaps))
	}
	oldID := snaps[0]["short_id"].(string)

	owner := peerID(t, e, "")
	ao := startPeerServer(t, e, filepath.Join(e.dir, "ao-config"), filepath.Join(e.dir, "ao-root"), "--allow", owner)
	rw := startPeerServer(t, e, filepath.Join(e.dir, "rw-config"), filepath.Join(e.dir, "rw-root"), "--allow", owner+":read-write")
	aoLoc, rwLoc := ao.loc("laptop"), rw.loc("laptop")
	e.must("mirror", aoLoc, rwLoc)
	before := repoFiles(t, e.repo)

	e.must("forget", oldID)
	e.must("prune", "--max-unused", "0%")
	after := repoFiles(t, e.repo)
	gone := 0
	for rel := range before {
		if _, ok := after[rel]; !ok {
			gone++
		}
	}
	if gone == 0 {
		t.Fatal("prune removed nothing: the test proves nothing")
	}

	r := e.must("mirror", "--prune", aoLoc, rwLoc)
	if !matches(regexp.QuoteMeta(aoLoc)+`: kept \d+ files .*append-only`, r.stdout) ||
		!matches(regexp.QuoteMeta(aoLoc)+`: removed 0 files`, r.stdout) ||
		!matches(regexp.QuoteMeta(rwLoc)+`: removed [1-9]\d* files`, r.stdout) ||
		strings.Contains(r.stdout, rwLoc+": kept") {
		t.Fatalf("mirror --prune summary\n%s", r)
	}
	sums := mirrorSummaries(t, e, "--prune", aoLoc, rwLoc)
	if s := sums[aoLoc]; num(t, s, "files_kept") != int64(gone) || num(t, s, "files_removed") != 0 {
		t.Errorf("append-only peer, second --prune: %v (want %d kept)", s, gone)
	}
	if s := sums[rwLoc]; num(t, s, "files_kept") != 0 || num(t, s, "files_removed") != 0 || num(t, s, "files_copied") != 0 {
		t.Errorf("read-write peer, second --prune: %v", s)
	}

	aoFiles := repoFiles(t, ao.folder(owner, "laptop"))
	for rel, size := range before {
		if aoFiles[rel] != size {
			t.Errorf("the append-only peer lost %s", rel)
		}
	}
	if got := repoFiles(t, rw.folder(owner, "laptop")); !sameSizes(got, after) {
		t.Errorf("the read-write peer holds %d files, the source %d", len(got), len(after))
	}

	// The forgotten snapshot restores from the append-only peer only.
	old := filepath.Join(e.dir, "restored-old")
	r = e.must("-r", aoLoc, "restore", oldID, "--target", old)
	compareTrees(t, v1, filepath.Join(old, data), false)
	if !strings.Contains(r.stderr, "was forgotten") {
		t.Errorf("restore of a forgotten snapshot does not say so\n%s", r)
	}
	if r := e.run("-r", rwLoc, "restore", oldID, "--target", filepath.Join(e.dir, "rw-old")); r.code != 1 {
		t.Errorf("the old snapshot restored from the read-write peer that pruned it\n%s", r)
	}
	for i, l := range []string{aoLoc, rwLoc} {
		latest := filepath.Join(e.dir, fmt.Sprintf("latest-%d", i))
		e.must("-r", l, "restore", "latest", "--target", latest)
		compareTrees(t, data, filepath.Join(latest, data), false)
		if r := e.must("-r", l, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
			t.Fatalf("check\n%s", r)
		}
	}
}

// TestPeerQuota fills a peer's quota: the mirror fails with one line
// about the quota, and the friend's folder holds only whole files and no
// config (so no repository a reader could take for a complete one). With
// a larger quota the same mirror then completes.
func TestPeerQuota(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 3<<20, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	cfg, root := filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "root")
	friend := startPeerServer(t, e, cfg, root, "--allow", owner, "--quota", "1M")
	loc := friend.loc("laptop")

	r := e.run("mirror", loc)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `quota exceeded.*over its quota of 1\.0 MiB`)
	dir := friend.folder(owner, "laptop")
	waitNoTempFiles(t, root)
	checkHashNames(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "config")); err == nil {
		t.Fatal("the config reached the friend although packs did not")
	}
	if r := e.run("-r", loc, "snapshots"); r.code != 10 {
		t.Fatalf("want exit 10 (no repository) from the half-filled peer\n%s", r)
	}
	friend.stop()

	friend = startPeerServer(t, e, cfg, root, "--allow", owner, "--quota", "20M")
	loc = friend.loc("laptop")
	e.must("mirror", loc)
	target := filepath.Join(e.dir, "restored")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, data, filepath.Join(target, data), false)
}

// killResumeFixture backs up several files of different sizes, one
// backup each, so the repository holds many packs, and returns the
// backed-up folder.
func killResumeFixture(t *testing.T, e *testEnv) string {
	t.Helper()
	data := filepath.Join(e.dir, "data")
	e.init()
	for i, size := range []int{3 << 20, 512 << 10, 2 << 20, 1 << 20, 4 << 20, 768 << 10} {
		writeRandom(t, filepath.Join(data, fmt.Sprintf("f%d.bin", i)), size, uint64(i+100))
		e.must("backup", data)
	}
	return data
}

// killMirrorHalfway starts "cairn mirror DEST", slowed down, and kills it
// with SIGKILL once the destination's pack folder packDir holds a whole
// pack but not all of them.
func killMirrorHalfway(t *testing.T, e *testEnv, dest, packDir string) {
	t.Helper()
	packs := len(repoFiles(t, filepath.Join(e.repo, "data")))
	countPacks := func() int { return len(repoFiles(t, packDir)) }
	cmd := exec.Command(cairnBin, "mirror", "--limit-upload", "2048", dest)
	cmd.Env, cmd.Dir = e.env, e.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // judged below by how it ended
		close(exited)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-exited:
			t.Fatalf("the mirror finished before it could be killed\n%s", out.String())
		default:
		}
		if countPacks() >= 1 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no pack reached the destination within a minute\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("the mirror was not killed: %v\n%s", cmd.ProcessState, out.String())
	}
	if n := countPacks(); n >= packs {
		t.Fatalf("all %d packs arrived before the kill", packs)
	}
	t.Logf("killed the mirror with %d of %d packs at the destination", countPacks(), packs)
}

// checkResumed runs the mirror again after a kill: it must copy only what
// is missing, and the result must restore exactly and check clean.
func checkResumed(t *testing.T, e *testEnv, dest, data string) {
	t.Helper()
	src := repoFiles(t, e.repo)
	sum := mirrorSummary(t, e, dest)
	copied, skipped := num(t, sum, "files_copied"), num(t, sum, "files_skipped")
	if skipped == 0 || copied == 0 || copied+skipped != int64(len(src)) ||
		num(t, sum, "bytes_copied")+num(t, sum, "bytes_skipped") != totalSize(src) {
		t.Fatalf("resumed mirror: %v; the source has %d files (%d bytes)", sum, len(src), totalSize(src))
	}
	target := filepath.Join(e.dir, "restored")
	e.must("-r", dest, "restore", "latest", "--target", target)
	compareTrees(t, data, filepath.Join(target, data), false)
	if r := e.must("-r", dest, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check\n%s", r)
	}
}

// TestPeerKillResume kills a mirror to a peer half way with SIGKILL,
// then runs it again: only the rest is copied, and the result restores.
func TestPeerKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a mirror slowed down to be killed")
	}
	e := newTestEnv(t)
	t.Parallel()
	data := killResumeFixture(t, e)
	owner := peerID(t, e, "")
	root := filepath.Join(e.dir, "root")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), root, "--allow", owner)
	loc := friend.loc("laptop")
	killMirrorHalfway(t, e, loc, filepath.Join(friend.folder(owner, "laptop"), "data"))
	// The server drops the upload the client broke off.
	waitNoTempFiles(t, root)
	checkHashNames(t, friend.folder(owner, "laptop"))
	checkResumed(t, e, loc, data)
}

// TestPeerDiverged writes to a peer's copy directly, so it holds a
// snapshot the source does not, and checks that a mirror then refuses,
// saying what each side holds, and copies nothing.
func TestPeerDiverged(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 100_000, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	root := filepath.Join(e.dir, "root")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), root, "--allow", owner)
	loc := friend.loc("laptop")
	e.must("mirror", loc)

	e.writeFile(filepath.Join(data, "b"), "written straight to the friend\n")
	e.must("-r", loc, "backup", data)
	e.writeFile(filepath.Join(data, "c"), "written to the source\n")
	e.must("backup", data)
	before := withoutLocks(listing(t, root))
	r := e.run("mirror", loc)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `diverged.*it holds 1 log entries the source does not \(newest: sequence 3 from device `+
		regexp.QuoteMeta(owner[:7])+`.*the source holds 3 entries up to sequence 3`)
	if after := withoutLocks(listing(t, root)); after != before {
		t.Fatal("the refused mirror changed the friend's folder")
	}
}

// TestPeerDisasterRecovery loses the owner's disk (repository, config dir
// and cache) after a mirror to a friend. A new machine that knows the
// password restores straight from the friend with a saved copy of the old
// identity; without it, its new identity is refused until the friend
// moves the folder to the new peer ID and allows it. Then it brings the
// repository home and goes on backing up and mirroring.
func TestPeerDisasterRecovery(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 61)
	e.init()
	e.must("backup", src)
	owner := peerID(t, e, "")
	cfg, root := filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "friend-root")
	friend := startPeerServer(t, e, cfg, root, "--allow", owner)
	e.must("mirror", friend.loc("laptop"))
	identity, err := os.ReadFile(filepath.Join(e.dir, "home", ".config", "cairn", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	for _, lost := range []string{e.repo, filepath.Join(e.dir, "home")} {
		if err := os.RemoveAll(lost); err != nil {
			t.Fatal(err)
		}
	}

	n := newTestEnv(t) // the new machine: its own home, the same password
	saved := filepath.Join(n.dir, "saved-config")
	if err := os.MkdirAll(saved, 0o700); err != nil {
		t.Fatal(err)
	}
	n.writeFile(filepath.Join(saved, "identity"), string(identity))
	if err := os.Chmod(filepath.Join(saved, "identity"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(n.dir, "restored-with-saved-identity")
	n.must("--config-dir", saved, "-r", friend.loc("laptop"), "restore", "latest", "--target", first)
	compareTrees(t, src, filepath.Join(first, src), xattrs)

	fresh := peerID(t, n, "")
	r := n.run("-r", friend.loc("laptop"), "snapshots")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `refused this device.*`+regexp.QuoteMeta(fresh))
	friend.stop()
	if err := os.Rename(filepath.Join(root, owner), filepath.Join(root, fresh)); err != nil {
		t.Fatal(err)
	}
	friend = startPeerServer(t, e, cfg, root, "--allow", fresh)
	loc := friend.loc("laptop")
	n.must("-r", loc, "mirror", n.repo)
	second := filepath.Join(n.dir, "restored-at-home")
	n.must("restore", "latest", "--target", second)
	compareTrees(t, src, filepath.Join(second, src), xattrs)

	n.writeFile(filepath.Join(src, "after-the-loss.txt"), "written on the new machine\n")
	n.must("backup", src)
	sum := mirrorSummary(t, n, loc)
	if num(t, sum, "files_copied") == 0 || num(t, sum, "files_skipped") == 0 {
		t.Errorf("mirror from the new machine: %v", sum)
	}
	if r := n.must("-r", loc, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check\n%s", r)
	}
	var snaps []map[string]any
	if err := json.Unmarshal([]byte(n.must("-r", loc, "snapshots", "--json").stdout), &snaps); err != nil || len(snaps) != 2 {
		t.Fatalf("the friend lists %d snapshots (%v), want 2", len(snaps), err)
	}
}
