package restorer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// Repository is what the restorer needs of a repository; *repo.Repository
// implements it. Its methods must be safe for concurrent use.
type Repository interface {
	// LoadBlob returns the plaintext of a blob, appended to buf[:0], after
	// checking that it hashes to id.
	LoadBlob(ctx context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error)
	// Lookup says which pack holds a blob.
	Lookup(t pack.BlobType, id backend.ID) (index.PackedBlob, bool)
	// LoadPack reads the given blobs of one pack, opens, decompresses and
	// verifies each, and calls fn for each in offset order on the caller's
	// goroutine. A blob that fails is passed with err set and plaintext nil;
	// an error returned by fn aborts LoadPack. plaintext is valid only
	// during fn.
	LoadPack(ctx context.Context, packID backend.ID, blobs []pack.Blob, fn func(b pack.Blob, plaintext []byte, err error) error) error
}

// Errors the restorer reports through Options.Error; branch with errors.Is.
var (
	// ErrBlobMissing: the index does not know a blob a file needs.
	ErrBlobMissing = errors.New("blob not in index")
	// ErrVerify: a restored file's content does not hash to its chunk IDs.
	ErrVerify = errors.New("restored content does not match the snapshot")
	// ErrSymlinkInTarget: an existing symlink is where the snapshot has a
	// directory; the restorer never follows it.
	ErrSymlinkInTarget = errors.New("refusing to restore through an existing symlink")
	// ErrDirInTarget: an existing directory is where the snapshot has a
	// non-directory; the restorer does not delete directories.
	ErrDirInTarget = errors.New("refusing to replace an existing directory")
)

// Progress receives progress reports. Its methods are called from many
// goroutines at once (the walker and the pack workers): they must be safe
// for concurrent use and return quickly.
type Progress interface {
	// Planned is called when a batch has been planned, with the number of
	// files and bytes of content it will write. Totals grow batch by batch
	// as the walk proceeds.
	Planned(files, bytes uint64)
	// Restored is called with n bytes of file content written (a hole of
	// zeros counts as written).
	Restored(n uint64)
	// FileDone is called once a file's content is complete, or given up on.
	FileDone(path string)
}

// Options tunes a restore. The zero value restores everything with
// defaults and stops at the first error.
type Options struct {
	// Include, if not empty, restores only paths matching one of these
	// patterns (snapshot.Pattern.Match), with their parent directories.
	Include []string
	// Exclude skips paths matching one of these patterns, and the contents
	// of directories they match.
	Exclude []string
	// IgnoreCase matches Include and Exclude without regard to case.
	IgnoreCase bool
	// RootPath is where the restored tree lies inside the snapshot, "/"
	// unless a subtree (SNAPSHOT:SUBPATH) is restored. Patterns are matched
	// against, and errors name, RootPath joined with a node's path.
	RootPath string
	// Workers is how many packs are read at once; default the number of
	// CPUs Go may use (GOMAXPROCS), at least 2 and at most 4: a worker
	// decrypts, decompresses, hashes and creates files, all CPU work or
	// kernel time, so more workers than CPUs only add memory. Each holds
	// one pack's requests in flight and about 4 MiB of it in memory (a
	// larger blob is read whole); the backend applies its own connection
	// limit below that.
	Workers int
	// BatchFiles caps the descriptors a batch keeps open (directories
	// waiting for their metadata, hardlinked files, files whose chunks lie
	// in several packs; a file whose chunks lie in one pack is open only
	// while that pack is read). Default: a quarter of the soft limit on
	// open files, at least 256 and at most 4096.
	BatchFiles int
	// BatchBlobs caps the chunk references planned in a batch before it is
	// flushed; default 1<<14. A planned file costs several hundred bytes
	// (its node, path and chunk list), so the cap is what bounds memory on
	// a tree of small files: restoring 100,000 files of 1-8 KiB peaked at
	// 61 MiB with 1<<14 and 136 MiB with 1<<17 (the whole tree in one
	// batch), at the same CPU time. A file with more chunks is planned
	// whole, in a batch of its own.
	BatchBlobs int
	// Verify re-reads every restored file and checks each chunk's hash.
	Verify bool
	// Error is called with the path inside the snapshot and the error for
	// everything that could not be restored; the restore goes on if it
	// returns nil and stops with its error otherwise. Calls never overlap.
	// If Error is nil, the first such error stops the restore.
	Error func(path string, err error) error
	// Progress, if not nil, receives progress reports.
	Progress Progress
}

