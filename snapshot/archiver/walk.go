package archiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// vdir is a directory on the way from "/" to the backup targets. A target
// is backed up whole; a directory above the targets holds only the
// children that lead to them.
type vdir struct {
	all      []string // on the root only: every path given, covered or not
	target   bool
	fi       os.FileInfo // lstat of a target, set by statTargets
	children map[string]*vdir
}

// buildTargets turns paths into the tree of directories leading to them:
// paths are made absolute and cleaned, and a path inside another given
// path is dropped, its ancestor covers it.
func buildTargets(paths []string) (*vdir, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to back up")
	}
	root := &vdir{children: map[string]*vdir{}}
	for _, p := range paths {
		if p == "" {
			return nil, errors.New("empty path to back up")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("absolute path of %s: %w", p, err)
		}
		root.all = append(root.all, abs)
		d := root
		for _, name := range splitPath(abs) {
			if d.target {
				break
			}
			next := d.children[name]
			if next == nil {
				next = &vdir{children: map[string]*vdir{}}
				d.children[name] = next
			}
			d = next
		}
		d.target = true
		d.children = nil // whatever was below is covered by this target
	}
	return root, nil
}

// splitPath returns the names of a clean absolute path ("/" gives none).
func splitPath(abs string) []string {
	if abs == "/" {
		return nil
	}
	return strings.Split(abs[1:], "/")
}

// statTargets lstats every target, drops those that fail (through
// Options.Error) or are excluded, and drops directories left leading to no
// target. For OneFileSystem it collects the devices of every path given,
// also of those inside another target: "-x / /home" enters /home.
func (r *run) statTargets(root *vdir) error {
	r.devices = targetDevices(root.all)
	keep, err := r.statTarget("/", root)
	if err != nil {
		return err
	}
	if !keep {
		return ErrNoTargets
	}
	return nil
}

func (r *run) statTarget(path string, d *vdir) (keep bool, err error) {
	if d.target {
		fi, err := os.Lstat(path)
		if err != nil {
			return false, r.itemError(path, err)
		}
		if r.a.sel.excluded(path, fi) {
			return false, nil
		}
		d.fi = fi
		return true, nil
	}
	for name, c := range d.children {
		keep, err := r.statTarget(filepath.Join(path, name), c)
		if err != nil {
			return false, err
		}
		if !keep {
			delete(d.children, name)
		}
	}
	return len(d.children) > 0, nil
}

// walkRoot walks the targets in name order and returns the future of the
// root tree. It runs on one goroutine, the walker.
func (r *run) walkRoot(ctx context.Context, root *vdir) (*future, error) {
	var prevTree *snapshot.Tree
	if parent := r.a.opts.Parent; !parent.IsNull() {
		prevTree = r.loadTree(ctx, "/", &snapshot.Node{Type: snapshot.NodeDir, Subtree: &parent})
	}
	if root.target {
		return r.walkDirWithTree(ctx, "/", nil, nil, prevTree)
	}
	return r.walkVirtual(ctx, "/", root, nil, nil, prevTree)
}

// walkVirtual saves a directory above the targets: its own metadata (from
// stat, so a symlinked path component is recorded as the directory it
// points to) and only the children leading to targets.
func (r *run) walkVirtual(ctx context.Context, path string, d *vdir, node, prev *snapshot.Node, prevTree *snapshot.Tree) (*future, error) {
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	slices.Sort(names)
	children := make([]*future, 0, len(names))
	for _, name := range names {
		if err := context.Cause(ctx); err != nil {
			return nil, err
		}
		c := d.children[name]
		p := filepath.Join(path, name)
		var cprev *snapshot.Node
		if prevTree != nil {
			cprev = prevTree.Find(name)
		}
		var f *future
		var err error
		if c.target {
			f, err = r.saveEntry(ctx, p, name, c.fi, cprev)
		} else {
			f, err = r.saveVirtual(ctx, p, name, c, cprev)
		}
		if err != nil {
			return nil, err
		}
		if f != nil {
			children = append(children, f)
		}
	}
	return r.submitTree(ctx, path, node, prev, prevTree, children)
}

func (r *run) saveVirtual(ctx context.Context, path, name string, d *vdir, prev *snapshot.Node) (*future, error) {
	fi, err := os.Stat(path)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", path)
	}
	var node *snapshot.Node
	if err == nil {
		node, err = r.nodeFromInfo(path, name, fi, true)
	}
	if err != nil {
		return nil, r.itemError(path, err)
	}
	return r.walkVirtual(ctx, path, d, node, prev, r.loadTree(ctx, path, prev))
}

// saveEntry saves one item found by lstat; it returns a nil future for an
// item skipped after an error, and an error only when the backup must stop.
func (r *run) saveEntry(ctx context.Context, path, name string, fi os.FileInfo, prev *snapshot.Node) (*future, error) {
	if !utf8.ValidString(name) {
		return nil, r.itemError(path, errNotUTF8)
	}
	node, err := r.nodeFromInfo(path, name, fi, false)
	return r.saveNode(ctx, path, fi, node, err, prev)
}

// saveNode saves an item whose node was built from fi (or failed to be,
// with err).
func (r *run) saveNode(ctx context.Context, path string, fi os.FileInfo, node *snapshot.Node, err error, prev *snapshot.Node) (*future, error) {
	if err != nil {
		return nil, r.itemError(path, err)
	}
	switch node.Type {
	case snapshot.NodeDir:
		if !r.sameFileSystem(fi) {
			// A mount point: recorded, but not entered.
			return r.submitTree(ctx, path, node, prev, nil, nil)
		}
		return r.walkDir(ctx, path, node, prev)
	case snapshot.NodeFile:
		return r.saveFile(ctx, path, node, prev)
	}
	r.progress.CompleteItem(path, node, statusOf(node, prev))
	return doneFuture(node), nil
}

