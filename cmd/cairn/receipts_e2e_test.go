package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// End-to-end tests of receipts (docs/peers.md, "Receipts"): real "cairn
// peer serve" friends and sshd on 127.0.0.1, the built binary; a friend
// rolled back, frozen or forked is found from this machine and from a
// blank one that has only the password, the identity and the locations.

// receiptsFixture is an owner with a repository and two friends.
type receiptsFixture struct {
	e          *testEnv
	data       string
	owner      string // the owner's peer ID
	a, b       *peerServer
	aCfg, bCfg string
}

func newReceiptsFixture(t *testing.T, e *testEnv) *receiptsFixture {
	t.Helper()
	f := &receiptsFixture{e: e, data: filepath.Join(e.dir, "data")}
	writeRandom(t, filepath.Join(f.data, "a"), 50_000, 1)
	e.init()
	e.must("backup", f.data)
	f.owner = peerID(t, e, "")
	f.aCfg, f.bCfg = filepath.Join(e.dir, "a-config"), filepath.Join(e.dir, "b-config")
	f.a = startPeerServer(t, e, f.aCfg, filepath.Join(e.dir, "a-root"), "--allow", f.owner)
	f.b = startPeerServer(t, e, f.bCfg, filepath.Join(e.dir, "b-root"), "--allow", f.owner)
	return f
}

// restart stops the friend and serves its folder again on the same
// address, with the same identity, after fn changed its folder.
func (f *receiptsFixture) restart(t *testing.T, s *peerServer, cfg string, fn func(), args ...string) *peerServer {
	t.Helper()
	s.stop()
	fn()
	return startPeerServerOn(t, f.e, s.addr, cfg, s.root, append([]string{"--allow", f.owner}, args...)...)
}

// blank is a machine that lost everything but the password and a saved
// copy of the owner's identity.
func (f *receiptsFixture) blank(t *testing.T) (*testEnv, string) {
	t.Helper()
	n := newTestEnv(t)
	home := ""
	for _, v := range f.e.env {
		if h, ok := strings.CutPrefix(v, "HOME="); ok {
			home = h // the last one wins, as in the environment
		}
	}
	identity, err := os.ReadFile(filepath.Join(home, ".config", "cairn", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(n.dir, "saved-config")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "identity"), identity, 0o600); err != nil {
		t.Fatal(err)
	}
	return n, cfg
}

// wantAcks checks that r exited 20 naming the friend peer in a finding
// of the given kind ("rolled back or frozen", "forked").
func wantAcks(t *testing.T, r result, kind, who string) {
	t.Helper()
	if r.code != exitAcks || !strings.Contains(r.stderr+r.stdout, kind) || !strings.Contains(r.stderr+r.stdout, who) {
		t.Fatalf("want exit %d, %q naming %s\n%s", exitAcks, kind, who, r)
	}
}

// TestReceiptsRolledBack: friend A and an sftp copy are restored from
// older copies of their folders after signing (or recording) newer
// heads. Reading either from this machine exits 21 naming it; from a
// blank machine peer status over the copies does; the next mirror heals
// A and says what it found.
func TestReceiptsRolledBack(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	sshd := sftpServer(t, e)
	f := newReceiptsFixture(t, e)
	aLoc, bLoc := f.a.loc("laptop"), f.b.loc("laptop")
	sDir := filepath.Join(e.dir, "on-sshd", "copy")
	sLoc := sshd.Location(sDir)
	r := e.must("mirror", aLoc, bLoc, sLoc)
	if strings.Count(r.stdout, "receipt signed by peer") != 2 {
		t.Fatalf("want two receipts\n%s", r)
	}
	aFolder := f.a.folder(f.owner, "laptop")
	copyDir(t, aFolder, filepath.Join(e.dir, "a-old"))
	copyDir(t, sDir, filepath.Join(e.dir, "s-old"))
	writeRandom(t, filepath.Join(f.data, "b"), 50_000, 2)
	e.must("backup", f.data)
	// The sftp copy first: the later destinations of a run get the
	// earlier ones' records in the same run (the earlier ones get the
	// later ones' at the next mirror).
	e.must("mirror", sLoc, aLoc, bLoc)
	for _, loc := range []string{aLoc, bLoc, sLoc} {
		e.must("-r", loc, "check")
	}

	f.a = f.restart(t, f.a, f.aCfg, func() { copyDir(t, filepath.Join(e.dir, "a-old"), aFolder) })
	copyDir(t, filepath.Join(e.dir, "s-old"), sDir)
	wantAcks(t, e.run("-r", aLoc, "snapshots"), "rolled back or frozen", f.a.id)
	wantAcks(t, e.run("-r", aLoc, "check"), "rolled back or frozen", f.a.id)
	wantAcks(t, e.run("-r", sLoc, "snapshots"), "rolled back or frozen", "unsigned mirror record")
	e.must("-r", bLoc, "snapshots")

	n, cfg := f.blank(t)
	n.env = append(n.env, "HOME="+sshd.Home)
	r = n.run("--config-dir", cfg, "-r", bLoc, "peer", "status", aLoc, bLoc, sLoc)
	wantAcks(t, r, "rolled back or frozen", f.a.id)
	if !strings.Contains(r.stdout, sLoc+": rolled back or frozen") {
		t.Errorf("the blank machine does not find the sftp copy rolled back\n%s", r)
	}

	// The mirror heals A, and says it found A rolled back.
	wantAcks(t, e.run("mirror", aLoc), "rolled back or frozen", f.a.id)
	e.must("-r", aLoc, "check")
}