func (o *Options) applyDefaults() {
	if o.RootPath == "" {
		o.RootPath = "/"
	}
	if o.Workers <= 0 {
		o.Workers = min(max(runtime.GOMAXPROCS(0), 2), 4)
	}
	if o.BatchFiles <= 0 {
		o.BatchFiles = defaultBatchFiles()
	}
	if o.BatchBlobs <= 0 {
		o.BatchBlobs = 1 << 14
	}
}

// Stats summarises a restore. JSON names follow restic's restore summary
// where the concept is the same.
type Stats struct {
	Files     uint64 `json:"files_restored"`     // regular files with content written
	Hardlinks uint64 `json:"hardlinks_restored"` // extra names of a file restored as links
	Dirs      uint64 `json:"dirs_restored"`
	Symlinks  uint64 `json:"symlinks_restored"`
	Special   uint64 `json:"special_restored"` // fifos and devices
	Skipped   uint64 `json:"files_skipped"`    // sockets
	Bytes     uint64 `json:"bytes_restored"`   // file content, holes included
	Packs     uint64 `json:"packs_read"`       // LoadPack calls
	Verified  uint64 `json:"files_verified"`   // files that passed Verify
	Errors    uint64 `json:"errors"`           // errors passed to Options.Error
}

// Restorer restores one tree. Create it with New.
type Restorer struct {
	repo    Repository
	root    backend.ID
	opts    Options
	include []snapshot.Pattern
	exclude []snapshot.Pattern
	// chown is true when running as root; an unprivileged restore leaves
	// owners as they fall.
	chown bool
	// euid and egid own the files the restore creates; umask is the
	// process's (umaskOK false if unknown).
	euid, egid uint32
	umask      uint32
	umaskOK    bool
}

// New returns a Restorer for the tree root. It fails only on a malformed
// include or exclude pattern.
func New(repo Repository, root backend.ID, opts Options) (*Restorer, error) {
	opts.applyDefaults()
	inc, err := snapshot.ParsePatterns(opts.Include, opts.IgnoreCase)
	if err != nil {
		return nil, fmt.Errorf("include: %w", err)
	}
	exc, err := snapshot.ParsePatterns(opts.Exclude, opts.IgnoreCase)
	if err != nil {
		return nil, fmt.Errorf("exclude: %w", err)
	}
	r := &Restorer{repo: repo, root: root, opts: opts, include: inc, exclude: exc, chown: os.Geteuid() == 0,
		euid: uint32(os.Geteuid()), egid: uint32(os.Getegid())}
	r.umask, r.umaskOK = processUmask()
	return r, nil
}

// counters are the Stats, updated from many goroutines.
type counters struct {
	files, hardlinks, dirs, symlinks, special, skipped, bytes, packs, verified, errors atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Files: c.files.Load(), Hardlinks: c.hardlinks.Load(), Dirs: c.dirs.Load(),
		Symlinks: c.symlinks.Load(), Special: c.special.Load(), Skipped: c.skipped.Load(),
		Bytes: c.bytes.Load(), Packs: c.packs.Load(), Verified: c.verified.Load(), Errors: c.errors.Load(),
	}
}

// linkKey identifies a hardlinked inode of the backed-up file system.
type linkKey struct{ dev, ino uint64 }

// linkRef is where the first restored name of a hardlinked inode lies.
type linkRef struct {
	rel  string // relative to the target
	path string // inside the snapshot
}

// restore is the state of one Restore call.
type restore struct {
	*Restorer
	ctx    context.Context
	cancel context.CancelCauseFunc
	rootFD int
	st     counters

	errMu sync.Mutex // serialises calls of opts.Error

	// Owned by the walking goroutine.
	links map[linkKey]linkRef
	b     *batch
}

// errReported marks an error that was already passed to Options.Error: the
// caller skips the item and goes on.
var errReported = errors.New("reported")

// Restore restores the tree into target, creating target if needed: the
// root tree's entries become target's entries. See the package doc for what
// happens to existing content. It returns an error only if the restore was
// stopped (by ctx, by Options.Error, or because target cannot be opened);
// errors that were reported and passed over are counted in Stats.Errors.
func (r *Restorer) Restore(ctx context.Context, target string) (Stats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rs := &restore{Restorer: r, ctx: ctx, cancel: cancel, links: map[linkKey]linkRef{}, b: newBatch()}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return Stats{}, fmt.Errorf("restore target: %w", err)
	}
	fd, err := openTarget(target)
	if err != nil {
		return Stats{}, fmt.Errorf("restore target %s: %w", target, err)
	}
	rs.rootFD = fd
	defer closeFD(fd)
	defer func() { rs.b.closeAll() }()

	gid, err := newFileGID(fd, r.egid)
	if err != nil {
		return Stats{}, fmt.Errorf("restore target %s: %w", target, err)
	}
	root := &dirCtx{path: r.opts.RootPath, fd: fd, restored: true, fileGID: gid}
	err = rs.walkTree(root, r.root)
	if err == nil {
		err = rs.flush()
	}
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return rs.st.stats(), err
}

