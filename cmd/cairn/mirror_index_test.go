package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMirrorPruneKeepsLostIndexFile: an index file lost from the source
// (deleted by accident; its packs are still there) must not be pruned
// from a good copy too, which would leave the copy's snapshots without an
// index. mirror --prune exits 1 naming it and the cure, and the copy keeps
// it and checks clean, and the dry run's plan shows it kept (lost_index
// with --json); after "repair index" at the source the next mirror
// --prune removes it, and the copy still checks clean and restores.
func TestMirrorPruneKeepsLostIndexFile(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	e.init()
	writeRandom(t, filepath.Join(data, "a"), 300_000, 1)
	e.must("backup", data)
	before := map[string]bool{}
	for rel := range repoFiles(t, e.repo) {
		before[rel] = true
	}
	writeRandom(t, filepath.Join(data, "b"), 300_000, 2)
	e.must("backup", data)
	friend := filepath.Join(e.dir, "friend")
	e.must("mirror", friend)

	var lost string
	for rel := range repoFiles(t, e.repo) {
		if strings.HasPrefix(rel, "index/") && !before[rel] {
			lost = rel
		}
	}
	if lost == "" {
		t.Fatal("the second backup wrote no index file")
	}
	if err := os.Remove(filepath.Join(e.repo, lost)); err != nil {
		t.Fatal(err)
	}
	// The dry run shows it: the plan keeps it and removes nothing.
	r := e.run("mirror", "--dry-run", "--prune", friend)
	if r.code != exitError || !strings.Contains(r.stdout, "would keep "+lost+": the source lost it") ||
		!strings.Contains(r.stdout, "would remove nothing") || !strings.Contains(lastLine(r.stderr), "repair index") {
		t.Fatalf("mirror --dry-run --prune from a source that lost an index file: want exit 1 and the plan keeping %s\n%s", lost, r)
	}
	r = e.run("--json", "mirror", "--dry-run", "--prune", friend)
	var plan map[string]any
	for _, m := range jsonLines(t, r.stdout) {
		if m["message_type"] == "plan" {
			plan = m
		}
	}
	if l, _ := plan["lost_index"].([]any); r.code != exitError || len(l) != 1 || l[0] != lost || plan["prune_skipped"] != true ||
		len(plan["remove"].([]any)) != 0 {
		t.Fatalf("mirror --json --dry-run --prune: want a plan with lost_index [%s] and no removal\n%s", lost, r)
	}
	r = e.run("mirror", "--prune", friend)
	if r.code != exitError || !strings.Contains(lastLine(r.stderr), lost) || !strings.Contains(lastLine(r.stderr), "repair index") ||
		!strings.Contains(lastLine(r.stderr), "removed nothing") {
		t.Fatalf("mirror --prune from a source that lost an index file: want exit 1 naming %s\n%s", lost, r)
	}
	if _, ok := repoFiles(t, friend)[lost]; !ok {
		t.Fatalf("mirror --prune removed %s from the copy", lost)
	}
	if r := e.must("-r", friend, "check"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check of the copy\n%s", r)
	}

	e.must("repair", "index")
	e.must("mirror", "--prune", friend)
	if _, ok := repoFiles(t, friend)[lost]; ok {
		t.Fatalf("after repair index, mirror --prune kept %s", lost)
	}
	if r := e.must("-r", friend, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check of the copy after repair index and mirror --prune\n%s", r)
	}
	target := filepath.Join(e.dir, "restored")
	e.must("-r", friend, "restore", "latest", "--target", target)
	compareTrees(t, data, filepath.Join(target, data), false)
}
