package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// End-to-end tests of the scrub, mirror --verify and peer audit: real
// "cairn peer serve" processes on 127.0.0.1 and the built binary as
// client (helpers in peer_e2e_test.go).

// firstPack returns the path, relative to the repository folder dir, of
// its first pack in name order.
func firstPack(t *testing.T, dir string) string {
	t.Helper()
	var packs []string
	for rel := range repoFiles(t, dir) {
		if strings.HasPrefix(rel, "data/") {
			packs = append(packs, rel)
		}
	}
	if len(packs) == 0 {
		t.Fatalf("no pack in %s", dir)
	}
	sort.Strings(packs)
	return packs[0]
}

// flipBit flips one bit in the middle of the file at p, keeping its size
// and its read-only mode, as a failing disk would.
func flipBit(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x04
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o400); err != nil {
		t.Fatal(err)
	}
}

// sameAsSource checks that the friend's copy of rel is byte for byte the
// source's.
func sameAsSource(t *testing.T, e *testEnv, dir, rel string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(e.repo, rel))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s on the friend's disk: %d bytes (%v), want the source's %d", rel, len(got), err, len(want))
	}
}

// TestPeerScrubHeals: a bit flipped in a pack on a friend's disk is found
// by the friend's scrub, which moves the pack aside; the next mirror
// hears of it, puts the pack again (append-only and read-write friends
// alike) and the copy checks clean with --read-data.
func TestPeerScrubHeals(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300_000, 3)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	for _, mode := range []string{"append-only", "read-write"} {
		friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-"+mode), filepath.Join(e.dir, "root-"+mode),
			"--allow", owner+":"+mode, "--scrub-rate", "100M", "--scrub-interval", "100ms")
		loc := friend.loc("laptop")
		e.must("mirror", loc)
		dir := friend.folder(owner, "laptop")
		pack := firstPack(t, dir)
		flipBit(t, filepath.Join(dir, pack))
		name := "data/" + filepath.Base(pack)
		if !friend.logged(name + " is damaged") {
			t.Fatalf("%s: the scrub did not find the flipped bit within 10 s\n%s", mode, friend.log.String())
		}
		if _, err := os.Stat(filepath.Join(dir, pack)); !os.IsNotExist(err) {
			t.Errorf("%s: the damaged pack is still in the repository folder (%v)", mode, err)
		}
		r := e.must("mirror", loc)
		if !strings.Contains(r.stderr, name+" is damaged on the server") || !strings.Contains(r.stdout, "healed 1 of 1 damaged files") {
			t.Errorf("%s: mirror after the scrub\n%s", mode, r)
		}
		sameAsSource(t, e, dir, pack)
		if !friend.logged("healed " + name) {
			t.Errorf("%s: the server did not log the heal\n%s", mode, friend.log.String())
		}
		if q, err := os.ReadDir(filepath.Join(friend.root, owner, ".quarantine", "laptop")); err != nil || len(q) != 0 {
			t.Errorf("%s: quarantine after the heal holds %v (%v), want an empty folder", mode, q, err)
		}
		if r := e.must("-r", loc, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
			t.Fatalf("%s: check of the healed copy\n%s", mode, r)
		}
		r = e.must("--verbose", "mirror", loc)
		if strings.Contains(r.stderr, "damaged") || !strings.Contains(r.stdout, "the server's last scrub ended") {
			t.Errorf("%s: mirror after the heal\n%s", mode, r)
		}
	}
}

