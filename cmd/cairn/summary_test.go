package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quietDir makes a folder for a backup source whose ancestors rarely
// change: under /var/tmp, which test suites leave alone, unlike /tmp,
// where every test makes its folders. Without /var/tmp it is under e.dir.
func quietDir(t *testing.T, e *testEnv) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "cairn-test-")
	if err != nil {
		t.Logf("no /var/tmp (%v): the source lies under %s", err, e.dir)
		return filepath.Join(e.dir, "src")
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return filepath.Join(d, "src")
}

// dataSize is the total size of the files in the repository's data/.
func dataSize(t *testing.T, repo string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(repo, "data"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
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

// TestBackupDataAddedPacked is issue 12 item 3: a backup's summary, as
// printed and as stored in its snapshot, says how much it added to the
// repository after compression and encryption: data_added_packed is how
// much data/ grew (it was never set, so every snapshot stored 0), and 0
// for a backup that adds no blob.
func TestBackupDataAddedPacked(t *testing.T) {
	e := newTestEnv(t)
	src := quietDir(t, e)
	writeRandom(t, filepath.Join(src, "a"), 3<<20, 8)
	writeRandom(t, filepath.Join(src, "sub", "b"), 200<<10, 9)
	e.writeFile(filepath.Join(src, "sub", "c.txt"), strings.Repeat("compressible text\n", 20000))
	e.init()
	// check runs one backup and checks its printed and stored summary
	// against the growth of data/.
	check := func(i int) map[string]any {
		t.Helper()
		before := dataSize(t, e.repo)
		sum, _ := e.backupJSON(0, src)
		grown := dataSize(t, e.repo) - before
		if got := int64(num(t, sum, "data_added_packed")); got != grown {
			t.Fatalf("backup %d: data_added_packed %d, data/ grew by %d\n%v", i, got, grown, sum)
		}
		snaps := e.snapshotsJSON()
		stored, ok := snaps[len(snaps)-1]["summary"].(map[string]any)
		if !ok || int64(num(t, stored, "data_added_packed")) != grown {
			t.Fatalf("backup %d: stored summary %v, want data_added_packed %d", i, stored, grown)
		}
		return sum
	}
	first := check(1)
	if num(t, first, "data_added_packed") == 0 || num(t, first, "data_added") < 1<<20 {
		t.Fatalf("first backup: %v", first)
	}
	// The root tree records the folders above src, whose times change
	// when anyone makes a file in them: a later backup may store new
	// trees for them (quietDir keeps that rare). Nothing else changes, so
	// a few tries see one that adds no blob at all.
	for i := 2; i <= 10; i++ {
		sum := check(i)
		if num(t, sum, "data_blobs") != 0 {
			t.Fatalf("backup %d of an unchanged tree stored data: %v", i, sum)
		}
		if num(t, sum, "tree_blobs") == 0 {
			if num(t, sum, "data_added_packed") != 0 {
				t.Fatalf("backup %d added no blob but says data_added_packed %v", i, sum["data_added_packed"])
			}
			return
		}
		t.Logf("backup %d stored %v new trees (a folder above src changed)", i, sum["tree_blobs"])
	}
	t.Fatal("every backup of the unchanged tree stored new trees")
}
