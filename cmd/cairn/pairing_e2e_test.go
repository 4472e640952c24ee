package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/backend/peer"
)

// End-to-end tests of pairing (peer invite / peer join) and of the peers
// file a running server reloads, with the built binary on both sides.

// sameFiles fails the test unless dir holds exactly the files of src,
// byte for byte (lock files aside).
func sameFiles(t *testing.T, src, dir string) {
	t.Helper()
	want := repoFiles(t, src)
	got := repoFiles(t, dir)
	if !sameSizes(got, want) {
		t.Fatalf("%s holds %v\nthe source %v", dir, got, want)
	}
	for rel := range want {
		a, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs from the source (%v)", rel, err)
		}
	}
}

// invite runs "peer invite" as the friend and returns the code.
func invite(t *testing.T, e *testEnv, friendCfg string, friend *peerServer, args ...string) string {
	t.Helper()
	r := e.must(append([]string{"--config-dir", friendCfg, "peer", "invite", "--root", friend.root, "--address", friend.addr}, args...)...)
	code := strings.TrimSpace(r.stdout)
	if !matches(`^CAIRN1[A-Z2-7]{100,}$`, code) {
		t.Fatalf("peer invite printed %q\n%s", code, r)
	}
	if strings.Contains(r.stderr, code) {
		t.Fatalf("the code is on stderr too\n%s", r)
	}
	return code
}

