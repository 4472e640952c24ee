package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMirrorPruneKeepsPackLostWithItsIndex is the open finding of the
// 1,000-cycle soak of 2026-12-07 (docs/reliability.md, known limits): the
// source loses a pack and the only index file listing it together.
// Nothing there names the pack any more, yet its snapshot needs it.
// mirror --prune must keep it at the copy and name it (exit 1); repair
// packs --from the copy must fetch it and the index file back; the source
// then checks clean and restores exactly. It FAILS today: this is the
// work left for issue 11.
func TestMirrorPruneKeepsPackLostWithItsIndex(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	e.init()
	writeRandom(t, filepath.Join(data, "f0"), 1<<20, 20)
	e.must("backup", data)
	beforePacks := packPaths(t, e.repo)
	beforeIndex := dirNames(t, filepath.Join(e.repo, "index"))
	writeRandom(t, filepath.Join(data, "f1"), 1<<20, 21)
	e.must("backup", data)
	copyDir := filepath.Join(e.dir, "copy")
	e.must("mirror", copyDir)

	var lostPack, lostIndex string
	for _, p := range packPaths(t, e.repo) {
		if fi, err := os.Stat(filepath.Join(e.repo, p)); err == nil && fi.Size() > 500_000 && !slices.Contains(beforePacks, p) {
			lostPack = p
		}
	}
	for _, n := range dirNames(t, filepath.Join(e.repo, "index")) {
		if !slices.Contains(beforeIndex, n) {
			lostIndex = filepath.Join("index", n)
		}
	}
	if lostPack == "" || lostIndex == "" {
		t.Fatalf("the second backup added no data pack or index file (%q, %q)", lostPack, lostIndex)
	}
	for _, p := range []string{lostPack, lostIndex} {
		if err := os.Remove(filepath.Join(e.repo, p)); err != nil {
			t.Fatal(err)
		}
	}
	lostName := "data/" + filepath.Base(lostPack)

	r := e.run("mirror", "--prune", copyDir)
	if r.code != exitError || !strings.Contains(r.stderr, lostName) {
		t.Errorf("mirror --prune from a source that lost a pack with its index: want exit 1 naming %s\n%s", lostName, r)
	}
	for _, p := range []string{lostPack, lostIndex} {
		if _, err := os.Stat(filepath.Join(copyDir, p)); err != nil {
			t.Fatalf("mirror --prune removed %s from the copy: %v", p, err)
		}
	}
	e.run("repair", "packs", "--from", copyDir)
	if r := e.run("check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check after repair packs --from the copy\n%s", r)
	}
	target := filepath.Join(e.dir, "restored")
	e.must("restore", "latest", "--target", target)
	compareTrees(t, data, filepath.Join(target, data), false)
}
