package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// Crash safety: "kill -9 at any moment of backup, forget, prune or repair
// leaves a repository that the next run of the same command completes and
// that check --read-data accepts". The kill tests run the real binary and
// SIGKILL it at random moments (seeded and logged; set CAIRN_TEST_SEED to
// replay a failure); the fault tests run the same code in-process over a
// backend that fails each write and delete in turn.

// envTestSeed replays the random choices of a randomized test.
const envTestSeed = "CAIRN_TEST_SEED"

// testRand returns a random source seeded from $CAIRN_TEST_SEED, else the
// clock, and logs the seed.
func testRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envTestSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("$%s: %v", envTestSeed, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d)", seed, envTestSeed, seed)
	return rand.New(rand.NewPCG(seed, 0))
}

// copyDir replaces to with a copy of from; cp -a keeps modes, times,
// owners and hardlinks.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v %s", from, err, out)
	}
}

// saveState copies the repository and the home folder (device identity,
// remembered log heads, cache) aside under name; restoreState puts them
// back. Both are needed: a repository put back without the home's memory
// of its log would look rolled back.
func (e *testEnv) saveState(name string) {
	e.t.Helper()
	copyDir(e.t, e.repo, filepath.Join(e.dir, "states", name, "repo"))
	copyDir(e.t, filepath.Join(e.dir, "home"), filepath.Join(e.dir, "states", name, "home"))
}

func (e *testEnv) restoreState(name string) {
	e.t.Helper()
	copyDir(e.t, filepath.Join(e.dir, "states", name, "repo"), e.repo)
	copyDir(e.t, filepath.Join(e.dir, "states", name, "home"), filepath.Join(e.dir, "home"))
}

