package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRotateRevokesOldPasswordOnAppendOnlyCopy is issue 17's rotation
// story: a password leaks; the owner changes it and rotates with
// --revoke-old-passwords, backs up again and mirrors to an append-only
// friend, which keeps the old key file. The old password still opens the
// friend's copy and restores the snapshot made before the rotation, but
// fails on the one made after it, saying why. The new password reads
// both, there and here.
func TestRotateRevokesOldPasswordOnAppendOnlyCopy(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a.bin"), 100_000, 1)
	e.init()
	e.must("backup", data)
	before := snapshotIDs(t, e.must("snapshots", "--json").stdout)
	owner := peerID(t, e, "")
	ao := startPeerServer(t, e, filepath.Join(e.dir, "ao-config"), filepath.Join(e.dir, "ao-root"), "--allow", owner)
	aoLoc := ao.loc("laptop")
	e.must("mirror", aoLoc)

	newPW := filepath.Join(e.dir, "new-password")
	e.writeFile(newPW, "a new password after the leak\n")
	e.must("key", "passwd", "--new-password-file", newPW)
	withNew := runOpts{env: []string{envPasswordFile + "=" + newPW}}
	r := e.runWith(withNew, "key", "rotate", "--revoke-old-passwords")
	if r.code != 0 || !matches(`rotated: new data key [0-9a-f]{16} \(ring of 2 keys`, r.stdout) {
		t.Fatalf("key rotate\n%s", r)
	}
	writeRandom(t, filepath.Join(data, "after.bin"), 100_000, 2)
	if r := e.runWith(withNew, "backup", data); r.code != 0 {
		t.Fatalf("backup after the rotation\n%s", r)
	}
	all := snapshotIDs(t, e.runWith(withNew, "snapshots", "--json").stdout)
	if len(before) != 1 || len(all) != 2 {
		t.Fatalf("snapshots: %v before, %v after", before, all)
	}
	newID := all[0]
	if newID == before[0] {
		newID = all[1]
	}
	if r := e.runWith(withNew, "mirror", "--prune", aoLoc); r.code != 0 {
		t.Fatalf("mirror after the rotation\n%s", r)
	}

	// The old password at the friend's, with nothing remembered.
	old := []string{"--config-dir", identityOnly(t, e, "cfg-old-password"), "-r", aoLoc}
	target := filepath.Join(e.dir, "restored-old")
	r = e.run(append(old, "restore", before[0], "--target", target)...)
	if r.code != 0 {
		t.Fatalf("the old password restoring the snapshot made before the rotation\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(target, data, "a.bin")); err != nil {
		t.Fatalf("restored with the old password: %v", err)
	}
	r = e.run(append(old, "restore", newID[:8], "--target", filepath.Join(e.dir, "restored-new"))...)
	why := `sealed with a key added by a key rotation after this key file was revoked`
	if r.code == 0 || !matches(`snapshot `+newID[:8]+`: `+why, r.stderr) {
		t.Fatalf("the old password restoring the snapshot made after the rotation: want a failure that says why\n%s", r)
	}
	r = e.run(append(old, "snapshots", "--json")...)
	if got := snapshotIDs(t, r.stdout); r.code != 0 || len(got) != 1 || got[0] != before[0] {
		t.Fatalf("the old password lists %v, want only %s\n%s", got, before[0], r)
	}
	if !strings.Contains(r.stderr, "key rotation after this key file was revoked") {
		t.Errorf("snapshots with the old password does not say why entries are left out\n%s", r)
	}

	// The new password reads everything, at the friend's and here.
	for _, loc := range []string{aoLoc, e.repo} {
		dir := filepath.Join(e.dir, "restored-"+regexp.MustCompile(`\W`).ReplaceAllString(loc, ""))
		r := e.runWith(withNew, "--config-dir", identityOnly(t, e, "cfg-new-"+filepath.Base(dir)), "-r", loc, "restore", newID, "--target", dir)
		if r.code != 0 {
			t.Fatalf("the new password at %s\n%s", loc, r)
		}
		compareTrees(t, data, filepath.Join(dir, data), false)
	}
}

// TestRotateKeepsEveryPassword: without --revoke-old-passwords, a second
// password reaches the new key and reads what is sealed with it; the new
// data really is sealed with the new key.
func TestRotateKeepsEveryPassword(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a.bin"), 50_000, 3)
	e.init()
	second := e.writePW("second password")
	e.must("key", "add", "--new-password-file", second)
	r := e.must("key", "rotate", "--json")
	var rot struct {
		Key  string `json:"key"`
		Keys int    `json:"keys"`
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		_ = json.Unmarshal([]byte(line), &rot)
	}
	if rot.Keys != 2 || len(rot.Key) != 16 {
		t.Fatalf("key rotate --json: %+v\n%s", rot, r)
	}
	e.must("backup", data)
	// Every index file written since is sealed with the new key: byte 0
	// is the format version, bytes 1..8 the key ID.
	idx, _ := filepath.Glob(filepath.Join(e.repo, "index", "*"))
	if len(idx) == 0 {
		t.Fatal("no index file")
	}
	for _, f := range idx {
		b, err := os.ReadFile(f)
		if err != nil || len(b) < 9 {
			t.Fatalf("index %s: %v", f, err)
		}
		if got := hexString(b[1:9]); got != rot.Key {
			t.Errorf("index %s sealed with key %s, want the new key %s", filepath.Base(f), got, rot.Key)
		}
	}
	withSecond := runOpts{env: []string{envPasswordFile + "=" + second}}
	target := filepath.Join(e.dir, "restored")
	if r := e.runWith(withSecond, "--config-dir", identityOnly(t, e, "cfg-second"), "restore", "latest", "--target", target); r.code != 0 || r.stderr != "" {
		t.Fatalf("the second password after a rotation without revocation\n%s", r)
	}
	compareTrees(t, data, filepath.Join(target, data), false)
	if r := e.run("check", "--read-data"); r.code != 0 || strings.Contains(r.stdout+r.stderr, "key_junk") {
		t.Fatalf("check after the rotation\n%s", r)
	}
	// The ring record is no key file: key list leaves it out, key remove
	// refuses it (removing it would lock new data away).
	if r := e.must("key", "list", "--json"); strings.Count(r.stdout, `"id"`) != 2 {
		t.Errorf("key list after a rotation: want the 2 key files\n%s", r)
	}
	records := 0
	for _, k := range e.keyFiles() {
		b, err := os.ReadFile(filepath.Join(e.repo, "keys", k))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "cairnRR1") {
			continue
		}
		records++
		if r := e.run("key", "remove", k[:10]); r.code == 0 || !strings.Contains(r.stderr, "ring record") {
			t.Errorf("key remove of the ring record: want a refusal\n%s", r)
		}
	}
	if records != 1 {
		t.Errorf("%d ring records, want 1", records)
	}
}