// TestPeerPairing: a friend's server started with no --allow invites the
// owner by code; the owner joins and mirrors at once, without a restart
// of the server, with the invitation's quota; the code cannot be used
// again, and wrong and expired codes are refused with one clear line.
func TestPeerPairing(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300_000, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")

	friendCfg := filepath.Join(e.dir, "friend-config")
	friend := startPeerServer(t, e, friendCfg, filepath.Join(e.dir, "root"))
	code := invite(t, e, friendCfg, friend, "--quota", "50M", "--expires", "1h")

	r := e.must("peer", "join", code, "--name", "laptop", "--label", "alice laptop")
	loc := strings.TrimSpace(r.stdout)
	if loc != friend.loc("laptop") {
		t.Fatalf("join printed %q, want %q\n%s", loc, friend.loc("laptop"), r)
	}
	if !strings.Contains(r.stderr, "append-only") || !strings.Contains(r.stderr, "quota 50.0 MiB") {
		t.Errorf("join does not say what was granted\n%s", r)
	}
	if !friend.logged("joined with invitation") {
		t.Fatalf("the server's log does not mention the join\n%s", friend.log.String())
	}
	e.must("mirror", loc)
	sameFiles(t, e.repo, friend.folder(owner, "laptop"))
	peers, err := os.ReadFile(peer.DefaultPeersFile(friend.root))
	if err != nil || !strings.Contains(string(peers), owner) || !strings.Contains(string(peers), `name = "alice laptop"`) {
		t.Fatalf("peers file after the join (%v):\n%s", err, peers)
	}
	// The invitation's quota holds: 2 MiB more than 50 MiB does not fit.
	writeRandom(t, filepath.Join(data, "big"), 52<<20, 2)
	e.must("backup", data)
	if r := e.run("mirror", loc); r.code != 1 || !strings.Contains(r.stderr, "quota") {
		t.Errorf("mirror over the invitation's quota\n%s", r)
	}

	// Used: refused, for the owner and for anyone else.
	other := filepath.Join(e.dir, "other-config")
	for _, args := range [][]string{{"peer", "join", code}, {"--config-dir", other, "peer", "join", code}} {
		r := e.run(args...)
		if r.code != 1 {
			t.Fatalf("second use of a code\n%s", r)
		}
		checkOneErrorLine(t, r, `used already`)
	}

	// Mistyped: the checksum catches it before any connection.
	b := []byte(code)
	b[20] = map[bool]byte{true: 'B', false: 'A'}[b[20] == 'A']
	r = e.run("--config-dir", other, "peer", "join", string(b))
	if r.code != 1 {
		t.Fatalf("mistyped code\n%s", r)
	}
	checkOneErrorLine(t, r, `invalid invitation code: checksum mismatch`)

	// A well-formed code with the wrong secret.
	inv, err := peer.ParseInvite(invite(t, e, friendCfg, friend))
	if err != nil {
		t.Fatal(err)
	}
	inv.Secret[3] ^= 0x40
	r = e.run("--config-dir", other, "peer", "join", inv.Code())
	if r.code != 1 {
		t.Fatalf("wrong secret\n%s", r)
	}
	checkOneErrorLine(t, r, `wrong code for invitation [0-9a-f]{16} \(4 more tries`)

	// Expired: the invitation's file says so (edited, as a clock cannot
	// be moved in another process).
	expiring := invite(t, e, friendCfg, friend, "--expires", "1h")
	inv, err = peer.ParseInvite(expiring)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(peer.InviteDir(friend.root), inv.ID.String()+".toml")
	rec, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec = regexp.MustCompile(`(?m)^expires = .*$`).ReplaceAll(rec, []byte("expires = 2000-01-01T00:00:00Z"))
	if err := os.WriteFile(path, rec, 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.run("--config-dir", other, "peer", "join", expiring)
	if r.code != 1 {
		t.Fatalf("expired code\n%s", r)
	}
	checkOneErrorLine(t, r, `expired at 2000-01-01T00:00:00Z; ask for a new one`)

	// No secret in the server's files or log.
	for _, dir := range []string{peer.InviteDir(friend.root), filepath.Dir(peer.DefaultPeersFile(friend.root))} {
		entries, _ := os.ReadDir(dir)
		for _, ent := range entries {
			if b, err := os.ReadFile(filepath.Join(dir, ent.Name())); err == nil && bytes.Contains(b, []byte(code[10:40])) {
				t.Errorf("%s holds part of the code", ent.Name())
			}
		}
	}
	if strings.Contains(friend.log.String(), code[10:40]) {
		t.Error("the server's log holds part of the code")
	}
}

// TestPeerJoinImpostor: a code whose address leads to another server (one
// that does not hold the peer ID the code pins) is refused in the TLS
// handshake, before the secret goes out. (A server too old to pair is
// tested in backend/peer's TestJoinOldServer.)
func TestPeerJoinImpostor(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	friendCfg := filepath.Join(e.dir, "friend-config")
	friend := startPeerServer(t, e, friendCfg, filepath.Join(e.dir, "root"))
	impostorCfg := filepath.Join(e.dir, "impostor-config")
	impostor := startPeerServer(t, e, impostorCfg, filepath.Join(e.dir, "impostor-root"))
	code := invite(t, e, friendCfg, friend)
	inv, err := peer.ParseInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	inv.Addr = impostor.addr
	r := e.run("peer", "join", inv.Code())
	if r.code != 1 {
		t.Fatalf("join to an impostor\n%s", r)
	}
	checkOneErrorLine(t, r, `does not match the location|presented peer ID`)
	if strings.Contains(impostor.log.String(), "join with invitation") {
		t.Fatalf("the impostor saw a join request\n%s", impostor.log.String())
	}
	e.must("peer", "join", code) // the real one still works
}

// TestPeersFileLive: a friend's quota edited by hand in the peers file
// takes effect without a restart, on SIGHUP (with polling off) and on
// change (polling on).
func TestPeersFileLive(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300_000, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	entry := "# edited by hand\n[[peer]]\nid = \"" + owner + "\"\nname = \"owner\"\nquota = \"%s\"\n"
	for _, c := range []struct {
		name    string
		args    []string
		trigger func(s *peerServer)
		logged  string
	}{
		{"sighup", []string{"--peers-poll", "0"}, func(s *peerServer) { _ = s.cmd.Process.Signal(syscall.SIGHUP) }, "loaded (on SIGHUP)"},
		{"change", []string{"--peers-poll", "50ms"}, func(*peerServer) {}, "loaded (on change)"},
	} {
		root := filepath.Join(e.dir, c.name)
		file := filepath.Join(e.dir, c.name+"-peers.toml")
		e.writeFile(file, strings.Replace(entry, "%s", "1K", 1))
		friend := startPeerServer(t, e, filepath.Join(e.dir, c.name+"-config"), root, append(c.args, "--peers-file", file)...)
		loc := friend.loc("laptop")
		if r := e.run("mirror", loc); r.code != 1 || !strings.Contains(r.stderr, "quota") {
			t.Fatalf("%s: mirror over a 1K quota\n%s", c.name, r)
		}
		e.writeFile(file, strings.Replace(entry, "%s", "none", 1))
		c.trigger(friend)
		if !friend.logged(c.logged) {
			t.Fatalf("%s: no reload in the log\n%s", c.name, friend.log.String())
		}
		e.must("mirror", loc)
		sameFiles(t, e.repo, friend.folder(owner, "laptop"))
		// A file that does not parse is logged and the old list kept.
		e.writeFile(file, "[[peer]]\nid = 42\n")
		c.trigger(friend)
		if !friend.logged("kept the previous list") {
			t.Fatalf("%s: a bad peers file is not reported\n%s", c.name, friend.log.String())
		}
		e.must("mirror", loc)
		friend.stop()
	}
}
