package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPruneDuringBackupIsCaught is issue 11 item 1 (c): a prune that ignores
// the backup's lock (here: its lock was removed with unlock --remove-all)
// deletes the packs the backup deduplicated against, between the
// deduplication and the snapshot. The backup must not exit 0 with a
// snapshot that cannot be restored: it uploads the lost data again.
func TestPruneDuringBackupIsCaught(t *testing.T) {
	e := newTestEnv(t)
	data := lockFixture(t, e)
	before := repoPacks(t, e.repo)

	b := e.startPaused("before-snapshot", nil, "backup", data)
	e.must("unlock", "--remove-all")
	r := e.must("prune")
	after := repoPacks(t, e.repo)
	deleted := 0
	for name := range before {
		if !after[name] {
			deleted++
		}
	}
	if deleted == 0 {
		t.Fatalf("the fixture is wrong: prune deleted no pack\n%s", r)
	}
	res := b.resume()
	if res.code == 0 {
		target := filepath.Join(e.dir, "restored")
		e.must("restore", "latest", "--target", target)
		compareTrees(t, data, filepath.Join(target, data), false)
		e.must("check", "--read-data")
		if !strings.Contains(res.stderr, "missing") {
			t.Errorf("backup did not say it found packs missing\n%s", res)
		}
		return
	}
	if res.code != 1 {
		t.Fatalf("backup: want exit 0 (data uploaded again) or 1\n%s", res)
	}
	checkOneErrorLine(t, res, `missing`)
	if n := len(e.snapshotsJSON()); n != 0 {
		t.Fatalf("a failed backup left %d snapshot(s)", n)
	}
}

// TestBackupAfterLostPack is issue 11 item 1: a pack lost from the
// repository, then a backup of the same data. The backup must not
// deduplicate against the lost data: it uploads it again, so the new
// snapshot restores byte for byte, and so does the old one, which shares
// the data; check then finds nothing lost, and after prune nothing at
// all. On the old code the backup exited 0 with a snapshot that did not
// restore.
func TestBackupAfterLostPack(t *testing.T) {
	e := newTestEnv(t)
	data := filepath.Join(e.dir, "data")
	for i, size := range []int{3 << 20, 700 << 10, 5 << 10} {
		writeRandom(t, filepath.Join(data, "f"+string(rune('a'+i))), size, uint64(10+i))
	}
	e.init()
	e.must("backup", data)
	old := e.snapshotsJSON()[0]["id"].(string)

	// Lose the largest pack: it holds file data.
	var biggest string
	var size int64
	for name := range repoPacks(t, e.repo) {
		fi, err := os.Stat(filepath.Join(e.repo, "data", name[:2], name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > size {
			biggest, size = name, fi.Size()
		}
	}
	if err := os.Remove(filepath.Join(e.repo, "data", biggest[:2], biggest)); err != nil {
		t.Fatal(err)
	}
	if r := e.run("check"); r.code != 1 || !strings.Contains(r.stdout, "data/"+biggest+": missing") {
		t.Fatalf("check after losing a pack: want exit 1 naming it\n%s", r)
	}

	r := e.must("backup", data)
	if !strings.Contains(r.stderr, "missing from the repository") {
		t.Errorf("backup did not warn about the lost pack\n%s", r)
	}
	for _, sn := range []string{"latest", old} {
		target := filepath.Join(e.dir, "restored-"+sn)
		e.must("restore", sn, "--target", target)
		compareTrees(t, data, filepath.Join(target, data), false)
	}
	r = e.must("check", "--read-data")
	if !strings.Contains(r.stdout, "data/"+biggest+": missing, but each of") || !strings.Contains(r.stdout, "no damage found (1 warning(s))") {
		t.Fatalf("check after the backup: want the lost pack as the one warning\n%s", r)
	}
	e.must("prune")
	if r := e.must("check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check after prune\n%s", r)
	}
}
