package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// statsMode runs "stats --json --mode MODE" with args and decodes it.
func statsMode(t *testing.T, e *testEnv, mode string, args ...string) map[string]float64 {
	t.Helper()
	r := e.must(append([]string{"--json", "stats", "--mode", mode}, args...)...)
	var out map[string]float64
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("stats --mode %s --json: %v\n%s", mode, err, r)
	}
	return out
}

// TestStatsModes backs up files whose figures are known (two files with
// the same content, a hardlinked pair, a file that changes between the
// two snapshots) and checks each --mode against numbers computed here
// from the files written.
func TestStatsModes(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 10_000, 1)
	b, err := os.ReadFile(filepath.Join(src, "a"))
	if err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "b"), string(b)) // same content as a
	writeRandom(t, filepath.Join(src, "c"), 30_000, 2)
	writeRandom(t, filepath.Join(src, "h1"), 5_000, 3)
	if err := os.Link(filepath.Join(src, "h1"), filepath.Join(src, "h2")); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, filepath.Join(src, "sub", "d"), 1_000, 4)
	e.init()
	e.must("backup", src)
	first := e.snapshotsJSON()[0]["id"].(string)
	writeRandom(t, filepath.Join(src, "c"), 30_000, 5) // new content, same path
	e.must("backup", src)

	// The folders of src's path, src included: each a node and a tree.
	ancestors := uint64(strings.Count(src, "/"))
	const perSnapshotNodes = 7 // a b c h1 h2 sub sub/d
	check := func(mode string, got map[string]float64, want map[string]uint64) {
		t.Helper()
		for k, v := range want {
			if uint64(got[k]) != v {
				t.Errorf("--mode %s: %s = %v, want %d (all: %v)", mode, k, got[k], v, got)
			}
		}
	}

	// restore-size: every node of both snapshots; h1 and h2 once each.
	check("restore-size", statsMode(t, e, "restore-size"), map[string]uint64{
		"snapshots_count": 2, "total_file_count": 2 * (ancestors + perSnapshotNodes),
		"total_size": 2 * (10_000 + 10_000 + 30_000 + 5_000 + 1_000)})
	// files-by-contents: a=b, c twice, h, d, and the one empty content
	// that folders share (restic counts it too).
	check("files-by-contents", statsMode(t, e, "files-by-contents"), map[string]uint64{
		"snapshots_count": 2, "total_file_count": 6, "total_size": 10_000 + 30_000 + 30_000 + 5_000 + 1_000})
	// blobs-per-file: paths a, c, h1, sub/d; c's second content is one
	// more blob at the same path. Every file here is one chunk.
	check("blobs-per-file", statsMode(t, e, "blobs-per-file"), map[string]uint64{
		"snapshots_count": 2, "total_file_count": 4, "total_blob_count": 5, "total_size": 10_000 + 30_000 + 30_000 + 5_000 + 1_000})
	check("blobs-per-file of the first", statsMode(t, e, "blobs-per-file", first), map[string]uint64{
		"snapshots_count": 1, "total_file_count": 4, "total_blob_count": 4, "total_size": 10_000 + 30_000 + 5_000 + 1_000})
	// A snapshot named twice is counted once, as tag, copy and rewrite
	// take it once.
	check("blobs-per-file of the first named twice", statsMode(t, e, "blobs-per-file", first, first[:8]), map[string]uint64{
		"snapshots_count": 1, "total_file_count": 4, "total_blob_count": 4, "total_size": 10_000 + 30_000 + 5_000 + 1_000})

	// raw-data: every blob the index holds is used, so the figures are
	// the index's; the data blobs alone (random, stored raw, 40 bytes of
	// nonce and tag each) give a floor. The first snapshot alone has 4
	// data blobs and its trees: the root, the folders of src's path and
	// sub.
	raw := statsMode(t, e, "raw-data")
	var repoStats map[string]any
	if err := json.Unmarshal([]byte(e.must("--json", "stats").stdout), &repoStats); err != nil {
		t.Fatal(err)
	}
	blobs := repoStats["data_blobs"].(float64) + repoStats["tree_blobs"].(float64)
	if raw["total_blob_count"] != blobs || raw["total_size"] != repoStats["total_blob_size"].(float64) ||
		raw["total_size"] < 76_000+5*40 || raw["total_uncompressed_size"] < raw["total_size"] {
		t.Errorf("--mode raw-data: %v; index: %v", raw, repoStats)
	}
	check("raw-data of the first", statsMode(t, e, "raw-data", first), map[string]uint64{
		"snapshots_count": 1, "total_blob_count": 4 + 1 + ancestors + 1})

	r := e.must("stats", "--mode", "files-by-contents")
	for _, line := range []string{"Stats in files-by-contents mode:", "Total File Count:  6", "Snapshots processed:  2"} {
		if !strings.Contains(r.stdout, line) {
			t.Fatalf("text stats --mode: no %q\n%s", line, r)
		}
	}
	r = e.run("stats", "--mode", "everything")
	if r.code != 1 {
		t.Fatalf("unknown mode: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `unknown stats mode "everything"`)
	r = e.run("stats", "latest:/x")
	if r.code != 1 {
		t.Fatalf("stats of a folder: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `"latest:/x" names a folder: a whole snapshot is needed here`)
}