// TestRotateSurvivesKill9: key rotate killed at random moments (at least
// 50 kills) never costs the current password access: after each kill
// the repository opens, checks clean and restores with it, and the
// rotation then completes.
func TestRotateSurvivesKill9(t *testing.T) {
	e := newTestEnv(t)
	rnd := testRand(t)
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a.bin"), 20_000, 4)
	e.init()
	e.must("backup", data)
	span := e.timeRun("key", "rotate", "--revoke-old-passwords")
	kills, runs := 0, 0
	deadline := time.Now().Add(4 * time.Minute)
	for kills < 50 && runs < 400 && time.Now().Before(deadline) {
		runs++
		args := []string{"key", "rotate"}
		if runs%2 == 0 {
			args = append(args, "--revoke-old-passwords")
		}
		d := time.Duration(rnd.Int64N(int64(span)))
		killed, _, r := e.runKilled(d, args...)
		if killed {
			kills++
			_ = os.RemoveAll(filepath.Join(e.repo, "locks")) // a killed run's lock is stale by definition
			_ = os.MkdirAll(filepath.Join(e.repo, "locks"), 0o700)
		} else if r.code != 0 {
			t.Fatalf("run %d (not killed) failed\n%s", runs, r)
		}
		target := filepath.Join(e.dir, "restored")
		_ = os.RemoveAll(target)
		if r := e.run("restore", "latest", "--target", target); r.code != 0 {
			t.Fatalf("restore after run %d (kill after %v, killed=%v)\n%s", runs, d, killed, r)
		}
		compareTrees(t, data, filepath.Join(target, data), false)
		if runs%10 == 0 {
			writeRandom(t, filepath.Join(data, "a.bin"), 20_000, uint64(runs))
			e.must("backup", data)
		}
	}
	t.Logf("%d of %d runs of key rotate killed", kills, runs)
	if kills < 50 {
		t.Fatalf("only %d kills landed in %d runs", kills, runs)
	}
	if r := e.run("check", "--read-data"); r.code != 0 {
		t.Fatalf("check after the kills\n%s", r)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
