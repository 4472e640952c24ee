package snapshot

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
)

// RepairRepository is what RepairSnapshots needs; *repo.Repository is
// one.
type RepairRepository interface {
	LogRepository
	BlobChecker
	SaveBlob(ctx context.Context, t pack.BlobType, id backend.ID, data []byte) (bool, error)
	Flush(ctx context.Context) error
}

// RepairOptions configure RepairSnapshots; the zero value works.
type RepairOptions struct {
	// Forget also records that the damaged snapshots are forgotten, once
	// their repaired copies are in the log.
	Forget bool
	// DryRun reports what would be done and writes nothing.
	DryRun bool
	// Now is the clock for the log entries; nil means time.Now.
	Now func() time.Time
}

// RepairedSnapshot says what became of one damaged snapshot.
type RepairedSnapshot struct {
	// Snapshot is the damaged snapshot.
	Snapshot backend.ID `json:"snapshot"`
	// New is its repaired copy (zero for a dry run, or when nothing of it
	// could be saved).
	New backend.ID `json:"new,omitzero"`
	// Dropped lists the paths left out: files whose data is missing, and
	// folders (with a trailing "/") whose listing does not load.
	Dropped []string `json:"dropped"`
	// Lost is set when the snapshot's root folder does not load: nothing
	// of it can be saved, so no copy is made.
	Lost bool `json:"lost,omitempty"`
	// Forgotten is set when the damaged snapshot was forgotten.
	Forgotten bool `json:"forgotten,omitempty"`
}

// RepairResult lists the damaged snapshots, oldest first.
type RepairResult struct {
	Snapshots []RepairedSnapshot `json:"snapshots"`
}

// RepairSnapshots makes, for each live snapshot whose trees reference
// missing or unreadable blobs, a new snapshot that leaves out every file
// whose data is not all in the index and every folder whose tree does not
// load, and records it in the log (same time, host, paths and tags as the
// damaged one). With opts.Forget it then records a forget entry for the
// damaged snapshots, so the new ones replace them. A snapshot whose root
// tree does not load cannot be saved: it is reported, and forgotten with
// opts.Forget.
//
// Missing means not in the index: to drop the files of a pack that check
// --read-data found damaged, delete the pack and run repo's RepairIndex
// first. A blob or tree that cannot be read for another reason (a network
// error) stops the repair rather than dropping files.
//
// The caller must hold an exclusive lock. Run again after a crash, it
// finishes the job without making a second copy: a live snapshot that
// already matches the repaired one is reused.
func RepairSnapshots(ctx context.Context, r RepairRepository, l *Log, ident *crypt.Identity, opts RepairOptions) (RepairResult, error) {
	var res RepairResult
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	rw := &treeRewriter{r: r, dryRun: opts.DryRun, memo: make(map[backend.ID]rewrittenTree), lost: make(map[backend.ID]error)}
	type pending struct {
		i  int // in res.Snapshots
		sn *Snapshot
	}
	var adds []pending
	for _, sn := range l.Snapshots() {
		rt, err := rw.rewrite(ctx, sn.Tree)
		if err != nil && !errors.Is(err, errTreeLost) {
			return res, fmt.Errorf("repair snapshot %s: %w", sn.ID.Str(), err)
		}
		if err == nil && !rt.changed {
			continue
		}
		res.Snapshots = append(res.Snapshots, RepairedSnapshot{Snapshot: sn.ID, Dropped: []string{}})
		rs := &res.Snapshots[len(res.Snapshots)-1]
		if err != nil {
			rs.Lost = true
			rs.Dropped = append(rs.Dropped, "/")
			continue
		}
		for _, d := range rt.dropped {
			rs.Dropped = append(rs.Dropped, "/"+d)
		}
		fixed := *sn
		fixed.ID = backend.ID{}
		fixed.Tree = rt.id
		adds = append(adds, pending{len(res.Snapshots) - 1, &fixed})
	}
	if opts.DryRun || len(res.Snapshots) == 0 {
		return res, nil
	}
	rp := replacement{find: findCopy,
		recorded: func(i int, id backend.ID, _ bool) { res.Snapshots[adds[i].i].New = id }}
	for _, a := range adds {
		rp.news = append(rp.news, a.sn)
	}
	if opts.Forget {
		for _, rs := range res.Snapshots {
			rp.forget = append(rp.forget, rs.Snapshot)
		}
	}
	if err := rp.record(ctx, r, l, ident, now, "repair snapshots"); err != nil {
		return res, err
	}
	for i := range rp.forget {
		res.Snapshots[i].Forgotten = true
	}
	return res, nil
}