// initPackSize creates the repository with a small pack size (init does
// not offer one), so that a modest tree fills many packs and a kill lands
// between them.
func (e *testEnv) initPackSize(size int) {
	e.t.Helper()
	ctx := context.Background()
	be, err := createBackend(ctx, e.repo, locEnv{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Init(ctx, be, []byte(testPassword), repo.InitOptions{PackSize: size, KDF: crypt.FastKDFParamsForTests()})
	if err != nil {
		e.t.Fatal(err)
	}
	r.Close()
}

// runKilled starts cairn with args and sends it SIGKILL after d. killed
// says the signal ended it; otherwise it exited first, after took, and r
// holds its exit code and output.
func (e *testEnv) runKilled(d time.Duration, args ...string) (killed bool, took time.Duration, r result) {
	e.t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	timer := time.AfterFunc(d, func() { _ = cmd.Process.Kill() })
	_ = cmd.Wait()
	took = time.Since(start)
	timer.Stop()
	r = result{args: args, code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return true, took, r
	}
	return false, took, r
}

// timeRun runs cairn to completion (it must exit 0) and says how long it
// took.
func (e *testEnv) timeRun(args ...string) time.Duration {
	e.t.Helper()
	start := time.Now()
	e.must(args...)
	return time.Since(start)
}

// killPlan is a series of runs of one command, each killed at a random
// moment and then run again to completion.
type killPlan struct {
	args []string
	runs int
	// span: each kill lands at a uniformly random moment of [0, span);
	// use how long a whole run takes. A run that finishes before its
	// kill shortens it to the time it took (the machine may be less
	// busy than when span was measured).
	span time.Duration
	// from, if set, aims the kills at [from, span): past the part of a
	// run that only opens and reads.
	from time.Duration
	// start puts the starting state back before each run, so that every
	// kill lands in a run with work to do.
	start func()
	// afterKill checks what a killed run left; nil means "cairn check"
	// must find no damage.
	afterKill func(run int)
	// done checks the repository once the command has run again to
	// completion.
	done func(run int)
}

// killLoop carries out the plan: start, run and kill (a run the kill
// missed must have exited 0), afterKill, run to completion, done. It
// fails the test unless a fair share of the kills landed before the run
// finished.
func (e *testEnv) killLoop(rnd *rand.Rand, p killPlan) {
	e.t.Helper()
	kills := 0
	for i := 0; i < p.runs; i++ {
		p.start()
		d := p.from + time.Duration(rnd.Int64N(int64(max(p.span-p.from, 1))))
		killed, took, r := e.runKilled(d, p.args...)
		if killed {
			kills++
		} else if r.code != 0 {
			e.t.Fatalf("run %d (not killed) failed\n%s", i, r)
		} else {
			p.span = min(p.span, took)
		}
		packs, _ := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
		idx, _ := filepath.Glob(filepath.Join(e.repo, "index", "*"))
		logs, _ := filepath.Glob(filepath.Join(e.repo, "log", "*"))
		e.t.Logf("run %d: kill after %v: killed=%v; left %d packs, %d index files, %d log entries",
			i, d.Round(time.Millisecond), killed, len(packs), len(idx), len(logs))
		if p.afterKill != nil {
			p.afterKill(i)
		} else if r := e.run("check"); r.code != 0 {
			e.t.Fatalf("check after run %d (kill after %v):\n%s", i, d, r)
		}
		e.must(p.args...)
		p.done(i)
		if e.t.Failed() {
			e.t.Fatalf("run %d (kill after %v) failed", i, d)
		}
	}
	e.t.Logf("%d of %d runs of %q killed before they finished", kills, p.runs, p.args)
	if kills < max(1, p.runs/4) {
		e.t.Fatalf("only %d of %d kills landed: the runs are too short to aim at", kills, p.runs)
	}
}

// checkReadData runs "check --read-data": it must exit 0 and find no
// damage; with strict, no problem of any kind either (no leftovers).
func (e *testEnv) checkReadData(strict bool) {
	e.t.Helper()
	r := e.run("--json", "check", "--read-data")
	if r.code != 0 {
		e.t.Fatalf("check --read-data:\n%s", r)
	}
	for _, m := range jsonLines(e.t, r.stdout) {
		if m["message_type"] == "problem" && (strict || m["warning"] != true) {
			b, _ := json.Marshal(m)
			e.t.Errorf("check --read-data: %s", b)
		}
	}
	if e.t.Failed() {
		e.t.FailNow()
	}
}

// checkReadDataAllowing runs "check --read-data": it must exit 0 and
// report no problem but warnings of the given kinds.
func (e *testEnv) checkReadDataAllowing(kinds ...string) {
	e.t.Helper()
	r := e.run("--json", "check", "--read-data")
	if r.code != 0 {
		e.t.Fatalf("check --read-data:\n%s", r)
	}
	for _, m := range jsonLines(e.t, r.stdout) {
		kind, _ := m["kind"].(string)
		if m["message_type"] == "problem" && (m["warning"] != true || !slices.Contains(kinds, kind)) {
			b, _ := json.Marshal(m)
			e.t.Errorf("check --read-data: %s", b)
		}
	}
	if e.t.Failed() {
		e.t.FailNow()
	}
}

// restoreAll restores every live snapshot and compares each with what
// want names for it: the snapshot's backed-up folder src, and expected, a
// folder holding what it must restore to. It returns the snapshots.
func (e *testEnv) restoreAll(xattrs bool, want func(sn map[string]any) (src, expected string)) []map[string]any {
	e.t.Helper()
	snaps := e.snapshotsJSON()
	for i, sn := range snaps {
		id := sn["id"].(string)
		src, expected := want(sn)
		target := filepath.Join(e.dir, "restored", strconv.Itoa(i))
		e.must("restore", id, "--target", target)
		compareTrees(e.t, expected, filepath.Join(target, src), xattrs)
		if e.t.Failed() {
			e.t.Fatalf("snapshot %s does not restore exactly", id)
		}
		if err := os.RemoveAll(target); err != nil {
			e.t.Fatal(err)
		}
	}
	return snaps
}

// writeRandomFiles writes n files of size random bytes into dir.
func writeRandomFiles(t *testing.T, dir string, rnd *rand.Rand, prefix string, n, size int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		b := make([]byte, size)
		for j := 0; j+8 <= len(b); j += 8 {
			v := rnd.Uint64()
			for k := 0; k < 8; k++ {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s%02d", prefix, i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackupSurvivesKill9 kills "cairn backup" of a 31 MiB tree (1 MiB
// packs, so a kill lands between uploads) at random moments, each time
// from the same starting repository, and runs it again to completion:
// check --read-data accepts the repository, every snapshot restores
// exactly, and prune removes what the killed runs left behind.
func TestBackupSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills real processes")
	}
	e := newTestEnv(t)
	rnd := testRand(t)
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, rnd.Uint64())
	writeRandomFiles(t, filepath.Join(src, "bulk"), rnd, "f", 16, 1700<<10)
	e.initPackSize(repo.MinPackSize)
	// One small snapshot first, so killed runs also have a parent.
	e.must("backup", filepath.Join(src, "sub"))
	e.saveState("start")
	span := e.timeRun("backup", src)
	t.Logf("a whole backup takes %v", span)
	e.restoreState("start")

	want := func(sn map[string]any) (string, string) {
		p := toStrings(sn["paths"])[0]
		return p, p
	}
	e.killLoop(rnd, killPlan{
		args: []string{"backup", src}, runs: 8, span: span,
		start: func() { e.restoreState("start") },
		done: func(run int) {
			e.checkReadData(false)
			if run == 0 {
				// Restoring is slow: once is enough to show that what
				// check accepts restores.
				if n := len(e.restoreAll(xattrs, want)); n < 2 {
					t.Fatalf("%d snapshots, want the first and at least one of the tree", n)
				}
			}
		},
	})
	// What killed runs leave is what prune removes.
	e.must("prune")
	e.checkReadData(true)
	e.restoreAll(xattrs, want)
}

// forgetFixture backs up a changing folder n times, keeping a copy of each
// state, and returns a want function for restoreAll.
func forgetFixture(t *testing.T, e *testEnv, rnd *rand.Rand, n int) func(map[string]any) (string, string) {
	t.Helper()
	src := filepath.Join(e.dir, "src")
	makeTree(t, src, rnd.Uint64())
	states := map[string]string{} // snapshot ID -> copy of the folder
	for i := 0; i < n; i++ {
		// Each state adds data of its own and drops the previous
		// state's, so forgetting old snapshots leaves data to prune.
		_ = os.RemoveAll(filepath.Join(src, "round"))
		writeRandomFiles(t, filepath.Join(src, "round"), rnd, fmt.Sprintf("r%d-", i), 3, 700<<10)
		sum, _ := e.backupJSON(0, src)
		id := sum["snapshot_id"].(string)
		states[id] = filepath.Join(e.dir, "states", "src-"+strconv.Itoa(i))
		copyDir(t, src, states[id])
	}
	return func(sn map[string]any) (string, string) {
		exp, ok := states[sn["id"].(string)]
		if !ok {
			t.Fatalf("snapshot %v was never made", sn["id"])
		}
		return src, exp
	}
}

// TestForgetSurvivesKill9 kills "cairn forget --keep-last 2 --prune" at
// random moments (before, while and after it records the forget, and
// during its prune) and runs it again to completion: the two newest
// snapshots stay and restore exactly, and the second run finishes the
// prune the killed one began, even when it has nothing left to forget.
func TestForgetSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills real processes")
	}
	e := newTestEnv(t)
	rnd := testRand(t)
	e.initPackSize(repo.MinPackSize)
	want := forgetFixture(t, e, rnd, 5)
	e.saveState("start")
	args := []string{"forget", "--keep-last", "2", "--prune", "--max-unused", "0%"}
	span := e.timeRun(args...)
	t.Logf("a whole forget --prune takes %v", span)
	e.restoreState("start")

	e.killLoop(rnd, killPlan{
		args: args, runs: 6, span: span,
		start: func() { e.restoreState("start") },
		done: func(int) {
			e.checkReadData(true)
			if r := e.must("prune", "--dry-run", "--max-unused", "0%"); !strings.Contains(r.stdout, "nothing to prune") {
				t.Fatalf("forget --prune run again left work to do:\n%s", r)
			}
			if n := len(e.snapshotsJSON()); n != 2 {
				t.Fatalf("%d snapshots left, want 2", n)
			}
		},
	})
	e.restoreAll(false, want)
}