// TestReceiptsFrozen: friend A serves its old head and refuses every put
// after signing a newer one. Mirror says so (exit 21), and so do reads
// from this machine and peer status from a blank one.
func TestReceiptsFrozen(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	f := newReceiptsFixture(t, e)
	aLoc, bLoc := f.a.loc("laptop"), f.b.loc("laptop")
	e.must("mirror", aLoc, bLoc)
	aFolder := f.a.folder(f.owner, "laptop")
	copyDir(t, aFolder, filepath.Join(e.dir, "a-old"))
	writeRandom(t, filepath.Join(f.data, "b"), 50_000, 2)
	e.must("backup", f.data)
	e.must("mirror", aLoc, bLoc)

	// Frozen: the old folder, and a quota of one byte, so every put is
	// refused.
	f.a = f.restart(t, f.a, f.aCfg, func() { copyDir(t, filepath.Join(e.dir, "a-old"), aFolder) }, "--quota", "1")
	r := e.run("mirror", aLoc)
	wantAcks(t, r, "rolled back or frozen", f.a.id)
	if !strings.Contains(r.stderr, "the mirror failed") {
		t.Errorf("mirror does not say the copy failed too\n%s", r)
	}
	wantAcks(t, e.run("-r", aLoc, "snapshots"), "rolled back or frozen", f.a.id)
	n, cfg := f.blank(t)
	wantAcks(t, n.run("--config-dir", cfg, "-r", bLoc, "peer", "status", aLoc, bLoc), "rolled back or frozen", f.a.id)
}

