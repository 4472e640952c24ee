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
	d := &differ{repo: repo, fn: fn, trees: func(_, _ *backend.ID) {}}
	return d.compare(ctx, "/", rootA, rootB)
}

// differ is the state of one Diff: where trees come from and who is told
// about differences. trees is told about every tree blob of a directory
// that is only in the first tree (oldID set, newID nil), only in the
// second (newID set), or replaced by another at the same path (both
// set); DiffWithStats uses it.
type differ struct {
	repo  TreeLoader
	fn    func(Change) error
	trees func(oldID, newID *backend.ID)
}

// compare compares the trees a and b of the directory dir.
func (d *differ) compare(ctx context.Context, dir string, a, b backend.ID) error {
	if a == b {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.trees(&a, &b)
	ta, err := LoadTree(ctx, d.repo, a)
	if err != nil {
		return err
	}
	tb, err := LoadTree(ctx, d.repo, b)
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
		if err := d.nodes(ctx, dir, na, nb); err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) nodes(ctx context.Context, dir string, na, nb *Node) error {
	switch {
	case nb == nil:
		return d.all(ctx, dir, na, Removed)
	case na == nil:
		return d.all(ctx, dir, nb, Added)
	}
	p := path.Join(dir, na.Name)
	if na.Type != nb.Type {
		if err := d.fn(Change{Path: p, Kind: TypeChanged, Old: na, New: nb}); err != nil {
			return err
		}
		if err := d.contents(ctx, p, na, Removed); err != nil {
			return err
		}
		return d.contents(ctx, p, nb, Added)
	}
	if na.Type != NodeDir && contentDiffers(na, nb) {
		if err := d.fn(Change{Path: p, Kind: Modified, Old: na, New: nb}); err != nil {
			return err
		}
	} else if metadataDiffers(na, nb) {
		if err := d.fn(Change{Path: p, Kind: MetadataChanged, Old: na, New: nb}); err != nil {
			return err
		}
	}
	if na.Type == NodeDir {
		return d.compare(ctx, p, *na.Subtree, *nb.Subtree)
	}
	return nil
}

// all reports n and, for a directory, everything below it as kind.
func (d *differ) all(ctx context.Context, dir string, n *Node, kind ChangeKind) error {
	p := path.Join(dir, n.Name)
	c := Change{Path: p, Kind: kind}
	if kind == Added {
		c.New = n
	} else {
		c.Old = n
	}
	if err := d.fn(c); err != nil {
		return err
	}
	return d.contents(ctx, p, n, kind)
}

// contents reports everything below n (if it is a directory) as kind.
func (d *differ) contents(ctx context.Context, p string, n *Node, kind ChangeKind) error {
	if n.Type != NodeDir {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if kind == Added {
		d.trees(nil, n.Subtree)
	} else {
		d.trees(n.Subtree, nil)
	}
	tree, err := LoadTree(ctx, d.repo, *n.Subtree)
	if err != nil {
		return err
	}
	for _, child := range tree.Nodes {
		if err := d.all(ctx, p, child, kind); err != nil {
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
