package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
)

// rewriteFixture backs up a folder n times, changing it in between; every
// state holds sub/leaked.key, a file of 5 MiB of random bytes (several
// chunks) that no other file shares. It returns the folder, the secret's
// bytes and, by snapshot ID, a copy of the folder as backed up without the
// secret (for restoreAll).
func rewriteFixture(t *testing.T, e *testEnv, rnd *rand.Rand, n int) (src string, secret []byte, want func(map[string]any) (string, string)) {
	t.Helper()
	src = filepath.Join(e.dir, "src")
	makeTree(t, src, rnd.Uint64())
	writeRandomFiles(t, filepath.Join(src, "sub"), rnd, "leaked.key", 1, 5<<20)
	if err := os.Rename(filepath.Join(src, "sub", "leaked.key00"), filepath.Join(src, "sub", "leaked.key")); err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(filepath.Join(src, "sub", "leaked.key"))
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for i := 0; i < n; i++ {
		writeRandomFiles(t, filepath.Join(src, "round"), rnd, fmt.Sprintf("r%d-", i), 2, 300<<10)
		sum, _ := e.backupJSON(0, src)
		id := sum["snapshot_id"].(string)
		state := filepath.Join(e.dir, "states", "src-"+strconv.Itoa(i))
		copyDir(t, src, state)
		states[id] = withoutPaths(t, state, src, []string{filepath.Join(src, "sub", "leaked.key")})
	}
	return src, secret, func(sn map[string]any) (string, string) {
		orig, _ := sn["original"].(string)
		exp, ok := states[orig]
		if !ok {
			t.Fatalf("snapshot %v is not a rewritten snapshot (original %q)", sn["id"], orig)
		}
		return src, exp
	}
}

