package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of the peer server under damage, load and hostile
// clients, with the built binary on both sides (helpers in
// peer_e2e_test.go).

// TestPeerDamagedCopyRepaired damages files of a mirror on an
// append-only friend's disk (a pack and an index file cut short, a log
// entry grown): the next mirror puts them again, the server accepts the
// content that matches their names and says so in its log, and the copy
// is whole again.
func TestPeerDamagedCopyRepaired(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300_000, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "root"), "--allow", owner)
	loc := friend.loc("laptop")
	e.must("mirror", loc)
	dir := friend.folder(owner, "laptop")

	files := repoFiles(t, dir)
	var names []string
	for rel := range files {
		names = append(names, rel)
	}
	sort.Strings(names)
	damaged := map[string]bool{}
	for _, prefix := range []string{"data/", "index/", "log/"} {
		for _, rel := range names {
			if strings.HasPrefix(rel, prefix) {
				damaged[rel] = true
				break
			}
		}
	}
	if len(damaged) != 3 {
		t.Fatalf("the copy lacks a pack, an index or a log file: %v", names)
	}
	for rel := range damaged {
		p := filepath.Join(dir, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(rel, "log/") {
			b = append(b, "junk"...)
		} else {
			b = b[:len(b)/2]
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o400); err != nil {
			t.Fatal(err)
		}
	}

	sum := mirrorSummary(t, e, loc)
	if got := num(t, sum, "files_copied"); got != int64(len(damaged)) {
		t.Errorf("the repairing mirror copied %d files, want the %d damaged: %v", got, len(damaged), sum)
	}
	for rel := range damaged {
		want, err := os.ReadFile(filepath.Join(e.repo, rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s on the friend's disk after the repair: %d bytes (%v), want the source's %d", rel, len(got), err, len(want))
		}
		h := rel
		if strings.HasPrefix(rel, "data/") {
			h = "data/" + filepath.Base(rel) // the server names a pack without its subfolder
		}
		if !friend.logged("replaced damaged file " + h) {
			t.Errorf("the server's log does not mention the repair of %s\n%s", rel, friend.log.String())
		}
	}
	checkHashNames(t, dir)
	if r := e.must("-r", loc, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check\n%s", r)
	}
	// The copy is append-only still: nothing intact can be replaced.
	if r := e.must("mirror", "--prune", loc); strings.Contains(r.stderr, "warning") {
		t.Errorf("mirror after the repair\n%s", r)
	}
}

// TestPeerServerLogQuiet: the server's log says what happened in one line
// per event, and nothing more: normal disconnects (a command that ends,
// one killed with SIGKILL mid-upload) log no multiplexer errors, and every
// refusal (quota, append-only) is a line naming the device and the file.
func TestPeerServerLogQuiet(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a mirror slowed down to be killed")
	}
	e := newTestEnv(t)
	t.Parallel()
	data := killResumeFixture(t, e)
	owner := peerID(t, e, "")
	root := filepath.Join(e.dir, "root")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), root, "--allow", owner, "--quota", "40M")
	loc := friend.loc("laptop")
	killMirrorHalfway(t, e, loc, filepath.Join(friend.folder(owner, "laptop"), "data"))
	waitNoTempFiles(t, root)
	e.must("mirror", loc)
	e.must("-r", loc, "snapshots")
	e.must("-r", loc, "check")

	// Refusals: a prune the append-only copy does not allow, then an
	// upload over the quota.
	e.must("forget", "--keep-last", "1", "--prune")
	r := e.must("mirror", "--prune", loc)
	if !matches(`kept [1-9]\d* files`, r.stdout) {
		t.Fatalf("mirror --prune kept nothing: the test proves nothing\n%s", r)
	}
	writeRandom(t, filepath.Join(data, "big.bin"), 30<<20, 99)
	e.must("backup", data)
	if r := e.run("mirror", loc); r.code != 1 || !strings.Contains(r.stderr, "quota exceeded") {
		t.Fatalf("want the mirror refused by the quota\n%s", r)
	}
	friend.stop()

	log := friend.log.String()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.Contains(strings.ToLower(line), "yamux") || strings.Contains(line, "[ERR]") || strings.Contains(line, "[WARN]") {
			t.Errorf("multiplexer noise in the server's log: %s", line)
		}
	}
	short := owner[:7]
	if !matches(`(?m)peer `+short+` .*delete data/[0-9a-f]{64}: refused: .*append-only`, log) {
		t.Errorf("no log line for the append-only refusal\n%s", log)
	}
	if !matches(`(?m)peer `+short+` .*put data/[0-9a-f]{64}: refused: .*quota`, log) {
		t.Errorf("no log line for the quota refusal\n%s", log)
	}
}

