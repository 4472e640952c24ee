package repo

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// TestRepairPacksFromCopy loses and damages files of a repository that a
// mirror holds intact: RepairPacks (after a dry run that changes nothing)
// fetches each back, checked, and the repository is whole again.
func TestRepairPacksFromCopy(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 4)
	addData(t, r, 3, 30)
	copyBe := mem.New()
	if _, err := Mirror(ctx, src, copyBe, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	packs := filesOf(src, backend.PackFile)
	if len(packs) < 3 {
		t.Fatalf("%d packs: the test needs three", len(packs))
	}
	lost, rotten := packs[0], packs[1]
	src.DeleteRaw(lost)
	if err := src.Corrupt(rotten, 500); err != nil {
		t.Fatal(err)
	}
	idx := filesOf(src, backend.IndexFile)[0]
	if err := src.Corrupt(idx, 40); err != nil {
		t.Fatal(err)
	}
	// Two log entries in a row lost from the middle, and one damaged.
	var bySeq [5]backend.Handle
	for id, e := range logOf(t, src) {
		bySeq[e.Seq] = backend.Handle{Type: backend.LogFile, Name: backend.ID(id).String()}
	}
	src.DeleteRaw(bySeq[2])
	src.DeleteRaw(bySeq[3])
	if err := src.Corrupt(bySeq[1], 10); err != nil {
		t.Fatal(err)
	}
	damaged := src.Files()

	want := map[string]string{lost.String(): "missing", rotten.String(): "damaged", idx.String(): "damaged",
		bySeq[1].String(): "damaged", bySeq[2].String(): "missing", bySeq[3].String(): "missing"}
	plan, err := r.PlanRepairPacks(ctx, copyBe, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The plan follows the links of the entries it would fetch: the two
	// lost in a row are both in it.
	if len(plan.Files) != len(want) || plan.Unavailable() != 0 || plan.PacksRead != len(packs)-1 {
		t.Fatalf("plan: %+v", plan)
	}
	for _, f := range plan.Files {
		h := handleOfPath(f.File)
		if want[f.File] != f.Problem || !f.Available || f.Size != int64(len(copyBe.Files()[h])) {
			t.Errorf("%+v: want %s, available, %d bytes", f, want[f.File], len(copyBe.Files()[h]))
		}
	}
	if after := src.Files(); len(after) != len(damaged) {
		t.Fatal("the plan changed the repository")
	}

	_, st, err := lockedRepairPacks(ctx, r, copyBe)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Files) != len(want) || st.Unrecovered() != 0 {
		t.Fatalf("repair: %+v", st)
	}
	for _, f := range st.Files {
		if want[f.File] != f.Problem || !f.Fetched {
			t.Errorf("%+v: want %s, fetched", f, want[f.File])
		}
	}
	sameFiles(t, copyBe, src)
	assertCheckClean(t, testOpen(t, src, Options{}))

	// Whole again: nothing to do.
	plan, st, err = lockedRepairPacks(ctx, r, copyBe)
	if err != nil || len(plan.Files) != 0 || len(st.Files) != 0 {
		t.Fatalf("second repair: %+v, %v", st, err)
	}
}

// TestRepairPacksCopyLacksIt: a pack lost here and at the copy, or
// damaged at both, is named with why, and nothing is stored for it.
func TestRepairPacksCopyLacksIt(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 1)
	copyBe := mem.New()
	if _, err := Mirror(ctx, src, copyBe, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	packs := filesOf(src, backend.PackFile)
	gone, bad := packs[0], packs[1]
	src.DeleteRaw(gone)
	copyBe.DeleteRaw(gone)
	for _, be := range []*mem.Backend{src, copyBe} {
		if err := be.Corrupt(bad, 100); err != nil {
			t.Fatal(err)
		}
	}
	before := src.Files()[bad]
	plan, st, err := lockedRepairPacks(ctx, r, copyBe)
	if err != nil || st.Unrecovered() != 2 || plan.Unavailable() != 1 {
		t.Fatalf("%+v %+v, %v", plan, st, err)
	}
	for _, f := range st.Files {
		if f.Fetched || !strings.Contains(f.Error, "mem:") {
			t.Errorf("%+v", f)
		}
	}
	if !bytes.Equal(src.Files()[bad], before) {
		t.Fatal("a damaged pack was replaced by a damaged copy")
	}
}

// TestRepairPacksRefusesAnotherRepository: files are fetched only from a
// copy of this repository.
func TestRepairPacksRefusesAnotherRepository(t *testing.T) {
	ident, _ := crypt.NewIdentity()
	_, r := mirrorSource(t, ident, 1)
	other, _ := mirrorSource(t, ident, 1)
	if _, err := r.PlanRepairPacks(context.Background(), other, nil, nil); !errors.Is(err, ErrNotACopy) {
		t.Fatalf("got %v", err)
	}
}
