package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRevokedDeviceForgeriesDetected is issue 17 item 3: the laptop B is
// stolen with its identity and the password. The owner's desktop A
// revokes B. The thief cannot write as B to the repository (cairn
// refuses: B is revoked there), so he writes as B, with the real binary,
// to a copy of the repository taken before the revocation, a branch A
// never saw, and puts the entry and its data into the repository. check
// finds it, from A and from a blank machine (an empty HOME and only the
// password), and exits 1; snapshots leave it out; device list shows B
// revoked; mirror --prune names it.
func TestRevokedDeviceForgeriesDetected(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a.bin"), 50_000, 1)
	e.init()
	e.must("backup", data)
	laptop := []string{"--config-dir", filepath.Join(e.dir, "cfg-laptop")}
	e.must(append(laptop, "backup", "--host", "laptop", data)...)
	bID := peerID(t, e, filepath.Join(e.dir, "cfg-laptop"))
	r := e.must("device", "list")
	if !matches(`(?m)^ `+bID+` +laptop +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d+  active$`, r.stdout) || !matches(`(?m)^\*[A-Z2-7-]{63} `, r.stdout) {
		t.Fatalf("device list before the revocation\n%s", r)
	}
	// The thief's copy of the repository, before the revocation.
	before := filepath.Join(e.dir, "repo-before")
	copyDir(t, e.repo, before)

	r = e.must("device", "revoke", strings.ToLower(bID[:9]))
	if !matches(`revoked device `+bID, r.stdout) {
		t.Fatalf("device revoke\n%s", r)
	}
	if r := e.run("device", "revoke", peerID(t, e, "")); r.code != exitError || !strings.Contains(r.stderr, "itself") {
		t.Errorf("revoking this device itself: want a refusal\n%s", r)
	}
	if r := e.run("check"); r.code != 0 {
		t.Fatalf("check after the revocation, before any forgery\n%s", r)
	}

	// The thief, with a copy of B's identity and nothing else remembered.
	stolen := []string{"--config-dir", filepath.Join(e.dir, "cfg-stolen")}
	if err := os.MkdirAll(filepath.Join(e.dir, "cfg-stolen"), 0o700); err != nil {
		t.Fatal(err)
	}
	ident, err := os.ReadFile(filepath.Join(e.dir, "cfg-laptop", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "cfg-stolen", "identity"), ident, 0o600); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, filepath.Join(data, "forged.bin"), 30_000, 2)
	if r := e.run(append(stolen, "backup", "--host", "laptop", data)...); r.code == 0 || !strings.Contains(r.stderr, "revoked") {
		t.Fatalf("a backup signed by the revoked device: want a refusal\n%s", r)
	}
	logsBefore := listDir(t, filepath.Join(e.repo, "log"))
	if r := e.run(append(stolen, "-r", before, "backup", "--host", "laptop", data)...); r.code != 0 {
		t.Fatalf("the thief's backup to the copy\n%s", r)
	}
	for _, sub := range []string{"log", "index", "data"} {
		if out, err := exec.Command("cp", "-an", filepath.Join(before, sub)+"/.", filepath.Join(e.repo, sub)).CombinedOutput(); err != nil {
			t.Fatalf("plant %s: %v %s", sub, err, out)
		}
	}
	forged := 0
	for f := range listDir(t, filepath.Join(e.repo, "log")) {
		if !logsBefore[f] {
			forged++
		}
	}
	if forged == 0 {
		t.Fatal("no forged log entry was planted")
	}

	want := `signed by device ` + bID[:7] + ` after it was revoked by log entry [0-9a-f]{8}`
	blank := runOpts{env: []string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME="}}
	for name, r := range map[string]result{
		"this machine":    e.run("check"),
		"a blank machine": e.runWith(blank, "check"),
	} {
		if r.code != exitError || !matches(want, r.stdout+r.stderr) {
			t.Errorf("check from %s: want exit %d naming the forged entry\n%s", name, exitError, r)
		}
	}
	snaps := snapshotIDs(t, e.must("snapshots", "--json").stdout)
	if len(snaps) != 2 {
		t.Errorf("snapshots lists %d, want the 2 made before the forgery", len(snaps))
	}
	r = e.must("device", "list")
	if !matches(`(?m)^ `+bID+` +laptop +\S+ \S+ +\d+  revoked by log entry [0-9a-f]{8}`, r.stdout) {
		t.Errorf("device list after the revocation\n%s", r)
	}
	r = e.run("mirror", "--prune", filepath.Join(e.dir, "mirror-copy"))
	if !matches(`log entry [0-9a-f]{8} is signed by a revoked device`, r.stderr) {
		t.Errorf("mirror does not name the rejected entry\n%s", r)
	}
}

func listDir(t *testing.T, dir string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]bool)
	for _, d := range ents {
		out[d.Name()] = true
	}
	return out
}
