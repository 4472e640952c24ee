package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cacheSize adds up the regular files under dir, as "cairn cache" should.
func cacheSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCache is issue 13's cache command: two repositories' caches listed
// with their sizes and last use, the one unused for 40 days marked old
// and the only one --cleanup removes; a command using a repository marks
// its cache used.
func TestCache(t *testing.T) {
	e := newTestEnv(t)
	root := filepath.Join(e.dir, "home", ".cache", "cairn")
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "f"), 100<<10, 1)
	repoB := filepath.Join(e.dir, "repo-b")
	e.init()
	e.must("backup", data)
	e.must("-r", repoB, "init")
	e.must("-r", repoB, "backup", data)
	ids := map[string]string{}
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, ent := range ents {
		if ent.IsDir() {
			dirs = append(dirs, ent.Name())
		}
	}
	if len(dirs) != 2 {
		t.Fatalf("cache folders %v, want one per repository", dirs)
	}
	// Which folder is whose: use repository B, after aging both, and
	// see which one it marks.
	old := time.Now().Add(-40 * 24 * time.Hour)
	for _, d := range dirs {
		if err := os.Chtimes(filepath.Join(root, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	e.must("-r", repoB, "snapshots")
	for _, d := range dirs {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().After(old.Add(time.Hour)) {
			ids["b"] = d
		} else {
			ids["a"] = d
		}
	}
	if ids["a"] == "" || ids["b"] == "" {
		t.Fatalf("using repository B did not mark exactly its cache as used: %v", ids)
	}

	r := e.must("cache")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "Repo ID") || !strings.HasSuffix(lines[5], "2 cache(s) in "+root) {
		t.Fatalf("cache listing:\n%s", r)
	}
	row := func(id string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, id[:10]) {
				return l
			}
		}
		t.Fatalf("no row for %s\n%s", id, r)
		return ""
	}
	rowA, rowB := row(ids["a"]), row(ids["b"])
	if !strings.Contains(rowA, "40 days ago") || !strings.Contains(rowA, " yes ") {
		t.Errorf("repository A's cache, unused for 40 days, not shown old: %q", rowA)
	}
	if !strings.Contains(rowB, "0 days ago") || strings.Contains(rowB, "yes") {
		t.Errorf("repository B's cache, just used, shown old: %q", rowB)
	}
	for _, k := range []string{"a", "b"} {
		if want := formatBytes(uint64(cacheSize(t, filepath.Join(root, ids[k])))); !strings.HasSuffix(row(ids[k]), want) {
			t.Errorf("row %q, want size %s", row(ids[k]), want)
		}
	}

	r = e.must("--json", "cache", "--max-age", "50")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("cache --json: %v\n%s", err, r)
	}
	for _, c := range list {
		if c["old"] != false || c["size"].(float64) != float64(cacheSize(t, c["path"].(string))) || c["removed"] != nil {
			t.Errorf("cache --json --max-age 50: %v", c)
		}
	}
	r = e.must("cache", "--no-size")
	if strings.Contains(r.stdout, "Size") || strings.Contains(r.stdout, "KiB") {
		t.Errorf("--no-size still shows sizes\n%s", r)
	}

	r = e.must("cache", "--cleanup")
	if !strings.Contains(r.stdout, "removed old cache "+ids["a"]) || !strings.Contains(r.stdout, "1 old cache(s) removed") {
		t.Errorf("cleanup output\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(root, ids["a"])); !os.IsNotExist(err) {
		t.Errorf("old cache still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, ids["b"], "index")); err != nil {
		t.Errorf("the cache in use was touched by cleanup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "CACHEDIR.TAG")); err != nil {
		t.Errorf("CACHEDIR.TAG: %v", err)
	}
	// Repository A works as before, and makes its cache again.
	e.must("restore", "latest", "--target", filepath.Join(e.dir, "restored"))
	if _, err := os.Stat(filepath.Join(root, ids["a"])); err != nil {
		t.Errorf("repository A's cache not made again: %v", err)
	}

	for _, tc := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"cache", "--max-age", "-1"}, `--max-age -1: want a number of days`},
		{[]string{"cache", "x"}, `cache: unexpected argument "x"`},
		{[]string{"cache", "--no-cache"}, `--no-cache: there is no cache folder`},
	} {
		r := e.run(tc.args...)
		if r.code != exitError {
			t.Errorf("want exit 1\n%s", r)
			continue
		}
		checkOneErrorLine(t, r, tc.pattern)
	}
}
