package snapshot

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
)

// The problems CheckSnapshots finds, beside those of repo.Check.
const (
	// ProblemTreeDamaged: a tree a live snapshot reaches does not load or
	// decode. Path is the folder it describes.
	ProblemTreeDamaged repo.ProblemKind = "tree_damaged"
	// ProblemBlobMissing: a file of a live snapshot needs a data blob that
	// no index lists. Path is the file, Blob the first missing blob.
	ProblemBlobMissing repo.ProblemKind = "blob_missing"
	// ProblemLog: the snapshot log failed verification (see Log.Problems).
	ProblemLog repo.ProblemKind = "log"
)

// BlobChecker loads trees and says which blobs the index lists;
// *repo.Repository is one.
type BlobChecker interface {
	TreeLoader
	Has(t pack.BlobType, id backend.ID) bool
}

// UsedBlobs collects every tree and data blob that the given snapshots
// reach. Each tree is read once, however many snapshots share it, so the
// cost is that of the distinct trees. A tree that does not load is an
// error naming the snapshot and folder: prune must not run while a live
// snapshot is damaged, since it would delete what a repair could still
// save.
func UsedBlobs(ctx context.Context, r TreeLoader, snaps []*Snapshot) (*repo.BlobSet, error) {
	used := repo.NewBlobSet()
	err := walkUnique(ctx, r, snaps, used, func(sn *Snapshot, dir string, tree backend.ID, t *Tree, err error) error {
		if err != nil {
			return fmt.Errorf("snapshot %s: folder %s: %w; refusing to prune while a live snapshot is damaged (run 'cairn check', then 'cairn repair snapshots')",
				sn.ID.Str(), dir, err)
		}
		for _, n := range t.Nodes {
			for _, id := range n.Content {
				used.Insert(pack.DataBlob, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return used, nil
}

// walkUnique calls fn for every tree the snapshots reach, once per tree
// ID, with the first snapshot and folder it was found at, and either the
// decoded tree or the error loading it. seen holds the trees visited (they
// are added to it), so a tree already in it is skipped. An error from fn
// stops the walk.
func walkUnique(ctx context.Context, r TreeLoader, snaps []*Snapshot, seen *repo.BlobSet,
	fn func(sn *Snapshot, dir string, id backend.ID, t *Tree, err error) error) error {
	type item struct {
		id  backend.ID
		dir string
	}
	for _, sn := range snaps {
		if !seen.Insert(pack.TreeBlob, sn.Tree) {
			continue
		}
		stack := []item{{sn.Tree, "/"}}
		for len(stack) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			t, err := LoadTree(ctx, r, it.id)
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			if ferr := fn(sn, it.dir, it.id, t, err); ferr != nil {
				return ferr
			}
			if err != nil {
				continue
			}
			for _, n := range t.Nodes {
				if n.Type == NodeDir && n.Subtree != nil && seen.Insert(pack.TreeBlob, *n.Subtree) {
					stack = append(stack, item{*n.Subtree, path.Join(it.dir, n.Name)})
				}
			}
		}
	}
	return nil
}

// CheckSnapshots checks what the live snapshots of the log reach: every
// tree loads and decodes, and every data blob a file needs is in the index.
// It also reports the log's own problems, and its skipped files as
// warnings. A tree shared by several
// snapshots is checked once and its problems reported with the first
// snapshot (by time) that reaches it; a file with missing blobs is one
// problem. It returns an error only when ctx ends.
func CheckSnapshots(ctx context.Context, r BlobChecker, l *Log) ([]repo.Problem, error) {
	var problems []repo.Problem
	for _, p := range l.Problems {
		problems = append(problems, repo.Problem{Kind: ProblemLog, Message: p})
	}
	for _, p := range l.Skipped {
		problems = append(problems, repo.Problem{Kind: ProblemLog, Warning: true, Message: p})
	}
	seen := repo.NewBlobSet()
	err := walkUnique(ctx, r, l.Snapshots(), seen, func(sn *Snapshot, dir string, id backend.ID, t *Tree, err error) error {
		if err != nil {
			problems = append(problems, repo.Problem{Kind: ProblemTreeDamaged, Snapshot: sn.ID.String(), Path: dir, Blob: id.String(),
				Message: fmt.Sprintf("folder does not load: %v", err)})
			return nil
		}
		for _, n := range t.Nodes {
			missing := 0
			var first backend.ID
			for _, c := range n.Content {
				if !r.Has(pack.DataBlob, c) {
					if missing == 0 {
						first = c
					}
					missing++
				}
			}
			if missing > 0 {
				problems = append(problems, repo.Problem{Kind: ProblemBlobMissing, Snapshot: sn.ID.String(), Path: path.Join(dir, n.Name), Blob: first.String(),
					Message: fmt.Sprintf("%d of %d data blob(s) of this file are in no pack", missing, len(n.Content))})
			}
		}
		return nil
	})
	return problems, err
}

// UnindexedBlobs returns the trees and data blobs the snapshots reach
// that the index does not list: what a repository that lost packs, index
// files or both together still needs, and what a mirror must therefore
// not remove from a copy, nor a repair fail to fetch back. A tree the
// index lists that does not load is not among them (check reports it as
// damage); the folders under a tree the index lacks are not walked, so a
// repair that fetches it finds what those need on its next walk.
func UnindexedBlobs(ctx context.Context, r BlobChecker, snaps []*Snapshot) (*repo.BlobSet, error) {
	need := repo.NewBlobSet()
	err := walkUnique(ctx, unindexedTrees{r, need}, snaps, repo.NewBlobSet(), func(_ *Snapshot, _ string, _ backend.ID, t *Tree, err error) error {
		if err != nil {
			return nil
		}
		for _, n := range t.Nodes {
			for _, c := range n.Content {
				if !r.Has(pack.DataBlob, c) {
					need.Insert(pack.DataBlob, c)
				}
			}
		}
		return nil
	})
	return need, err
}

// LostBlobs returns the trees and data blobs the snapshots reach that no
// pack of r holds: UnindexedBlobs, and if that finds any, again after
// reading the headers of the packs no index file lists (a pack whose index
// file was lost) into r's in-memory index, which walks on through the
// trees those hold. r's index then lists those packs too; take
// r.MirrorRefs before.
func LostBlobs(ctx context.Context, r *repo.Repository, snaps []*Snapshot) (*repo.BlobSet, error) {
	need, err := UnindexedBlobs(ctx, r, snaps)
	if err != nil || need.Len() == 0 {
		return need, err
	}
	if _, err := r.IndexUnlistedPacks(ctx); err != nil {
		return nil, err
	}
	return UnindexedBlobs(ctx, r, snaps)
}

// unindexedTrees loads trees through r, and records in need, without
// reading anything, the trees r's index lacks.
type unindexedTrees struct {
	r    BlobChecker
	need *repo.BlobSet
}

func (u unindexedTrees) LoadBlob(ctx context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error) {
	if t == pack.TreeBlob && !u.r.Has(t, id) {
		u.need.Insert(t, id)
		return nil, fmt.Errorf("tree %s: %w", id.Str(), errNotIndexed)
	}
	return u.r.LoadBlob(ctx, t, id, buf)
}

// errNotIndexed stops UnindexedBlobs at a tree the index lacks.
var errNotIndexed = errors.New("not in the index")
