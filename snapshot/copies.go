package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
)

// Copies: how the destinations of a repository stand (cairn peer
// status), measured against the repository's own log and index.

// Dest is one destination to report on.
type Dest struct {
	// Location names it in reports.
	Location string
	// Be is the open copy; nil when it could not be reached (Err says
	// why).
	Be  backend.Backend
	Err error
	// Self tells the acknowledgements about this destination.
	Self func(repo.Ack) bool
}

// DestStatus is how one destination stands.
type DestStatus struct {
	Location  string
	Reachable bool
	Err       error
	// LastAck is the newest acknowledgement of this destination (its
	// receipt or mirror record), zero Time when none is known.
	LastAck repo.Ack
	// Seq is the copy's largest log seq; Behind counts the entries of
	// the repository's log the copy lacks (not counting those its
	// checkpoint covers).
	Seq    uint64
	Behind int
	// Files and Bytes count the copy's files (lock files aside).
	Files, Bytes int64
	// Findings are CompareAcks's, against every acknowledgement known.
	Findings []repo.AckFinding
	state    repo.CopyState
}

// SnapshotCopies says on how many destinations one snapshot is whole:
// its log entry (or a checkpoint covering it) and every pack its blobs
// lie in.
type SnapshotCopies struct {
	Snapshot *Snapshot
	// Holders are the locations holding it whole.
	Holders []string
}

// CopiesReport is what CopyStatus finds.
type CopiesReport struct {
	Dests     []DestStatus
	Snapshots []SnapshotCopies
}

// CopyStatus reads every reachable destination (its listing and log
// envelopes), compares each with every acknowledgement known (in any
// destination, in r and on this device) and counts, for each live
// snapshot of l, the destinations that hold it whole. r must have its
// index loaded. It reads each snapshot's trees once per snapshot.
func CopyStatus(ctx context.Context, r *repo.Repository, l *Log, dests []Dest) (CopiesReport, error) {
	acks, err := r.KnownAcks(ctx, r.Backend())
	if err != nil {
		return CopiesReport{}, err
	}
	var rep CopiesReport
	for _, d := range dests {
		ds := DestStatus{Location: d.Location, Reachable: d.Be != nil, Err: d.Err}
		if d.Be != nil {
			if ds.state, err = repo.ReadCopy(ctx, d.Be); err != nil {
				ds.Reachable, ds.Err = false, err
			} else {
				more, err := r.KnownAcks(ctx, d.Be)
				if err != nil {
					return CopiesReport{}, err
				}
				acks = append(acks, more...)
			}
		}
		rep.Dests = append(rep.Dests, ds)
	}
	acks = dedupAcks(acks)
	for i, d := range dests {
		ds := &rep.Dests[i]
		for _, a := range acks {
			if d.Self(a) && a.Time.After(ds.LastAck.Time) {
				ds.LastAck = a
			}
		}
		if !ds.Reachable {
			continue
		}
		ds.Files, ds.Bytes = ds.state.Files, ds.state.Bytes
		for _, e := range ds.state.Log.Entries {
			ds.Seq = max(ds.Seq, e.Seq)
		}
		for id, e := range l.Entries {
			if _, ok := ds.state.Log.Entries[id]; !ok && !(ds.state.Log.CheckpointSeq > 0 && e.Seq <= ds.state.Log.CheckpointSeq) {
				ds.Behind++
			}
		}
		ds.Findings = repo.CompareAcks(ds.state.Log, acks, d.Self)
	}
	for _, sn := range l.Snapshots() {
		packs, err := packsOf(ctx, r, sn)
		if err != nil {
			return CopiesReport{}, err
		}
		sc := SnapshotCopies{Snapshot: sn}
		for _, ds := range rep.Dests {
			if ds.Reachable && holdsWhole(ds.state, l, sn, packs) {
				sc.Holders = append(sc.Holders, ds.Location)
			}
		}
		rep.Snapshots = append(rep.Snapshots, sc)
	}
	return rep, nil
}

func dedupAcks(acks []repo.Ack) []repo.Ack {
	seen := map[string]bool{}
	var out []repo.Ack
	for _, a := range acks {
		if k := a.Kind + "\x00" + string(a.Payload); !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}

// packsOf are the packs holding the blobs snapshot sn reaches; a blob the
// index does not list is an error (the snapshot is not whole anywhere).
func packsOf(ctx context.Context, r *repo.Repository, sn *Snapshot) (map[backend.ID]bool, error) {
	used, err := UsedBlobs(ctx, r, []*Snapshot{sn})
	if err != nil {
		return nil, err
	}
	packs := map[backend.ID]bool{}
	var missing error
	used.Each(func(t pack.BlobType, id backend.ID) bool {
		pb, ok := r.Lookup(t, id)
		if !ok {
			missing = fmt.Errorf("snapshot %s: %s blob %s is not in the index", sn.ID.Str(), t, id.Str())
			return false
		}
		packs[pb.PackID] = true
		return true
	})
	return packs, missing
}

// holdsWhole reports whether the copy holds sn's log entry (or a
// checkpoint of l that covers it) and every pack in packs.
func holdsWhole(st repo.CopyState, l *Log, sn *Snapshot, packs map[backend.ID]bool) bool {
	if _, ok := st.Log.Entries[sn.ID]; !ok {
		cp := l.Checkpoint()
		if cp == nil {
			return false
		}
		if _, ok := st.Log.Entries[cp.ID]; !ok {
			return false
		}
		if _, ok := l.Entries[sn.ID]; ok {
			return false // the source still holds the entry: so must the copy
		}
	}
	for id := range packs {
		if !st.Packs[id] {
			return false
		}
	}
	return true
}

// Stale reports whether the destination's newest acknowledgement is
// older than cutoff (or there is none).
func (d DestStatus) Stale(cutoff time.Time) bool {
	return d.LastAck.Time.IsZero() || d.LastAck.Time.Before(cutoff)
}

// HeldForgotten returns the snapshots the log forgot whose data the
// repository still holds (an append-only copy after the owner's forget
// and prune), oldest first. With whole, each one's trees are walked and
// every blob must be indexed and its pack present; otherwise only its
// root tree (cheap, for a count). r must have its index loaded.
func HeldForgotten(ctx context.Context, r *repo.Repository, l *Log, whole bool) ([]*Snapshot, error) {
	forgotten := l.Forgotten()
	if len(forgotten) == 0 {
		return nil, nil
	}
	present := map[backend.ID]bool{}
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, _ int64) error {
		present[id] = true
		return nil
	}); err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, sn := range forgotten {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pb, ok := r.Lookup(pack.TreeBlob, sn.Tree)
		if !ok || !present[pb.PackID] {
			continue
		}
		if whole {
			packs, err := packsOf(ctx, r, sn)
			if err != nil {
				continue // a tree or blob is gone: not restorable whole
			}
			held := true
			for id := range packs {
				held = held && present[id]
			}
			if !held {
				continue
			}
		}
		out = append(out, sn)
	}
	return out, nil
}
