package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fileState is a repository file of a local folder: its size and inode (a
// file stored anew gets a new inode: the local backend writes a temporary
// file and renames it).
type fileState struct {
	size  int64
	inode uint64
}

// repoStates maps the files of the repository folder dir, by their names
// in the repository ("data/<id>", "config"), to their states.
func repoStates(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	for rel := range repoFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		name := rel
		if top, _, ok := strings.Cut(rel, "/"); ok {
			name = top + "/" + filepath.Base(rel)
		}
		out[name] = fileState{size: fi.Size(), inode: fi.Sys().(*syscall.Stat_t).Ino}
	}
	return out
}

// planFiles returns the "file" and "size" of each element of a list in a
// mirror plan's JSON line.
func planFiles(t *testing.T, plan map[string]any, key string) map[string]int64 {
	t.Helper()
	list, ok := plan[key].([]any)
	if !ok {
		t.Fatalf("plan without a %q list: %v", key, plan)
	}
	out := map[string]int64{}
	for _, x := range list {
		m := x.(map[string]any)
		out[m["file"].(string)] = int64(m["size"].(float64))
	}
	return out
}

// TestMirrorDryRunIsThePlan: "mirror --dry-run --prune --json" prints the
// plan and changes nothing; the text dry run says the same; the mirror
// that follows stores exactly the files the plan copies, with the planned
// sizes, and removes exactly those it removes.
func TestMirrorDryRunIsThePlan(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	e.init()
	writeRandom(t, filepath.Join(data, "a"), 1<<20, 1)
	e.must("backup", data)
	writeRandom(t, filepath.Join(data, "b"), 1<<20, 2)
	e.must("backup", data)
	friend := filepath.Join(e.dir, "friend")
	e.must("mirror", friend)
	// The source drops a's data (forget and prune) and backs up new
	// data; at the friend's, a pack the source keeps is cut short.
	if err := os.Remove(filepath.Join(data, "a")); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, filepath.Join(data, "c"), 1<<20, 3)
	e.must("backup", data)
	e.must("forget", "--keep-last", "1")
	e.must("prune")
	kept := repoFiles(t, e.repo)
	cut := ""
	for rel := range repoFiles(t, friend) {
		if strings.HasPrefix(rel, "data/") && kept[rel] > 500_000 {
			cut = rel
		}
	}
	if cut == "" {
		t.Fatal("no large pack the source kept at the friend's")
	}
	if err := os.Truncate(filepath.Join(friend, cut), 1000); err != nil {
		t.Fatal(err)
	}

	before := repoStates(t, friend)
	var plan map[string]any
	for _, m := range jsonLines(t, e.must("--json", "mirror", "--dry-run", "--prune", friend).stdout) {
		if m["message_type"] == "plan" {
			plan = m
		}
	}
	if plan == nil || plan["destination"] != friend || plan["prune"] != true {
		t.Fatalf("no plan for %s in the dry run's JSON", friend)
	}
	toCopy, toRemove := planFiles(t, plan, "copy"), planFiles(t, plan, "remove")
	var pruned int
	for _, x := range plan["remove"].([]any) {
		if x.(map[string]any)["reason"] == "pack_pruned" {
			pruned++
		}
	}
	if len(toCopy) == 0 || pruned == 0 {
		t.Fatalf("the plan copies %v and removes %v: want new files copied and a's packs removed", toCopy, toRemove)
	}
	if after := repoStates(t, friend); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the dry run changed the copy")
	}
	text := e.must("mirror", "--dry-run", "--prune", friend).stdout
	for _, want := range []string{fmt.Sprintf("would copy %d files", len(toCopy)), fmt.Sprintf("would remove %d files", len(toRemove)),
		fmt.Sprintf("would remove %d pack", pruned),
		fmt.Sprintf("%s: would replace data/%s: 1000 bytes there, %d at the source", friend, filepath.Base(cut), kept[cut])} {
		if !strings.Contains(text, want) {
			t.Errorf("the text dry run does not say %q\n%s", want, text)
		}
	}

	e.must("mirror", "--prune", friend)
	after := repoStates(t, friend)
	source := repoStates(t, e.repo)
	for name, st := range after {
		old, had := before[name]
		stored := !had || old.inode != st.inode
		if size, planned := toCopy[name]; stored != planned || planned && (size != st.size || size != source[name].size) {
			t.Errorf("%s: stored %v (%d bytes, %d at the source), planned %v (%d bytes)", name, stored, st.size, source[name].size, planned, size)
		}
	}
	for name, st := range before {
		_, kept := after[name]
		if size, planned := toRemove[name]; kept == planned || planned && size != st.size {
			t.Errorf("%s: removed %v, planned %v (%d bytes of %d)", name, !kept, planned, size, st.size)
		}
	}
	if len(after) != len(source) {
		t.Errorf("the copy holds %d files after the mirror, the source %d", len(after), len(source))
	}
}
