package repo

import (
	"context"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// packHasData says, per pack, whether the index lists any data blob in it.
func packHasData(r *Repository) map[backend.ID]bool {
	out := make(map[backend.ID]bool)
	r.Index().Each(func(pb index.PackedBlob) bool {
		out[pb.PackID] = out[pb.PackID] || pb.Type == pack.DataBlob
		return true
	})
	return out
}

// TestPruneMaxRepackBytes checks that RepackOptions.MaxBytes bounds the
// blob bytes of the packs repacked, keeps the rest, still deletes the
// packs holding only unused data, and leaves every used blob readable;
// without it, every partly used pack is repacked.
func TestPruneMaxRepackBytes(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 3, 30, 30, 30, 30, 30, 30)
	// Every other blob of rounds 0-4 used: ten partly used packs; round
	// 5 unused: two packs deleted whole.
	keep := func(round, i int) bool { return round < 5 && i%2 == 0 }
	used, usedBlobs, _ := usedSet(fx, keep)
	r := testOpen(t, fx.be, Options{})
	all, err := r.PlanPrune(ctx, used, PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Repack) != 10 || len(all.Delete) != 2 {
		t.Fatalf("without a limit: %d repacked, %d deleted; want 10 and 2", len(all.Repack), len(all.Delete))
	}
	limit := all.RepackPackBytes / 3
	plan, res, err := lockedPrune(ctx, r, used, PruneOptions{MaxUnused: -1, Repack: RepackOptions{MaxBytes: limit}})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range plan.Repack {
		sum += p.UsedBytes + p.UnusedBytes + p.DuplicateBytes
	}
	if len(plan.Repack) == 0 || sum != plan.RepackPackBytes || sum > limit || len(plan.Repack) >= len(all.Repack) {
		t.Fatalf("with --max-repack-size %d: %d packs repacked, %d bytes (plan says %d)", limit, len(plan.Repack), sum, plan.RepackPackBytes)
	}
	if got := plan.Kept.OverRepackLimit; got != len(all.Repack)-len(plan.Repack) {
		t.Errorf("kept over the repack limit: %d, want %d", got, len(all.Repack)-len(plan.Repack))
	}
	if len(plan.Delete) != 2 || res.DeletedPacks != 2+len(plan.Repack) {
		t.Errorf("deleted %d packs (plan: %d whole), want 2 whole and the repacked ones", res.DeletedPacks, len(plan.Delete))
	}
	r2 := testOpen(t, fx.be, Options{})
	assertLoadable(t, r2, usedBlobs)
	assertCheckClean(t, r2)

	if _, err := r2.PlanPrune(ctx, used, PruneOptions{Repack: RepackOptions{MaxBytes: -1}}); err == nil {
		t.Error("a negative max repack size was accepted")
	}
}

// TestPruneRepackCacheableOnly checks that RepackOptions.CacheableOnly
// repacks the partly used tree packs and keeps every partly used data
// pack.
func TestPruneRepackCacheableOnly(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 4, 30, 30, 30, 30)
	used, usedBlobs, _ := usedSet(fx, func(round, i int) bool { return i%2 == 0 || round == 3 })
	r := testOpen(t, fx.be, Options{})
	hasData := packHasData(r)
	plan, _, err := lockedPrune(ctx, r, used, PruneOptions{MaxUnused: -1, Repack: RepackOptions{CacheableOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Repack) != 3 || plan.Kept.NotCacheable != 3 {
		t.Fatalf("repacked %d, kept %d data packs; want 3 tree packs repacked and 3 data packs kept", len(plan.Repack), plan.Kept.NotCacheable)
	}
	for _, p := range plan.Repack {
		if hasData[p.ID] {
			t.Errorf("data pack %s repacked", p.ID.Str())
		}
	}
	if plan.UnusedAfter == 0 {
		t.Error("the kept data packs' unused bytes are not counted as left")
	}
	r2 := testOpen(t, fx.be, Options{})
	assertLoadable(t, r2, usedBlobs)
	assertCheckClean(t, r2)
}

// TestPruneRepackSmall checks that RepackOptions.Small repacks fully used
// packs below 80% of the target size when there are at least ten, into
// fewer packs, and leaves fewer than ten alone.
func TestPruneRepackSmall(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 5, 10, 10, 10, 10, 10, 10)
	used, usedBlobs, _ := usedSet(fx, func(int, int) bool { return true })
	r := testOpen(t, fx.be, Options{})
	plain, err := r.PlanPrune(ctx, used, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Repack) != 0 || plain.Kept.FullyUsed != 12 {
		t.Fatalf("without --repack-small a fully used repository is repacked: %d packs", len(plain.Repack))
	}
	before := len(packIDs(fx.be))
	plan, res, err := lockedPrune(ctx, r, used, PruneOptions{Repack: RepackOptions{Small: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Repack) != before || before < MinSmallPacks {
		t.Fatalf("repacked %d of %d small packs", len(plan.Repack), before)
	}
	if after := len(packIDs(fx.be)); after != 2 || res.NewPacks != 2 {
		t.Errorf("%d packs after (%d new), want one data and one tree pack", after, res.NewPacks)
	}
	r2 := testOpen(t, fx.be, Options{})
	assertLoadable(t, r2, usedBlobs)
	assertIndexedExactly(t, r2, usedBlobs)
	assertCheckClean(t, r2)
	// Two small packs are fewer than ten: left alone.
	again, err := r2.PlanPrune(ctx, used, PruneOptions{Repack: RepackOptions{Small: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Repack) != 0 || again.Kept.FullyUsed != 2 {
		t.Errorf("second prune --repack-small: repack %d, fully used %d; want 0 and 2", len(again.Repack), again.Kept.FullyUsed)
	}
}