// report passes err for path to Options.Error and counts it. It returns nil
// to go on, or the error that stops the restore (after cancelling it).
func (rs *restore) report(p string, err error) error {
	rs.errMu.Lock()
	defer rs.errMu.Unlock()
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	rs.st.errors.Add(1)
	stop := err
	if rs.opts.Error != nil {
		stop = rs.opts.Error(p, err)
	}
	if stop != nil {
		rs.cancel(stop)
		return stop
	}
	return nil
}

// skip reports err for p and returns errReported, or the error that stops
// the restore.
func (rs *restore) skip(p string, err error) error {
	if stop := rs.report(p, err); stop != nil {
		return stop
	}
	return errReported
}

// selected says whether the node at p is restored itself, and for a
// directory whether its contents may be.
func (rs *restore) selected(p string, isDir bool) (self, descend bool) {
	if snapshot.MatchAny(rs.exclude, p) {
		return false, false
	}
	if len(rs.include) == 0 || snapshot.MatchAny(rs.include, p) {
		return true, isDir
	}
	if isDir {
		for _, pat := range rs.include {
			if pat.ChildMayMatch(p) {
				return false, true
			}
		}
	}
	return false, false
}

// dirCtx is a directory of the tree being walked.
type dirCtx struct {
	parent   *dirCtx
	node     *snapshot.Node // nil for the target itself
	name     string
	path     string // inside the snapshot
	rel      string // relative to the target; "" for the target
	fd       int    // open descriptor, -1 until created
	failed   bool   // creating it failed (reported): skip its contents
	restored bool
	fileGID  uint32 // the group of a file created in it
}

// ensureDir creates d (and its parents) in the target if not done yet.
func (rs *restore) ensureDir(d *dirCtx) (int, error) {
	if d.fd >= 0 {
		return d.fd, nil
	}
	if d.failed {
		return -1, errReported
	}
	pfd, err := rs.ensureDir(d.parent)
	if err != nil {
		d.failed = true
		return -1, err
	}
	fd, err := makeDir(pfd, d.name)
	if err != nil {
		d.failed = true
		return -1, rs.skip(d.path, err)
	}
	gid, err := newFileGID(fd, rs.egid)
	if err != nil {
		closeFD(fd)
		d.failed = true
		return -1, rs.skip(d.path, err)
	}
	d.fd, d.restored, d.fileGID = fd, true, gid
	rs.st.dirs.Add(1)
	return fd, nil
}