// TestRepairSurvivesKill9 kills "cairn repair index" and "cairn repair
// snapshots --forget" at random moments and runs them again to
// completion: check --read-data accepts the repository and every snapshot
// restores exactly (repaired ones without the files whose data was lost,
// and without a second copy made by a killed run).
func TestRepairSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills real processes")
	}
	e := newTestEnv(t)
	rnd := testRand(t)
	e.initPackSize(repo.MinPackSize)
	want := forgetFixture(t, e, rnd, 4)
	e.saveState("start")

	t.Run("index", func(t *testing.T) {
		e.t = t
		args := []string{"repair", "index"}
		span := e.timeRun(args...)
		t.Logf("a whole repair index takes %v", span)
		e.restoreState("start")
		e.killLoop(rnd, killPlan{
			args: args, runs: 6, span: span,
			start: func() { e.restoreState("start") },
			done:  func(int) { e.checkReadData(true) },
		})
		if n := len(e.restoreAll(false, want)); n != 4 {
			t.Fatalf("%d snapshots, want 4", n)
		}
	})

	t.Run("snapshots", func(t *testing.T) {
		e.t = t
		e.restoreState("start")
		// Lose the biggest pack (a data pack: tree packs are small).
		var victim string
		var size int64
		packs, _ := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
		for _, p := range packs {
			if fi, err := os.Stat(p); err == nil && fi.Size() > size {
				victim, size = p, fi.Size()
			}
		}
		if err := os.Remove(victim); err != nil {
			t.Fatal(err)
		}
		e.must("repair", "index")
		// What the repair will leave out, per damaged snapshot.
		r := e.must("--json", "repair", "snapshots", "--dry-run")
		dropped := map[string][]string{} // damaged snapshot -> paths
		for _, m := range jsonLines(t, r.stdout) {
			if m["message_type"] == "repaired" {
				if m["lost"] == true {
					t.Fatalf("a root folder was lost: %v", m)
				}
				dropped[m["snapshot"].(string)] = toStrings(m["dropped"])
			}
		}
		if len(dropped) == 0 {
			t.Fatalf("no snapshot is damaged by losing %s:\n%s", victim, r)
		}
		byTime := map[string]string{} // time -> damaged snapshot ID
		for _, sn := range e.snapshotsJSON() {
			if _, ok := dropped[sn["id"].(string)]; ok {
				byTime[sn["time"].(string)] = sn["id"].(string)
			}
		}
		var allDropped []string
		for _, paths := range dropped {
			allDropped = append(allDropped, paths...)
		}
		e.saveState("damaged")
		args := []string{"repair", "snapshots", "--forget"}
		span := e.timeRun(args...)
		t.Logf("a whole repair snapshots takes %v", span)
		e.restoreState("damaged")
		e.killLoop(rnd, killPlan{
			args: args, runs: 6, span: span,
			start: func() { e.restoreState("damaged") },
			afterKill: func(run int) {
				// No damage but the files the lost pack took, in the
				// damaged snapshots or in copies a killed run made.
				r := e.run("--json", "check")
				for _, m := range jsonLines(t, r.stdout) {
					if m["message_type"] != "problem" || m["warning"] == true {
						continue
					}
					path, _ := m["path"].(string)
					if m["kind"] != "blob_missing" || !slices.Contains(allDropped, path) {
						b, _ := json.Marshal(m)
						t.Fatalf("check after run %d: %s", run, b)
					}
				}
			},
			done: func(int) {
				// A run killed between writing a tree pack and indexing
				// it leaves that pack unindexed, as a killed backup
				// does; nothing else may be left.
				e.checkReadDataAllowing("pack_unindexed")
				if n := len(e.snapshotsJSON()); n != 4 {
					t.Fatalf("%d snapshots after the repair, want 4 (one copy of each damaged snapshot)", n)
				}
			},
		})

		// What killed runs leave is what prune removes.
		e.must("prune")
		e.checkReadData(true)

		// Each damaged snapshot is replaced by exactly one copy, of the
		// same time, which restores to its source without the dropped
		// files.
		expected := map[string]string{}
		snaps := e.restoreAll(false, func(sn map[string]any) (string, string) {
			src, exp := "", ""
			if orig, ok := byTime[sn["time"].(string)]; ok {
				src, exp = want(map[string]any{"id": orig})
				if expected[orig] == "" {
					expected[orig] = withoutPaths(t, exp, src, dropped[orig])
				}
				exp = expected[orig]
			} else {
				src, exp = want(sn)
			}
			return src, exp
		})
		if len(snaps) != 4 {
			t.Fatalf("%d snapshots after the repair, want 4 (one copy of each damaged snapshot)", len(snaps))
		}
		for _, sn := range snaps {
			if _, ok := dropped[sn["id"].(string)]; ok {
				t.Errorf("damaged snapshot %v still live", sn["id"])
			}
		}
	})
}

