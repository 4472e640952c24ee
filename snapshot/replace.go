package snapshot

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// replacement is the write half that Rewrite and RepairSnapshots share:
// new snapshots, whose trees are saved but not yet flushed, recorded in
// place of originals that may then be forgotten.
type replacement struct {
	// news are the snapshots to record, in this order.
	news []*Snapshot
	// find returns the live snapshot that is ns already recorded by an
	// earlier, interrupted run, or nil.
	find func(live []*Snapshot, ns *Snapshot) *Snapshot
	// recorded is told the ID of news[i]: the new entry's, or with reused
	// the one find returned.
	recorded func(i int, id backend.ID, reused bool)
	// forget, if not empty, are the originals, forgotten in one entry
	// once every new snapshot is in the log.
	forget []backend.ID
	// beforeForget, if set, runs just before the forget entry is written
	// (tests kill the process there).
	beforeForget func(ctx context.Context) error
}

// record flushes the trees, records the new snapshots in l, signed by
// ident, then forgets the originals. The order makes an interruption safe
// at any point: no snapshot names a tree not yet stored, no original is
// forgotten before its replacement is in the log, and a second run finds
// what the first recorded. what names the operation in errors.
func (rp replacement) record(ctx context.Context, r interface {
	LogRepository
	Flush(ctx context.Context) error
}, l *Log, ident *crypt.Identity, now func() time.Time, what string) error {
	if err := r.Flush(ctx); err != nil {
		return fmt.Errorf("%s: save trees: %w", what, err)
	}
	// A copy: adding to the log rebuilds its list in place.
	live := slices.Clone(l.Snapshots())
	for i, ns := range rp.news {
		if done := rp.find(live, ns); done != nil {
			rp.recorded(i, done.ID, true)
			continue
		}
		id, err := l.AddSnapshot(ctx, r, ident, ns, now())
		if err != nil {
			return err
		}
		rp.recorded(i, id, false)
	}
	if len(rp.forget) == 0 {
		return nil
	}
	if rp.beforeForget != nil {
		if err := rp.beforeForget(ctx); err != nil {
			return err
		}
	}
	_, err := l.Forget(ctx, r, ident, rp.forget, now())
	return err
}
