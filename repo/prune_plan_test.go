package repo

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
)

// filesByType returns the IDs and sizes of the files of type ft in be.
func filesByType(be *mem.Backend, ft backend.FileType) map[backend.ID]int64 {
	out := make(map[backend.ID]int64)
	for h, data := range be.Files() {
		if h.Type == ft {
			id, err := backend.ParseID(h.Name)
			if err != nil {
				panic(err)
			}
			out[id] = int64(len(data))
		}
	}
	return out
}

// minus returns the keys of a that b lacks, sorted.
func minus(a, b map[backend.ID]int64) []backend.ID {
	var out []backend.ID
	for id := range a {
		if _, ok := b[id]; !ok {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, cmpBlobID)
	return out
}

// TestPrunePlanMatchesExecution plans a prune of a repository holding
// every case a prune meets (unused, partly used and fully used packs,
// small index files, a pack no index lists, a pack the index lists that
// is missing, a pack whose header does not read), executes the plan, and
// checks that exactly the planned files were deleted, with the planned
// sizes, and that the files written hold what the plan said.
func TestPrunePlanMatchesExecution(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 31, 30, 30, 30, 30, 30, 30, 12)
	// Round 6's packs lose their index file: unindexed, fully used.
	r0 := testOpen(t, fx.be, Options{})
	last := fx.rounds[6][0]
	lastPack, _ := r0.Index().Lookup(last.t, last.id)
	for _, h := range filesOf(fx.be, backend.IndexFile) {
		id, err := backend.ParseID(h.Name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := r0.loadIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Packs {
			if p.ID == lastPack.PackID {
				fx.be.DeleteRaw(h)
			}
		}
	}
	// Round 4's tree pack goes missing (its blobs are unused), and junk
	// lies where a pack would.
	r0 = testOpen(t, fx.be, Options{})
	var missing backend.ID
	for _, b := range fx.rounds[4] {
		if b.t.String() == "tree" {
			pb, _ := r0.Index().Lookup(b.t, b.id)
			missing = pb.PackID
		}
	}
	fx.be.DeleteRaw(backend.Handle{Type: backend.PackFile, Name: missing.String()})
	junk := make([]byte, 3000)
	junkID := backend.Hash(junk)
	if err := fx.be.SetFile(backend.Handle{Type: backend.PackFile, Name: junkID.String()}, junk); err != nil {
		t.Fatal(err)
	}

	r := testOpen(t, fx.be, Options{Warn: func(string) {}})
	used, usedBlobs, _ := usedSet(fx, func(round, i int) bool { return mixedUse(round, i) || round == 6 })
	l, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	plan, err := r.PlanPrune(ctx, used, PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Delete) == 0 || len(plan.Repack) == 0 || len(plan.Index.Replace) < 2 || plan.Index.Packs == 0 ||
		len(plan.MissingPacks) != 1 || plan.MissingPacks[0] != missing || len(plan.DamagedPacks) != 1 || plan.DamagedPacks[0] != junkID {
		t.Fatalf("the fixture does not make every case: %+v", plan)
	}
	packsBefore, indexBefore := filesByType(fx.be, backend.PackFile), filesByType(fx.be, backend.IndexFile)

	res, err := r.ExecutePrune(ctx, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	packsAfter, indexAfter := filesByType(fx.be, backend.PackFile), filesByType(fx.be, backend.IndexFile)

	// Packs: exactly those planned went, with the planned sizes.
	var planned []backend.ID
	var plannedBytes int64
	for _, list := range [][]PrunePack{plan.Delete, plan.Repack} {
		for _, p := range list {
			planned = append(planned, p.ID)
			plannedBytes += p.Size
			if p.Size != packsBefore[p.ID] {
				t.Errorf("pack %s: planned size %d, file size %d", p.ID.Str(), p.Size, packsBefore[p.ID])
			}
		}
	}
	slices.SortFunc(planned, cmpBlobID)
	if gone := minus(packsBefore, packsAfter); !slices.Equal(gone, planned) {
		t.Errorf("deleted packs %v, planned %v", gone, planned)
	}
	if plannedBytes != plan.DeleteBytes || res.DeletedBytes != plan.DeleteBytes || res.DeletedPacks != len(planned) {
		t.Errorf("deleted %d packs, %d bytes; planned %d, %d (%d)", res.DeletedPacks, res.DeletedBytes, len(planned), plan.DeleteBytes, plannedBytes)
	}
	// New packs hold exactly the blobs planned for the repack.
	newPacks := minus(packsAfter, packsBefore)
	var newBytes int64
	for _, id := range newPacks {
		newBytes += packsAfter[id]
	}
	if len(newPacks) != res.NewPacks || newBytes != res.NewPackBytes || res.FreedBytes != res.DeletedBytes-newBytes {
		t.Errorf("new packs %d (%d bytes), result %+v", len(newPacks), newBytes, res)
	}
	r2 := testOpen(t, fx.be, Options{Warn: func(string) {}})
	isNew := make(map[backend.ID]bool)
	for _, id := range newPacks {
		isNew[id] = true
	}
	var newBlobs int
	var newBlobBytes int64
	for _, b := range usedBlobs {
		for _, pb := range r2.Index().LookupAll(b.t, b.id) {
			if isNew[pb.PackID] {
				newBlobs++
				newBlobBytes += int64(pb.Length)
			}
		}
	}
	if newBlobs != plan.RepackBlobs || newBlobBytes != plan.RepackBytes {
		t.Errorf("new packs hold %d blobs (%d bytes), plan said %d (%d)", newBlobs, newBlobBytes, plan.RepackBlobs, plan.RepackBytes)
	}

	// Index files: exactly the planned ones went; the new ones list the
	// packs the plan relists and the new packs, and nothing else.
	if gone := minus(indexBefore, indexAfter); !slices.Equal(gone, plan.Index.Replace) {
		t.Errorf("deleted index files %v, planned %v", gone, plan.Index.Replace)
	}
	written := minus(indexAfter, indexBefore)
	listed := make(map[backend.ID]int)
	for _, id := range written {
		f, err := r2.loadIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, old := range plan.Index.Replace {
			if !slices.Contains(f.Supersedes, old) {
				t.Errorf("index file %s does not name %s, which it replaces, as superseded", id.Str(), old.Str())
			}
		}
		for _, p := range f.Packs {
			listed[p.ID] += len(p.Blobs)
		}
	}
	relisted, relistedBlobs := 0, 0
	for id, n := range listed {
		if isNew[id] {
			continue
		}
		if !slices.Contains(plan.relist, id) {
			t.Errorf("a new index file lists pack %s, which the plan does not relist", id.Str())
		}
		relisted++
		relistedBlobs += n
	}
	if relisted != plan.Index.Packs || relistedBlobs != plan.Index.Blobs {
		t.Errorf("new index files relist %d packs (%d blobs), plan said %d (%d)", relisted, relistedBlobs, plan.Index.Packs, plan.Index.Blobs)
	}
	for _, id := range newPacks {
		if listed[id] == 0 {
			t.Errorf("new pack %s is in no new index file", id.Str())
		}
	}
	// Every pack is listed by exactly one index file: none of the
	// repack's own files is left beside the new ones.
	times := make(map[backend.ID]int)
	for id := range indexAfter {
		f, err := r2.loadIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Packs {
			times[p.ID]++
		}
	}
	for id := range packsAfter {
		if n := times[id]; n != 1 && id != junkID {
			t.Errorf("pack %s is listed by %d index files", id.Str(), n)
		}
	}
	if res.IndexRemoved-len(plan.Index.Replace) != res.IndexWritten-len(written) {
		t.Errorf("wrote %d index files and removed %d: the repack's own files (%d written, %d removed) must all go",
			res.IndexWritten, res.IndexRemoved, res.IndexWritten-len(written), res.IndexRemoved-len(plan.Index.Replace))
	}
	if _, ok := packsAfter[junkID]; !ok {
		t.Error("the pack whose header does not read was deleted")
	}
	assertLoadable(t, r2, usedBlobs)
	assertIndexedExactly(t, r2, usedBlobs)
}

// TestExecutePruneOnlyUnderItsLock: a plan executes only under the
// exclusive lock it was made under, once.
func TestExecutePruneOnlyUnderItsLock(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 32, 10, 10)
	r := testOpen(t, fx.be, Options{})
	used, _, _ := usedSet(fx, func(round, _ int) bool { return round == 0 })

	refused := func(what string, plan PrunePlan) {
		t.Helper()
		before := snapshotFiles(fx.be)
		if _, err := r.ExecutePrune(ctx, plan, nil); !errors.Is(err, ErrPlanNotHeld) {
			t.Fatalf("%s: got %v, want ErrPlanNotHeld", what, err)
		}
		if snapshotFiles(fx.be) != before {
			t.Fatalf("%s: a refused plan changed the repository", what)
		}
	}
	// Made before the lock was taken.
	early, err := r.PlanPrune(ctx, used, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	refused("a plan made before the lock", early)
	// Made under a lock since released, executed under a new one.
	old, err := r.PlanPrune(ctx, used, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	refused("a plan whose lock was released", old)
	if l, err = r.Lock(ctx, true); err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	refused("a plan made under an earlier lock", old)
	// By another Repository on the same backend.
	other := testOpen(t, fx.be, Options{})
	foreign, err := other.PlanPrune(ctx, used, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refused("another repository's plan", foreign)
	// Made under the lock: runs, once.
	plan, err := r.PlanPrune(ctx, used, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ExecutePrune(ctx, plan, nil); err != nil {
		t.Fatal(err)
	}
	refused("a plan executed already", plan)
}
