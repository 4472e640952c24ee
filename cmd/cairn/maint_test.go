package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// maintFixture backs up a folder twice (the second time without the file
// "gone") and forgets the first snapshot, so that "gone" is data no live
// snapshot uses, stored in the same packs as data that is used. It
// returns the backed-up folder.
func maintFixture(t *testing.T, e *testEnv, size int) string {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	data := filepath.Join(e.dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keep", "gone", "sub/also-kept"} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		e.writeFile(filepath.Join(data, name), string(b))
	}
	e.writeFile(filepath.Join(data, "small"), "small file\n")
	e.init()
	e.must("backup", data)
	if err := os.Remove(filepath.Join(data, "gone")); err != nil {
		t.Fatal(err)
	}
	e.must("backup", data)
	forgetOldest(t, e)
	return data
}

// forgetOldest forgets the oldest snapshot through the library, signed by
// the test environment's device (as "cairn forget" would).
func forgetOldest(t *testing.T, e *testEnv) {
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
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := crypt.LoadOrCreateIdentity(filepath.Join(e.dir, "home", ".config", "cairn"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Forget(ctx, r, ident, []backend.ID{l.Snapshots()[0].ID}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// restoreMatches restores the latest snapshot and compares it with the
// folder it was made of.
func restoreMatches(t *testing.T, e *testEnv, data string) {
	t.Helper()
	target := filepath.Join(e.dir, "restored")
	_ = os.RemoveAll(target)
	e.must("restore", "latest", "--target", target)
	for _, name := range []string{"keep", "sub/also-kept", "small"} {
		want, err := os.ReadFile(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(target, data, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("restored %s differs (%v)", name, err)
		}
	}
}

// withoutLocks drops the lines about the locks folder from a listing.
func withoutLocks(l string) string {
	var keep []string
	for line := range strings.Lines(l) {
		if !strings.Contains(line, "/locks") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

func lastJSON(t *testing.T, r result) map[string]any {
	t.Helper()
	lines := jsonLines(t, r.stdout)
	if len(lines) == 0 {
		t.Fatalf("no JSON output\n%s", r)
	}
	return lines[len(lines)-1]
}

// jsonObject returns the object under key in m.
func jsonObject(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	o, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("no object %q in %v", key, m)
	}
	return o
}

// logRemoved is how many log entries "prune --json" says it removed.
func logRemoved(t *testing.T, r result) int {
	t.Helper()
	log := jsonObject(t, jsonObject(t, lastJSON(t, r), "done"), "log")
	return len(log["remove"].([]any))
}

func TestCheckPruneRepairCommands(t *testing.T) {
	e := newTestEnv(t)
	data := maintFixture(t, e, 300_000)

	r := e.must("check", "--read-data")
	if !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check of a sound repository:\n%s", r)
	}
	sum := lastJSON(t, e.must("--json", "check", "--read-data-subset", "100%"))
	if sum["message_type"] != "summary" || sum["damage"] != false || sum["problems"] != 0.0 || sum["packs_read"] != sum["packs"] {
		t.Fatalf("check --json summary: %v", sum)
	}
	for _, bad := range []string{"0/3", "x", "101%"} {
		r := e.run("check", "--read-data-subset", bad)
		if r.code != exitError {
			t.Fatalf("--read-data-subset %s accepted\n%s", bad, r)
		}
	}

	// A dry run changes nothing (but the lock it takes and removes).
	before := withoutLocks(listing(t, e.repo))
	r = e.must("prune", "--dry-run")
	if !strings.Contains(r.stdout, "would remove") || !strings.Contains(r.stdout, "would free about") {
		t.Fatalf("prune --dry-run output:\n%s", r)
	}
	if after := withoutLocks(listing(t, e.repo)); after != before {
		t.Fatalf("prune --dry-run changed the repository")
	}
	if r := e.run("prune", "--max-unused", "120%"); r.code != exitError {
		t.Fatalf("--max-unused 120%% accepted\n%s", r)
	}

	// Prune removes the forgotten file's data and keeps the rest.
	st := lastJSON(t, e.must("--json", "prune", "--max-unused", "0%"))
	plan, done := jsonObject(t, st, "plan"), jsonObject(t, st, "done")
	if plan["unused_blobs"].(float64) == 0 || done["deleted_packs"].(float64) == 0 || done["freed_bytes"].(float64) < 250_000 {
		t.Fatalf("prune --json: %v", st)
	}
	e.must("check", "--read-data")
	restoreMatches(t, e, data)
	r = e.must("prune")
	if !strings.Contains(r.stdout, "nothing to prune") {
		t.Fatalf("second prune:\n%s", r)
	}

	// A flipped bit: check names the pack by its file and exits 1.
	packs, err := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no packs: %v", err)
	}
	var victim string
	var victimSize int64
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > victimSize {
			victim, victimSize = p, fi.Size()
		}
	}
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x10
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	name := "data/" + filepath.Base(victim)
	e.must("check") // the structure is fine
	r = e.run("check", "--read-data")
	if r.code != exitError || !strings.Contains(r.stdout, "error: "+name+": damaged") {
		t.Fatalf("check of a damaged pack:\n%s", r)
	}
	checkOneErrorLine(t, r, "check found damage")
	r = e.run("--json", "check", "--read-data")
	var found bool
	for _, m := range jsonLines(t, r.stdout) {
		if m["message_type"] == "problem" && m["kind"] == "pack_damaged" && m["file"] == name {
			found = true
		}
	}
	if r.code != exitError || !found {
		t.Fatalf("check --json of a damaged pack:\n%s", r)
	}

	// Recovery: remove the pack, rebuild the index, save what remains.
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	r = e.run("check")
	if r.code != exitError || !strings.Contains(r.stdout, name+": missing") {
		t.Fatalf("check with a missing pack:\n%s", r)
	}
	e.must("repair", "index")
	r = e.run("check")
	if r.code != exitError || !strings.Contains(r.stdout, "data blob(s) of this file are in no pack") {
		t.Fatalf("check after repair index:\n%s", r)
	}
	r = e.must("repair", "snapshots", "--dry-run")
	if !strings.Contains(r.stdout, "would leave out") {
		t.Fatalf("repair snapshots --dry-run:\n%s", r)
	}
	r = e.must("repair", "snapshots", "--forget")
	if !strings.Contains(r.stdout, "replaced by") || !strings.Contains(r.stdout, "left out "+data) {
		t.Fatalf("repair snapshots:\n%s", r)
	}
	e.must("check", "--read-data")
	r = e.must("repair", "snapshots")
	if !strings.Contains(r.stdout, "no damaged snapshots") {
		t.Fatalf("second repair snapshots:\n%s", r)
	}
	e.must("prune")
	e.must("check", "--read-data")
}

func TestPruneNeedsExclusiveLock(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	ctx := context.Background()
	be, err := openBackend(ctx, e.repo, locEnv{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Open(ctx, be, []byte(testPassword), repo.Options{Hostname: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, err := r.Lock(ctx, false) // a backup running on another host
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	for _, args := range [][]string{{"prune"}, {"repair", "index"}, {"repair", "snapshots"}} {
		if res := e.run(args...); res.code != exitLocked {
			t.Fatalf("want exit %d\n%s", exitLocked, res)
		}
	}
	e.must("check") // shared
}

// TestPruneSurvivesKill9 kills "cairn prune" at random moments, each time
// from the same starting repository, and runs it again to completion: the
// repository must check clean and restore exactly (see killLoop).
func TestPruneSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills real processes")
	}
	e := newTestEnv(t)
	data := maintFixture(t, e, 1_500_000)
	rnd := testRand(t)
	e.saveState("start")
	args := []string{"prune", "--max-unused", "0%"}
	span := e.timeRun(args...)
	t.Logf("a whole prune takes %v", span)
	e.killLoop(rnd, killPlan{
		args: args, runs: 6, span: span,
		start: func() { e.restoreState("start") },
		done: func(int) {
			e.checkReadData(true)
			restoreMatches(t, e, data)
		},
	})
}

// TestPruneCompactsTheLog grows the log past the point where prune writes
// a checkpoint, and checks that prune keeps the entries the checkpoint
// covers for snapshot.LogRetention (so copies that lag behind can still be
// mirrored to), deletes them after, and that every snapshot stays.
func TestPruneCompactsTheLog(t *testing.T) {
	e := newTestEnv(t)
	data := filepath.Join(e.dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(data, "f"), "content\n")
	e.init()
	e.must("backup", data)

	// Many more snapshots of the same tree, added through the library.
	ctx := context.Background()
	be, err := openBackend(ctx, e.repo, locEnv{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, []byte(testPassword), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := crypt.LoadOrCreateIdentity(filepath.Join(e.dir, "home", ".config", "cairn"))
	if err != nil {
		t.Fatal(err)
	}
	first := *l.Snapshots()[0]
	for i := 1; i <= snapshot.LogCheckpointAfter; i++ {
		sn := first
		sn.Time = first.Time.Add(time.Duration(i) * time.Minute)
		if _, err := l.AddSnapshot(ctx, r, ident, &sn, sn.Time); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	be.Close()
	entries := func() int {
		m, err := filepath.Glob(filepath.Join(e.repo, "log", "*"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	before := entries()
	if before <= snapshot.LogCheckpointAfter {
		t.Fatalf("only %d log entries", before)
	}
	res := e.must("--json", "prune")
	if n := logRemoved(t, res); n != 0 {
		t.Fatalf("prune removed %v log entries at once, want them kept for %v\n%s", n, snapshot.LogRetention, res)
	}
	if after := entries(); after != before+1 {
		t.Errorf("%d log entries after prune, want %d and the checkpoint", after, before)
	}
	// Past the retention, the next prune deletes what the checkpoint
	// covers, and writes no new one.
	later := runOpts{env: []string{envTestClockShift + "=" + (snapshot.LogRetention + 24*time.Hour).String()}}
	res = e.runWith(later, "--json", "prune")
	if res.code != 0 {
		t.Fatalf("prune a week later: %s", res)
	}
	if n := logRemoved(t, res); n != before {
		t.Fatalf("prune removed %v of %d log entries\n%s", n, before, res)
	}
	if after := entries(); after != 1 {
		t.Errorf("%d log entries after prune, want the checkpoint alone", after)
	}
	if n := len(e.snapshotsJSON()); n != snapshot.LogCheckpointAfter+1 {
		t.Errorf("%d snapshots after prune, want %d", n, snapshot.LogCheckpointAfter+1)
	}
	e.must("check", "--read-data")
	r2 := e.runWith(later, "prune")
	if r2.code != 0 || strings.Contains(r2.stdout, "checkpoint") {
		t.Errorf("second prune wrote another checkpoint or failed:\n%s", r2)
	}
}
