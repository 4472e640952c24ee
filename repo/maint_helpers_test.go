package repo

import (
	"bytes"
	"context"
	"math/rand"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo/pack"
)

// testBlob is a blob a test stored, with its plaintext.
type testBlob struct {
	t    pack.BlobType
	id   backend.ID
	data []byte
}

// fixture is a repository built by buildFixture: rounds of blobs, each
// round flushed into packs of its own, so a test knows which blobs share
// a pack.
type fixture struct {
	be     *mem.Backend
	rounds [][]testBlob
}

// buildFixture saves, for each entry of sizes, a round of that many blobs
// (2-6 KiB, every third compressible, every fifth a tree blob) and flushes
// it, so each round fills its own packs (one data and at most one tree
// pack).
func buildFixture(t *testing.T, seed int64, sizes ...int) *fixture {
	t.Helper()
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	rnd := rand.New(rand.NewSource(seed))
	fx := &fixture{be: be}
	for _, n := range sizes {
		var round []testBlob
		for i := 0; i < n; i++ {
			data := randomBlob(rnd, 2048+rnd.Intn(4096), i%3 == 0)
			tp := pack.DataBlob
			if i%5 == 4 {
				tp = pack.TreeBlob
			}
			id := backend.Hash(data)
			if _, err := r.SaveBlob(ctx, tp, id, data); err != nil {
				t.Fatal(err)
			}
			round = append(round, testBlob{tp, id, data})
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		fx.rounds = append(fx.rounds, round)
	}
	return fx
}

// copyBackend returns a new in-memory backend holding the same files.
func copyBackend(t *testing.T, be *mem.Backend) *mem.Backend {
	t.Helper()
	c := mem.New()
	for h, data := range be.Files() {
		if err := c.SetFile(h, data); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// usedSet builds a BlobSet of the blobs keep selects.
func usedSet(fx *fixture, keep func(round, i int) bool) (*BlobSet, []testBlob, []testBlob) {
	s := NewBlobSet()
	var used, unused []testBlob
	for ri, round := range fx.rounds {
		for i, b := range round {
			if keep(ri, i) {
				s.Insert(b.t, b.id)
				used = append(used, b)
			} else {
				unused = append(unused, b)
			}
		}
	}
	return s, used, unused
}

// assertLoadable fails unless every blob loads with its content.
func assertLoadable(t *testing.T, r *Repository, blobs []testBlob) {
	t.Helper()
	for _, b := range blobs {
		got, err := r.LoadBlob(context.Background(), b.t, b.id, nil)
		if err != nil {
			t.Fatalf("%s blob %s: %v", b.t, b.id.Str(), err)
		}
		if !bytes.Equal(got, b.data) {
			t.Fatalf("%s blob %s: content differs", b.t, b.id.Str())
		}
	}
}

// assertIndexed fails unless the index holds exactly the given blobs, one
// copy each.
func assertIndexedExactly(t *testing.T, r *Repository, blobs []testBlob) {
	t.Helper()
	want := make(map[blobKey]bool)
	for _, b := range blobs {
		want[blobKey{b.t, b.id}] = true
	}
	if n := r.Index().Len(); n != len(want) {
		t.Errorf("index holds %d entries, want %d (one per used blob)", n, len(want))
	}
	for k := range want {
		if !r.Index().Has(k.t, k.id) {
			t.Errorf("%s blob %s not indexed", k.t, k.id.Str())
		}
	}
}

// assertCheckClean runs a full check and fails on any problem, warnings
// included.
func assertCheckClean(t *testing.T, r *Repository) {
	t.Helper()
	res, err := r.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, p := range res.Problems {
		t.Errorf("check: %s", p)
	}
}

// packIDs lists the packs in the backend, sorted.
func packIDs(be *mem.Backend) []backend.ID {
	var ids []backend.ID
	for h := range be.Files() {
		if h.Type == backend.PackFile {
			id, _ := backend.ParseID(h.Name)
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, cmpBlobID)
	return ids
}

// filesOf lists the files of one type in the backend.
func filesOf(be *mem.Backend, ft backend.FileType) []backend.Handle {
	var hs []backend.Handle
	for h := range be.Files() {
		if h.Type == ft {
			hs = append(hs, h)
		}
	}
	return hs
}

// lockedPrune prunes as the prune command does: it takes the exclusive
// lock, plans and executes under it, and unlocks. An error unlocking is
// returned too (a test that makes the backend fail counts it as a crash).
func lockedPrune(ctx context.Context, r *Repository, used *BlobSet, opts PruneOptions) (PrunePlan, PruneResult, error) {
	l, err := r.Lock(ctx, true)
	if err != nil {
		return PrunePlan{}, PruneResult{}, err
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
	for _, h := range filesOf(be, backend.LockFile) {
		be.DeleteRaw(h)
	}
}

// lockedRepairIndex repairs the index as the command does: under the
// exclusive lock, plan then execute. An error unlocking is returned too.
func lockedRepairIndex(ctx context.Context, r *Repository) (RepairIndexPlan, RepairIndexResult, error) {
	l, err := r.Lock(ctx, true)
	if err != nil {
		return RepairIndexPlan{}, RepairIndexResult{}, err
	}
	plan, err := r.PlanRepairIndex(ctx, nil)
	var res RepairIndexResult
	if err == nil {
		res, err = r.ExecuteRepairIndex(ctx, plan, nil)
	}
	if uerr := l.Unlock(ctx); err == nil {
		err = uerr
	}
	return plan, res, err
}

// lockedRepairPacks repairs packs from the copy as the command does.
func lockedRepairPacks(ctx context.Context, r *Repository, from backend.Backend) (RepairPacksPlan, RepairPacksResult, error) {
	l, err := r.Lock(ctx, true)
	if err != nil {
		return RepairPacksPlan{}, RepairPacksResult{}, err
	}
	plan, err := r.PlanRepairPacks(ctx, from, nil, nil)
	var res RepairPacksResult
	if err == nil {
		res, err = r.ExecuteRepairPacks(ctx, from, plan, nil)
	}
	if uerr := l.Unlock(ctx); err == nil {
		err = uerr
	}
	return plan, res, err
}
