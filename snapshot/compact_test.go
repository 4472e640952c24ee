package snapshot

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypt"
)

// addN appends n snapshots to l, an hour apart from start.
func addN(t *testing.T, l *Log, r *memLog, ident *crypt.Identity, start time.Time, n int) time.Time {
	t.Helper()
	for i := range n {
		at := start.Add(time.Duration(i) * time.Hour)
		if _, err := l.AddSnapshot(context.Background(), r, ident, &Snapshot{Time: at, Hostname: "h", Paths: []string{"/d"}}, at); err != nil {
			t.Fatal(err)
		}
	}
	return start.Add(time.Duration(n) * time.Hour)
}

// compactAsPlanned runs CompactLog at now and checks it did what
// PlanCompaction said, then that the log is sound and keeps its
// snapshots.
func compactAsPlanned(t *testing.T, r *memLog, ident *crypt.Identity, now time.Time) LogCompaction {
	t.Helper()
	l := mustLoad(t, r)
	live := len(l.Snapshots())
	plan := l.PlanCompaction(now)
	before := len(r.files)
	identityCalls := 0
	done, err := l.CompactLog(context.Background(), r, func() (*crypt.Identity, error) {
		identityCalls++
		return ident, nil
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if done.WriteCheckpoint != plan.WriteCheckpoint || !slices.Equal(done.Remove, plan.Remove) ||
		done.EntriesSinceCheckpoint != plan.EntriesSinceCheckpoint || !done.Cutoff.Equal(plan.Cutoff) {
		t.Fatalf("planned checkpoint %v, %d entries since, %d removed; did %v, %d, %d (or not the same)",
			plan.WriteCheckpoint, plan.EntriesSinceCheckpoint, len(plan.Remove), done.WriteCheckpoint, done.EntriesSinceCheckpoint, len(done.Remove))
	}
	wrote := 0
	if plan.WriteCheckpoint {
		wrote = 1
	}
	if identityCalls != wrote {
		t.Errorf("the identity was asked for %d times, with a checkpoint due: %v", identityCalls, plan.WriteCheckpoint)
	}
	if got, want := len(r.files), before+wrote-len(plan.Remove); got != want {
		t.Errorf("%d log files after compaction, want %d", got, want)
	}
	for _, id := range plan.Remove {
		if _, ok := r.files[id]; ok {
			t.Errorf("entry %s planned for removal is still there", id.Str())
		}
	}
	l = mustLoad(t, r)
	if len(l.Problems) != 0 || len(l.Snapshots()) != live {
		t.Fatalf("after compaction: %d snapshots (want %d), problems %v", len(l.Snapshots()), live, l.Problems)
	}
	return done
}

// TestCompactLogDoesWhatItPlans follows a log through checkpoints and
// retention: each compaction does exactly what its plan said, a
// checkpoint comes after LogCheckpointAfter entries, and covered entries
// go only once their checkpoint is LogRetention old.
func TestCompactLogDoesWhatItPlans(t *testing.T) {
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	l := mustLoad(t, r)
	// The first entry registers the device: LogCheckpointAfter entries.
	now = addN(t, l, r, ident, now, LogCheckpointAfter-1)
	if c := compactAsPlanned(t, r, ident, now); c.WriteCheckpoint || len(c.Remove) != 0 {
		t.Fatalf("at %d entries: checkpoint %v, %d removed", LogCheckpointAfter, c.WriteCheckpoint, len(c.Remove))
	}
	now = addN(t, mustLoad(t, r), r, ident, now, 1)
	checkpointAt := now
	if c := compactAsPlanned(t, r, ident, now); !c.WriteCheckpoint || len(c.Remove) != 0 {
		t.Fatalf("past %d entries: checkpoint %v, %d removed", LogCheckpointAfter, c.WriteCheckpoint, len(c.Remove))
	}
	// Within the retention, nothing goes.
	addN(t, mustLoad(t, r), r, ident, now, 5)
	if c := compactAsPlanned(t, r, ident, checkpointAt.Add(LogRetention-time.Minute)); c.WriteCheckpoint || len(c.Remove) != 0 {
		t.Fatalf("within the retention: checkpoint %v, %d removed", c.WriteCheckpoint, len(c.Remove))
	}
	c := compactAsPlanned(t, r, ident, checkpointAt.Add(LogRetention))
	if c.WriteCheckpoint || len(c.Remove) != LogCheckpointAfter+1 { // all the checkpoint covers
		t.Fatalf("past the retention: checkpoint %v, %d removed", c.WriteCheckpoint, len(c.Remove))
	}
}

// TestCompactionPlanCountsTheNewCheckpoint: an entry appended after an
// old checkpoint by a writer that did not see it names old entries as
// parents, which holds back pruning under that checkpoint (see
// TestPruneKeepsParentsOfLaterEntries) until a newer checkpoint covers
// it. When the checkpoint CompactLog is about to write does, the plan
// says the old entries go, as they then do.
func TestCompactionPlanCountsTheNewCheckpoint(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	buildLog(t, r, ident, 4)
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	stale := mustLoad(t, r)
	l := mustLoad(t, r)
	if _, err := l.WriteCheckpoint(ctx, r, ident, now); err != nil {
		t.Fatal(err)
	}
	at := now.Add(time.Hour)
	if _, err := stale.AddSnapshot(ctx, r, ident, &Snapshot{Time: at, Hostname: "h", Paths: []string{"/d"}}, at); err != nil {
		t.Fatal(err)
	}
	later := now.Add(LogRetention + 10*24*time.Hour)
	if c := mustLoad(t, r).PlanCompaction(later); c.WriteCheckpoint || len(c.Remove) != 0 {
		t.Fatalf("with the late entry uncovered: checkpoint %v, %d removed", c.WriteCheckpoint, len(c.Remove))
	}
	addN(t, mustLoad(t, r), r, ident, now.Add(2*time.Hour), LogCheckpointAfter+1)
	c := compactAsPlanned(t, r, ident, later)
	if !c.WriteCheckpoint || len(c.Remove) == 0 {
		t.Fatalf("with a checkpoint due that covers the late entry: checkpoint %v, %d removed", c.WriteCheckpoint, len(c.Remove))
	}
	if len(c.Remove) != 5 { // the writer entry and the four first snapshots
		t.Errorf("removed %d entries, want 5", len(c.Remove))
	}
}