// TestPeerServerCounts: "cairn peer serve" counts what a device's folder
// holds at start (a copy seeded by hand included) and again on SIGHUP,
// logging one line each time, and --max-repos refuses one repository
// more with one clear line from the owner's mirror.
func TestPeerServerCounts(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 50_000, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	root := filepath.Join(e.dir, "root")
	// A copy seeded by hand: the repository, copied into the friend's
	// folder before the server first starts.
	seeded := filepath.Join(root, owner, "seeded")
	if err := os.MkdirAll(filepath.Dir(seeded), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", e.repo, seeded).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	files := len(repoFiles(t, seeded))
	cfg := filepath.Join(e.dir, "friend-config")
	friend := startPeerServer(t, e, cfg, root, "--allow", owner, "--max-repos", "2")
	short := owner[:7]
	waitFor(t, 10*time.Second, "the count at start", func() bool {
		return matches(fmt.Sprintf(`peer %s: 1 repositories, %d files`, short, files), friend.log.String())
	})
	e.must("-r", friend.loc("seeded"), "check", "--read-data")

	// Removed by hand while the server runs, and counted on SIGHUP.
	if err := os.RemoveAll(seeded); err != nil {
		t.Fatal(err)
	}
	if err := friend.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the count on SIGHUP", func() bool {
		return matches(fmt.Sprintf(`peer %s: 0 repositories, 0 files`, short), friend.log.String())
	})

	e.must("mirror", friend.loc("one"), friend.loc("two"))
	r := e.run("mirror", friend.loc("three"))
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `quota exceeded: this device keeps 2 repositories on this server, its limit; "three" would be one more`)
}

// TestPeerHungDestination mirrors to three peers in one run: one frozen
// with SIGSTOP while a pack is on its way, one that accepts TCP
// connections and never says a word, and a good one. The run gives up on
// each hung one within a bounded time, says so, and copies everything to
// the good one, exiting 1. The client's timeouts are shortened through
// $CAIRN_TESTONLY_PEER_TIMEOUTS: the behaviour under test is that they
// end the waits at all, and what each wait costs in multiples of them.
func TestPeerHungDestination(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 3<<20, 1)
	writeRandom(t, filepath.Join(data, "b"), 2<<20, 2)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	frozen := startPeerServer(t, e, filepath.Join(e.dir, "frozen-config"), filepath.Join(e.dir, "frozen-root"), "--allow", owner)
	good := startPeerServer(t, e, filepath.Join(e.dir, "good-config"), filepath.Join(e.dir, "good-root"), "--allow", owner)
	silentID := peerID(t, e, filepath.Join(e.dir, "silent-config"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	defer func() {
		_ = ln.Close()
		heldMu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		heldMu.Unlock()
	}()
	silent := fmt.Sprintf("peer://%s@%s/laptop", silentID, ln.Addr())

	const connect, stream = 500 * time.Millisecond, time.Second
	mirror := exec.Command(cairnBin, "mirror", "--limit-upload", "1024", frozen.loc("laptop"), silent, good.loc("laptop"))
	mirror.Env = append(append([]string(nil), e.env...), fmt.Sprintf("%s=connect=%v,stream=%v", envTestPeerTimeouts, connect, stream))
	mirror.Dir = e.dir
	var stdout, stderr bytes.Buffer
	mirror.Stdout, mirror.Stderr = &stdout, &stderr
	if err := mirror.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = mirror.Wait() // judged below
		close(done)
	}()
	waitFor(t, 30*time.Second, "a pack to reach the first peer", func() bool {
		return len(repoFiles(t, filepath.Join(frozen.folder(owner, "laptop"), "data"))) > 0
	})
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	froze := time.Now()
	defer func() { _ = frozen.cmd.Process.Signal(syscall.SIGCONT) }() // so that it can be stopped
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = mirror.Process.Kill()
		<-done
		t.Fatalf("the mirror did not end within 2 minutes of the freeze\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	took := time.Since(froze)
	t.Logf("the mirror ended %v after the freeze\nstdout:\n%s\nstderr:\n%s", took.Round(time.Millisecond), stdout.String(), stderr.String())
	if code := mirror.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("mirror exited %d, want 1", code)
	}
	// The frozen peer: a stream timeout, a ping, a retry and a connect;
	// the silent one: a connect. Ten times that is generous; the 2 MiB
	// left at 1 MiB/s for the good peer come on top.
	if bound := 10*(2*stream+2*connect) + 10*time.Second; took > bound {
		t.Errorf("the run took %v after the freeze, bound %v", took, bound)
	}
	errs := stderr.String()
	if !matches(`(?m)^cairn: warning: mirror to `+regexp.QuoteMeta(frozen.loc("laptop"))+`: .*does not answer`, errs) {
		t.Errorf("no warning that the frozen peer does not answer\n%s", errs)
	}
	if !matches(`(?m)^cairn: warning: mirror to `+regexp.QuoteMeta(silent)+`: .*does not answer: it accepted the connection but did not finish the handshake`, errs) {
		t.Errorf("no warning that the silent peer does not answer\n%s", errs)
	}
	if !matches(`(?m)^cairn: mirror failed for 2 of 3 destinations`, errs) {
		t.Errorf("no final error line\n%s", errs)
	}
	if !sameSizes(repoFiles(t, good.folder(owner, "laptop")), repoFiles(t, e.repo)) {
		t.Errorf("the good peer does not hold the repository")
	}
	checkHashNames(t, good.folder(owner, "laptop"))
}

func TestParsePeerTimeouts(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]string{
		"":                      "0s 0s",
		"connect=2s":            "2s 0s",
		"stream=1m,connect=5ms": "5ms 1m0s",
	} {
		d, err := parsePeerTimeouts(s)
		if got := fmt.Sprintf("%v %v", d.ConnectTimeout, d.StreamTimeout); err != nil || got != want {
			t.Errorf("%q: got %s, %v; want %s", s, got, err, want)
		}
	}
	for _, s := range []string{"connect", "connect=", "connect=0s", "stream=-1s", "read=1s", "connect=1s,"} {
		if _, err := parsePeerTimeouts(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
}