// secretBlobs opens the repository and reads every blob of every pack in
// data/ (indexed or not): it returns how many data blobs are chunks of
// secret, and how many tree blobs name a node "leaked.key".
func secretBlobs(t *testing.T, e *testEnv, secret []byte) (chunks, trees int) {
	t.Helper()
	ctx := context.Background()
	be, err := openBackend(ctx, e.repo, locEnv{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Open(ctx, be, []byte(testPassword), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sizes := map[backend.ID]int64{}
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		sizes[id] = size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id, size := range sizes {
		blobs, err := r.ReadPackHeader(ctx, id, size)
		if err != nil {
			t.Fatal(err)
		}
		err = r.LoadPack(ctx, id, blobs, func(b pack.Blob, plain []byte, err error) error {
			if err != nil {
				return err
			}
			switch {
			case b.Type == pack.DataBlob && len(plain) > 0 && bytes.Contains(secret, plain):
				chunks++
			case b.Type == pack.TreeBlob && bytes.Contains(plain, []byte(`"name":"leaked.key"`)):
				trees++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return chunks, trees
}

// TestRewriteRemovesSecret backs up a tree holding a secret file in three
// snapshots, removes the file from all of them with rewrite --forget, and
// prunes: no pack holds a chunk of the secret nor a folder naming it, and
// every snapshot restores exactly, without the secret.
func TestRewriteRemovesSecret(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	rnd := testRand(t)
	_, secret, want := rewriteFixture(t, e, rnd, 3)
	chunks, trees := secretBlobs(t, e, secret)
	if chunks < 2 || trees == 0 {
		t.Fatalf("before the rewrite: %d chunks of the secret and %d trees naming it, want several and some", chunks, trees)
	}
	originals := map[string]bool{}
	for _, sn := range e.snapshotsJSON() {
		originals[sn["id"].(string)] = true
	}

	// A dry run names every snapshot and changes nothing.
	before := withoutLocks(listing(t, e.repo))
	r := e.must("-v", "rewrite", "--exclude", "leaked.key", "--forget", "--dry-run")
	if n := strings.Count(r.stdout, "would remove 1 path(s) (1 file(s), 5.000 MiB) and forget the original"); n != 3 {
		t.Fatalf("dry run names %d snapshots, want 3\n%s", n, r)
	}
	if !strings.Contains(r.stdout, "would remove "+filepath.Join(e.dir, "src", "sub", "leaked.key")+"\n") {
		t.Fatalf("dry run with -v does not name the path\n%s", r)
	}
	if after := withoutLocks(listing(t, e.repo)); after != before {
		t.Fatal("a dry run changed the repository")
	}

	r = e.must("rewrite", "--exclude", "leaked.key", "--forget")
	if n := strings.Count(r.stdout, "original forgotten"); n != 3 {
		t.Fatalf("rewrite says it replaced %d snapshots, want 3\n%s", n, r)
	}
	snaps := e.snapshotsJSON()
	if len(snaps) != 3 {
		t.Fatalf("%d snapshots after rewrite --forget, want 3", len(snaps))
	}
	for _, sn := range snaps {
		if orig, _ := sn["original"].(string); !originals[orig] || sn["tags"] != nil {
			t.Fatalf("snapshot %v: original %v, tags %v; want one of the originals and no tag", sn["id"], sn["original"], sn["tags"])
		}
	}
	// The originals' data is still there until prune.
	if chunks, _ := secretBlobs(t, e, secret); chunks == 0 {
		t.Fatal("rewrite itself deleted data")
	}
	e.must("prune", "--max-unused", "0")
	if chunks, trees := secretBlobs(t, e, secret); chunks != 0 || trees != 0 {
		t.Fatalf("after rewrite and prune: %d chunks of the secret and %d trees naming it remain", chunks, trees)
	}
	e.checkReadData(true)
	e.restoreAll(false, want)

	// Nothing left to remove.
	r = e.must("rewrite", "--exclude", "leaked.key", "--forget")
	if !strings.Contains(r.stdout, "no snapshot holds a path to remove (3 snapshot(s) looked at)") {
		t.Fatalf("second rewrite:\n%s", r)
	}
}

// TestRewriteKeepsOriginals checks rewrite without --forget: the new
// snapshots are tagged "rewrite" and the originals stay; --tag and IDs
// select what is rewritten; --json gives one line per snapshot and a
// summary.
func TestRewriteKeepsOriginals(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	mkdirAll(t, filepath.Join(src, "a"))
	e.writeFile(filepath.Join(src, "a", "secret.key"), "key one")
	e.writeFile(filepath.Join(src, "a", "notes"), "notes")
	e.must("backup", "--tag", "x", src)
	e.writeFile(filepath.Join(src, "a", "notes"), "notes, changed")
	e.must("backup", src)
	snaps := e.snapshotsJSON()

	r := e.must("--json", "rewrite", "--iexclude", "*.KEY", "--tag", "x")
	lines := jsonLines(t, r.stdout)
	if len(lines) != 2 || lines[0]["message_type"] != "rewritten" || lines[0]["snapshot"] != snaps[0]["id"] ||
		lines[0]["files"] != float64(1) || lines[0]["bytes"] != float64(7) || lines[1]["message_type"] != "summary" || lines[1]["rewritten"] != float64(1) {
		t.Fatalf("rewrite --json:\n%s", r)
	}
	after := e.snapshotsJSON()
	if len(after) != 3 {
		t.Fatalf("%d snapshots, want the 2 originals and 1 new", len(after))
	}
	newID := lines[0]["new"].(string)
	var found bool
	for _, sn := range after {
		if sn["id"] == newID {
			found = true
			if sn["original"] != snaps[0]["id"] || strings.Join(toStrings(sn["tags"]), ",") != "x,rewrite" || sn["time"] != snaps[0]["time"] {
				t.Fatalf("new snapshot %v", sn)
			}
		}
	}
	if !found {
		t.Fatalf("new snapshot %s not listed", newID)
	}
	r = e.must("ls", newID)
	if strings.Contains(r.stdout, "secret.key") || !strings.Contains(r.stdout, "notes") {
		t.Fatalf("ls of the new snapshot:\n%s", r)
	}

	// By ID, with an exclude file.
	pats := filepath.Join(e.dir, "patterns")
	e.writeFile(pats, "# keys\n/**/secret.key\n")
	second := snaps[1]["id"].(string)
	r = e.must("rewrite", "--exclude-file", pats, second[:8])
	if !strings.Contains(r.stdout, "snapshot "+second[:8]+": removed 1 path(s)") || !strings.Contains(r.stdout, "rewrote 1 snapshot(s), 0 unchanged") {
		t.Fatalf("rewrite by ID:\n%s", r)
	}
}

// TestRewriteSelect checks --host, --path and --iexclude-file: only the
// snapshots that pass the filters are rewritten, with the patterns of the
// file matched ignoring case.
func TestRewriteSelect(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src, other := filepath.Join(e.dir, "src"), filepath.Join(e.dir, "other")
	for _, dir := range []string{src, other} {
		mkdirAll(t, dir)
		e.writeFile(filepath.Join(dir, "Token.TXT"), "secret")
		e.writeFile(filepath.Join(dir, "keep"), "kept")
	}
	e.must("backup", "--host", "h1", src)
	e.must("backup", "--host", "h2", src)
	e.must("backup", "--host", "h1", other)
	snaps := e.snapshotsJSON()
	pats := filepath.Join(e.dir, "patterns")
	e.writeFile(pats, "# case does not matter here\n**/token.txt\n")
	rewritten := func(r result) []string {
		var out []string
		for _, l := range jsonLines(t, r.stdout) {
			if l["message_type"] == "rewritten" {
				out = append(out, l["snapshot"].(string))
			}
		}
		return out
	}
	r := e.must("--json", "rewrite", "--iexclude-file", pats, "--host", "h1", "--path", src)
	if got := rewritten(r); len(got) != 1 || got[0] != snaps[0]["id"] {
		t.Fatalf("rewrite --host h1 --path %s rewrote %v, want %v\n%s", src, got, snaps[0]["id"], r)
	}
	r = e.must("--json", "rewrite", "--iexclude-file", pats, "--host", "h2")
	if got := rewritten(r); len(got) != 1 || got[0] != snaps[1]["id"] {
		t.Fatalf("rewrite --host h2 rewrote %v, want %v\n%s", got, snaps[1]["id"], r)
	}
	// Without --iexclude-file's case folding the pattern matches nothing.
	r = e.must("rewrite", "--exclude-file", pats, "--path", other)
	if !strings.Contains(r.stdout, "no snapshot holds a path to remove (1 snapshot(s) looked at)") {
		t.Fatalf("rewrite --exclude-file (case-sensitive):\n%s", r)
	}
	r = e.must("--json", "rewrite", "--iexclude-file", pats, "--path", other)
	if got := rewritten(r); len(got) != 1 || got[0] != snaps[2]["id"] {
		t.Fatalf("rewrite --path %s rewrote %v, want %v\n%s", other, got, snaps[2]["id"], r)
	}
	for _, sn := range e.snapshotsJSON() {
		if _, ok := sn["original"]; !ok {
			continue
		}
		if r := e.must("ls", sn["id"].(string)); strings.Contains(r.stdout, "Token.TXT") || !strings.Contains(r.stdout, "keep") {
			t.Fatalf("ls of rewritten snapshot %v:\n%s", sn["id"], r)
		}
	}
}

// TestRewriteErrors checks rewrite's refusals: one line on stderr, exit
// status 1, nothing written.
func TestRewriteErrors(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	mkdirAll(t, src)
	e.writeFile(filepath.Join(src, "secret"), "s")
	e.must("backup", src)
	before := withoutLocks(listing(t, e.repo))
	for _, tc := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"rewrite"}, "nothing to remove: give --exclude"},
		{[]string{"rewrite", "--exclude", "a/[b"}, "bad exclude pattern"},
		{[]string{"rewrite", "--exclude-file", filepath.Join(e.dir, "missing")}, "pattern file"},
		{[]string{"rewrite", "--exclude", "secret", "deadbeef"}, "no matching snapshot"},
		{[]string{"rewrite", "--exclude", "secret", "latest:/x"}, "not SNAPSHOT:SUBPATH"},
		{[]string{"--no-lock", "rewrite", "--exclude", "secret"}, "must lock it"},
	} {
		r := e.run(tc.args...)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, tc.pattern)
	}
	if after := withoutLocks(listing(t, e.repo)); after != before {
		t.Fatal("a refused rewrite changed the repository")
	}
}

// TestRewriteSurvivesKill9 kills "rewrite --forget" between recording the
// new snapshots and forgetting the originals, then at random moments: the
// repository stays sound, nothing is lost (originals or their new
// snapshots are always there), and the next run finishes the job without
// a second copy.
func TestRewriteSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills real processes")
	}
	e := newTestEnv(t)
	rnd := testRand(t)
	e.initPackSize(repo.MinPackSize)
	_, _, want := rewriteFixture(t, e, rnd, 4)
	var originals []string
	for _, sn := range e.snapshotsJSON() {
		originals = append(originals, sn["id"].(string))
	}
	e.saveState("start")
	args := []string{"rewrite", "--exclude", "leaked.key", "--forget"}

	p := e.startPaused("rewrite-before-forget", nil, args...)
	_ = p.cmd.Process.Kill()
	<-p.done
	if n := len(e.snapshotsJSON()); n != 8 {
		t.Fatalf("%d snapshots after a kill between the new snapshots and the forget, want the 4 originals and 4 new", n)
	}
	e.must("check")
	r := e.must(args...)
	if n := strings.Count(r.stdout, "saved by an earlier run as"); n != 4 {
		t.Fatalf("the run after the kill made new copies:\n%s", r)
	}
	if n := len(e.restoreAll(false, want)); n != 4 {
		t.Fatalf("%d snapshots, want 4", n)
	}

	// Then kills at random moments, aimed at the second part of a run,
	// where it writes trees and log entries (the first part opens the
	// repository and reads).
	e.restoreState("start")
	span := e.timeRun(args...)
	t.Logf("a whole rewrite takes %v", span)
	kills := 0
	const runs = 8
	for i := 0; i < runs; i++ {
		e.restoreState("start")
		d := span/3 + time.Duration(rnd.Int64N(int64(span)))*2/3
		killed, _, r := e.runKilled(d, args...)
		if killed {
			kills++
		} else if r.code != 0 {
			t.Fatalf("run %d (not killed) failed\n%s", i, r)
		}
		logs, _ := filepath.Glob(filepath.Join(e.repo, "log", "*"))
		t.Logf("run %d: kill after %v: killed=%v; %d log entries", i, d.Round(time.Millisecond), killed, len(logs))
		// Every original, or a snapshot made from it, is live.
		have := map[string]bool{}
		for _, sn := range e.snapshotsJSON() {
			have[sn["id"].(string)] = true
			if orig, ok := sn["original"].(string); ok {
				have[orig] = true
			}
		}
		for _, id := range originals {
			if !have[id] {
				t.Fatalf("run %d: snapshot %s is gone and no live snapshot was made from it", i, id)
			}
		}
		e.must("check")
		e.must(args...)
		// A run killed after saving a tree pack and before indexing it
		// leaves the pack unindexed, as a killed backup does.
		e.checkReadDataAllowing("pack_unindexed")
		if n := len(e.restoreAll(false, want)); n != 4 {
			t.Fatalf("run %d: %d snapshots, want 4", i, n)
		}
	}
	if kills < runs/4 {
		t.Fatalf("only %d of %d kills landed before the run finished", kills, runs)
	}
}
