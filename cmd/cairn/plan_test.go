package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// folderFiles returns the files of one folder of the repository (packs
// under data/ sit in subfolders) by name, with their sizes.
func folderFiles(t *testing.T, repoDir, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(repoDir, dir), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[d.Name()] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// gone returns the names of before that after lacks, sorted.
func gone(before, after map[string]int64) []string {
	var out []string
	for name := range before {
		if _, ok := after[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// oneJSON parses stdout as exactly one JSON document.
func oneJSON(t *testing.T, r result) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document\n%s", r)
	}
	return m
}

// plannedPacks returns the packs a prune plan deletes (whole or after a
// repack), sorted, each checked against its size in sizes.
func plannedPacks(t *testing.T, plan map[string]any, sizes map[string]int64) []string {
	t.Helper()
	var out []string
	for _, key := range []string{"delete", "repack"} {
		for _, p := range plan[key].([]any) {
			pk := p.(map[string]any)
			id := pk["id"].(string)
			if size := int64(pk["size"].(float64)); size != sizes[id] {
				t.Errorf("pack %s: the plan says %d bytes, the file has %d", id, size, sizes[id])
			}
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func toStringsSorted(v any) []string {
	out := toStrings(v)
	slices.Sort(out)
	return out
}

// TestPruneDryRunIsThePlan: "prune --dry-run --json" prints the plan the
// real prune then prints and carries out: the packs and index files it
// deletes are exactly the planned ones, with the planned sizes.
func TestPruneDryRunIsThePlan(t *testing.T) {
	e := newTestEnv(t)
	data := maintFixture(t, e, 300_000)
	packsBefore, indexBefore := folderFiles(t, e.repo, "data"), folderFiles(t, e.repo, "index")

	dry := oneJSON(t, e.must("--json", "prune", "--dry-run", "--max-unused", "0%"))
	if dry["dry_run"] != true || dry["done"] != nil {
		t.Fatalf("dry run: %v", dry)
	}
	if after := folderFiles(t, e.repo, "data"); !reflect.DeepEqual(after, packsBefore) {
		t.Fatal("the dry run changed the packs")
	}
	planned := jsonObject(t, dry, "plan")
	wantPacks := plannedPacks(t, planned, packsBefore)
	if len(wantPacks) == 0 {
		t.Fatalf("the fixture leaves nothing to prune: %v", planned)
	}

	real := oneJSON(t, e.must("--json", "prune", "--max-unused", "0%"))
	plan, done := jsonObject(t, real, "plan"), jsonObject(t, real, "done")
	// The log's cutoff is now less the retention: the runs' nows differ.
	delete(jsonObject(t, plan, "log"), "cutoff")
	delete(jsonObject(t, planned, "log"), "cutoff")
	if !reflect.DeepEqual(plan, planned) {
		t.Errorf("the prune's plan differs from the dry run's:\n%v\n%v", plan, planned)
	}
	packsAfter, indexAfter := folderFiles(t, e.repo, "data"), folderFiles(t, e.repo, "index")
	if got := gone(packsBefore, packsAfter); !slices.Equal(got, wantPacks) {
		t.Errorf("deleted packs %v, planned %v", got, wantPacks)
	}
	var deleted int64
	for _, id := range wantPacks {
		deleted += packsBefore[id]
	}
	if done["deleted_bytes"].(float64) != float64(deleted) || planned["delete_bytes"].(float64) != float64(deleted) {
		t.Errorf("deleted %v bytes, plan said %v, the files held %d", done["deleted_bytes"], planned["delete_bytes"], deleted)
	}
	if got, want := gone(indexBefore, indexAfter), toStringsSorted(jsonObject(t, planned, "index")["replace"]); !slices.Equal(got, want) {
		t.Errorf("deleted index files %v, planned %v", got, want)
	}
	e.must("check", "--read-data")
	restoreMatches(t, e, data)
}

// forgetPruneJSON parses "forget --prune --json": one JSON document,
// restic's array of groups, the last of which holds the prune.
func forgetPruneJSON(t *testing.T, r result) (groups []map[string]any, prune map[string]any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&groups); err != nil || len(groups) == 0 {
		t.Fatalf("not a JSON array of groups: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document\n%s", r)
	}
	for _, g := range groups[:len(groups)-1] {
		if g["prune"] != nil {
			t.Fatalf("a group other than the last holds the prune\n%s", r)
		}
	}
	return groups, jsonObject(t, groups[len(groups)-1], "prune")
}

// TestForgetPruneDryRunIsThePlan: "forget --prune --json" prints one JSON
// document (restic's groups, the last holding the prune); with --dry-run, the prune
// part is planned for the snapshots the forget would leave, changes
// nothing, and is what the real run then does.
func TestForgetPruneDryRunIsThePlan(t *testing.T) {
	e := newTestEnv(t)
	data := maintFixture(t, e, 200_000)
	e.must("backup", data)
	e.writeFile(filepath.Join(data, "later"), strings.Repeat("later data ", 30_000))
	e.must("backup", data)
	before := withoutLocks(listing(t, e.repo))

	groups, dryPrune := forgetPruneJSON(t, e.must("--json", "forget", "--keep-last", "1", "--prune", "--dry-run"))
	if after := withoutLocks(listing(t, e.repo)); after != before {
		t.Fatal("forget --prune --dry-run changed the repository")
	}
	if n := len(e.snapshotsJSON()); n != 3 {
		t.Fatalf("%d snapshots after a dry run, want 3", n)
	}
	if len(groups) != 1 || len(groups[0]["remove"].([]any)) != 2 {
		t.Fatalf("forget part: %v", groups)
	}
	if dryPrune["dry_run"] != true {
		t.Fatalf("prune part: %v", dryPrune)
	}
	packsBefore := folderFiles(t, e.repo, "data")
	wantPacks := plannedPacks(t, jsonObject(t, dryPrune, "plan"), packsBefore)
	if len(wantPacks) == 0 {
		t.Fatal("the dry run plans to delete nothing: the older snapshot's data is still used")
	}

	r := e.must("--json", "forget", "--keep-last", "1", "--prune")
	_, prune := forgetPruneJSON(t, r)
	plan := jsonObject(t, prune, "plan")
	dryPlan := jsonObject(t, dryPrune, "plan")
	delete(plan, "log") // the forget adds a log entry after the dry run
	delete(dryPlan, "log")
	if !reflect.DeepEqual(plan, dryPlan) {
		t.Errorf("the prune's plan differs from the dry run's:\n%v\n%v", plan, dryPlan)
	}
	if got := gone(packsBefore, folderFiles(t, e.repo, "data")); !slices.Equal(got, wantPacks) {
		t.Errorf("deleted packs %v, planned %v", got, wantPacks)
	}
	if !bytes.Contains([]byte(r.stdout), []byte(`"done":`)) {
		t.Errorf("no done part\n%s", r)
	}
	e.must("check", "--read-data")
}

// TestRepairIndexDryRun: "repair index --dry-run" prints the plan and
// changes nothing; the repair then deletes the planned index files.
func TestRepairIndexDryRun(t *testing.T) {
	e := newTestEnv(t)
	maintFixture(t, e, 100_000)
	before := withoutLocks(listing(t, e.repo))
	r := e.must("repair", "index", "--dry-run")
	if !strings.Contains(r.stdout, "would index") || withoutLocks(listing(t, e.repo)) != before {
		t.Fatalf("repair index --dry-run\n%s", r)
	}
	dry := oneJSON(t, e.must("--json", "repair", "index", "--dry-run"))
	plan := jsonObject(t, dry, "plan")
	indexBefore := folderFiles(t, e.repo, "index")
	real := oneJSON(t, e.must("--json", "repair", "index"))
	if !reflect.DeepEqual(jsonObject(t, real, "plan"), plan) {
		t.Errorf("plans differ:\n%v\n%v", real["plan"], plan)
	}
	if got := gone(indexBefore, folderFiles(t, e.repo, "index")); !slices.Equal(got, toStringsSorted(plan["replace"])) {
		t.Errorf("deleted index files %v, planned %v", got, plan["replace"])
	}
	if n := jsonObject(t, real, "done")["index_files_written"].(float64); n != plan["index_files"].(float64) {
		t.Errorf("wrote %v index files, planned %v", n, plan["index_files"])
	}
	e.must("check", "--read-data")
}
