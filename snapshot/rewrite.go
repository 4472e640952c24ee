package snapshot

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// RewriteRepository is what Rewrite needs; *repo.Repository is one.
type RewriteRepository interface {
	LogRepository
	TreeLoader
	SaveBlob(ctx context.Context, t pack.BlobType, id backend.ID, data []byte) (bool, error)
	Flush(ctx context.Context) error
}

// RewriteTag is the tag Rewrite gives the new snapshots when it does not
// forget the originals, so that both can be told apart (restic's).
const RewriteTag = "rewrite"

// RewriteOptions configure Rewrite. Exclude must be set.
type RewriteOptions struct {
	// Exclude reports whether the node n at path p, absolute inside the
	// snapshot ("/home/u/secret"), is left out; a folder left out goes
	// whole.
	Exclude func(p string, n *Node) bool
	// Forget records, once every new snapshot is in the log, that the
	// originals are forgotten (one forget entry for all).
	Forget bool
	// DryRun works out what would change and writes nothing.
	DryRun bool
	// Removed, if set, is called for each node left out, with its path,
	// when the folder holding it is first rewritten: a folder that
	// several snapshots share is rewritten once, so its nodes are
	// reported once.
	Removed func(p string, n *Node)
	// Now is the clock for the log entries; nil means time.Now.
	Now func() time.Time
	// TestOnlyBeforeForget, if set, runs once the new snapshots are in
	// the log and before the forget entry is written (tests kill the
	// process there).
	TestOnlyBeforeForget func(ctx context.Context) error
}

// RewrittenSnapshot says what Rewrite did to a snapshot that held
// something to leave out.
type RewrittenSnapshot struct {
	// Snapshot is the original.
	Snapshot backend.ID `json:"snapshot"`
	// New is the snapshot without the excluded paths (zero in a dry run).
	New backend.ID `json:"new,omitzero"`
	// Excluded counts the nodes the patterns matched: a folder counts
	// once, whatever it holds. Files and Bytes count the regular files
	// left out, those inside excluded folders included, and their sizes.
	Excluded uint64 `json:"excluded"`
	Files    uint64 `json:"files"`
	Bytes    uint64 `json:"bytes"`
	// Reused says New was recorded by an earlier run that was
	// interrupted before it forgot the original.
	Reused bool `json:"reused,omitempty"`
	// Forgotten says the original was forgotten.
	Forgotten bool `json:"forgotten,omitempty"`
}

// RewriteResult is what Rewrite did, the snapshots in the order given.
type RewriteResult struct {
	Snapshots []RewrittenSnapshot `json:"snapshots"`
	// Unchanged counts the snapshots that held nothing to leave out.
	Unchanged int `json:"unchanged"`
}

