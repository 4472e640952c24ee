package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/mem"
)

// Open records the use of its cache folder in the folder's modification
// time, by the repository's clock: that is what "cairn cache" shows as
// last used and judges old by.
func TestOpenTouchesCache(t *testing.T) {
	root := t.TempDir()
	be := mem.New()
	r := testInit(t, be, InitOptions{Options: Options{CacheDir: root}})
	dir := filepath.Join(root, r.Config().ID)
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 7, 8, 9, 10, 0, time.UTC)
	testOpen(t, be, Options{CacheDir: root, Now: func() time.Time { return now }})
	caches, err := ListCaches(root, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(caches) != 1 || caches[0].ID != r.Config().ID || !caches[0].LastUsed.Equal(now) || caches[0].Size != -1 {
		t.Fatalf("caches %+v, want one of %s last used %v, size -1", caches, r.Config().ID, now)
	}
}

func TestListAndRemoveCaches(t *testing.T) {
	root := t.TempDir()
	idA, idB := strings.Repeat("a", 64), strings.Repeat("0b", 32)
	for name, size := range map[string]int{
		idA + "/index/x":               100,
		idA + "/data/y":                23,
		idA + "/locks.json":            7,
		idB + "/index/z":               5,
		"CACHEDIR.TAG":                 10,
		"not-a-repo/file":              1000,
		strings.Repeat("A", 64) + "/f": 1, // upper case: not a repository ID
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(root, idB, "link")); err != nil {
		t.Fatal(err)
	}
	used := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, idB), used, used); err != nil {
		t.Fatal(err)
	}
	caches, err := ListCaches(root, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(caches) != 2 || caches[0].ID != idB || caches[1].ID != idA {
		t.Fatalf("caches %+v, want %s and %s", caches, idB, idA)
	}
	if caches[0].Size != 5 || caches[1].Size != 130 {
		t.Errorf("sizes %d and %d, want 5 and 130 (the symlink not followed)", caches[0].Size, caches[1].Size)
	}
	if !caches[0].LastUsed.Equal(used) {
		t.Errorf("last used %v, want %v", caches[0].LastUsed, used)
	}
	now := used.Add(31 * 24 * time.Hour)
	if !caches[0].Old(now, 30*24*time.Hour) || caches[0].Old(now, 32*24*time.Hour) {
		t.Error("Old does not compare the age with the maximum")
	}

	if err := RemoveCache(root, "not-a-repo"); err == nil {
		t.Fatal("removed a folder whose name is not a repository ID")
	}
	if err := RemoveCache(root, "../"+idA[3:]); err == nil {
		t.Fatal("removed a path outside the cache")
	}
	if err := RemoveCache(root, idB); err != nil {
		t.Fatal(err)
	}
	caches, err = ListCaches(root, false)
	if err != nil || len(caches) != 1 || caches[0].ID != idA {
		t.Fatalf("after removing %s: %+v, %v", idB, caches, err)
	}
	for _, keep := range []string{"CACHEDIR.TAG", "not-a-repo/file"} {
		if _, err := os.Stat(filepath.Join(root, keep)); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
	if c, err := ListCaches(filepath.Join(root, "missing"), true); err != nil || len(c) != 0 {
		t.Errorf("missing root: %v, %v", c, err)
	}
}
