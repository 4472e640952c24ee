package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// mixedUse keeps rounds 0 and 3 whole, drops rounds 1 and 4, and keeps
// every other blob of round 2 and a single blob of round 5.
func mixedUse(round, i int) bool {
	switch round {
	case 0, 3:
		return true
	case 2:
		return i%2 == 0
	case 5:
		return i == 0
	}
	return false
}

func TestPruneRemovesUnusedKeepsUsed(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 1, 30, 30, 30, 30, 30, 30)
	r := testOpen(t, fx.be, Options{})
	used, usedBlobs, unusedBlobs := usedSet(fx, mixedUse)
	packsBefore := len(packIDs(fx.be))

	plan, st, err := lockedPrune(ctx, r, used, PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Rounds 1 and 4 (a data and a tree pack each) and the tree pack of
	// round 5 go whole; both packs of round 2 and the data pack of round
	// 5 are repacked.
	if len(plan.Delete) != 5 || len(plan.Repack) != 3 {
		t.Errorf("unused packs %d, repacked %d; want 5 and 3", len(plan.Delete), len(plan.Repack))
	}
	if plan.UsedBlobs != len(usedBlobs) || plan.UnusedBlobs != len(unusedBlobs) || plan.DuplicateBlobs != 0 {
		t.Errorf("used %d unused %d dup %d; want %d %d 0", plan.UsedBlobs, plan.UnusedBlobs, plan.DuplicateBlobs, len(usedBlobs), len(unusedBlobs))
	}
	if st.DeletedPacks != 8 || st.FreedBytes <= 0 || plan.UnusedAfter != 0 {
		t.Errorf("deleted %d packs, freed %d, unused after %d", st.DeletedPacks, st.FreedBytes, plan.UnusedAfter)
	}
	if got, want := len(packIDs(fx.be)), packsBefore-8+st.NewPacks; got != want {
		t.Errorf("%d packs after, want %d", got, want)
	}
	assertLoadable(t, r, usedBlobs)

	// A fresh process sees the same: used blobs only, each once.
	r2 := testOpen(t, fx.be, Options{})
	assertLoadable(t, r2, usedBlobs)
	assertIndexedExactly(t, r2, usedBlobs)
	for _, b := range unusedBlobs {
		if r2.Index().Has(b.t, b.id) {
			t.Errorf("unused %s blob %s still indexed", b.t, b.id.Str())
		}
	}
	assertCheckClean(t, r2)

	// A second prune has nothing to do and changes nothing.
	before := snapshotFiles(fx.be)
	plan, st, err = lockedPrune(ctx, r2, used, PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.NothingToDo || snapshotFiles(fx.be) != before {
		t.Errorf("second prune changed something: %+v %+v", plan, st)
	}
}

func TestPlanPruneChangesNothing(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 2, 20, 20, 20)
	// An unindexed pack too: a dry run reads its header but writes nothing.
	for h := range fx.be.Files() {
		if h.Type == backend.IndexFile {
			fx.be.DeleteRaw(h)
			break
		}
	}
	r := testOpen(t, fx.be, Options{})
	used, _, _ := usedSet(fx, func(round, i int) bool { return round == 0 || i%3 == 0 })
	before := snapshotFiles(fx.be)
	plan, err := r.PlanPrune(ctx, used, PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshotFiles(fx.be); after != before {
		t.Fatalf("a plan changed the repository:\n%s\nvs\n%s", before, after)
	}
	if plan.NothingToDo || len(plan.Repack) == 0 || plan.FreedBytes <= 0 || plan.UnindexedPacks == 0 {
		t.Errorf("plan: %+v", plan)
	}
	// Made without the lock, the plan is only for display.
	if _, err := r.ExecutePrune(ctx, plan, nil); !errors.Is(err, ErrPlanNotHeld) {
		t.Fatalf("a plan made without the lock executed: %v", err)
	}
	if after := snapshotFiles(fx.be); after != before {
		t.Fatal("a refused plan changed the repository")
	}
}

// TestPruneMaxUnused builds packs with known waste and checks that prune
// repacks the most wasteful first, and only until the rest is within the
// limit.
func TestPruneMaxUnused(t *testing.T) {
	ctx := context.Background()
	// Six rounds of 40 blobs; round r keeps all but r*2 of its blobs (so
	// round 0 is fully used and round 5 the most wasteful).
	sizes := []int{40, 40, 40, 40, 40, 40}
	keep := func(round, i int) bool { return i >= round*2 }
	for _, tc := range []struct {
		maxUnused float64
		repacked  int // data+tree packs
	}{
		{100, 0},
		// Every partly used pack: the data packs of rounds 1-5 and the
		// tree packs of rounds 3-5 (blobs 4, 9, ... are trees, so rounds 1
		// and 2 drop none).
		{-1, 8},
	} {
		fx := buildFixture(t, 3, sizes...)
		r := testOpen(t, fx.be, Options{})
		used, usedBlobs, _ := usedSet(fx, keep)
		plan, _, err := lockedPrune(ctx, r, used, PruneOptions{MaxUnused: tc.maxUnused})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Repack) != tc.repacked {
			t.Errorf("max unused %v: repacked %d packs, want %d", tc.maxUnused, len(plan.Repack), tc.repacked)
		}
		assertLoadable(t, testOpen(t, fx.be, Options{}), usedBlobs)
	}

	// In between, the limit holds and the worst packs went first.
	for _, limit := range []float64{2, 5, 10} {
		fx := buildFixture(t, 3, sizes...)
		r := testOpen(t, fx.be, Options{})
		used, usedBlobs, _ := usedSet(fx, keep)
		share := wasteShares(r, used)
		dry, err := r.PlanPrune(ctx, used, PruneOptions{MaxUnused: limit})
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := lockedPrune(ctx, r, used, PruneOptions{MaxUnused: limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Repack) != len(dry.Repack) || st.UnusedAfter != dry.UnusedAfter {
			t.Errorf("limit %v: dry run said %d packs/%d bytes, prune did %d/%d", limit, len(dry.Repack), dry.UnusedAfter, len(st.Repack), st.UnusedAfter)
		}
		if len(st.Repack) == 0 || len(st.Repack) == 8 {
			t.Errorf("limit %v: repacked %d packs; the fixture wants some but not all", limit, len(st.Repack))
		}
		// What is left, as a fresh dry run measures it.
		r2 := testOpen(t, fx.be, Options{})
		after, err := r2.PlanPrune(ctx, used, PruneOptions{MaxUnused: 100})
		if err != nil {
			t.Fatal(err)
		}
		waste := after.UnusedBytes + after.DuplicateBytes
		if waste != st.UnusedAfter {
			t.Errorf("limit %v: %d unused bytes left, prune said %d", limit, waste, st.UnusedAfter)
		}
		left := 100 * float64(waste) / float64(waste+after.UsedBytes)
		if left > limit {
			t.Errorf("limit %v: %.2f%% unused left", limit, left)
		}
		// Prune did not overshoot by more than it had to: a limit below
		// what is left needs more repacking.
		lower, err := r2.PlanPrune(ctx, used, PruneOptions{MaxUnused: left * 0.99})
		if err != nil {
			t.Fatal(err)
		}
		if waste > 0 && len(lower.Repack) == 0 {
			t.Errorf("limit %v: half the limit repacks nothing more", limit)
		}
		// The most wasteful packs went first: every partly used pack kept
		// wastes a smaller share than every pack repacked.
		present := make(map[backend.ID]bool)
		for _, id := range packIDs(fx.be) {
			present[id] = true
		}
		minGone, maxKept := 2.0, -1.0
		for id, sh := range share {
			if sh == 0 {
				continue
			}
			if present[id] {
				maxKept = max(maxKept, sh)
			} else {
				minGone = min(minGone, sh)
			}
		}
		if maxKept >= minGone {
			t.Errorf("limit %v: kept a pack wasting %.3f, repacked one wasting %.3f", limit, maxKept, minGone)
		}
		assertLoadable(t, r2, usedBlobs)
	}
}

// wasteShares returns each pack's unused share of blob bytes.
func wasteShares(r *Repository, used *BlobSet) map[backend.ID]float64 {
	total := make(map[backend.ID]float64)
	unused := make(map[backend.ID]float64)
	r.Index().Each(func(pb index.PackedBlob) bool {
		total[pb.PackID] += float64(pb.Length)
		if !used.Has(pb.Type, pb.ID) {
			unused[pb.PackID] += float64(pb.Length)
		}
		return true
	})
	share := make(map[backend.ID]float64)
	for id, n := range total {
		share[id] = unused[id] / n
	}
	return share
}

func TestPruneDuplicates(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 4, 10)
	r := testOpen(t, fx.be, Options{})
	// Store every blob of the round a second time, in new packs.
	for _, b := range fx.rounds[0] {
		if _, err := r.saveBlob(ctx, b.t, b.id, b.data, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.Index().Len(); n != 20 {
		t.Fatalf("index holds %d entries, want 20", n)
	}
	used, usedBlobs, _ := usedSet(fx, func(_, i int) bool { return i < 5 })
	st, _, err := lockedPrune(ctx, r, used, PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatal(err)
	}
	if st.DuplicateBlobs != 5 || st.UnusedBlobs != 10 {
		t.Errorf("duplicates %d, unused %d; want 5 and 10", st.DuplicateBlobs, st.UnusedBlobs)
	}
	r2 := testOpen(t, fx.be, Options{})
	assertIndexedExactly(t, r2, usedBlobs)
	assertLoadable(t, r2, usedBlobs)
	assertCheckClean(t, r2)
}

func TestPruneRefusesWhenUsedBlobsAreMissing(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 5, 10, 10)
	r := testOpen(t, fx.be, Options{})
	used, _, _ := usedSet(fx, func(round, _ int) bool { return round == 0 })
	used.Insert(pack.DataBlob, backend.Hash([]byte("nowhere")))
	before := snapshotFiles(fx.be)
	_, err := r.PlanPrune(ctx, used, PruneOptions{})
	if !errors.Is(err, ErrMissingBlobs) {
		t.Fatalf("got %v, want ErrMissingBlobs", err)
	}
	if snapshotFiles(fx.be) != before {
		t.Fatal("a refused prune changed the repository")
	}
}

func TestPruneIndexesUnindexedPacks(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 6, 10, 10, 10)
	// Drop every index file: as if the backups were killed before
	// writing them. A fresh open does not know the packs.
	for _, h := range filesOf(fx.be, backend.IndexFile) {
		fx.be.DeleteRaw(h)
	}
	r := testOpen(t, fx.be, Options{})
	if r.Index().Len() != 0 {
		t.Fatal("index not empty")
	}
	used, usedBlobs, _ := usedSet(fx, func(round, i int) bool { return round != 1 && i%2 == 0 })
	st, _, err := lockedPrune(ctx, r, used, PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatal(err)
	}
	if st.UnindexedPacks != 6 {
		t.Errorf("unindexed packs %d, want 6", st.UnindexedPacks)
	}
	r2 := testOpen(t, fx.be, Options{})
	assertIndexedExactly(t, r2, usedBlobs)
	assertLoadable(t, r2, usedBlobs)
	assertCheckClean(t, r2)
}

