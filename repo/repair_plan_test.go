package repo

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// TestRepairIndexPlanMatchesExecution: repair index deletes exactly the
// index files its plan names and writes as many as it says, listing the
// packs and blobs it says.
func TestRepairIndexPlanMatchesExecution(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 33, 10, 10, 10, 10)
	packs := packIDs(fx.be)
	fx.be.DeleteRaw(backend.Handle{Type: backend.PackFile, Name: packs[0].String()})
	r := testOpen(t, fx.be, Options{Warn: func(string) {}})
	l, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	plan, err := r.PlanRepairIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Dropped) != 1 || plan.Dropped[0] != packs[0] || plan.Packs != len(packs)-1 {
		t.Fatalf("plan: %+v", plan)
	}
	before := filesByType(fx.be, backend.IndexFile)
	res, err := r.ExecuteRepairIndex(ctx, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := filesByType(fx.be, backend.IndexFile)
	if gone := minus(before, after); !slices.Equal(gone, plan.Replace) || res.IndexRemoved != len(gone) {
		t.Errorf("deleted %v (%d), planned %v", gone, res.IndexRemoved, plan.Replace)
	}
	written := minus(after, before)
	if len(written) != plan.IndexFiles || res.IndexWritten != plan.IndexFiles {
		t.Errorf("wrote %d index files (%d), planned %d", len(written), res.IndexWritten, plan.IndexFiles)
	}
	npacks, nblobs := 0, 0
	for _, id := range written {
		f, err := r.loadIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Packs {
			npacks++
			nblobs += len(p.Blobs)
		}
	}
	if npacks != plan.Packs || nblobs != plan.Blobs {
		t.Errorf("new index lists %d packs, %d blobs; planned %d, %d", npacks, nblobs, plan.Packs, plan.Blobs)
	}
	if _, err := r.ExecuteRepairIndex(ctx, plan, nil); !errors.Is(err, ErrPlanNotHeld) {
		t.Errorf("a plan executed twice: %v", err)
	}
}

// TestRepairPacksPlanMatchesExecution: repair packs stores exactly the
// files its plan says the copy has, with the planned sizes, and nothing
// else; a plan made without the lock does not execute.
func TestRepairPacksPlanMatchesExecution(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 3)
	addData(t, r, 4, 20)
	copyBe := mem.New()
	if _, err := Mirror(ctx, src, copyBe, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	packs := filesOf(src, backend.PackFile)
	src.DeleteRaw(packs[0])
	copyBe.DeleteRaw(packs[1]) // lost at the copy too
	src.DeleteRaw(packs[1])
	if err := src.Corrupt(packs[2], 300); err != nil {
		t.Fatal(err)
	}
	plan, err := r.PlanRepairPacks(ctx, copyBe, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Files) != 3 || plan.Unavailable() != 1 {
		t.Fatalf("plan: %+v", plan)
	}
	if _, err := r.ExecuteRepairPacks(ctx, copyBe, plan, nil); !errors.Is(err, ErrPlanNotHeld) {
		t.Fatalf("a plan made without the lock executed: %v", err)
	}
	before := src.Files()
	_, res, err := lockedRepairPacks(ctx, r, copyBe)
	if err != nil {
		t.Fatal(err)
	}
	after := src.Files()
	changed := map[string]int64{}
	for h, data := range after {
		if h.Type != backend.LockFile && !bytes.Equal(before[h], data) {
			changed[h.String()] = int64(len(data))
		}
	}
	for h := range before {
		if _, ok := after[h]; !ok {
			t.Errorf("%s was deleted", h)
		}
	}
	want := map[string]int64{}
	for _, f := range plan.Files {
		if f.Available {
			want[f.File] = f.Size
		}
	}
	if len(changed) != len(want) {
		t.Errorf("stored %v, planned %v", changed, want)
	}
	for f, size := range want {
		if changed[f] != size {
			t.Errorf("%s: stored %d bytes, planned %d", f, changed[f], size)
		}
	}
	if len(res.Files) != len(plan.Files) || res.Unrecovered() != plan.Unavailable() {
		t.Errorf("result %+v for plan %+v", res, plan)
	}
}