// TestPeerMirrorVerify: with the friend's scrub off, mirror --verify has
// the server re-hash every file now; it finds a flipped bit and the same
// run heals it. --verify needs a peer DEST, and refuses --dry-run.
func TestPeerMirrorVerify(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300_000, 4)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend"), filepath.Join(e.dir, "root"), "--allow", owner, "--scrub-rate", "0")
	loc := friend.loc("laptop")
	e.must("mirror", loc)
	dir := friend.folder(owner, "laptop")
	pack := firstPack(t, dir)
	flipBit(t, filepath.Join(dir, pack))
	name := "data/" + filepath.Base(pack)

	r := e.must("mirror", "--verify", loc)
	if !matches(`verify: \d+ files \(.*\) checked, 1 damaged`, r.stdout) || !strings.Contains(r.stderr, name+" is damaged on the server") ||
		!strings.Contains(r.stdout, "healed 1 of 1 damaged files") {
		t.Fatalf("mirror --verify\n%s", r)
	}
	sameAsSource(t, e, dir, pack)
	if r := e.must("mirror", "--verify=50%", loc); !matches(`verify: \d+ files \(.*\) checked, 0 damaged`, r.stdout) {
		t.Errorf("mirror --verify=50%% of a healed copy\n%s", r)
	}
	for _, c := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"mirror", "--verify", filepath.Join(e.dir, "plain")}, `--verify: .* is not a peer:// location`},
		{[]string{"mirror", "--verify", "-n", loc}, `--verify with --dry-run`},
		{[]string{"mirror", "--verify=0%", loc}, `not a percentage`},
	} {
		r := e.run(c.args...)
		if r.code != 1 {
			t.Errorf("%v: exit %d, want 1\n%s", c.args, r.code, r)
		}
		checkOneErrorLine(t, r, c.pattern)
	}
}

// TestPeerAudit: an audit of an intact copy passes; one of a copy that
// lost a pack, or whose server answers for bytes that are not the
// source's (a pack of zeros of the right size, as a server keeping
// nothing but sizes would serve), fails with exit 17 naming the pack.
func TestPeerAudit(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300_000, 5)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	otherCfg := filepath.Join(e.dir, "other-device")
	other := peerID(t, e, otherCfg)
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend"), filepath.Join(e.dir, "root"),
		"--allow", owner, "--allow", other, "--scrub-rate", "0")
	loc := friend.loc("laptop")
	e.must("mirror", loc)
	dir := friend.folder(owner, "laptop")
	if r := e.must("peer", "audit", "--sample", "100%", loc); !matches(`audited (\d+) of (\d+) packs .*: 0 failed`, r.stdout) {
		t.Fatalf("audit of an intact copy\n%s", r)
	}
	// Another device, with a repository of its own at the same NAME on
	// the server, audits it with the owner's packs as source: the server
	// answers from that device's own folder, which holds none of them.
	repo2 := filepath.Join(e.dir, "repo2")
	e.must("-r", repo2, "init")
	e.must("--config-dir", otherCfg, "-r", repo2, "mirror", loc)
	if r := e.run("--config-dir", otherCfg, "peer", "audit", "--sample", "100%", loc); r.code != 17 || !strings.Contains(r.stderr, ": missing") {
		t.Fatalf("another device's audit of the owner's packs: want exit 17, every pack missing\n%s", r)
	}
	pack := firstPack(t, dir)
	name := "data/" + filepath.Base(pack)
	zeros := filepath.Join(dir, pack)
	if err := os.Chmod(zeros, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zeros, make([]byte, repoFiles(t, dir)[pack]), 0o400); err != nil {
		t.Fatal(err)
	}
	r := e.run("peer", "audit", "--sample", "100%", loc)
	if r.code != 17 || !strings.Contains(r.stderr, name+": wrong digest") {
		t.Fatalf("audit of a copy with a flipped bit: want exit 17 naming %s\n%s", name, r)
	}
	if err := os.Remove(filepath.Join(dir, pack)); err != nil {
		t.Fatal(err)
	}
	r = e.run("peer", "audit", "--sample", "100%", loc)
	if r.code != 17 || !strings.Contains(r.stderr, name+": missing") || !strings.Contains(r.stderr, "audit of "+loc+" failed for 1 packs: "+name) {
		t.Fatalf("audit of a copy that lost a pack: want exit 17 naming %s\n%s", name, r)
	}
	for _, c := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"peer", "audit", filepath.Join(e.dir, "plain")}, `DEST must be a peer:// location`},
		{[]string{"peer", "audit", "--sample", "200%", loc}, `--sample: .* not a percentage`},
	} {
		r := e.run(c.args...)
		if r.code != 1 {
			t.Errorf("%v: exit %d, want 1\n%s", c.args, r.code, r)
		}
		checkOneErrorLine(t, r, c.pattern)
	}
}
