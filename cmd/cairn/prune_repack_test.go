package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pruneRepackPlan runs "prune --dry-run --json" with args and returns the
// plan.
func pruneRepackPlan(t *testing.T, e *testEnv, args ...string) map[string]any {
	t.Helper()
	st := lastJSON(t, e.must(append([]string{"--json", "prune", "--dry-run", "--max-unused", "0%"}, args...)...))
	return jsonObject(t, st, "plan")
}

// planRepacked lists the packs a plan repacks and sums their blob bytes,
// used and unused, as --max-repack-size counts them.
func planRepacked(t *testing.T, plan map[string]any) (ids []string, blobBytes int64) {
	t.Helper()
	for _, p := range plan["repack"].([]any) {
		pk := p.(map[string]any)
		ids = append(ids, pk["id"].(string))
		blobBytes += int64(pk["used_bytes"].(float64) + pk["unused_bytes"].(float64) + pk["duplicate_bytes"].(float64))
	}
	return ids, blobBytes
}

// checkRestored restores latest and compares each file of want (name
// under src to content) byte for byte.
func checkRestored(t *testing.T, e *testEnv, src string, want map[string][]byte) {
	t.Helper()
	target := filepath.Join(e.dir, "restored")
	_ = os.RemoveAll(target)
	e.must("restore", "latest", "--target", target)
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(target, src, name))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("restored %s differs (%v)", name, err)
		}
	}
}

