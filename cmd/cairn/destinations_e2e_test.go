package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMirrorSavedDestinations: destinations saved with 'peer add' travel
// inside the repository; 'mirror' with no argument copies to each, a
// destination that is down does not stop the others, and the exit status
// and last line name the one that failed.
func TestMirrorSavedDestinations(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300_000, 1)
	e.init()
	e.must("backup", data)
	owner := peerID(t, e, "")
	alice := startPeerServer(t, e, filepath.Join(e.dir, "alice-config"), filepath.Join(e.dir, "alice-root"), "--allow", owner)
	bob := startPeerServer(t, e, filepath.Join(e.dir, "bob-config"), filepath.Join(e.dir, "bob-root"), "--allow", owner)

	e.must("peer", "add", "alice", alice.loc("laptop"))
	e.must("peer", "add", "bob", bob.loc("laptop"))
	e.must("peer", "add", "usb", "usb") // relative: saved as an absolute path
	for _, c := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"peer", "add", "alice", "/elsewhere"}, `alice is saved already`},
		{[]string{"peer", "add", "Bad", "/x"}, `invalid destination: name "Bad"`},
		{[]string{"peer", "add", "pw", "sftp://me:hunter2@host/srv"}, `holds a password`},
		{[]string{"peer", "remove", "nobody"}, `no destination named "nobody"`},
	} {
		r := e.run(c.args...)
		if r.code != 1 || strings.Contains(r.stderr, "hunter2") {
			t.Fatalf("want exit 1 without the password\n%s", r)
		}
		checkOneErrorLine(t, r, c.pattern)
	}
	r := e.must("peer", "list")
	usb := filepath.Join(e.dir, "usb")
	for _, want := range []string{"alice", alice.loc("laptop"), "bob", bob.loc("laptop"), "usb", usb} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("peer list lacks %q\n%s", want, r)
		}
	}
	if lines := jsonLines(t, e.must("--json", "peer", "list").stdout); len(lines) != 3 || lines[0]["name"] != "alice" || lines[2]["location"] != usb {
		t.Fatalf("peer list --json: %v", lines)
	}

	e.must("mirror")
	for _, dir := range []string{alice.folder(owner, "laptop"), bob.folder(owner, "laptop"), usb} {
		sameFiles(t, e.repo, dir)
	}

	// Bob's server is down: the others are still mirrored.
	bob.stop()
	writeRandom(t, filepath.Join(data, "b"), 200_000, 2)
	e.must("backup", data)
	r = e.run("mirror")
	if r.code != 1 || !strings.Contains(r.stderr, "warning: mirror to bob: ") {
		t.Fatalf("mirror with bob down\n%s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if last := lines[len(lines)-1]; !matches(`^cairn: mirror failed for 1 of 3 destinations: \[bob\]$`, last) {
		t.Fatalf("last line %q\n%s", last, r)
	}
	sameFiles(t, e.repo, alice.folder(owner, "laptop"))
	sameFiles(t, e.repo, usb)

	// The list is in the repository: another machine (empty HOME) that
	// reads a copy finds it.
	other := filepath.Join(e.dir, "other-home")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	r = e.runWith(runOpts{env: []string{"HOME=" + other}}, "-r", usb, "peer", "list")
	if r.code != 0 || !strings.Contains(r.stdout, bob.loc("laptop")) {
		t.Fatalf("peer list on a copy from another machine\n%s", r)
	}

	e.must("peer", "remove", "bob")
	e.must("mirror")
	if r := e.must("peer", "list"); strings.Contains(r.stdout, "bob") {
		t.Fatalf("bob still listed\n%s", r)
	}
	// Nothing saved, no argument: a clear error.
	e.must("peer", "remove", "alice")
	e.must("peer", "remove", "usb")
	r = e.run("mirror")
	if r.code != 1 {
		t.Fatalf("mirror with nothing saved\n%s", r)
	}
	checkOneErrorLine(t, r, `no DEST given and no destination saved`)
}