// withoutPaths copies dir, removes the given snapshot paths (absolute
// paths under src) from the copy, and puts back the mtimes of the folders
// that held them, as a repaired snapshot records them.
func withoutPaths(t *testing.T, dir, src string, paths []string) string {
	t.Helper()
	out := dir + "-repaired"
	copyDir(t, dir, out)
	for _, p := range paths {
		rel, err := filepath.Rel(src, strings.TrimSuffix(p, "/"))
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("dropped path %s is not under %s", p, src)
		}
		if err := os.RemoveAll(filepath.Join(out, rel)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		rel, _ := filepath.Rel(src, strings.TrimSuffix(p, "/"))
		parent := filepath.Dir(rel)
		fi, err := os.Lstat(filepath.Join(dir, parent))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(out, parent), fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// faultFixture is a repository in memory with a few snapshots of a folder
// that changes between them, for the fault-injection tests.
type faultFixture struct {
	be    *mem.Backend
	ident *crypt.Identity
	src   string
	rnd   *rand.Rand
}

func newFaultFixture(t *testing.T, snapshots int) *faultFixture {
	t.Helper()
	ctx := context.Background()
	fx := &faultFixture{be: mem.New(), src: filepath.Join(t.TempDir(), "src"), rnd: rand.New(rand.NewPCG(3, 4))}
	var err error
	if fx.ident, err = crypt.NewIdentity(); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, fx.be, []byte(testPassword), repo.InitOptions{PackSize: repo.MinPackSize, KDF: crypt.FastKDFParamsForTests()})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	writeRandomFiles(t, filepath.Join(fx.src, "keep"), fx.rnd, "k", 2, 300<<10)
	for i := 0; i < snapshots; i++ {
		fx.change(t)
		if _, err := fx.backup(ctx, fx.be); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// change replaces the folder's changing part with new data.
func (fx *faultFixture) change(t *testing.T) {
	t.Helper()
	dir := filepath.Join(fx.src, "changing")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	writeRandomFiles(t, dir, fx.rnd, "c", 6, 400<<10)
}

func (fx *faultFixture) open(t *testing.T, be backend.Backend) *repo.Repository {
	t.Helper()
	r, _, err := repo.OpenForJob(context.Background(), be, []byte(testPassword), repo.Options{}, repo.NoLock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// backup runs a backup of the folder into be, as "cairn backup" does,
// and returns the tree of the folder itself (the snapshot's root tree
// also holds the folders above it, whose times others change).
func (fx *faultFixture) backup(ctx context.Context, be backend.Backend) (backend.ID, error) {
	r, _, err := repo.OpenForJob(ctx, be, []byte(testPassword), repo.Options{}, repo.NoLock)
	if err != nil {
		return backend.ID{}, err
	}
	defer r.Close()
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		return backend.ID{}, err
	}
	sn, _, err := archiver.Backup(ctx, r, l, archiver.BackupOptions{Paths: []string{fx.src}, Hostname: "h", Identity: fx.ident})
	if err != nil {
		return backend.ID{}, err
	}
	return snapshot.FindSubtree(ctx, r, sn.Tree, fx.src)
}

// sampled says whether case k of n (lost or not) runs: all of them, but
// under -race, ten times slower, only one with a lost answer in the
// middle (the code raced here is raced in depth by repo's and archiver's
// own tests).
func sampled(k, n int, lost bool) bool {
	return !raceBuild || lost && k == n/2+1
}

// forgetPrune forgets all but the newest snapshot and prunes, as "cairn
// forget --keep-last 1 --prune --max-unused 0%" does (pruning even when
// there is nothing left to forget), under the exclusive lock.
func (fx *faultFixture) forgetPrune(ctx context.Context, be backend.Backend) (err error) {
	r, lock, err := repo.OpenForJob(ctx, be, []byte(testPassword), repo.Options{}, repo.LockExclusive)
	if err != nil {
		return err
	}
	defer r.Close()
	defer func() {
		if uerr := lock.Unlock(ctx); err == nil {
			err = uerr
		}
	}()
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		return err
	}
	var remove []backend.ID
	if snaps := l.Snapshots(); len(snaps) > 1 {
		for _, sn := range snaps[:len(snaps)-1] {
			remove = append(remove, sn.ID)
		}
	}
	if _, err := l.Forget(ctx, r, fx.ident, remove, time.Now()); err != nil {
		return err
	}
	used, err := snapshot.UsedBlobs(ctx, r, l.Snapshots())
	if err != nil {
		return err
	}
	_, _, err = r.Prune(ctx, used, repo.PruneOptions{MaxUnused: -1})
	return err
}

// lockedPrune prunes as the prune command does: it takes the exclusive
// lock, plans and executes under it, and unlocks. An error unlocking is
// returned too (a test that makes the backend fail counts it as a crash).
func lockedPrune(ctx context.Context, r *repo.Repository, used *repo.BlobSet, opts repo.PruneOptions) (repo.PrunePlan, repo.PruneResult, error) {
	l, err := r.Lock(ctx, true)
	if err != nil {
		return repo.PrunePlan{}, repo.PruneResult{}, err
	}
	plan, res, err := r.Prune(ctx, used, opts)
	if uerr := l.Unlock(ctx); err == nil {
		err = uerr
	}
	return plan, res, err
}

// dropLocks deletes the lock files in be: what a process killed while
// holding them leaves, and what the next run takes for stale once that
// process is gone.
func dropLocks(be *mem.Backend) {
	for h := range be.Files() {
		if h.Type == backend.LockFile {
			be.DeleteRaw(h)
		}
	}
}

// copyMem returns a new in-memory backend holding the same files.
func copyMem(t *testing.T, be *mem.Backend) *mem.Backend {
	t.Helper()
	c := mem.New()
	for h, data := range be.Files() {
		if err := c.SetFile(h, data); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// assertSound checks what a crash may leave: a log without problems, and
// no damage (unindexed packs and other leftovers are warnings). With
// strict, not even warnings. It returns the log.
func assertSound(t *testing.T, name string, r *repo.Repository, strict bool) *snapshot.Log {
	t.Helper()
	ctx := context.Background()
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	res, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sp, err := snapshot.CheckSnapshots(ctx, r, l)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, p := range append(res.Problems, sp...) {
		if strict || !p.Warning {
			t.Errorf("%s: %s", name, p)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return l
}

// errCrash stands for the process dying: the call fails, and so does
// every later call of its kind.
var errCrash = errors.New("simulated crash")

// crashAt wraps inner so that the k-th call of method m fails (lost: it
// happens, but its answer is lost) and every later one fails too.
func crashAt(inner backend.Backend, m faulty.Method, k int, lost bool) *faulty.Backend {
	f := faulty.New(inner)
	if k > 1 {
		f.AddFault(m).Times(k - 1) // these pass
	}
	if lost {
		f.AddFault(m).ErrorAfter(errCrash)
	} else {
		f.AddFault(m).ErrorInstead(errCrash)
	}
	f.AddFault(m).Times(1 << 20).ErrorInstead(errCrash)
	return f
}

// TestBackupFaultCrashSafety stops a backup at each of its writes in turn
// (the write fails, or happens with its answer lost, and every later
// write fails): the repository stays sound, and the next backup
// completes and makes the same tree as a backup that never failed.
func TestBackupFaultCrashSafety(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t, 1)
	fx.change(t)
	probe := faulty.New(copyMem(t, fx.be))
	want, err := fx.backup(ctx, probe)
	if err != nil {
		t.Fatal(err)
	}
	puts := probe.Calls(faulty.Put)
	if puts < 5 || probe.Calls(faulty.Delete) != 0 {
		t.Fatalf("a backup makes %d puts and %d deletes; want several puts and no deletes", puts, probe.Calls(faulty.Delete))
	}
	t.Logf("a backup makes %d puts", puts)
	for k := 1; k <= puts; k++ {
		for _, lost := range []bool{false, true} {
			if !sampled(k, puts, lost) {
				continue
			}
			name := fmt.Sprintf("put %d/%d lost=%v", k, puts, lost)
			inner := copyMem(t, fx.be)
			if _, err := fx.backup(ctx, crashAt(inner, faulty.Put, k, lost)); !errors.Is(err, errCrash) {
				t.Fatalf("%s: backup returned %v, want the crash", name, err)
			}
			l := assertSound(t, name+": after the crash", fx.open(t, inner), false)
			if n := len(l.Snapshots()); n != 1 && !(lost && k == puts && n == 2) {
				// Only the log entry, the last write, adds a snapshot.
				t.Fatalf("%s: %d snapshots after the crash", name, n)
			}
			got, err := fx.backup(ctx, inner)
			if err != nil {
				t.Fatalf("%s: second backup: %v", name, err)
			}
			if got != want {
				t.Fatalf("%s: second backup made tree %s, a backup without faults %s", name, got.Str(), want.Str())
			}
			assertSound(t, name+": after the second backup", fx.open(t, inner), false)
		}
	}
}

// TestForgetFaultCrashSafety stops a "forget --prune" at each of its
// writes and deletes in turn: the repository stays sound, and the next
// run completes the job, pruning even when it has nothing left to forget.
func TestForgetFaultCrashSafety(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t, 3)
	probe := faulty.New(copyMem(t, fx.be))
	if err := fx.forgetPrune(ctx, probe); err != nil {
		t.Fatal(err)
	}
	calls := map[faulty.Method]int{faulty.Put: probe.Calls(faulty.Put), faulty.Delete: probe.Calls(faulty.Delete)}
	if calls[faulty.Put] < 2 || calls[faulty.Delete] < 3 {
		t.Fatalf("a forget --prune makes %d puts and %d deletes; the fixture is too small", calls[faulty.Put], calls[faulty.Delete])
	}
	t.Logf("a forget --prune makes %d puts and %d deletes", calls[faulty.Put], calls[faulty.Delete])
	wantLive := assertSound(t, "probe", fx.open(t, probe), true).Snapshots()
	for _, m := range []faulty.Method{faulty.Put, faulty.Delete} {
		for k := 1; k <= calls[m]; k++ {
			for _, lost := range []bool{false, true} {
				if !sampled(k, calls[m], lost) {
					continue
				}
				name := fmt.Sprintf("%v %d/%d lost=%v", m, k, calls[m], lost)
				inner := copyMem(t, fx.be)
				if err := fx.forgetPrune(ctx, crashAt(inner, m, k, lost)); !errors.Is(err, errCrash) {
					t.Fatalf("%s: forget returned %v, want the crash", name, err)
				}
				dropLocks(inner) // the crashed process is gone
				assertSound(t, name+": after the crash", fx.open(t, inner), false)
				if err := fx.forgetPrune(ctx, inner); err != nil {
					t.Fatalf("%s: second run: %v", name, err)
				}
				r := fx.open(t, inner)
				l := assertSound(t, name+": after the second run", r, true)
				if !slices.EqualFunc(l.Snapshots(), wantLive, func(a, b *snapshot.Snapshot) bool { return a.ID == b.ID }) {
					t.Fatalf("%s: live snapshots differ from a run without faults", name)
				}
				used, err := snapshot.UsedBlobs(ctx, r, l.Snapshots())
				if err != nil {
					t.Fatal(err)
				}
				if plan, err := r.PlanPrune(ctx, used, repo.PruneOptions{MaxUnused: -1}); err != nil || !plan.NothingToDo {
					t.Fatalf("%s: the second run left work for prune: %+v %v", name, plan, err)
				}
			}
		}
	}
}