// TestPruneMaxRepackSize makes four packs that are half used, and checks
// that --max-repack-size bounds the bytes of the packs repacked (prune and
// forget --prune), that the rest is kept for later, that the data stays
// whole, and that a bad size is one error line with exit 1.
func TestPruneMaxRepackSize(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	e.init()
	want := map[string][]byte{}
	for i := range 4 {
		keep, drop := filepath.Join(src, fmt.Sprintf("keep%d", i)), filepath.Join(src, fmt.Sprintf("drop%d", i))
		writeRandom(t, keep, 100_000, uint64(2*i+1))
		writeRandom(t, drop, 100_000, uint64(2*i+2))
		b, err := os.ReadFile(keep)
		if err != nil {
			t.Fatal(err)
		}
		want[filepath.Base(keep)] = b
		e.must("backup", src)
	}
	for i := range 4 {
		if err := os.Remove(filepath.Join(src, fmt.Sprintf("drop%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	e.must("backup", src)
	e.must("forget", "--keep-last", "1")

	all, allBytes := planRepacked(t, pruneRepackPlan(t, e))
	if len(all) != 4 || allBytes < 800_000 {
		t.Fatalf("without --max-repack-size: %d packs (%d bytes) to repack, want the 4 half-used ones", len(all), allBytes)
	}
	const limit = 450 << 10 // two of the packs (about 200 kB each), not three
	plan := pruneRepackPlan(t, e, "--max-repack-size", "450K")
	ids, n := planRepacked(t, plan)
	if len(ids) != 2 || n > limit || int64(plan["repack_pack_bytes"].(float64)) != n {
		t.Fatalf("--max-repack-size 450K: %d packs, %d bytes (plan: %v), want 2 packs of at most %d bytes", len(ids), n, plan["repack_pack_bytes"], limit)
	}
	if kept := jsonObject(t, plan, "kept"); kept["over_repack_limit"].(float64) != 2 {
		t.Fatalf("kept over the limit: %v, want 2", kept)
	}
	r := e.must("prune", "--dry-run", "--max-unused", "0%", "--max-repack-size", "450K")
	if !strings.Contains(r.stdout, "2 over --max-repack-size 450.000 KiB") {
		t.Fatalf("text prune does not say what the limit kept\n%s", r)
	}

	// forget --prune passes it on; the real run repacks two packs.
	r = e.must("--json", "forget", "--keep-last", "1", "--prune", "--max-unused", "0%", "--max-repack-size", "450K")
	var groups []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil || len(groups) == 0 {
		t.Fatalf("forget --prune --json: %v\n%s", err, r)
	}
	prune := jsonObject(t, groups[len(groups)-1], "prune") // restic's groups, the last holding the prune
	if ids, n := planRepacked(t, jsonObject(t, prune, "plan")); len(ids) != 2 || n > limit {
		t.Fatalf("forget --prune --max-repack-size: repacked %d packs, %d bytes", len(ids), n)
	}
	e.must("check", "--read-data")
	checkRestored(t, e, src, want)
	if left, _ := planRepacked(t, pruneRepackPlan(t, e)); len(left) != 2 {
		t.Fatalf("after a limited prune %d packs are left to repack, want 2", len(left))
	}

	for _, args := range [][]string{
		{"prune", "--max-repack-size", "lots"},
		{"prune", "--max-repack-size", "0"},
		{"forget", "--keep-last", "1", "--max-repack-size", "1G"},
		{"forget", "--keep-last", "1", "--repack-small"},
	} {
		r := e.run(args...)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, `--max-repack-size|--repack-small`)
	}
}

// TestPruneRepackCacheableOnly makes one partly used data pack and one
// partly used tree pack, and checks that --repack-cacheable-only repacks
// the tree pack alone.
func TestPruneRepackCacheableOnly(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a", "keep"), 100_000, 1)
	writeRandom(t, filepath.Join(src, "b", "keep"), 100_000, 2)
	writeRandom(t, filepath.Join(src, "b", "drop"), 100_000, 3)
	e.init()
	e.must("backup", src)
	first := e.snapshotsJSON()[0]["id"].(string)
	// Folder a's tree stays in the first backup's tree pack; b's changes.
	if err := os.Remove(filepath.Join(src, "b", "drop")); err != nil {
		t.Fatal(err)
	}
	e.must("backup", src)
	e.must("forget", first)

	all, _ := planRepacked(t, pruneRepackPlan(t, e))
	plan := pruneRepackPlan(t, e, "--repack-cacheable-only")
	ids, _ := planRepacked(t, plan)
	if len(all) != 2 || len(ids) != 1 || !strings.Contains(strings.Join(all, " "), ids[0]) {
		t.Fatalf("repacked %v with --repack-cacheable-only, %v without; want the tree pack of the two", ids, all)
	}
	if kept := jsonObject(t, plan, "kept"); kept["not_cacheable"].(float64) != 1 {
		t.Fatalf("kept data packs: %v, want 1", kept)
	}
	// The pack repacked holds trees only: its used bytes are far below
	// one file's 100 kB.
	for _, p := range plan["repack"].([]any) {
		if p.(map[string]any)["used_bytes"].(float64) > 50_000 {
			t.Fatalf("a data pack is repacked: %v", p)
		}
	}
	e.must("prune", "--repack-cacheable-only", "--max-unused", "0%")
	e.must("check", "--read-data")
	if left, _ := planRepacked(t, pruneRepackPlan(t, e)); len(left) != 1 || left[0] == ids[0] {
		t.Fatalf("after --repack-cacheable-only, left to repack: %v, want the data pack", left)
	}
	for _, name := range []string{"a/keep", "b/keep"} {
		want, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		checkRestored(t, e, src, map[string][]byte{name: want})
	}
}

// TestPruneRepackSmall makes twelve small, fully used packs and checks
// that only --repack-small repacks them, into one data and one tree pack.
func TestPruneRepackSmall(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	e.init()
	want := map[string][]byte{}
	for i := range 6 {
		name := fmt.Sprintf("f%d", i)
		writeRandom(t, filepath.Join(src, name), 20_000, uint64(i+1))
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		want[name] = b
		e.must("backup", src)
	}
	packs := func() int {
		m, err := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	if n := packs(); n != 12 {
		t.Fatalf("%d packs after six backups, want 12", n)
	}
	if ids, _ := planRepacked(t, pruneRepackPlan(t, e)); len(ids) != 0 {
		t.Fatalf("without --repack-small %d fully used packs are repacked", len(ids))
	}
	if ids, _ := planRepacked(t, pruneRepackPlan(t, e, "--repack-small")); len(ids) != 12 {
		t.Fatalf("--repack-small plans %d of 12 small packs", len(ids))
	}
	e.must("prune", "--repack-small")
	if n := packs(); n != 2 {
		t.Fatalf("%d packs after prune --repack-small, want 2", n)
	}
	e.must("check", "--read-data")
	checkRestored(t, e, src, want)
	if ids, _ := planRepacked(t, pruneRepackPlan(t, e, "--repack-small")); len(ids) != 0 {
		t.Fatalf("a second --repack-small repacks %d packs (fewer than ten small packs must stay)", len(ids))
	}
}
