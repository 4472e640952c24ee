package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// Format is an archive format for folders. It parses and prints itself,
// for the --archive flag.
type Format int

// The archive formats.
const (
	Tar Format = iota
	Zip
)

// String is the format's name, as --archive takes it.
func (f Format) String() string {
	switch f {
	case Tar:
		return "tar"
	case Zip:
		return "zip"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Set parses a format name, for urfave/cli's GenericFlag.
func (f *Format) Set(s string) error {
	switch s {
	case "tar":
		*f = Tar
	case "zip":
		*f = Zip
	default:
		return fmt.Errorf("invalid archive format %q (want tar or zip)", s)
	}
	return nil
}

// Repository is what dumping needs: blobs, verified against their IDs.
type Repository = snapshot.TreeLoader

// DefaultAhead is how many blobs of a file are loaded ahead of the one
// being written when Options.Ahead is 0: enough to keep a remote
// repository's round trips overlapped, while memory stays at a few
// chunks (restic's chunker makes them at most 8 MiB).
const DefaultAhead = 4

// Options tune a dump. The zero value dumps a folder as a tar stream.
type Options struct {
	// Format is the archive format of a folder; a file is written as
	// it is, whatever the format.
	Format Format
	// BeforeArchive, if set, runs when the path turns out to be a
	// folder, before anything is written; an error stops the dump. The
	// CLI refuses to write an archive to a terminal there.
	BeforeArchive func() error
	// Warn reports an entry the archive cannot hold and leaves out (a
	// socket; in a zip, also devices and fifos), by its archive name.
	Warn func(name, why string)
	// Ahead is how many blobs are loaded ahead of the one being
	// written; 0 means DefaultAhead, 1 loads one at a time.
	Ahead int
}

// ErrNotDumpable is wrapped by the error for a path that is neither a
// file nor a folder.
var ErrNotDumpable = errors.New("not a file or a folder")

// Dump writes what the tree root holds at p to w: a file's content, or a
// folder (p "/" is root itself) as an archive. A file or archive is
// complete only when Dump returns nil; on an error, w may hold a part.
func Dump(ctx context.Context, r Repository, root backend.ID, p string, w io.Writer, opts Options) error {
	if opts.Ahead <= 0 {
		opts.Ahead = DefaultAhead
	}
	if opts.Warn == nil {
		opts.Warn = func(string, string) {}
	}
	clean, err := cleanPath(p)
	if err != nil {
		return err
	}
	node, err := FindNode(ctx, r, root, clean)
	if err != nil {
		return err
	}
	switch {
	case node != nil && node.Type == snapshot.NodeFile:
		_, err := writeContent(ctx, r, node, w, opts.Ahead)
		return err
	case node != nil && node.Type != snapshot.NodeDir:
		return fmt.Errorf("%s is a %s: %w (dump a folder holding it to get it in an archive)", clean, node.Type, ErrNotDumpable)
	}
	if opts.BeforeArchive != nil {
		if err := opts.BeforeArchive(); err != nil {
			return err
		}
	}
	tree := root
	if node != nil {
		tree = *node.Subtree
	}
	var aw archiveWriter
	switch opts.Format {
	case Tar:
		aw = newTarWriter(w)
	case Zip:
		aw = newZipWriter(w)
	default:
		return fmt.Errorf("unknown archive format %v", opts.Format)
	}
	d := &dumper{ctx: ctx, repo: r, aw: aw, opts: opts}
	if err := d.tree(clean, node, tree); err != nil {
		return err
	}
	return aw.Close()
}

// cleanPath makes p an absolute, clean slash path; ".." is refused rather
// than resolved, as in SNAPSHOT:SUBPATH.
func cleanPath(p string) (string, error) {
	for elem := range strings.SplitSeq(p, "/") {
		if elem == ".." {
			return "", fmt.Errorf("path %q: \"..\" is not allowed", p)
		}
	}
	return path.Clean("/" + p), nil
}

// FindNode returns the node at the clean absolute path p under the tree
// root, or nil for "/" (root itself, which has no node). A missing path
// wraps snapshot.ErrPathNotFound.
func FindNode(ctx context.Context, r Repository, root backend.ID, p string) (*snapshot.Node, error) {
	if p == "/" {
		return nil, nil
	}
	id := root
	var node *snapshot.Node
	walked := ""
	for elem := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		if node != nil {
			if node.Type != snapshot.NodeDir {
				return nil, fmt.Errorf("%s is a %s, not a folder: %w", walked, node.Type, snapshot.ErrPathNotFound)
			}
			id = *node.Subtree
		}
		t, err := snapshot.LoadTree(ctx, r, id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		walked += "/" + elem
		if node = t.Find(elem); node == nil {
			return nil, fmt.Errorf("%s: %w", walked, snapshot.ErrPathNotFound)
		}
	}
	return node, nil
}

// archiveWriter is one archive format's writer. add writes one entry's
// header; a regular file's content follows through the returned writer
// (nil for other entries), exactly node.Size bytes. skip is a reason the
// format cannot hold the node, "" if it can.
type archiveWriter interface {
	skip(n *snapshot.Node) string
	add(name string, n *snapshot.Node) (io.Writer, error)
	Close() error
}

// dumper is the state of one archive dump.
type dumper struct {
	ctx  context.Context
	repo Repository
	aw   archiveWriter
	opts Options
}

// tree writes the folder at path dir (its node n, nil for the root) and
// everything under it.
func (d *dumper) tree(dir string, n *snapshot.Node, id backend.ID) error {
	if n != nil {
		if err := d.entry(dir, n); err != nil {
			return err
		}
	}
	return snapshot.Walk(d.ctx, d.repo, id, func(p string, n *snapshot.Node, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", path.Join(dir, p), err)
		}
		return d.entry(path.Join(dir, p), n)
	})
}

// entry writes one node at path p.
func (d *dumper) entry(p string, n *snapshot.Node) error {
	name := strings.TrimPrefix(p, "/")
	if why := d.aw.skip(n); why != "" {
		d.opts.Warn(name, why)
		return nil
	}
	cw, err := d.aw.add(name, n)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if cw == nil {
		return nil
	}
	if _, err := writeContent(d.ctx, d.repo, n, cw, d.opts.Ahead); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// errSizeMismatch is wrapped when a file's blobs do not add up to its
// recorded size: damage, and a tar entry would be corrupt.
var errSizeMismatch = errors.New("content does not add up to the recorded size")

// writeContent writes the file node n's content to w, blob by blob in
// order, with up to ahead blobs loading while one is written, and
// returns the bytes written. It checks the total against n.Size.
func writeContent(ctx context.Context, r Repository, n *snapshot.Node, w io.Writer, ahead int) (int64, error) {
	var written int64
	err := loadInOrder(ctx, r, n.Content, ahead, func(b []byte) error {
		if uint64(written)+uint64(len(b)) > n.Size {
			return fmt.Errorf("%w (%d bytes recorded, more stored)", errSizeMismatch, n.Size)
		}
		m, err := w.Write(b)
		written += int64(m)
		return err
	})
	if err == nil && uint64(written) != n.Size {
		err = fmt.Errorf("%w (%d bytes recorded, %d stored)", errSizeMismatch, n.Size, written)
	}
	return written, err
}

// loaded is one blob load's outcome.
type loaded struct {
	b   []byte
	err error
}

// loadInOrder calls fn with the plaintext of each data blob of ids, in
// order, on the caller's goroutine, with up to ahead loads running at
// once. A buffer passed to fn is reused once fn returns. The first error
// (of a load or of fn) stops it; it returns only after every load it
// started has ended.
func loadInOrder(ctx context.Context, r Repository, ids []backend.ID, ahead int, fn func([]byte) error) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// slots[i%ahead] holds the future of blob i: a ring, so memory does
	// not grow with the file's blob count.
	ahead = max(1, min(ahead, len(ids)))
	slots := make([]chan loaded, ahead)
	start := func(i int, buf []byte) {
		ch := make(chan loaded, 1)
		slots[i%ahead] = ch
		go func() {
			b, err := r.LoadBlob(ctx, pack.DataBlob, ids[i], buf)
			ch <- loaded{b, err}
		}()
	}
	for i := 0; i < ahead; i++ {
		start(i, nil)
	}
	var err error
	next := 0 // the blob whose future is awaited
	for ; next < len(ids) && err == nil; next++ {
		res := <-slots[next%ahead]
		slots[next%ahead] = nil
		err = res.err
		if err == nil {
			err = fn(res.b)
		}
		if err == nil && next+ahead < len(ids) {
			start(next+ahead, res.b)
		}
	}
	if err != nil {
		cancel()
		// Wait for the loads still running: each has an owner.
		for _, ch := range slots {
			if ch != nil {
				<-ch
			}
		}
	}
	return err
}
