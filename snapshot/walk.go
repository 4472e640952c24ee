package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// TreeLoader loads blobs; *repo.Repository is one. LoadBlob returns the
// plaintext of a blob, appended to buf[:0], and must verify that it
// hashes to id.
type TreeLoader interface {
	LoadBlob(ctx context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error)
}

// BlobSource loads blobs and says where each lies: what the restorer and
// the mounted file system read; *repo.Repository is one.
type BlobSource interface {
	TreeLoader
	// Lookup says which pack holds a blob, where, and its lengths (a data
	// blob's plaintext length places it in its file).
	Lookup(t pack.BlobType, id backend.ID) (index.PackedBlob, bool)
}

// SkipDir, returned by a WalkFunc for a directory, skips its contents;
// returned for any other node it skips the rest of the directory holding
// that node. It is never returned by Walk.
var SkipDir = fs.SkipDir

// ErrPathNotFound is returned by FindSubtree for a path the snapshot lacks.
var ErrPathNotFound = errors.New("path not found in snapshot")

// LoadTree loads and decodes the tree blob id.
func LoadTree(ctx context.Context, repo TreeLoader, id backend.ID) (*Tree, error) {
	buf, err := repo.LoadBlob(ctx, pack.TreeBlob, id, nil)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Str(), err)
	}
	t, err := DecodeTree(buf)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Str(), err)
	}
	return t, nil
}

// WalkFunc is called by Walk for each node, with the node's path inside the
// snapshot ("/home/u/file"). For a directory it is called a second time,
// with err set, if the directory's tree cannot be loaded; if the root tree
// cannot be loaded it is called once with path "/", node nil and err set.
// A non-nil return other than SkipDir stops the walk and Walk returns it.
type WalkFunc func(path string, node *Node, err error) error

// Walk visits every node under the tree root depth-first, each directory's
// entries in name order, a directory before its contents. A tree that fails
// to load is passed to fn and, if fn returns nil, skipped.
//
// Memory is linear in the depth of the tree: the path is built in one
// buffer, a name appended on the way down and cut on the way up, and each
// level keeps only its own tree. The path string passed to fn is made anew
// for each call, so fn may keep it.
func Walk(ctx context.Context, repo TreeLoader, root backend.ID, fn WalkFunc) error {
	w := &walker{ctx: ctx, repo: repo, fn: fn, path: append(make([]byte, 0, 256), '/')}
	return w.tree(root, nil)
}

// walker is the state of one Walk.
type walker struct {
	ctx  context.Context
	repo TreeLoader
	fn   WalkFunc
	// path is the path of the directory being walked ("/" for the root),
	// and of the current node while fn runs for it.
	path []byte
}

// tree walks the tree id of the directory at w.path; node is that
// directory's node (nil for the root), for reporting a tree that fails to
// load.
func (w *walker) tree(id backend.ID, node *Node) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	tree, err := LoadTree(w.ctx, w.repo, id)
	if err != nil {
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		if err := w.fn(string(w.path), node, err); err != nil && err != SkipDir {
			return err
		}
		return nil
	}
	dir := len(w.path)
	defer func() { w.path = w.path[:dir] }()
	for _, n := range tree.Nodes {
		// DecodeTree checked the name: one element, nothing to clean.
		w.path = w.path[:dir]
		if dir > 1 {
			w.path = append(w.path, '/')
		}
		w.path = append(w.path, n.Name...)
		err := w.fn(string(w.path), n, nil)
		if err == SkipDir {
			if n.Type == NodeDir {
				continue
			}
			return nil
		}
		if err != nil {
			return err
		}
		if n.Type == NodeDir {
			if err := w.tree(*n.Subtree, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// FindSubtree returns the ID of the tree of directory subpath inside the
// tree root, for "SNAPSHOT:SUBPATH" selectors. subpath is slash-separated;
// "", "/" and "." name root itself. A missing path gives ErrPathNotFound.
func FindSubtree(ctx context.Context, repo TreeLoader, root backend.ID, subpath string) (backend.ID, error) {
	id := root
	walked := ""
	for elem := range strings.SplitSeq(subpath, "/") {
		if elem == "" || elem == "." {
			continue
		}
		if elem == ".." {
			return backend.ID{}, fmt.Errorf("subpath %q: \"..\" is not allowed", subpath)
		}
		tree, err := LoadTree(ctx, repo, id)
		if err != nil {
			return backend.ID{}, fmt.Errorf("subpath %q: %w", subpath, err)
		}
		walked += "/" + elem
		n := tree.Find(elem)
		if n == nil {
			return backend.ID{}, fmt.Errorf("%s: %w", walked, ErrPathNotFound)
		}
		if n.Type != NodeDir {
			return backend.ID{}, fmt.Errorf("%s is a %s, not a directory", walked, n.Type)
		}
		id = *n.Subtree
	}
	return id, nil
}

// FindOptions tunes FindNodes.
type FindOptions struct {
	// IgnoreCase matches patterns without regard to case.
	IgnoreCase bool
	// Oldest and Newest, when not zero, leave out nodes modified before
	// Oldest or after Newest (restic's find --oldest and --newest).
	Oldest, Newest time.Time
}

// FindNodes calls fn for every node under root whose path matches any of
// patterns (see Pattern.MatchFull): a pattern without "/" matches the node's
// name, one with "/" matches the end of its path, or the whole path if it
// starts with "/". Tree load errors are passed to fn as in Walk (with node
// nil for the root); fn may return SkipDir for a directory to prune it.
func FindNodes(ctx context.Context, repo TreeLoader, root backend.ID, patterns []string, opts FindOptions, fn WalkFunc) error {
	if len(patterns) == 0 {
		return fmt.Errorf("%w: no pattern given", ErrBadPattern)
	}
	pats, err := ParsePatterns(patterns, opts.IgnoreCase)
	if err != nil {
		return err
	}
	return Walk(ctx, repo, root, func(p string, n *Node, err error) error {
		if err != nil {
			return fn(p, n, err)
		}
		if (!opts.Oldest.IsZero() && n.ModTime.Before(opts.Oldest)) || (!opts.Newest.IsZero() && n.ModTime.After(opts.Newest)) {
			return nil
		}
		for _, pat := range pats {
			if pat.MatchFull(p) {
				return fn(p, n, nil)
			}
		}
		return nil
	})
}
