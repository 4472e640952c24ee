package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMirrorPruneKeepsPackLostWithItsIndex is the finding of the
// 1,000-cycle soak of 2026-12-07 at cycle 503: the source loses a pack and
// the only index file listing it together. Nothing there names the pack
// any more, yet its snapshot needs it. mirror --prune must keep it at the
// copy and name it (exit 1); repair packs --from the copy must fetch it
// and the index file back; the source then checks clean and restores
// exactly. With the tree pack lost too, the data pack is found only once
// the trees are back: repair packs works in rounds.
func TestMirrorPruneKeepsPackLostWithItsIndex(t *testing.T) {
	t.Parallel()
	for _, withTrees := range []bool{false, true} {
		t.Run(map[bool]string{false: "data", true: "data and trees"}[withTrees], func(t *testing.T) {
			t.Parallel()
			testPackLostWithItsIndex(t, withTrees)
		})
	}
}

func testPackLostWithItsIndex(t *testing.T, withTrees bool) {
	e := newTestEnv(t)
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

	var lostPack, lostIndex, treePack string
	for _, p := range packPaths(t, e.repo) {
		fi, err := os.Stat(filepath.Join(e.repo, p))
		switch {
		case err != nil || slices.Contains(beforePacks, p):
		case fi.Size() > 500_000:
			lostPack = p
		default:
			treePack = p
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
	lose := []string{lostPack, lostIndex}
	if withTrees {
		if treePack == "" {
			t.Fatal("the second backup added no tree pack")
		}
		lose = append(lose, treePack)
	}
	for _, p := range lose {
		if err := os.Remove(filepath.Join(e.repo, p)); err != nil {
			t.Fatal(err)
		}
	}
	lostName := "data/" + filepath.Base(lostPack)

	if withTrees {
		// The data pack is not known until its trees are back.
		lostName = "data/" + filepath.Base(treePack)
	}
	r := e.run("mirror", "--prune", copyDir)
	if r.code != exitError || !strings.Contains(r.stderr, lostName) {
		t.Errorf("mirror --prune from a source that lost a pack with its index: want exit 1 naming %s\n%s", lostName, r)
	}
	for _, p := range lose {
		if _, err := os.Stat(filepath.Join(copyDir, p)); err != nil {
			t.Fatalf("mirror --prune removed %s from the copy: %v", p, err)
		}
	}
	e.must("repair", "packs", "--from", copyDir)
	if r := e.run("check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check after repair packs --from the copy\n%s", r)
	}
	target := filepath.Join(e.dir, "restored")
	e.must("restore", "latest", "--target", target)
	compareTrees(t, data, filepath.Join(target, data), false)
}
