package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// LogCheckpointAfter is how many log entries may follow the newest
// checkpoint before CompactLog writes another: with hourly backups, about
// once a week, so the log a client reads stays small.
const LogCheckpointAfter = 200

// LogRetention is how long CompactLog keeps the entries a checkpoint
// covers: it deletes those under the newest checkpoint at least this old.
// A copy mirrored within that time still holds part of the log the
// source keeps, which is how repo.Mirror tells the source's own older
// history from entries someone else wrote (it refuses the latter as
// diverged); delete the entries sooner and every copy that lags behind
// looks diverged.
const LogRetention = 7 * 24 * time.Hour

// LogCompaction is what CompactLog does to the log, or would do: a value
// computed by PlanCompaction.
type LogCompaction struct {
	// EntriesSinceCheckpoint counts the entries the newest checkpoint
	// does not precede (all of them when there is none).
	EntriesSinceCheckpoint int `json:"entries_since_checkpoint"`
	// WriteCheckpoint says a checkpoint is written: more than
	// LogCheckpointAfter entries follow the newest one.
	WriteCheckpoint bool `json:"write_checkpoint"`
	// Cutoff is now less LogRetention: the entries under the newest
	// checkpoint dated at or before it are deleted.
	Cutoff time.Time `json:"cutoff"`
	// Remove are the entries deleted, oldest first.
	Remove []backend.ID `json:"remove"`
}

// PlanCompaction says what CompactLog would do at time now, changing
// nothing: whether a checkpoint is due, and which entries a checkpoint
// at least LogRetention old covers (taking into account the checkpoint
// about to be written, which may end what holds them back; see
// PruneCoveredBefore).
func (l *Log) PlanCompaction(now time.Time) LogCompaction {
	c := LogCompaction{Cutoff: now.Add(-LogRetention), Remove: []backend.ID{}}
	cp := l.Checkpoint()
	for _, e := range l.Entries {
		if cp == nil || e.Seq > cp.Seq {
			c.EntriesSinceCheckpoint++
		}
	}
	c.WriteCheckpoint = c.EntriesSinceCheckpoint > LogCheckpointAfter
	old := l.checkpointBefore(c.Cutoff)
	if old == nil {
		return c
	}
	covered := func(id backend.ID) bool { return l.chain != nil && l.chain.Covered[[32]byte(id)] }
	if c.WriteCheckpoint {
		// The new checkpoint's parents are the heads it merges.
		next := l.ancestors(l.nextParents())
		covered = func(id backend.ID) bool { return next[id] }
	}
	if under := l.under(old, covered); under != nil {
		for _, e := range l.Ordered() {
			if under[e.ID] {
				c.Remove = append(c.Remove, e.ID)
			}
		}
	}
	return c
}

// CompactLog keeps the log small: once more than LogCheckpointAfter
// entries follow the newest checkpoint, it writes a new one (signed by
// the device identity returns, called only then), and it deletes the
// entries under the newest checkpoint at least LogRetention old
// (PruneCoveredBefore). It does what PlanCompaction(now) says, and
// returns what it did in the same form. It must run under the repository's exclusive lock:
// a writer appending meanwhile could name a deleted entry as its parent.
func (l *Log) CompactLog(ctx context.Context, r LogRepository, identity func() (*crypt.Identity, error), now time.Time) (LogCompaction, error) {
	c := l.PlanCompaction(now)
	if c.WriteCheckpoint {
		ident, err := identity()
		if err != nil {
			return c, fmt.Errorf("device identity: %w", err)
		}
		if _, err := l.WriteCheckpoint(ctx, r, ident, now); err != nil {
			return c, err
		}
	}
	removed := []backend.ID{}
	if cp := l.checkpointBefore(c.Cutoff); cp != nil {
		var err error
		if removed, err = l.pruneUnder(ctx, r, cp); err != nil {
			return c, err
		}
	}
	c.Remove = removed
	return c, nil
}

// checkpointBefore returns the newest checkpoint dated at or before
// cutoff (ties by sequence to the smaller ID), or nil.
func (l *Log) checkpointBefore(cutoff time.Time) *LogEntry {
	var cp *LogEntry
	for _, e := range l.Entries {
		if e.Op != OpCheckpoint || e.Time > cutoff.UnixNano() {
			continue
		}
		if cp == nil || e.Seq > cp.Seq || e.Seq == cp.Seq && e.ID.Less(cp.ID) {
			cp = e
		}
	}
	return cp
}

// ancestors returns the present entries among ids and every present
// entry they descend from.
func (l *Log) ancestors(ids [][32]byte) map[backend.ID]bool {
	reached := crypt.ReachFunc(func(id [32]byte) ([][32]byte, bool) {
		e, ok := l.Entries[id]
		if !ok {
			return nil, false
		}
		return e.Parents, true
	}, ids...)
	out := make(map[backend.ID]bool, len(reached))
	for id := range reached {
		out[id] = true
	}
	return out
}

// under returns the present ancestors of the checkpoint cp, the entries
// pruning under it deletes; or nil when an entry that covered does not
// hold names one of them as a parent. A writer whose view of the log
// lacked entries (one failed to load) can append, after the checkpoint,
// an entry naming old entries as parents, and deleting those, or the
// entries linking them to the checkpoint, would leave it with broken
// links, a log problem that blocks every later prune. Once a later
// checkpoint covers that entry, pruning goes on.
func (l *Log) under(cp *LogEntry, covered func(backend.ID) bool) map[backend.ID]bool {
	under := l.ancestors(cp.Parents)
	for id, e := range l.Entries {
		if covered(id) {
			continue
		}
		for _, p := range e.Parents {
			if under[backend.ID(p)] {
				return nil
			}
		}
	}
	return under
}
