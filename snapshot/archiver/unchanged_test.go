package archiver

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/pack"
)

// TestUnchangedTreesNotReencoded: a backup of a tree unchanged since its
// parent reuses the parent's tree blobs without saving any, and gets the
// same root; a change in one file gives new trees on its path only, and
// the result equals a backup without a parent.
func TestUnchangedTreesNotReencoded(t *testing.T) {
	dir := t.TempDir()
	for i, p := range []string{"a/1", "a/2", "b/c/3", "b/c/4", "b/5", "6"} {
		writeFile(t, filepath.Join(dir, p), randomBytes(uint64(i), 1000+i))
	}
	repo := newFakeRepo()
	// The first backup's listing updates the folders' atimes (relatime),
	// so the tree that stays unchanged is the second one.
	zeroth, _ := snap(t, newArchiver(t, repo, Options{}), dir)
	first, _ := snap(t, newArchiver(t, repo, Options{Parent: zeroth}), dir)

	savesBefore := repo.saves[pack.TreeBlob]
	again, _ := snap(t, newArchiver(t, repo, Options{Parent: first}), dir)
	if again != first {
		t.Fatalf("unchanged backup has root %s, parent %s", again.Str(), first.Str())
	}
	if n := repo.saves[pack.TreeBlob] - savesBefore; n != 0 {
		t.Errorf("unchanged backup saved %d trees, want 0", n)
	}

	// Change one file's mtime: trees of b/c, b and the path above change.
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "b/c/3"), old, old); err != nil {
		t.Fatal(err)
	}
	savesBefore = repo.saves[pack.TreeBlob]
	changed, _ := snap(t, newArchiver(t, repo, Options{Parent: first}), dir)
	if changed == first {
		t.Fatal("a changed file left the root tree unchanged")
	}
	depth := len(splitPath(dir)) // trees from "/" down to dir
	if n, want := repo.saves[pack.TreeBlob]-savesBefore, depth+1+2; n != want {
		t.Errorf("saved %d trees after one change, want %d (the path from / to b/c)", n, want)
	}
	fresh, _ := snap(t, newArchiver(t, newFakeRepo(), Options{}), dir)
	if fresh != changed {
		t.Errorf("backup with a parent has root %s, without %s", changed.Str(), fresh.Str())
	}
}
