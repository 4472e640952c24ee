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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// device is one machine using the repository: its own home (identity,
// remembered log heads, cache) and the hostname it records.
type device struct {
	name string
	env  []string // e.env with HOME replaced
	src  string
}

func (e *testEnv) newDevice(name string) *device {
	e.t.Helper()
	home := filepath.Join(e.dir, "home-"+name)
	if err := os.Mkdir(home, 0o755); err != nil {
		e.t.Fatal(err)
	}
	env := append(append([]string(nil), e.env...), "HOME="+home) // the last HOME wins
	return &device{name: name, env: env, src: filepath.Join(e.dir, "src-"+name)}
}

// run runs cairn as the device. It is safe to call from any goroutine:
// it reports a failure to start or a hang as an error, not through t.
func (d *device) run(dir string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cairnBin, args...)
	cmd.Env = d.env
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		return r, fmt.Errorf("device %s: cairn %q hung", d.name, args)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		return r, fmt.Errorf("device %s: run cairn %q: %v", d.name, args, err)
	}
	return r, nil
}

// runRetry runs cairn as the device until it does not exit 11 (locked),
// waiting a random moment between tries, and returns the last result and
// the number of tries. That run must exit 0 and print nothing on stderr,
// no warning either; otherwise it returns an error.
func (d *device) runRetry(dir string, rnd *rand.Rand, args ...string) (result, int, error) {
	for try := 1; ; try++ {
		r, err := d.run(dir, args...)
		if err == nil && r.code != exitLocked && (r.code != 0 || r.stderr != "") {
			err = fmt.Errorf("device %s:\n%s", d.name, r)
		}
		if err == nil && r.code == exitLocked && try == 500 {
			err = fmt.Errorf("device %s: still locked out after %d tries:\n%s", d.name, try, r)
		}
		if err != nil || r.code != exitLocked {
			return r, try, err
		}
		if !strings.Contains(r.stderr, "locked") {
			return r, try, fmt.Errorf("exit 11 without naming the lock holder:\n%s", r)
		}
		time.Sleep(time.Duration(5+rnd.IntN(40)) * time.Millisecond)
	}
}