func TestPruneLeavesUnreadablePacks(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 7, 10, 10)
	var warnings []string
	warn := func(msg string) { warnings = append(warnings, msg) }
	r := testOpen(t, fx.be, Options{Warn: warn})
	// A pack that no index lists and whose header is damaged.
	junk := make([]byte, 5000)
	id := backend.Hash(junk)
	if err := fx.be.SetFile(backend.Handle{Type: backend.PackFile, Name: id.String()}, junk); err != nil {
		t.Fatal(err)
	}
	used, usedBlobs, _ := usedSet(fx, func(round, _ int) bool { return round == 0 })
	st, _, err := lockedPrune(ctx, r, used, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.DamagedPacks) != 1 || st.DamagedPacks[0] != id {
		t.Errorf("damaged packs %v, want [%s]", st.DamagedPacks, id.Str())
	}
	if _, ok := fx.be.Files()[backend.Handle{Type: backend.PackFile, Name: id.String()}]; !ok {
		t.Error("prune deleted a pack it could not read")
	}
	if len(warnings) == 0 {
		t.Error("no warning about the unreadable pack")
	}
	assertLoadable(t, testOpen(t, fx.be, Options{Warn: warn}), usedBlobs)
}

func TestPruneRejectsBadMaxUnused(t *testing.T) {
	fx := buildFixture(t, 8, 5)
	r := testOpen(t, fx.be, Options{})
	if _, err := r.PlanPrune(context.Background(), NewBlobSet(), PruneOptions{MaxUnused: 101}); err == nil {
		t.Fatal("max unused 101% accepted")
	}
}