func (d *dirCtx) closeFD() {
	if d.fd >= 0 && d.parent != nil {
		closeFD(d.fd)
		d.fd = -1
	}
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// walkTree restores the entries of tree id into d. It returns only errors
// that stop the restore.
func (rs *restore) walkTree(d *dirCtx, id backend.ID) error {
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	tree, err := snapshot.LoadTree(rs.ctx, rs.repo, id)
	if err != nil {
		if rs.ctx.Err() != nil {
			return context.Cause(rs.ctx)
		}
		return rs.report(d.path, err)
	}
	for _, n := range tree.Nodes {
		if rs.ctx.Err() != nil {
			return context.Cause(rs.ctx)
		}
		p := path.Join(d.path, n.Name)
		if err := snapshot.ValidName(n.Name); err != nil { // DecodeTree checked; belt and braces
			if err := rs.report(p, err); err != nil {
				return err
			}
			continue
		}
		self, descend := rs.selected(p, n.Type == snapshot.NodeDir)
		if !self && !descend {
			continue
		}
		if n.Type == snapshot.NodeDir {
			child := &dirCtx{parent: d, node: n, name: n.Name, path: p, rel: joinRel(d.rel, n.Name), fd: -1}
			if self {
				if _, err := rs.ensureDir(child); err != nil {
					if errors.Is(err, errReported) {
						continue
					}
					return err
				}
			}
			if err := rs.walkTree(child, *n.Subtree); err != nil {
				child.closeFD()
				return err
			}
			if err := rs.leaveDir(child); err != nil {
				return err
			}
			continue
		}
		pfd, err := rs.ensureDir(d)
		if err != nil {
			if errors.Is(err, errReported) {
				return nil // d cannot be created: none of its entries can
			}
			return err
		}
		if err := rs.restoreLeaf(d, pfd, n, p); err != nil && !errors.Is(err, errReported) {
			return err
		}
	}
	return nil
}

// leaveDir queues a restored directory for its metadata, now that all its
// contents are planned.
func (rs *restore) leaveDir(d *dirCtx) error {
	if d.fd < 0 {
		return nil
	}
	rs.b.add(&entry{kind: kindDir, node: d.node, path: d.path, dirfd: d.parent.fd, name: d.name, fd: d.fd})
	d.fd = -1 // the batch owns it now
	return rs.maybeFlush()
}

// restoreLeaf restores a non-directory node n named p into directory d,
// open as pfd.
func (rs *restore) restoreLeaf(d *dirCtx, pfd int, n *snapshot.Node, p string) error {
	e := &entry{node: n, path: p, dirfd: pfd, name: n.Name, fd: -1, dirGID: d.fileGID}
	switch n.Type {
	case snapshot.NodeFile:
		return rs.restoreFile(d, e)
	case snapshot.NodeSocket:
		rs.st.skipped.Add(1)
		return nil
	case snapshot.NodeSymlink:
		e.kind = kindSymlink
		if err := makeSymlink(pfd, n.Name, n.LinkTarget); err != nil {
			return rs.skip(p, err)
		}
		rs.st.symlinks.Add(1)
	case snapshot.NodeFifo, snapshot.NodeDev, snapshot.NodeCharDev:
		e.kind = kindSpecial
		if err := makeSpecial(pfd, n); err != nil {
			return rs.skip(p, err)
		}
		rs.st.special.Add(1)
	default:
		return rs.skip(p, fmt.Errorf("unknown node type %q", n.Type))
	}
	rs.b.add(e)
	return rs.maybeFlush()
}

// restoreFile creates a regular file and plans its content, or links it to
// the first restored name of its inode.
func (rs *restore) restoreFile(d *dirCtx, e *entry) error {
	n := e.node
	key := linkKey{n.DeviceID, n.Inode}
	hardlinked := n.Links > 1 && n.Inode != 0
	if hardlinked {
		if first, ok := rs.links[key]; ok {
			err := linkFile(rs.rootFD, first.rel, e.dirfd, e.name)
			if err == nil {
				rs.st.hardlinks.Add(1)
				return nil
			}
			// Report, then restore a copy: the content is still wanted.
			if err := rs.report(e.path, fmt.Errorf("hardlink to %s: %w", first.path, err)); err != nil {
				return err
			}
		}
	}
	if !hardlinked {
		// Created by flush or by a pack worker, in parallel with the
		// batch's other files: creating a file costs the kernel 50-200
		// µs, which the one walking goroutine would serialise over a tree
		// of small files.
		e.kind, e.create = kindFile, true
		f := &fileEntry{entry: e}
		e.file = f
		rs.b.add(e)
		if err := rs.planFile(f); err != nil {
			return err
		}
		if !f.direct && len(f.chunks) > 0 {
			rs.b.fds++ // it holds a descriptor from before the packs are read until its last chunk is written
		}
		return rs.maybeFlush()
	}
	// A hardlinked file is created now: a later name of it, perhaps in
	// this batch, is linked to it during the walk.
	fd, err := createFile(e.dirfd, e.name, rs.createPerm(e))
	if err != nil {
		return rs.skip(e.path, err)
	}
	e.kind, e.fd = kindFile, fd
	f := &fileEntry{entry: e}
	e.file = f
	rs.b.add(e) // owns fd from here on
	if err := rs.planFile(f); err != nil {
		return err
	}
	if err := truncateFD(fd, f.size); err != nil {
		if err := rs.report(e.path, err); err != nil {
			return err
		}
	}
	rs.st.files.Add(1)
	if hardlinked {
		if _, ok := rs.links[key]; !ok {
			rs.links[key] = linkRef{rel: joinRel(d.rel, e.name), path: e.path}
		}
	}
	return rs.maybeFlush()
}

func (rs *restore) maybeFlush() error {
	if rs.b.fds >= rs.opts.BatchFiles || rs.b.refs >= rs.opts.BatchBlobs {
		return rs.flush()
	}
	return nil
}