// TestConcurrentBackupsAndPrune runs rounds of two hosts backing up into
// one repository at the same moment while a third device forgets old
// snapshots and prunes; locked commands retry. No snapshot is lost: every
// backup that exited 0 and was not forgotten on purpose is live and
// restores exactly; the log shows no problem to any of the devices and
// its heads merge; check --read-data passes.
func TestConcurrentBackupsAndPrune(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs many processes")
	}
	e := newTestEnv(t)
	rnd := testRand(t)
	e.initPackSize(repo.MinPackSize)
	hosts := []*device{e.newDevice("A"), e.newDevice("B")}
	maint := e.newDevice("M")

	// The hosts' files are drawn from one pool of contents, so that data
	// a forget left unused comes back in a later backup: if prune could
	// delete what a concurrent backup relies on, it would show.
	var pool [][]byte
	for i := 0; i < 8; i++ {
		b := make([]byte, 200<<10+rnd.IntN(200<<10))
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		pool = append(pool, b)
	}
	fill := func(h *device, round int, rnd *rand.Rand) error {
		if err := os.RemoveAll(h.src); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(h.src, "sub"), 0o755); err != nil {
			return err
		}
		for i := 0; i < 4; i++ {
			name := filepath.Join(h.src, fmt.Sprintf("f%d", i))
			if i == 3 {
				name = filepath.Join(h.src, "sub", "f3")
			}
			if err := os.WriteFile(name, pool[rnd.IntN(len(pool))], 0o644); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(h.src, "round"), fmt.Appendf(nil, "%s %d\n", h.name, round), 0o644)
	}

	if err := os.Mkdir(filepath.Join(e.dir, "expect"), 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex              // guards made, forgotten, expect, errs and retries
	made := map[string][]string{}  // host -> its snapshots, oldest first
	forgotten := map[string]bool{} // snapshot ID -> forgotten on purpose
	expect := map[string]string{}  // snapshot ID -> copy of what it holds
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// heads reads the log as d (it must print no warning) and counts its
	// heads.
	heads := func(d *device) int {
		t.Helper()
		r, err := d.run(e.dir, "--json", "log")
		if err != nil || r.code != 0 || r.stderr != "" {
			t.Fatalf("log as %s (%v):\n%s", d.name, err, r)
		}
		var entries []struct {
			ID      string   `json:"id"`
			Parents []string `json:"parents"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
			t.Fatal(err)
		}
		named := map[string]bool{}
		merges := 0
		for _, en := range entries {
			for _, p := range en.Parents {
				named[p] = true
			}
			if len(en.Parents) > 1 {
				merges++
			}
		}
		n := 0
		for _, en := range entries {
			if !named[en.ID] {
				n++
			}
		}
		t.Logf("as %s: %d log entries, %d merges, %d heads", d.name, len(entries), merges, n)
		return n
	}
	retries := 0
	// runRound backs up on both hosts at once and, with maintain, forgets
	// and prunes at the same time on the third device.
	runRound := func(round int, maintain bool) {
		var wg sync.WaitGroup
		for _, h := range hosts {
			hrnd := rand.New(rand.NewPCG(rnd.Uint64(), 1))
			wg.Go(func() {
				if err := fill(h, round, hrnd); err != nil {
					fail(err)
					return
				}
				if maintain {
					time.Sleep(time.Duration(hrnd.IntN(150)) * time.Millisecond)
				}
				r, tries, err := h.runRetry(e.dir, hrnd, "--json", "backup", "--host", h.name, h.src)
				if err != nil {
					fail(fmt.Errorf("round %d: backup: %w", round, err))
					return
				}
				var sum map[string]any
				lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum["snapshot_id"] == nil {
					fail(fmt.Errorf("round %d: backup on %s printed no snapshot ID:\n%s", round, h.name, r))
					return
				}
				id := sum["snapshot_id"].(string)
				dst := filepath.Join(e.dir, "expect", id)
				if out, err := exec.Command("cp", "-a", h.src, dst).CombinedOutput(); err != nil {
					fail(fmt.Errorf("copy: %v %s", err, out))
					return
				}
				mu.Lock()
				made[h.name] = append(made[h.name], id)
				expect[id] = dst
				retries += tries - 1
				mu.Unlock()
			})
		}
		mrnd := rand.New(rand.NewPCG(rnd.Uint64(), 2))
		if !maintain {
			wg.Wait()
			return
		}
		wg.Go(func() {
			time.Sleep(time.Duration(mrnd.IntN(200)) * time.Millisecond)
			// Every other round, forget each host's oldest snapshot
			// while it has more than two.
			var ids []string
			mu.Lock()
			for _, h := range hosts {
				var live []string
				for _, id := range made[h.name] {
					if !forgotten[id] {
						live = append(live, id)
					}
				}
				if round%2 == 1 && len(live) > 2 {
					ids = append(ids, live[0])
				}
			}
			mu.Unlock()
			if len(ids) > 0 {
				_, tries, err := maint.runRetry(e.dir, mrnd, append([]string{"forget"}, ids...)...)
				if err != nil {
					fail(fmt.Errorf("round %d: forget: %w", round, err))
					return
				}
				mu.Lock()
				for _, id := range ids {
					forgotten[id] = true
				}
				retries += tries - 1
				mu.Unlock()
			}
			_, tries, err := maint.runRetry(e.dir, mrnd, "prune", "--max-unused", "0%")
			if err != nil {
				fail(fmt.Errorf("round %d: prune: %w", round, err))
			}
			mu.Lock()
			retries += tries - 1
			mu.Unlock()
		})
		wg.Wait()
	}
	const rounds = 10
	for round := 0; round < rounds; round++ {
		runRound(round, true)
		if len(errs) > 0 {
			t.Fatal(errors.Join(errs...))
		}
	}
	t.Logf("%d commands retried after exit 11", retries)
	// Backups alone, until two overlap and leave two heads for the next
	// writer to merge.
	forked := false
	for round := rounds; round < rounds+5 && !forked; round++ {
		runRound(round, false)
		if len(errs) > 0 {
			t.Fatal(errors.Join(errs...))
		}
		forked = heads(maint) > 1
	}
	if !forked {
		t.Log("no two backups overlapped enough to leave two heads")
	}

	// Every backup that exited 0 is live, unless forgotten on purpose,
	// and nothing else is.
	want := map[string]bool{}
	for _, ids := range made {
		for _, id := range ids {
			if !forgotten[id] {
				want[id] = true
			}
		}
	}
	snaps := e.snapshotsJSON()
	for _, sn := range snaps {
		id := sn["id"].(string)
		if !want[id] {
			t.Errorf("snapshot %s is live but should not be (forgotten: %v)", id, forgotten[id])
		}
		delete(want, id)
	}
	for id := range want {
		t.Errorf("snapshot %s was lost", id)
	}
	if t.Failed() {
		t.FailNow()
	}
	if n, m := len(snaps), len(made["A"])+len(made["B"])-len(forgotten); n != m {
		t.Fatalf("%d live snapshots, want %d", n, m)
	}

	// The log: no device sees a problem, and the next writer merges the
	// heads the concurrent writers left.

	// The log: no device sees a problem, and the next writer merges the
	// heads the concurrent writers left.
	for _, d := range append(hosts, maint) {
		heads(d)
		if r, err := d.run(e.dir, "log"); err != nil || r.code != 0 || r.stderr != "" {
			t.Fatalf("log as %s prints warnings (%v):\n%s", d.name, err, r)
		}
	}
	r, err := hosts[0].run(e.dir, "backup", "--host", "A", hosts[0].src)
	if err != nil || r.code != 0 {
		t.Fatalf("last backup (%v):\n%s", err, r)
	}
	if n := heads(maint); n != 1 {
		t.Fatalf("%d heads after a backup that should merge them", n)
	}

	e.checkReadData(false)
	for i, sn := range snaps {
		id := sn["id"].(string)
		src := toStrings(sn["paths"])[0]
		target := filepath.Join(e.dir, "restored", fmt.Sprint(i))
		e.must("restore", id, "--target", target)
		compareTrees(t, expect[id], filepath.Join(target, src), false)
		if t.Failed() {
			t.Fatalf("snapshot %s of %v does not restore exactly", id, sn["hostname"])
		}
	}
}

// TestIndexLoadedAfterLock runs a whole prune while a backup is taking
// its lock, after it opened the repository: the backup must not trust an
// index from before the prune, or it would skip uploading the data the
// prune deleted and record a snapshot whose data is gone.
func TestIndexLoadedAfterLock(t *testing.T) {
	ctx := context.Background()
	fx := newFaultFixture(t, 1)
	// Forget the only snapshot: its data is what prune will delete.
	r := fx.open(t, fx.be)
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Forget(ctx, r, fx.ident, []backend.ID{l.Snapshots()[0].ID}, time.Now()); err != nil {
		t.Fatal(err)
	}

	f := faulty.New(fx.be)
	pruned := false
	f.AddFault(faulty.Put).Match(backend.LockFile, "").Hook(func(backend.Handle) {
		// Another process prunes before this lock file lands.
		r := fx.open(t, fx.be)
		l, err := snapshot.LoadLog(ctx, r)
		if err != nil {
			t.Error(err)
			return
		}
		used, err := snapshot.UsedBlobs(ctx, r, l.Snapshots())
		if err != nil {
			t.Error(err)
			return
		}
		_, st, err := lockedPrune(ctx, r, used, repo.PruneOptions{MaxUnused: -1})
		if err != nil {
			t.Error(err)
			return
		}
		pruned = st.DeletedPacks > 0
	})
	br, lock, err := openLocked(ctx, f, []byte(testPassword), repo.Options{}, sharedLock)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	if !pruned {
		t.Fatal("the prune deleted nothing; the test shows nothing")
	}
	bl, err := snapshot.LoadLog(ctx, br)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := archiver.Backup(ctx, br, bl, archiver.BackupOptions{Paths: []string{fx.src}, Hostname: "h", Identity: fx.ident}); err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l = assertSound(t, "after the backup", fx.open(t, fx.be), false)
	if n := len(l.Snapshots()); n != 1 {
		t.Fatalf("%d snapshots, want 1", n)
	}
}