// sameFileSystem reports whether a directory may be entered under
// OneFileSystem: it lies on the device of one of the targets.
func (r *run) sameFileSystem(fi os.FileInfo) bool {
	return r.a.enters(r.devices, fi)
}

// enters reports whether a directory may be entered under OneFileSystem,
// given the devices of the targets (targetDevices).
func (a *Archiver) enters(devices map[uint64]bool, fi os.FileInfo) bool {
	if !a.opts.OneFileSystem {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && devices[st.Dev]
}

// targetDevices returns the devices of the paths given to back up.
func targetDevices(paths []string) map[uint64]bool {
	devices := map[uint64]bool{}
	for _, p := range paths {
		if fi, err := os.Lstat(p); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				devices[st.Dev] = true
			}
		}
	}
	return devices
}

// walkDir lists a directory, saves its entries in name order and queues
// its tree. The parent snapshot's tree for it is loaded now and dropped
// when the directory is done, so memory follows the depth of the walk, not
// the number of files.
func (r *run) walkDir(ctx context.Context, path string, node, prev *snapshot.Node) (*future, error) {
	return r.walkDirWithTree(ctx, path, node, prev, r.loadTree(ctx, path, prev))
}

func (r *run) walkDirWithTree(ctx context.Context, path string, node, prev *snapshot.Node, prevTree *snapshot.Tree) (*future, error) {
	names, err := r.readDirNames(path)
	if err != nil {
		return nil, r.itemError(path, err)
	}
	slices.Sort(names)
	if keep := r.tagFilter(path, names); keep != nil {
		names = slices.DeleteFunc(names, func(name string) bool { return !keep(name) })
	}
	children := make([]*future, 0, len(names))
	for start := 0; start < len(names); start += statWindow {
		window := names[start:min(len(names), start+statWindow)]
		infos := r.statEntries(path, window)
		for i, name := range window {
			if err := context.Cause(ctx); err != nil {
				return nil, err
			}
			p := filepath.Join(path, name)
			e := &infos[i]
			if e.err != nil {
				if ferr := r.itemError(p, e.err); ferr != nil {
					return nil, ferr
				}
				continue
			}
			if e.excluded {
				continue
			}
			var cprev *snapshot.Node
			if prevTree != nil {
				cprev = prevTree.Find(name)
			}
			var f *future
			var err error
			if !utf8.ValidString(name) {
				err = r.itemError(p, errNotUTF8)
			} else {
				f, err = r.saveNode(ctx, p, e.fi, e.node, e.nodeErr, cprev)
			}
			if err != nil {
				return nil, err
			}
			if f != nil {
				children = append(children, f)
			}
		}
	}
	return r.submitTree(ctx, path, node, prev, prevTree, children)
}

// statWindow is how many entries of a directory are examined (lstat,
// exclusions, node with extended attributes) ahead of the walk, and
// statWorkers how many goroutines share that. Those are system calls at
// 2-10 µs per entry, most of an unchanged backup's work: spreading them
// over several threads takes them off the walker's critical path (and
// overlaps their waits when the metadata is not cached). A window keeps
// the nodes built ahead to a few dozen per level of the walk.
const (
	statWindow  = 64
	statWorkers = 4
	// statPerWorker: below this many entries per worker, starting
	// goroutines costs more than it saves.
	statPerWorker = 8
)

// entryInfo is what statEntries learned about one directory entry.
type entryInfo struct {
	fi       os.FileInfo
	err      error // lstat failed: nothing else is set
	excluded bool
	node     *snapshot.Node // nil if excluded or the name is not UTF-8
	nodeErr  error
}

// statEntries lstats the entries names of the directory path, applies
// the exclusions and builds the nodes of those kept, on up to statWorkers
// goroutines. Errors are returned, not reported: the walker reports them
// in name order.
func (r *run) statEntries(path string, names []string) []entryInfo {
	out := make([]entryInfo, len(names))
	one := func(i int) {
		name := names[i]
		p := filepath.Join(path, name)
		fi, err := os.Lstat(p)
		if err != nil {
			out[i].err = err
			return
		}
		out[i].fi = fi
		if r.a.sel.excluded(p, fi) {
			out[i].excluded = true
			return
		}
		if utf8.ValidString(name) {
			out[i].node, out[i].nodeErr = r.nodeFromInfo(p, name, fi, false)
		}
	}
	workers := min(statWorkers, len(names)/statPerWorker)
	if workers <= 1 {
		for i := range names {
			one(i)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				one(i)
			}
		})
	}
	wg.Wait()
	return out
}

// readDirNames lists a directory. It opens it without following a symlink
// that replaced it since lstat and without updating its atime.
func (r *run) readDirNames(path string) ([]string, error) {
	f, err := r.openNoAtime(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	cerr := f.Close()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("list %s: %w", path, cerr)
	}
	return names, nil
}

// loadTree loads the parent snapshot's tree for a directory, or returns
// nil when there is none or it cannot be loaded (with a warning: the
// directory is then backed up without a parent, reading every file).
func (r *run) loadTree(ctx context.Context, path string, prev *snapshot.Node) *snapshot.Tree {
	if prev == nil || prev.Type != snapshot.NodeDir || prev.Subtree == nil {
		return nil
	}
	data, err := r.repo.LoadBlob(ctx, pack.TreeBlob, *prev.Subtree, nil)
	if err == nil {
		var t *snapshot.Tree
		if t, err = snapshot.DecodeTree(data); err == nil {
			return t
		}
	}
	if ctx.Err() == nil {
		r.warn(path, fmt.Errorf("load parent tree %s: %w", prev.Subtree.Str(), err))
	}
	return nil
}