// Rewrite leaves the paths opts.Exclude names out of the snapshots snaps
// (live snapshots of l): for each snapshot that holds such a path, it
// writes new trees for the folders on the way to it (the rest is shared
// with the original, bottom-up), then records a new snapshot with the
// original's time, host, paths, tags and summary (its file and byte totals
// less what was left out), the original's ID as Original, and RewriteTag
// unless opts.Forget. With opts.Forget it then records one forget entry
// for every original.
//
// The data of what was left out stays in the repository until no
// snapshot uses it and prune removes it (with --max-unused 0, from every
// pack that holds it).
//
// The order makes an interruption safe at any point: the trees are saved
// and flushed before any snapshot is recorded, and the originals are
// forgotten only after every new snapshot is in the log. Run again, it
// finds the snapshots an interrupted run recorded (same Original, tree,
// time, host and paths) and reuses them, so no second copy is made.
//
// The caller holds a shared append lock, or an exclusive one with
// opts.Forget.
func Rewrite(ctx context.Context, r RewriteRepository, l *Log, ident *crypt.Identity, snaps []*Snapshot, opts RewriteOptions) (RewriteResult, error) {
	res := RewriteResult{Snapshots: []RewrittenSnapshot{}}
	if opts.Exclude == nil {
		return res, fmt.Errorf("rewrite: no exclusion given")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	rw := &pathRewriter{r: r, opts: &opts, memo: map[rewriteKey]rewrittenDir{}, counts: map[backend.ID]fileCount{}}
	var news []*Snapshot
	seen := map[backend.ID]bool{}
	for _, sn := range snaps {
		if seen[sn.ID] {
			continue
		}
		seen[sn.ID] = true
		d, err := rw.rewrite(ctx, "/", sn.Tree)
		if err != nil {
			return res, fmt.Errorf("rewrite snapshot %s: %w", sn.ID.Str(), err)
		}
		if !d.changed {
			res.Unchanged++
			continue
		}
		res.Snapshots = append(res.Snapshots, RewrittenSnapshot{Snapshot: sn.ID, Excluded: d.excluded, Files: d.files, Bytes: d.bytes})
		news = append(news, rewritten(sn, d, opts.Forget))
	}
	if opts.DryRun || len(news) == 0 {
		return res, nil
	}
	rp := replacement{news: news, find: findRewritten, beforeForget: opts.TestOnlyBeforeForget,
		recorded: func(i int, id backend.ID, reused bool) { res.Snapshots[i].New, res.Snapshots[i].Reused = id, reused }}
	if opts.Forget {
		for _, rs := range res.Snapshots {
			rp.forget = append(rp.forget, rs.Snapshot)
		}
	}
	if err := rp.record(ctx, r, l, ident, now, "rewrite"); err != nil {
		return res, err
	}
	for i := range rp.forget {
		res.Snapshots[i].Forgotten = true
	}
	return res, nil
}

// rewritten is the snapshot sn with the tree d, as Rewrite records it.
func rewritten(sn *Snapshot, d rewrittenDir, forget bool) *Snapshot {
	ns := *sn
	ns.ID = backend.ID{}
	ns.Tree = d.id
	orig := sn.ID
	ns.Original = &orig
	ns.Paths = slices.Clone(sn.Paths)
	ns.Tags = slices.Clone(sn.Tags)
	if !forget && !slices.Contains(ns.Tags, RewriteTag) {
		ns.Tags = append(ns.Tags, RewriteTag)
	}
	if sn.Summary != nil {
		s := *sn.Summary
		s.TotalFilesProcessed -= min(s.TotalFilesProcessed, d.files)
		s.TotalBytesProcessed -= min(s.TotalBytesProcessed, d.bytes)
		ns.Summary = &s
	}
	return &ns
}

// findRewritten returns the live snapshot that is ns already recorded by
// an earlier run: made from the same original, with the same tree, time,
// host and paths.
func findRewritten(live []*Snapshot, ns *Snapshot) *Snapshot {
	for _, o := range live {
		if o.Original != nil && *o.Original == *ns.Original && o.Tree == ns.Tree &&
			o.Time.Equal(ns.Time) && o.Hostname == ns.Hostname && o.SamePaths(ns.Paths) {
			return o
		}
	}
	return nil
}

// rewriteKey names a folder: its tree at its path. Patterns match paths,
// so the same tree at two paths may lose different nodes.
type rewriteKey struct {
	path string
	tree backend.ID
}

// rewrittenDir is a folder with the excluded paths left out.
type rewrittenDir struct {
	id      backend.ID
	changed bool
	// excluded counts the nodes matched; files and bytes the regular
	// files left out and their sizes.
	excluded, files, bytes uint64
}

// fileCount counts the regular files of a tree and their sizes.
type fileCount struct{ files, bytes uint64 }

// pathRewriter rewrites folders without the excluded paths, each folder
// once per run.
type pathRewriter struct {
	r    RewriteRepository
	opts *RewriteOptions
	memo map[rewriteKey]rewrittenDir
	// counts memoises countTree (a tree's files are the same at any path).
	counts map[backend.ID]fileCount
}

// rewrite returns the folder at path p, whose tree is id, without the
// excluded paths, saving the new trees unless it is a dry run.
func (w *pathRewriter) rewrite(ctx context.Context, p string, id backend.ID) (rewrittenDir, error) {
	key := rewriteKey{p, id}
	if d, ok := w.memo[key]; ok {
		return d, nil
	}
	if err := ctx.Err(); err != nil {
		return rewrittenDir{}, err
	}
	t, err := LoadTree(ctx, w.r, id)
	if err != nil {
		return rewrittenDir{}, fmt.Errorf("%s: %w", p, err)
	}
	d := rewrittenDir{id: id}
	out := &Tree{Nodes: make([]*Node, 0, len(t.Nodes))}
	for _, n := range t.Nodes {
		np := childPath(p, n.Name)
		if w.opts.Exclude(np, n) {
			c, err := w.countNode(ctx, n)
			if err != nil {
				return rewrittenDir{}, fmt.Errorf("%s: %w", np, err)
			}
			d.changed = true
			d.excluded++
			d.files += c.files
			d.bytes += c.bytes
			if w.opts.Removed != nil {
				w.opts.Removed(np, n)
			}
			continue
		}
		if n.Type == NodeDir {
			sub, err := w.rewrite(ctx, np, *n.Subtree)
			if err != nil {
				return rewrittenDir{}, err
			}
			if sub.changed {
				c := *n
				c.Subtree = &sub.id
				n = &c
				d.changed = true
				d.excluded += sub.excluded
				d.files += sub.files
				d.bytes += sub.bytes
			}
		}
		out.Nodes = append(out.Nodes, n)
	}
	if d.changed {
		data, err := EncodeTree(out)
		if err != nil {
			return rewrittenDir{}, fmt.Errorf("%s: %w", p, err)
		}
		d.id = backend.Hash(data)
		if !w.opts.DryRun {
			if _, err := w.r.SaveBlob(ctx, pack.TreeBlob, d.id, data); err != nil {
				return rewrittenDir{}, err
			}
		}
	}
	w.memo[key] = d
	return d, nil
}

// countNode counts the regular files n is or holds, and their sizes.
func (w *pathRewriter) countNode(ctx context.Context, n *Node) (fileCount, error) {
	switch n.Type {
	case NodeFile:
		return fileCount{1, n.Size}, nil
	case NodeDir:
		return w.countTree(ctx, *n.Subtree)
	}
	return fileCount{}, nil
}

func (w *pathRewriter) countTree(ctx context.Context, id backend.ID) (fileCount, error) {
	if c, ok := w.counts[id]; ok {
		return c, nil
	}
	t, err := LoadTree(ctx, w.r, id)
	if err != nil {
		return fileCount{}, err
	}
	var c fileCount
	for _, n := range t.Nodes {
		nc, err := w.countNode(ctx, n)
		if err != nil {
			return fileCount{}, err
		}
		c.files += nc.files
		c.bytes += nc.bytes
	}
	w.counts[id] = c
	return c, nil
}

// childPath is the path of the entry name of the folder at p.
func childPath(p, name string) string {
	if p == "/" {
		return "/" + name
	}
	return p + "/" + name
}
