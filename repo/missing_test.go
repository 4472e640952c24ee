package repo

import (
	"context"
	"math/rand"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo/pack"
)

// saveAndFlush stores blobs, forcing a fresh copy of each, and returns the
// packs that hold them now.
func saveAndFlush(t *testing.T, r *Repository, blobs [][]byte) map[backend.ID]bool {
	t.Helper()
	ctx := context.Background()
	for _, b := range blobs {
		if _, err := r.saveBlob(ctx, pack.DataBlob, backend.Hash(b), b, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	packs := map[backend.ID]bool{}
	for _, b := range blobs {
		for _, pb := range r.idx.LookupAll(pack.DataBlob, backend.Hash(b)) {
			packs[pb.PackID] = true
		}
	}
	return packs
}

// TestForgetMissingPacks: packs the index lists and the backend lacks
// leave the in-memory index, so their blobs are unknown unless another
// pack holds them; check then tells a lost pack whose every blob is stored
// elsewhere (a warning: nothing is lost) from one that held the only copy
// of a blob (damage).
func TestForgetMissingPacks(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	rnd := rand.New(rand.NewSource(3))
	shared := [][]byte{randomBlob(rnd, 1000, false), randomBlob(rnd, 2000, false)}
	only := randomBlob(rnd, 3000, false)
	first := saveAndFlush(t, r, shared)
	second := saveAndFlush(t, r, [][]byte{only})
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("fixture: packs %v %v", first, second)
	}
	var lostShared, lostOnly backend.ID
	for id := range first {
		lostShared = id
	}
	for id := range second {
		lostOnly = id
	}
	be.DeleteRaw(backend.Handle{Type: backend.PackFile, Name: lostShared.String()})
	be.DeleteRaw(backend.Handle{Type: backend.PackFile, Name: lostOnly.String()})

	// A fresh open, as a backup does: it still lists the lost packs.
	r2 := testOpen(t, be, Options{})
	missing, err := r2.ForgetMissingPacks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.ID{lostShared, lostOnly}
	slices.SortFunc(want, cmpBlobID)
	if !slices.Equal(missing, want) {
		t.Fatalf("missing %v, want %v", missing, want)
	}
	for _, b := range append(shared, only) {
		if r2.Has(pack.DataBlob, backend.Hash(b)) {
			t.Fatal("a blob of a lost pack is still known")
		}
	}
	if again, err := r2.ForgetMissingPacks(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second call: %v %v", again, err)
	}
	// The next backup stores the shared blobs again, not the other.
	saveAndFlush(t, r2, shared)

	r3 := testOpen(t, be, Options{})
	res, err := r3.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range res.Problems {
		if p.Kind != ProblemPackMissing {
			t.Fatalf("unexpected problem %v", p)
		}
		got[p.File] = p.Warning
	}
	if w, ok := got["data/"+lostShared.String()]; !ok || !w {
		t.Fatalf("the lost pack whose blobs are stored again: %v", res.Problems)
	}
	if w, ok := got["data/"+lostOnly.String()]; !ok || w {
		t.Fatalf("the lost pack that held the only copy: %v", res.Problems)
	}
}
