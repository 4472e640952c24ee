package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckPrintsItsPlan: "check --json" starts with its plan (the key
// files, index files and packs it checks, and the packs and bytes whose
// data it reads), which matches what the summary says was done and what
// the repository folder holds; the text output says the same.
func TestCheckPrintsItsPlan(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	e.init()
	for i := range 4 {
		writeRandom(t, filepath.Join(data, fmt.Sprint(i)), 300_000, uint64(i+1))
		e.must("backup", data)
	}
	var packs, packBytes, keys, index int64
	for rel, size := range repoFiles(t, e.repo) {
		switch {
		case strings.HasPrefix(rel, "data/"):
			packs++
			packBytes += size
		case strings.HasPrefix(rel, "keys/"):
			keys++
		case strings.HasPrefix(rel, "index/"):
			index++
		}
	}
	for _, args := range [][]string{{}, {"--read-data"}, {"--read-data-subset", "1/2"}} {
		msgs := jsonLines(t, e.must(append([]string{"--json", "check"}, args...)...).stdout)
		plan, sum := msgs[0], msgs[len(msgs)-1]
		if plan["message_type"] != "plan" || sum["message_type"] != "summary" {
			t.Fatalf("check --json %v: first line %v, last %v", args, plan, sum)
		}
		reading := len(args) > 0
		if num(t, plan, "packs") != packs || num(t, plan, "pack_bytes") != packBytes || num(t, plan, "key_files") != keys ||
			num(t, plan, "index_files") != index || plan["read_data"] != reading {
			t.Errorf("check --json %v: plan %v; the repository holds %d packs (%d bytes), %d keys, %d index files", args, plan, packs, packBytes, keys, index)
		}
		if num(t, plan, "packs_to_read") != num(t, sum, "packs_read") || num(t, plan, "bytes_to_read") != num(t, sum, "bytes_read") ||
			num(t, plan, "packs") != num(t, sum, "packs") || num(t, plan, "index_files") != num(t, sum, "index_files") {
			t.Errorf("check --json %v: plan %v, summary %v", args, plan, sum)
		}
		if reading == (num(t, plan, "packs_to_read") == 0) {
			t.Errorf("check --json %v: plan reads %d packs", args, num(t, plan, "packs_to_read"))
		}
		if len(args) == 1 && num(t, plan, "packs_to_read") != packs {
			t.Errorf("check --read-data plans to read %d of %d packs", num(t, plan, "packs_to_read"), packs)
		}
	}
	r := e.must("check", "--read-data-subset", "100%")
	want := fmt.Sprintf("then reading the data of %d of %d pack(s)", packs, packs)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d key file(s), %d index file(s), %d pack(s)", keys, index, packs)) || !strings.Contains(r.stdout, want) {
		t.Errorf("check's text plan\n%s", r)
	}
}
