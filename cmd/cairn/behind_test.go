package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckCopyBehind checks a friend's copy (a local folder) that is
// merely behind the repository it is mirrored from: check says by how many
// entries and exits 0, and so do the commands that read snapshots. A copy
// whose own log moved backwards since this device read it there, and a
// copy that holds entries this device never saw, are still damage.
func TestCheckCopyBehind(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(data, "f"), "one\n")
	e.init()
	e.must("backup", data) // writer entry, then the snapshot: sequence 2
	friend := filepath.Join(e.dir, "friend")
	e.must("mirror", friend)
	if r := e.must("-r", friend, "check"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check of an up-to-date copy\n%s", r)
	}

	for _, content := range []string{"two\n", "three\n"} {
		e.writeFile(filepath.Join(data, "f"), content)
		e.must("backup", data)
	}
	// The copy has sequence 2, this device has seen 4 at its home.
	r := e.run("-r", friend, "check")
	if r.code != 0 || !strings.Contains(r.stdout, "warning: log is behind by 2 entries: newest entry has sequence 2, this client has seen sequence 4 at another location") ||
		!strings.Contains(r.stdout, "no damage found (1 warning(s))") || strings.Contains(r.stdout, "rolled back") {
		t.Fatalf("check of a copy that is behind: want exit 0 and \"behind by 2 entries\"\n%s", r)
	}
	r = e.must("-r", friend, "snapshots")
	if !strings.Contains(r.stderr, "cairn: warning: snapshot log: log is behind by 2 entries") || strings.Contains(r.stderr, "rolled back") {
		t.Fatalf("snapshots of a copy that is behind\n%s", r)
	}
	// Prune does not decide what to delete from a log that is behind.
	if r := e.run("-r", friend, "prune"); r.code != exitError || !strings.Contains(r.stderr, "behind what this device has seen elsewhere") {
		t.Fatalf("prune of a copy that is behind\n%s", r)
	}
	// The home repository was not affected by reading the copy.
	if r := e.must("check"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check of the home repository\n%s", r)
	}

	// Brought up to date, read here at sequence 4, then rolled back by
	// the friend: that is damage, and the copy serves less than its mirror
	// record says it held, so the status is the rolled-back one (21).
	e.must("mirror", friend)
	if r := e.must("-r", friend, "check"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check after the mirror\n%s", r)
	}
	entries := e.logEntries()
	newest := entries[len(entries)-1]
	saved, err := os.ReadFile(filepath.Join(friend, "log", newest.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(friend, "log", newest.ID)); err != nil {
		t.Fatal(err)
	}
	r = e.run("-r", friend, "check")
	if r.code != exitAcks || !strings.Contains(r.stdout, "error: log rolled back: newest entry has sequence 3, but this client saw sequence 4 before") ||
		!strings.Contains(r.stderr, "rolled back or frozen") {
		t.Fatalf("check of a copy rolled back since it was read there: want exit %d\n%s", exitAcks, r)
	}
	e.writeFile(filepath.Join(friend, "log", newest.ID), string(saved))

	// Another device writes straight into a second copy that is behind:
	// its log is not a prefix of what this device has seen.
	other := filepath.Join(e.dir, "other")
	e.must("mirror", other)
	e.writeFile(filepath.Join(data, "f"), "four\n")
	e.must("backup", data) // home: sequence 5
	otherDevice := filepath.Join(e.dir, "other-device")
	e.must("--config-dir", otherDevice, "-r", other, "backup", data)
	r = e.run("-r", other, "check")
	if r.code != exitError || !strings.Contains(r.stdout, "error: log is not a prefix of what this client has seen") {
		t.Fatalf("check of a copy holding entries this device never saw: want exit 1\n%s", r)
	}
}