// TestReceiptsForked: friend A signs the owner's newest entry; friend B
// signs an entry another machine (with the owner's identity, holding a
// copy of the repository) wrote at the same sequence number. Reading B
// from this machine names A; peer status on a blank machine names both.
func TestReceiptsForked(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	f := newReceiptsFixture(t, e)
	aLoc, bLoc := f.a.loc("laptop"), f.b.loc("laptop")
	e.must("mirror", aLoc, bLoc)
	// The other machine: a copy of the repository and of the identity.
	other, cfg := f.blank(t)
	otherRepo := filepath.Join(other.dir, "repo")
	other.must("--config-dir", cfg, "-r", bLoc, "mirror", otherRepo)
	other.writeFile(filepath.Join(other.dir, "theirs.txt"), "written on the other machine\n")
	other.must("--config-dir", cfg, "-r", otherRepo, "backup", filepath.Join(other.dir, "theirs.txt"))
	other.must("--config-dir", cfg, "-r", otherRepo, "mirror", bLoc)
	writeRandom(t, filepath.Join(f.data, "b"), 50_000, 2)
	e.must("backup", f.data)
	e.must("mirror", aLoc)

	wantAcks(t, e.run("-r", bLoc, "snapshots"), "forked", f.a.id)
	n, ncfg := f.blank(t)
	r := n.run("--config-dir", ncfg, "-r", aLoc, "--json", "peer", "status", aLoc, bLoc)
	if r.code != exitAcks {
		t.Fatalf("want exit %d\n%s", exitAcks, r)
	}
	findings := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m struct {
			MessageType string   `json:"message_type"`
			Location    string   `json:"location"`
			Findings    []string `json:"findings"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if m.MessageType == "destination" {
			findings[m.Location] = strings.Join(m.Findings, "; ")
		}
	}
	if !strings.Contains(findings[aLoc], "forked") || !strings.Contains(findings[aLoc], f.b.id) ||
		!strings.Contains(findings[bLoc], "forked") || !strings.Contains(findings[bLoc], f.a.id) {
		t.Fatalf("findings %v\n%s", findings, r)
	}
}

// TestPeerStatusExitCodes: an unreachable or stale destination exits 22,
// a snapshot on fewer destinations than --min-copies 23; the text names
// usage and quota; with everything fine, 0.
func TestPeerStatusExitCodes(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	f := newReceiptsFixture(t, e)
	f.a = f.restart(t, f.a, f.aCfg, func() {}, "--quota", "1G")
	aLoc, bLoc := f.a.loc("laptop"), f.b.loc("laptop")
	e.must("mirror", aLoc, bLoc)
	r := e.must("peer", "status", "--max-age", "1d", "--min-copies", "2", aLoc, bLoc)
	if !strings.Contains(r.stdout, "whole on 2 of 2 destinations") || !strings.Contains(r.stdout, "quota 1") ||
		!strings.Contains(r.stdout, "0 entries behind") || !strings.Contains(r.stdout, aLoc+": scrub: ") ||
		!strings.Contains(r.stdout, bLoc+": scrub: ") {
		t.Fatalf("status (with each peer's last scrub result)\n%s", r)
	}
	r = e.must("--json", "peer", "status", aLoc)
	if !strings.Contains(r.stdout, `"scrub":{"last_pass":`) {
		t.Fatalf("status --json: want the scrub report\n%s", r)
	}

	writeRandom(t, filepath.Join(f.data, "b"), 50_000, 2)
	e.must("backup", f.data)
	e.must("mirror", aLoc)
	r = e.run("peer", "status", "--min-copies", "2", aLoc, bLoc)
	if r.code != exitUnderCopies || !strings.Contains(r.stdout, "whole on 1 of 2 destinations") || !strings.Contains(r.stdout, "1 entries behind") {
		t.Fatalf("want exit %d, one snapshot on one destination\n%s", exitUnderCopies, r)
	}
	// Two days later B was not mirrored to since: stale.
	later := runOpts{env: []string{envTestClockShift + "=48h"}}
	r = e.runWith(later, "peer", "status", "--max-age", "1d", aLoc, bLoc)
	if r.code != exitStale || !strings.Contains(r.stdout, "(stale)") {
		t.Fatalf("want exit %d\n%s", exitStale, r)
	}
	e.must("mirror", bLoc)
	if r := e.runWith(later, "peer", "status", "--max-age", "3d", "--min-copies", "2", aLoc, bLoc); r.code != 0 {
		t.Fatalf("both were mirrored to within 3 days, and hold every snapshot\n%s", r)
	}
	f.b.stop()
	r = e.run("peer", "status", "--min-copies", "1", aLoc, bLoc)
	if r.code != exitStale || !strings.Contains(r.stdout, bLoc+": unreachable") {
		t.Fatalf("want exit %d, B unreachable\n%s", exitStale, r)
	}
}

// TestPeerStatusSavedDestinations: with no DEST, peer status reads the
// destinations saved in the repository; with none saved it says so.
func TestPeerStatusSavedDestinations(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	f := newReceiptsFixture(t, e)
	aLoc, bLoc := f.a.loc("laptop"), f.b.loc("laptop")
	if r := e.run("peer", "status"); r.code != exitError || !strings.Contains(r.stderr, "no destination saved") {
		t.Fatalf("peer status with nothing saved: want exit %d\n%s", exitError, r)
	}
	e.must("peer", "add", "alice", aLoc)
	e.must("peer", "add", "bob", bLoc)
	e.must("mirror")
	r := e.must("peer", "status", "--min-copies", "2")
	if !strings.Contains(r.stdout, aLoc+": last mirror") || !strings.Contains(r.stdout, bLoc+": last mirror") ||
		!strings.Contains(r.stdout, "whole on 2 of 2 destinations") {
		t.Fatalf("peer status of the saved destinations\n%s", r)
	}
}

// TestSnapshotsForgotten: after a forget --prune at the source (as
// ransomware would run) mirrored with --prune to an append-only friend,
// the friend's copy still holds the forgotten snapshot: plain snapshots
// says so in its last line (not in --json's array), --forgotten and --all
// list it, and it restores.
func TestSnapshotsForgotten(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	f := newReceiptsFixture(t, e)
	writeRandom(t, filepath.Join(f.data, "b"), 50_000, 2)
	e.must("backup", f.data)
	aLoc := f.a.loc("laptop")
	e.must("mirror", aLoc)
	snaps := e.snapshotsJSON()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots", len(snaps))
	}
	gone := snaps[0]["id"].(string)
	e.must("forget", gone, "--prune")
	e.must("mirror", "--prune", aLoc)
	if r := e.must("snapshots"); strings.Contains(r.stdout, "forgotten") {
		t.Fatalf("the pruned source still counts forgotten snapshots\n%s", r)
	}

	r := e.must("-r", aLoc, "snapshots")
	if !strings.HasSuffix(strings.TrimSpace(r.stdout), "1 forgotten snapshot still has its data here: list it with 'cairn snapshots --forgotten'") {
		t.Fatalf("plain snapshots on the append-only copy\n%s", r)
	}
	ids := func(args ...string) []string {
		t.Helper()
		var list []map[string]any
		out := e.must(append([]string{"-r", aLoc, "--json", "snapshots"}, args...)...).stdout
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var ids []string
		for _, sn := range list {
			ids = append(ids, sn["id"].(string))
		}
		return ids
	}
	if got := ids(); len(got) != 1 || got[0] == gone {
		t.Fatalf("--json lists %v", got)
	}
	if got := ids("--forgotten"); len(got) != 1 || got[0] != gone {
		t.Fatalf("--forgotten lists %v, want %s", got, gone)
	}
	if got := ids("--all"); len(got) != 2 || got[0] != gone {
		t.Fatalf("--all lists %v", got)
	}
	target := filepath.Join(e.dir, "restored")
	e.must("-r", aLoc, "restore", gone[:8], "--target", target)
	if _, err := os.Stat(filepath.Join(target, f.data, "a")); err != nil {
		t.Fatalf("the forgotten snapshot did not restore: %v", err)
	}
	if r := e.run("-r", aLoc, "snapshots", "--forgotten", "--all"); r.code != 1 {
		t.Fatalf("--forgotten with --all: want exit 1\n%s", r)
	}
}
