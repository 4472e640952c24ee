package snapshot

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
)

// TestPlanPruneRefusesUntrustedLogs: the live snapshots decide what a
// prune deletes, so PlanPrune refuses a log with problems, one that moved
// backwards or is behind what this device saw, and changes nothing.
func TestPlanPruneRefusesUntrustedLogs(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	m.snap(l, dirSpec{"a": "x|y"})
	before := fileNames(m.be)
	for _, c := range []struct {
		name string
		log  func() *Log
		seen SeenReport
		want error
	}{
		{"log problems", func() *Log { bad := *l; bad.Problems = []string{"broken link"}; return &bad }, SeenReport{}, ErrPruneLogProblems},
		{"rolled back", func() *Log { return l }, SeenReport{Problems: []string{"log rolled back"}}, ErrPruneLogProblems},
		{"behind", func() *Log { return l }, SeenReport{Behind: "log is behind by 2 entries"}, ErrPruneLogBehind},
	} {
		if _, err := PlanPrune(ctx, m.r, c.log(), l.Snapshots(), PruneOptions{Seen: c.seen}); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if after := fileNames(m.be); !slices.Equal(after, before) {
		t.Fatal("a refused prune changed the repository")
	}
}

// TestExecutePruneCompactsTheLog: a prune plan that covers the log
// compacts it as planned, and asks for the identity only for a
// checkpoint.
func TestExecutePruneCompactsTheLog(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	for range LogCheckpointAfter {
		m.snap(l, dirSpec{"a": "x"})
	}
	lock, err := m.r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx)
	plan, err := PlanPrune(ctx, m.r, l, l.Snapshots(), PruneOptions{CompactLog: true, Now: m.now})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Log == nil || !plan.Log.WriteCheckpoint {
		t.Fatalf("plan: %+v", plan.Log)
	}
	asked := 0
	res, err := ExecutePrune(ctx, m.r, l, plan, func() (*crypt.Identity, error) { asked++; return m.ident, nil }, m.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if asked != 1 || res.Log == nil || !res.Log.WriteCheckpoint || l.Checkpoint() == nil {
		t.Fatalf("identity asked %d times, result %+v", asked, res.Log)
	}
	// Executed once: a second time is refused.
	if _, err := ExecutePrune(ctx, m.r, l, plan, nil, m.now, nil); !errors.Is(err, repo.ErrPlanNotHeld) {
		t.Fatalf("a plan executed twice: %v", err)
	}
}