// errCrash stands for the process dying: every call after it fails.
var errCrash = errors.New("simulated crash")

// TestPruneCrashSafety stops a prune at every write and every delete in
// turn (the call fails, or succeeds with its answer lost, and every later
// call of that kind fails, as if the process died there), checks that the
// repository is sound meanwhile, then runs prune again without faults and
// checks that it completes the job.
func TestPruneCrashSafety(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 9, 12, 12, 12, 12)
	used, usedBlobs, _ := usedSet(fx, func(round, i int) bool {
		return round == 0 || round == 2 && i%2 == 0 || round == 3 && i < 3
	})
	opts := PruneOptions{MaxUnused: -1}

	// How many writes and deletes a prune makes.
	probe := faulty.New(copyBackend(t, fx.be))
	r := testOpen(t, probe, Options{})
	if _, _, err := lockedPrune(ctx, r, used, opts); err != nil {
		t.Fatal(err)
	}
	calls := map[faulty.Method]int{faulty.Put: probe.Calls(faulty.Put), faulty.Delete: probe.Calls(faulty.Delete)}
	if calls[faulty.Put] < 3 || calls[faulty.Delete] < 6 {
		t.Fatalf("probe prune made %d puts and %d deletes; the fixture is too small", calls[faulty.Put], calls[faulty.Delete])
	}
	t.Logf("a prune makes %d puts and %d deletes", calls[faulty.Put], calls[faulty.Delete])

	for _, m := range []faulty.Method{faulty.Put, faulty.Delete} {
		for _, lost := range []bool{false, true} {
			for k := 1; k <= calls[m]; k++ {
				name := fmt.Sprintf("%v/%d/lost=%v", m, k, lost)
				inner := copyBackend(t, fx.be)
				f := faulty.New(inner)
				if k > 1 {
					f.AddFault(m).Times(k - 1) // pass through
				}
				if lost {
					f.AddFault(m).ErrorAfter(errCrash)
				} else {
					f.AddFault(m).ErrorInstead(errCrash)
				}
				f.AddFault(m).Times(1 << 20).ErrorInstead(errCrash)
				r, err := Open(ctx, f, testPassword, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := lockedPrune(ctx, r, used, opts); !errors.Is(err, errCrash) {
					t.Fatalf("%s: prune returned %v, want the crash", name, err)
				}
				r.Close()
				dropLocks(inner) // the crashed process is gone

				// Meanwhile: every used blob loads, and check finds no
				// damage (unindexed packs are only warnings).
				r = testOpen(t, inner, Options{})
				assertLoadable(t, r, usedBlobs)
				res, err := r.Check(ctx, CheckOptions{ReadData: true})
				if err != nil {
					t.Fatal(err)
				}
				if HasDamage(res.Problems) {
					t.Fatalf("%s: check after the crash: %v", name, res.Problems)
				}

				// The next prune finishes the job.
				if _, _, err := lockedPrune(ctx, r, used, opts); err != nil {
					t.Fatalf("%s: second prune: %v", name, err)
				}
				r = testOpen(t, inner, Options{})
				assertLoadable(t, r, usedBlobs)
				assertIndexedExactly(t, r, usedBlobs)
				assertCheckClean(t, r)
				if t.Failed() {
					t.Fatalf("%s: failed", name)
				}
			}
		}
	}
}

