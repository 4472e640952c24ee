package snapshot

import (
	"bytes"
	"context"
	"path"
	"slices"

	"github.com/cairn-backup/cairn/backend"
)

// ChangeKind says how a path differs between two trees. The letters are
// restic's, so scripts reading `diff` output keep working.
type ChangeKind byte

// The kinds of change Diff reports.
const (
	Added           ChangeKind = '+' // only in the second tree
	Removed         ChangeKind = '-' // only in the first tree
	Modified        ChangeKind = 'M' // content differs: chunks, size, link target or device number
	MetadataChanged ChangeKind = 'U' // same content; mode, owner, mtime or xattrs differ
	TypeChanged     ChangeKind = 'T' // e.g. a file became a directory
)

// String is the one-letter form.
func (k ChangeKind) String() string { return string(rune(k)) }

// Change is one difference found by Diff. Old is nil for Added, New is nil
// for Removed.
type Change struct {
	Path string
	Kind ChangeKind
	Old  *Node
	New  *Node
}

// Diff walks the trees rootA (old) and rootB (new) in step and calls fn for
// every difference, depth-first in name order, a directory before its
// contents. The contents of an added or removed directory are reported one
// by one; subtrees with the same ID are identical and are not loaded, which
// is what keeps diffing two similar snapshots cheap. Access and change
// times, inode and device numbers and link counts are not compared: they
// change on every backup of a restored copy. A tree that fails to load, or
// an error returned by fn, stops Diff and is returned.
func Diff(ctx context.Context, repo TreeLoader, rootA, rootB backend.ID, fn func(Change) error) error {
	return diffTrees(ctx, repo, "/", rootA, rootB, fn)
}

func diffTrees(ctx context.Context, repo TreeLoader, dir string, a, b backend.ID, fn func(Change) error) error {
	if a == b {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ta, err := LoadTree(ctx, repo, a)
	if err != nil {
		return err
	}
	tb, err := LoadTree(ctx, repo, b)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		var na, nb *Node
		switch {
		case j == len(tb.Nodes) || i < len(ta.Nodes) && ta.Nodes[i].Name < tb.Nodes[j].Name:
			na = ta.Nodes[i]
			i++
		case i == len(ta.Nodes) || tb.Nodes[j].Name < ta.Nodes[i].Name:
			nb = tb.Nodes[j]
			j++
		default:
			na, nb = ta.Nodes[i], tb.Nodes[j]
			i++
			j++
		}
		if err := diffNodes(ctx, repo, dir, na, nb, fn); err != nil {
			return err
		}
	}
	return nil
}

func diffNodes(ctx context.Context, repo TreeLoader, dir string, na, nb *Node, fn func(Change) error) error {
	switch {
	case nb == nil:
		return reportAll(ctx, repo, dir, na, Removed, fn)
	case na == nil:
		return reportAll(ctx, repo, dir, nb, Added, fn)
	}
	p := path.Join(dir, na.Name)
	if na.Type != nb.Type {
		if err := fn(Change{Path: p, Kind: TypeChanged, Old: na, New: nb}); err != nil {
			return err
		}
		if err := reportContents(ctx, repo, p, na, Removed, fn); err != nil {
			return err
		}
		return reportContents(ctx, repo, p, nb, Added, fn)
	}
	if na.Type != NodeDir && contentDiffers(na, nb) {
		if err := fn(Change{Path: p, Kind: Modified, Old: na, New: nb}); err != nil {
			return err
		}
	} else if metadataDiffers(na, nb) {
		if err := fn(Change{Path: p, Kind: MetadataChanged, Old: na, New: nb}); err != nil {
			return err
		}
	}
	if na.Type == NodeDir {
		return diffTrees(ctx, repo, p, *na.Subtree, *nb.Subtree, fn)
	}
	return nil
}

// reportAll reports n and, for a directory, everything below it as kind.
func reportAll(ctx context.Context, repo TreeLoader, dir string, n *Node, kind ChangeKind, fn func(Change) error) error {
	p := path.Join(dir, n.Name)
	c := Change{Path: p, Kind: kind}
	if kind == Added {
		c.New = n
	} else {
		c.Old = n
	}
	if err := fn(c); err != nil {
		return err
	}
	return reportContents(ctx, repo, p, n, kind, fn)
}

// reportContents reports everything below n (if it is a directory) as kind.
func reportContents(ctx context.Context, repo TreeLoader, p string, n *Node, kind ChangeKind, fn func(Change) error) error {
	if n.Type != NodeDir {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tree, err := LoadTree(ctx, repo, *n.Subtree)
	if err != nil {
		return err
	}
	for _, child := range tree.Nodes {
		if err := reportAll(ctx, repo, p, child, kind, fn); err != nil {
			return err
		}
	}
	return nil
}

func contentDiffers(a, b *Node) bool {
	return a.Size != b.Size || a.LinkTarget != b.LinkTarget || a.Device != b.Device ||
		!slices.Equal(a.Content, b.Content)
}

func metadataDiffers(a, b *Node) bool {
	return a.Mode != b.Mode || !a.ModTime.Equal(b.ModTime) || a.UID != b.UID || a.GID != b.GID ||
		a.User != b.User || a.Group != b.Group ||
		!slices.EqualFunc(a.ExtendedAttributes, b.ExtendedAttributes, func(x, y ExtendedAttribute) bool {
			return x.Name == y.Name && bytes.Equal(x.Value, y.Value)
		})
}
