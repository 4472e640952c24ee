package snapshot

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// TestLogGapBelowCheckpoint is the 1,000-cycle soak's finding: an entry
// the checkpoint covers, deleted from the middle of the log (rot, or a
// hand), cut the older entries off from the checkpoint. They counted as
// uncovered again, and their add entries brought back snapshots forgotten
// long before, whose data prune had already removed. The checkpoint sums
// them up: the live snapshots must stay what they were, with no problem
// reported (a covered entry is one prune deletes anyway), and compaction
// must delete the cut-off entries too.
func TestLogGapBelowCheckpoint(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	ids := buildLog(t, r, ident, 6)
	l := mustLoad(t, r)
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	forgetEntry, err := l.Forget(ctx, r, ident, ids[:3], t0)
	if err != nil {
		t.Fatal(err)
	}
	later := buildLogAt(t, l, r, ident, t0.Add(time.Hour), 3)
	cp, err := l.WriteCheckpoint(ctx, r, ident, t0.Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	after := buildLogAt(t, l, r, ident, t0.Add(6*time.Hour), 2)
	want := liveIDs(mustLoad(t, r))
	if len(want) != 3+3+2 {
		t.Fatalf("%d live snapshots before the damage, want 8", len(want))
	}

	// Delete the forget entry: it is covered, and below it are the adds
	// of the three snapshots it forgot.
	delete(r.files, backend.ID(forgetEntry))
	damaged := mustLoad(t, r)
	if len(damaged.Problems) != 0 {
		t.Fatalf("a deleted covered entry gave problems: %v", damaged.Problems)
	}
	if got := liveIDs(damaged); !sameIDs(got, want) {
		t.Fatalf("live snapshots after a covered entry was deleted: %v, want %v", got, want)
	}

	// Entries after the checkpoint still count, and entries linked to it
	// are covered, not cut off (an entry appended after the checkpoint on
	// an older view stays uncovered: TestPruneKeepsParentsOfLaterEntries).
	if !damaged.chain.Covered[[32]byte(cp)] || damaged.chain.Covered[[32]byte(after[0])] {
		t.Fatal("checkpoint not covered or a later entry covered")
	}
	for _, id := range ids {
		if !damaged.chain.CutOff[[32]byte(id)] {
			t.Fatalf("add entry %s below the gap is not cut off", id.Str())
		}
	}
	for _, id := range later {
		if damaged.chain.CutOff[[32]byte(id)] {
			t.Fatalf("entry %s linked to the checkpoint counted as cut off", id.Str())
		}
	}

	// Pruning under the checkpoint deletes the cut-off entries too.
	if _, err := damaged.PruneCovered(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, ok := r.files[id]; ok {
			t.Fatalf("cut-off entry %s left after pruning", id.Str())
		}
	}
	pruned := mustLoad(t, r)
	if len(pruned.Problems) != 0 || !sameIDs(liveIDs(pruned), want) {
		t.Fatalf("after pruning: problems %v, live %v", pruned.Problems, liveIDs(pruned))
	}
}

// buildLogAt adds n snapshots to l, an hour apart from start, and returns
// their entry IDs.
func buildLogAt(t *testing.T, l *Log, r *memLog, ident *crypt.Identity, start time.Time, n int) []backend.ID {
	t.Helper()
	var ids []backend.ID
	for i := range n {
		at := start.Add(time.Duration(i) * time.Hour)
		id, err := l.AddSnapshot(context.Background(), r, ident, &Snapshot{Time: at, Hostname: "h", Paths: []string{"/d"}}, at)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func liveIDs(l *Log) []backend.ID {
	var out []backend.ID
	for _, sn := range l.Snapshots() {
		out = append(out, sn.ID)
	}
	return out
}

func sameIDs(a, b []backend.ID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLogGapBelowCheckpointOnABranch is the soak's case in full: the
// entries cut off by the gap still descend from a covered entry, because
// a writer on an older view of the log appended an entry naming that one
// as a parent. They were written before the checkpoint, so it sums them
// up; the entry that writer appended is covered and counts.
func TestLogGapBelowCheckpointOnABranch(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	buildLog(t, r, ident, 3)
	stale := mustLoad(t, r) // reads the log now, writes later
	l := mustLoad(t, r)
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	gone := buildLogAt(t, l, r, ident, t0, 2)
	forgetEntry, err := l.Forget(ctx, r, ident, gone, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	late := buildLogAt(t, stale, r, ident, t0.Add(3*time.Hour), 1)
	l = mustLoad(t, r)
	buildLogAt(t, l, r, ident, t0.Add(4*time.Hour), 2)
	if _, err := l.WriteCheckpoint(ctx, r, ident, t0.Add(6*time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := liveIDs(mustLoad(t, r))
	if len(want) != 3+1+2 {
		t.Fatalf("%d live snapshots before the damage, want 6", len(want))
	}

	delete(r.files, backend.ID(forgetEntry))
	damaged := mustLoad(t, r)
	if len(damaged.Problems) != 0 {
		t.Fatalf("a deleted covered entry gave problems: %v", damaged.Problems)
	}
	if got := liveIDs(damaged); !sameIDs(got, want) {
		t.Fatalf("live snapshots after a covered entry was deleted: %d (%v), want %d", len(got), got, len(want))
	}
	for _, id := range gone {
		if !damaged.chain.CutOff[[32]byte(id)] {
			t.Fatalf("entry %s below the gap is not cut off", id.Str())
		}
	}
	if !damaged.chain.Covered[[32]byte(late[0])] || damaged.chain.CutOff[[32]byte(late[0])] {
		t.Fatal("the stale writer's entry is not covered by the checkpoint")
	}
}
