package repo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// indexHandles returns the index files of be as a set.
func indexHandles(be *mem.Backend) map[backend.Handle]bool {
	out := map[backend.Handle]bool{}
	for _, h := range handlesOf(be, backend.IndexFile) {
		out[h] = true
	}
	return out
}

// TestMirrorPruneKeepsLostIndexFile: an index file the source lost (its
// packs are still there, and no index lists them any more) is damage, not
// a drop: mirror --prune keeps it at the destination, removes nothing, and
// names it with the cure. Index files the source replaced on purpose
// (prune, repair index), also several generations at once, still go.
func TestMirrorPruneKeepsLostIndexFile(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 1)
	addData(t, r, 5, 10)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	open := func() *Repository { return testOpen(t, src, Options{Warn: func(string) {}}) }

	// Two generations of rebuilt index without a mirror between: the
	// destination holds index files that no index file of the source
	// names as superseded any more, but whose packs the source indexes.
	old := indexHandles(src)
	for range 2 {
		if _, _, err := lockedRepairIndex(ctx, open()); err != nil {
			t.Fatal(err)
		}
	}
	st, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: open().MirrorRefs()})
	if err != nil || st.FilesRemoved != len(old) {
		t.Fatalf("mirror --prune after repair index: removed %d files, want the %d old index files: %v", st.FilesRemoved, len(old), err)
	}
	sameFiles(t, src, dst)

	// A prune killed after it replaced the index files and before it
	// deleted the packs they no longer list: those packs are still at
	// the source, unindexed, but the new index file names the old one as
	// superseded, so the old one goes.
	r1 := open()
	dropped := r1.Index().Packs()[0]
	var pp PrunePlan
	if err := r1.planIndex(ctx, &pp, map[backend.ID]bool{dropped: true}, orNoProgress(nil)); err != nil {
		t.Fatal(err)
	}
	if err := r1.executeIndexPlan(ctx, pp, nil, &PruneResult{}, orNoProgress(nil)); err != nil {
		t.Fatal(err)
	}
	if st, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: open().MirrorRefs()}); err != nil || st.FilesRemoved != 1 {
		t.Fatalf("mirror --prune after an interrupted prune: removed %d files, want the replaced index file: %v", st.FilesRemoved, err)
	}
	sameFiles(t, src, dst)

	// New data, mirrored; then the source loses that index file, and
	// prunes a pack on purpose.
	before := indexHandles(src)
	addData(t, r, 6, 10)
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	var lost backend.Handle
	for h := range indexHandles(src) {
		if !before[h] {
			lost = h
		}
	}
	src.DeleteRaw(lost)
	r2 := open()
	pruned := r2.Index().Packs()[0]
	r2.Index().RemovePacks(map[backend.ID]bool{pruned: true})
	src.DeleteRaw(backend.Handle{Type: backend.PackFile, Name: pruned.String()})

	plan, err := PlanMirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r2.MirrorRefs()})
	if err != nil || len(plan.LostIndex) != 1 || plan.LostIndex[0] != lost || len(plan.Remove) != 0 || !plan.PruneSkipped {
		t.Fatalf("the plan does not name the lost %s only, or plans removals: %+v, %v", lost, plan, err)
	}
	for _, dry := range []bool{true, false} {
		run := Mirror
		if dry {
			run = dryRun
		}
		st, err := run(ctx, src, dst, MirrorOptions{Prune: true, Refs: r2.MirrorRefs()})
		var me *MirrorError
		if !errors.As(err, &me) || !errors.Is(err, ErrSourceDamaged) || len(me.LostIndex) != 1 || me.LostIndex[0] != lost ||
			len(me.Missing)+len(me.Damaged) != 0 || !me.PruneSkipped {
			t.Fatalf("dry run %v: want a MirrorError naming the lost %s only: %v", dry, lost, err)
		}
		if !strings.Contains(err.Error(), lost.String()) || !strings.Contains(err.Error(), "repair index") {
			t.Fatalf("the error does not name the file and the cure: %v", err)
		}
		if st.FilesRemoved != 0 {
			t.Fatalf("dry run %v: %d files removed (or to remove)", dry, st.FilesRemoved)
		}
	}
	files := dst.Files()
	for _, h := range []backend.Handle{lost, {Type: backend.PackFile, Name: pruned.String()}} {
		if _, ok := files[h]; !ok {
			t.Fatalf("mirror --prune removed %s from the destination", h)
		}
	}

	// Healed (the index rebuilt from the packs), the source is whole: the
	// lost file and the pruned pack go.
	r3 := open()
	r3.Index().RemovePacks(map[backend.ID]bool{pruned: true})
	if _, _, err := lockedRepairIndex(ctx, r3); err != nil {
		t.Fatal(err)
	}
	if _, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: open().MirrorRefs()}); err != nil {
		t.Fatalf("mirror --prune after repair index: %v", err)
	}
	sameFiles(t, src, dst)
}

// TestMirrorNamesDamagedIndexOnce: an index file of the source that does
// not open and that the destination lacks is found damaged twice, once by
// the source's index load and once when the mirror hashes it to copy it;
// the error names it once.
func TestMirrorNamesDamagedIndexOnce(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 1)
	idx := handlesOf(src, backend.IndexFile)[0]
	data := src.Files()[idx]
	data[len(data)/2] ^= 1 // still named by its old hash: damaged
	if err := src.SetFile(idx, data); err != nil {
		t.Fatal(err)
	}
	refs := testOpen(t, src, Options{Warn: func(string) {}}).MirrorRefs()
	_, err := Mirror(ctx, src, mem.New(), MirrorOptions{Prune: true, Refs: refs})
	var me *MirrorError
	if !errors.As(err, &me) || len(me.Damaged) != 1 || me.Damaged[0] != idx || strings.Count(err.Error(), idx.String()) != 1 {
		t.Fatalf("want %s named once as damaged: %v", idx, err)
	}
}