func TestPruneRemovesStaleTemp(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 3, 20, 20)
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for h, data := range fx.be.Files() {
		if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	r := testOpen(t, be, Options{})
	used, usedBlobs, _ := usedSet(fx, func(round, i int) bool { return round == 0 })
	old, oldBytes, fresh := plantTemps(t, dir)

	if _, err := r.PlanPrune(ctx, used, PruneOptions{}); err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, p := range append(old, fresh) {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("dry run removed %s: %v", p, err)
		}
	}

	_, st, err := lockedPrune(ctx, r, used, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.DeletedPacks == 0 || st.TempFilesRemoved != len(old) || st.TempBytesRemoved != oldBytes {
		t.Errorf("prune stats %+v; want packs deleted and %d temporary files (%d bytes) removed", st, len(old), oldBytes)
	}
	checkTemps(t, old, fresh)
	assertLoadable(t, r, usedBlobs)
	assertCheckClean(t, testOpen(t, be, Options{}))

	// With nothing else to do, a prune still sweeps.
	old, oldBytes, _ = plantTemps(t, dir)
	plan, st, err := lockedPrune(ctx, r, used, PruneOptions{})
	if err != nil || !plan.NothingToDo || st.TempFilesRemoved != len(old) || st.TempBytesRemoved != oldBytes {
		t.Errorf("second prune: %+v, %v", st, err)
	}
}
