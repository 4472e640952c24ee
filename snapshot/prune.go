package snapshot

import (
	"context"
	"errors"
	"time"

	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
)

// Errors of PlanPrune when the set of live snapshots, which decides what
// is deleted, cannot be trusted.
var (
	ErrPruneLogProblems = errors.New("prune: refusing to run: the snapshot log shows problems (see the warnings above), so the set of live snapshots cannot be trusted to decide what to delete; run 'cairn check'")
	ErrPruneLogBehind   = errors.New("prune: refusing to run: this copy's snapshot log is behind what this device has seen elsewhere, so snapshots it does not list yet may use data it holds; mirror to it first, or prune the repository it is mirrored from")
)

// PruneOptions configure PlanPrune.
type PruneOptions struct {
	// MaxUnused, Repack and Progress are repo.PruneOptions'.
	MaxUnused float64
	Repack    repo.RepackOptions
	Progress  repo.ProgressFunc
	// Seen is the log compared with what this device saw of it before
	// (Log.CheckSeenAt): a log that moved backwards, or is behind, may
	// lack snapshots whose data the repository holds, so PlanPrune
	// refuses it.
	Seen SeenReport
	// CompactLog plans the log's compaction as well (Log.CompactLog);
	// it needs the device identity, to sign a checkpoint. Now is the
	// time the compaction is planned for.
	CompactLog bool
	Now        time.Time
}

// PrunePlan is a prune's plan: what repo.PlanPrune deletes, repacks and
// rewrites, and, if asked, the snapshot log's compaction.
type PrunePlan struct {
	repo.PrunePlan
	Log *LogCompaction `json:"log,omitempty"`
}

// PruneResult is what ExecutePrune did.
type PruneResult struct {
	repo.PruneResult
	Log *LogCompaction `json:"log,omitempty"`
}

// PlanPrune plans the removal of what the snapshots live do not use
// (live is the log's live snapshots, or those a forget would leave), and
// the log's compaction. It refuses, changing nothing, when the log shows
// problems or is behind what this device has seen (opts.Seen), or when
// a live snapshot is damaged (UsedBlobs): the live snapshots decide what
// is deleted. It writes nothing; the plan can be executed (ExecutePrune)
// only if it was made under the repository's exclusive lock.
func PlanPrune(ctx context.Context, r *repo.Repository, l *Log, live []*Snapshot, opts PruneOptions) (PrunePlan, error) {
	var plan PrunePlan
	switch {
	case len(l.Problems) > 0 || len(opts.Seen.Problems) > 0:
		return plan, ErrPruneLogProblems
	case opts.Seen.Behind != "":
		// Its newer snapshots' data may be here already (a mirror
		// copies data before the log): pruning would delete it.
		return plan, ErrPruneLogBehind
	}
	used, err := UsedBlobs(ctx, r, live)
	if err != nil {
		return plan, err
	}
	plan.PrunePlan, err = r.PlanPrune(ctx, used, repo.PruneOptions{MaxUnused: opts.MaxUnused, Repack: opts.Repack, Progress: opts.Progress})
	if err != nil {
		return plan, err
	}
	if opts.CompactLog {
		c := l.PlanCompaction(opts.Now)
		plan.Log = &c
	}
	return plan, nil
}

// ExecutePrune carries out plan (repo.Repository.ExecutePrune), then, if
// the plan covers it, compacts the log at time now (Log.CompactLog;
// identity is called only when a checkpoint is due). It must run under
// the exclusive lock the plan was made under.
func ExecutePrune(ctx context.Context, r *repo.Repository, l *Log, plan PrunePlan, identity func() (*crypt.Identity, error), now time.Time, progress repo.ProgressFunc) (PruneResult, error) {
	var res PruneResult
	var err error
	res.PruneResult, err = r.ExecutePrune(ctx, plan.PrunePlan, progress)
	if err != nil || plan.Log == nil {
		return res, err
	}
	c, err := l.CompactLog(ctx, r, identity, now)
	res.Log = &c
	return res, err
}
