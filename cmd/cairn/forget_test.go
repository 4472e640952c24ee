package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestForget(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	mkdirAll(t, src)
	for i := 0; i < 3; i++ {
		e.writeFile(filepath.Join(src, "f"), strings.Repeat("x", i+1))
		e.must("backup", "--tag", "t", src)
	}
	other := filepath.Join(e.dir, "other")
	mkdirAll(t, other)
	e.must("backup", other)

	// No policy and no IDs: refused, one line.
	r := e.run("forget")
	if r.code != 1 {
		t.Fatalf("forget without a policy: %s", r)
	}
	checkOneErrorLine(t, r, "nothing to forget")
	r = e.run("forget", "--keep-daily", "many")
	checkOneErrorLine(t, r, "keep-daily")

	// Dry run changes nothing.
	e.must("forget", "--keep-last", "1", "--dry-run")
	if n := len(e.snapshotsJSON()); n != 4 {
		t.Fatalf("dry run forgot snapshots: %d left", n)
	}

	// --json prints restic's groups with keep, remove and reasons.
	r = e.must("--json", "forget", "--keep-last", "1")
	var groups []struct {
		Host    string           `json:"host"`
		Paths   []string         `json:"paths"`
		Keep    []map[string]any `json:"keep"`
		Remove  []map[string]any `json:"remove"`
		Reasons []struct {
			Matches []string `json:"matches"`
		} `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil {
		t.Fatalf("forget --json: %v\n%s", err, r)
	}
	if len(groups) != 2 {
		t.Fatalf("want 2 groups (two path sets), got %d\n%s", len(groups), r)
	}
	removed := 0
	for _, g := range groups {
		if len(g.Keep) != 1 || len(g.Reasons) != 1 || len(g.Reasons[0].Matches) == 0 {
			t.Fatalf("group %v: keep %d reasons %v", g.Paths, len(g.Keep), g.Reasons)
		}
		removed += len(g.Remove)
	}
	if removed != 2 {
		t.Fatalf("removed %d, want 2", removed)
	}
	snaps := e.snapshotsJSON()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots left, want 2", len(snaps))
	}

	// Forget by ID prefix, then prune frees the data and check is clean.
	id := snaps[1]["short_id"].(string) // the backup of "other", the newest
	e.must("forget", "--prune", id)
	if n := len(e.snapshotsJSON()); n != 1 {
		t.Fatalf("%d snapshots left after forget by ID", n)
	}
	e.must("check", "--read-data")
	// Forgetting it again (a cron job rerun after a kill) is a note, not
	// an error, and the prune still runs; an unknown ID stays an error.
	if r := e.must("forget", "--prune", id); !strings.Contains(r.stdout, "already forgotten") {
		t.Fatalf("forget of a forgotten snapshot must say so\n%s", r)
	}
	if r := e.run("forget", "0123abcd"); r.code != 1 {
		t.Fatalf("forget of an unknown ID must fail\n%s", r)
	}
	r = e.must("restore", "latest", "--target", filepath.Join(e.dir, "restored"))
	if !sameContent(t, filepath.Join(src, "f"), filepath.Join(e.dir, "restored", src, "f")) {
		t.Fatal("latest snapshot does not restore after forget --prune")
	}
}

func mkdirAll(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
