package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecoveryKitRestore: the recovery kit, written with the identity
// sealed in it, lets a machine with an empty HOME and only the kit and the
// password restore from a friend, byte for byte, trying the kit's
// destinations in order; the kit shows no password or key in clear.
func TestRecoveryKitRestore(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 43)
	e.init()
	e.backupJSON(0, src)
	owner := peerID(t, e, "")
	// A destination that is gone, saved first, then the friend's.
	gone := startPeerServer(t, e, filepath.Join(e.dir, "gone-config"), filepath.Join(e.dir, "gone-root"), "--allow", owner)
	gone.stop()
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "friend-root"), "--allow", owner)
	e.must("peer", "add", "gone", gone.loc("laptop"))
	e.must("peer", "add", "alice", friend.loc("laptop"))
	e.must("mirror", friend.loc("laptop"))

	kitDir := filepath.Join(e.dir, "kit")
	r := e.must("recovery-kit", "--out", kitDir, "--include-identity")
	if !strings.Contains(r.stdout, "2 destinations, identity included (sealed)") {
		t.Fatalf("recovery-kit output\n%s", r)
	}
	kitText, err := os.ReadFile(filepath.Join(kitDir, kitTextName))
	if err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(filepath.Join(kitDir, kitPNGName))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("QR code PNG: %v", err)
	}
	for _, want := range []string{friend.loc("laptop"), gone.loc("laptop"), "cairn --kit", "identity "} {
		if !strings.Contains(string(kitText), want) {
			t.Errorf("the kit lacks %q\n%s", want, kitText)
		}
	}
	ident, err := os.ReadFile(filepath.Join(e.dir, "home", ".config", "cairn", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	seed := strings.TrimPrefix(strings.Split(string(ident), "\n")[1], "seed: ")
	if len(seed) < 40 {
		t.Fatalf("identity file: %q", ident)
	}
	for what, secret := range map[string]string{"password": testPassword, "identity seed": seed, "seed start": seed[:16]} {
		if strings.Contains(string(kitText), secret) || bytes.Contains(png, []byte(secret)) {
			t.Errorf("the kit holds the %s in clear", what)
		}
	}

	// A blank machine: empty HOME, no repository set, the kit and the
	// password only.
	blank := filepath.Join(e.dir, "blank-home")
	if err := os.Mkdir(blank, 0o700); err != nil {
		t.Fatal(err)
	}
	kitFile := filepath.Join(blank, kitTextName)
	if err := os.WriteFile(kitFile, kitText, 0o600); err != nil {
		t.Fatal(err)
	}
	blankEnv := []string{"HOME=" + blank, envRepository + "="}
	target := filepath.Join(e.dir, "restored")
	r = e.runWith(runOpts{env: blankEnv}, "--kit", kitFile, "restore", "latest", "--target", target)
	if r.code != 0 {
		t.Fatalf("restore with the kit\n%s", r)
	}
	if !strings.Contains(r.stderr, "recovery kit: destination gone:") {
		t.Errorf("the dead destination is not reported\n%s", r)
	}
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	if r := e.runWith(runOpts{env: blankEnv}, "--kit", kitFile, "check"); r.code != 0 {
		t.Fatalf("check with the kit\n%s", r)
	}

	// Wrong password: the sealed identity does not open (exit 12).
	bad := filepath.Join(e.dir, "bad-password")
	e.writeFile(bad, "not the password\n")
	r = e.runWith(runOpts{env: append(blankEnv, envPasswordFile+"="+bad)}, "--kit", kitFile, "snapshots")
	if r.code != 12 {
		t.Fatalf("wrong password with the kit\n%s", r)
	}
	// A kit changed by hand is refused by its check line.
	changed := bytes.Replace(kitText, []byte("destination alice"), []byte("destination alicf"), 1)
	if err := os.WriteFile(kitFile, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.runWith(runOpts{env: blankEnv}, "--kit", kitFile, "snapshots")
	if r.code != 1 {
		t.Fatalf("changed kit\n%s", r)
	}
	checkOneErrorLine(t, r, `invalid recovery kit: check mismatch`)
}