// findCopy returns the live snapshot that is sn already repaired: the
// same tree, time, host and paths.
func findCopy(live []*Snapshot, sn *Snapshot) *Snapshot {
	for _, o := range live {
		if o.Tree == sn.Tree && o.Time.Equal(sn.Time) && o.Hostname == sn.Hostname && o.SamePaths(sn.Paths) {
			return o
		}
	}
	return nil
}

// errTreeLost says a tree does not load because it is missing or damaged.
var errTreeLost = errors.New("tree lost")

// rewrittenTree is a tree with its damage left out.
type rewrittenTree struct {
	id      backend.ID
	changed bool
	dropped []string // relative to the tree, "dir/" for a lost folder
}

// treeRewriter rewrites trees without their damaged parts, each tree once.
type treeRewriter struct {
	r      RepairRepository
	dryRun bool
	memo   map[backend.ID]rewrittenTree
	// lost holds the trees that do not load, with the error saying why.
	lost map[backend.ID]error
}

// lostErr reports whether a tree load error means the tree is gone or
// damaged, rather than unreachable for now.
func lostErr(err error) bool {
	return errors.Is(err, repo.ErrBlobNotFound) || errors.Is(err, repo.ErrDamaged) ||
		errors.Is(err, ErrFormat) || backend.IsNotExist(err)
}

// rewrite returns the tree id without its damage; errTreeLost if the tree
// itself does not load.
func (w *treeRewriter) rewrite(ctx context.Context, id backend.ID) (rewrittenTree, error) {
	if rt, ok := w.memo[id]; ok {
		return rt, nil
	}
	if err, ok := w.lost[id]; ok {
		return rewrittenTree{}, err
	}
	if err := ctx.Err(); err != nil {
		return rewrittenTree{}, err
	}
	t, err := LoadTree(ctx, w.r, id)
	if err != nil {
		if ctx.Err() != nil {
			return rewrittenTree{}, ctx.Err()
		}
		if lostErr(err) {
			err = fmt.Errorf("%w: %v", errTreeLost, err)
			w.lost[id] = err
		}
		return rewrittenTree{}, err
	}
	out := &Tree{Nodes: make([]*Node, 0, len(t.Nodes))}
	rt := rewrittenTree{id: id}
	for _, n := range t.Nodes {
		switch {
		case n.Type == NodeFile && !w.hasAll(n.Content):
			rt.dropped = append(rt.dropped, n.Name)
			continue
		case n.Type == NodeDir:
			sub, err := w.rewrite(ctx, *n.Subtree)
			if errors.Is(err, errTreeLost) {
				rt.dropped = append(rt.dropped, n.Name+"/")
				continue
			}
			if err != nil {
				return rewrittenTree{}, err
			}
			if sub.changed {
				c := *n
				c.Subtree = &sub.id
				n = &c
				for _, d := range sub.dropped {
					rt.dropped = append(rt.dropped, path.Join(n.Name, d)+trailingSlash(d))
				}
			}
		}
		out.Nodes = append(out.Nodes, n)
	}
	if len(rt.dropped) > 0 {
		data, err := EncodeTree(out)
		if err != nil {
			return rewrittenTree{}, err
		}
		rt.id = backend.Hash(data)
		rt.changed = true
		if !w.dryRun {
			if _, err := w.r.SaveBlob(ctx, pack.TreeBlob, rt.id, data); err != nil {
				return rewrittenTree{}, err
			}
		}
	}
	w.memo[id] = rt
	return rt, nil
}

func (w *treeRewriter) hasAll(ids []backend.ID) bool {
	for _, id := range ids {
		if !w.r.Has(pack.DataBlob, id) {
			return false
		}
	}
	return true
}

func trailingSlash(p string) string {
	if len(p) > 0 && p[len(p)-1] == '/' {
		return "/"
	}
	return ""
}
