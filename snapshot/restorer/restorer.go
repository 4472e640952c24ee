package restorer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// Repository is what the restorer needs of a repository; *repo.Repository
// implements it. Its methods must be safe for concurrent use.
type Repository interface {
	// BlobSource loads blobs (checked against their IDs) and says which
	// pack holds each.
	snapshot.BlobSource
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
	// ErrNoSpace: the target's file system is full (ENOSPC) or the
	// user's disk quota is used up (EDQUOT). It is never passed to
	// Options.Error: the first one stops the restore, with an error
	// (a *NoSpaceError) wrapping it.
	ErrNoSpace = errors.New("no space left in the restore target")
	// ErrChangedInTarget: a node the restore made was replaced by
	// something else (a symlink, another file) before its metadata was
	// set, or a directory it made is no longer where it was; nothing is
	// set through that name. Only another process writing in the target
	// during the restore does that (or a case-insensitive file system
	// giving two names of one folder the same place).
	ErrChangedInTarget = errors.New("changed under the restore, left as it is")
)

// NoSpaceError stops a restore at the first write, or creation of a file,
// folder or link, that fails for lack of space (ErrNoSpace). Path is the
// node (inside the snapshot) being written; Errno is ENOSPC or EDQUOT.
type NoSpaceError struct {
	Path  string
	Errno unix.Errno
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("%v (writing %s)", e.Errno, e.Path)
}

// Unwrap makes errors.Is find both ErrNoSpace and the errno.
func (e *NoSpaceError) Unwrap() []error { return []error{ErrNoSpace, e.Errno} }

// noSpace returns the NoSpaceError err is, for p, or nil.
func noSpace(p string, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) && (errno == unix.ENOSPC || errno == unix.EDQUOT) {
		return &NoSpaceError{Path: p, Errno: errno}
	}
	return nil
}

// Progress receives progress reports. Its methods are called from many
// goroutines at once (the walker and the pack workers): they must be safe
// for concurrent use and return quickly.
type Progress interface {
	// Totals is called once, before any content is written, with the
	// number of files and bytes of content the restore will write: a
	// first walk over the selected trees counts them (hardlinks once),
	// so that progress can be shown against the whole snapshot although
	// the restore itself is planned batch by batch.
	Totals(files, bytes uint64)
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
	// IInclude and IExclude are more patterns like Include and Exclude,
	// matched without regard to case whatever IgnoreCase says.
	IInclude, IExclude []string
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
	// waiting for their metadata or named by its entries, symlinks, fifos
	// and devices, hardlinked files, files whose chunks lie in several
	// packs; a file whose chunks lie in one pack is open only while that
	// pack is read). The walk holds at most 32 directories' besides,
	// however deep the tree. Default: a quarter of the soft limit on open
	// files, at least 256 and at most 4096.
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
	// Overwrite says what to do where the target already holds something
	// at the place of a node that is not a directory; the zero value is
	// OverwriteAlways.
	Overwrite Overwrite
	// Delete removes, from each directory of the target that the restore
	// walks into (the target itself included) and that existed before,
	// the entries the snapshot's directory does not have, with all they
	// hold, if Include and Exclude select them (so only within restored
	// folders). It also lets a directory in the target be replaced by a
	// node of the snapshot that is not one (Overwrite permitting).
	Delete bool
	// DryRun writes nothing: the target is only looked at (existing
	// files read to compare them, as a real restore would) and Report
	// and Stats say what a restore would do.
	DryRun bool
	// Report, if not nil, is told what is done (or would be) with each
	// node restored, kept or left, and each entry deleted, on the walking
	// goroutine in walk order (a directory after its contents): the
	// path inside the snapshot, and a file's size.
	Report func(a Action, path string, size uint64)
	// Error is called with the path inside the snapshot and the error for
	// everything that could not be restored; the restore goes on if it
	// returns nil and stops with its error otherwise. Calls never overlap.
	// If Error is nil, the first such error stops the restore.
	Error func(path string, err error) error
	// Progress, if not nil, receives progress reports.
	Progress Progress
	// TestOnlyBetween is a seam for tests, which use it to swap a node
	// for a symlink in the middle of a restore; nothing else may set it.
	// If not nil it is called for every node the restore makes, with the
	// node's path inside the snapshot: once right after the call that
	// made it (made true; not for an existing directory reused, nor for
	// a hardlink) and once right before its metadata is set (made
	// false). It is called from many goroutines at once.
	TestOnlyBetween func(path string, made bool)
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
	Files     uint64 `json:"files_restored"`     // regular files whose content was written whole
	Hardlinks uint64 `json:"hardlinks_restored"` // extra names of a file restored as links
	Dirs      uint64 `json:"dirs_restored"`
	Symlinks  uint64 `json:"symlinks_restored"`
	Special   uint64 `json:"special_restored"` // fifos and devices
	Skipped   uint64 `json:"files_skipped"`    // sockets, and nodes left as they were by Overwrite
	Updated   uint64 `json:"files_updated"`    // of Files, those that replaced a file in the target
	Unchanged uint64 `json:"files_unchanged"`  // files in the target that had the content already: metadata set
	Deleted   uint64 `json:"files_deleted"`    // entries removed by Delete (a directory with its contents counts once)
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
	inc, err := parsePatterns(opts.Include, opts.IInclude, opts.IgnoreCase)
	if err != nil {
		return nil, fmt.Errorf("include: %w", err)
	}
	exc, err := parsePatterns(opts.Exclude, opts.IExclude, opts.IgnoreCase)
	if err != nil {
		return nil, fmt.Errorf("exclude: %w", err)
	}
	r := &Restorer{repo: repo, root: root, opts: opts, include: inc, exclude: exc, chown: os.Geteuid() == 0,
		euid: uint32(os.Geteuid()), egid: uint32(os.Getegid())}
	r.umask, r.umaskOK = processUmask()
	return r, nil
}

// parsePatterns parses list (without regard to case if fold) and ilist
// (without regard to case).
func parsePatterns(list, ilist []string, fold bool) ([]snapshot.Pattern, error) {
	pats, err := snapshot.ParsePatterns(list, fold)
	if err != nil {
		return nil, err
	}
	ipats, err := snapshot.ParsePatterns(ilist, true)
	if err != nil {
		return nil, err
	}
	return append(pats, ipats...), nil
}

// counters are the Stats, updated from many goroutines.
type counters struct {
	files, hardlinks, dirs, symlinks, special, skipped, bytes, packs, verified, errors atomic.Uint64
	updated, unchanged, deleted                                                        atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Files: c.files.Load(), Hardlinks: c.hardlinks.Load(), Dirs: c.dirs.Load(),
		Symlinks: c.symlinks.Load(), Special: c.special.Load(), Skipped: c.skipped.Load(),
		Bytes: c.bytes.Load(), Packs: c.packs.Load(), Verified: c.verified.Load(), Errors: c.errors.Load(),
		Updated: c.updated.Load(), Unchanged: c.unchanged.Load(), Deleted: c.deleted.Load(),
	}
}

// linkKey identifies a hardlinked inode of the backed-up file system.
type linkKey struct{ dev, ino uint64 }

// linkRef is where the first restored name of a hardlinked inode lies.
type linkRef struct {
	dir  *pathElem
	name string
	id   nodeID // the file the restore created there
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
	// open are the directories on the walk's path whose descriptors the
	// walker holds, shallowest first; at most maxOpenDirs (see dirCtx).
	open []*dirCtx
	// cmpBuf reads files in the target to compare them (Overwrite).
	cmpBuf []byte
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
	rs := &restore{Restorer: r, ctx: ctx, cancel: cancel, links: map[linkKey]linkRef{}, b: newBatch(), rootFD: -1}
	if r.opts.Delete && len(r.include)+len(r.exclude) == 0 && isFSRoot(target) {
		return Stats{}, ErrDeleteRoot
	}
	root, err := rs.openRoot(target)
	if err != nil {
		return Stats{}, err
	}
	if root.fd >= 0 {
		defer closeFD(root.fd)
	}
	defer func() { rs.closeBatch(rs.b) }()
	if p := r.opts.Progress; p != nil {
		var t totals
		if err := rs.count(root.elem, r.root, &t); err != nil {
			return Stats{}, err
		}
		p.Totals(t.files, t.bytes)
	}
	err = rs.walkTree(root, r.root)
	if err == nil {
		err = rs.flush()
	}
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return rs.st.stats(), err
}

// openRoot opens (and makes, unless in a dry run) the target: the root of
// the walk. In a dry run a target that does not exist is virtual: all
// would be made.
func (rs *restore) openRoot(target string) (*dirCtx, error) {
	root := &dirCtx{elem: &pathElem{name: rs.opts.RootPath}, fd: -1, created: true}
	_, err := os.Stat(target)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("restore target %s: %w", target, err)
	}
	if rs.opts.DryRun && !exists {
		root.virtual = true
		return root, nil
	}
	if !rs.opts.DryRun {
		if err := os.MkdirAll(target, 0o700); err != nil {
			return nil, fmt.Errorf("restore target: %w", err)
		}
	}
	fd, err := openTarget(target)
	if err != nil {
		return nil, fmt.Errorf("restore target %s: %w", target, err)
	}
	gid, err := newFileGID(fd, rs.egid)
	if err != nil {
		closeFD(fd)
		return nil, fmt.Errorf("restore target %s: %w", target, err)
	}
	root.fd, root.fresh, root.fileGID = fd, !exists, gid
	rs.rootFD = fd
	return root, nil
}

// report passes err for path to Options.Error and counts it. It returns nil
// to go on, or the error that stops the restore (after cancelling it).
func (rs *restore) report(p string, err error) error {
	rs.errMu.Lock()
	defer rs.errMu.Unlock()
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	if stop := noSpace(p, err); stop != nil {
		// Going on would only fail again for every file left, and
		// leave thousands of them half written.
		rs.cancel(stop)
		return stop
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

// pathElem is a directory's place in the snapshot: its name and the
// directory holding it. Everything below a directory shares its
// pathElem, so the paths of a tree cost one name per level however deep
// it is; a path string is made only to be reported or matched.
type pathElem struct {
	parent *pathElem // nil for the restore's root
	name   string    // for the root: Options.RootPath
}

// rel returns the path of name in p relative to the restore's root (p's
// own if name is "").
func (p *pathElem) rel(name string) string {
	size := len(name)
	for q := p; q.parent != nil; q = q.parent {
		if size > 0 {
			size++
		}
		size += len(q.name)
	}
	b := make([]byte, size)
	i := size
	add := func(s string) {
		if i < size {
			i--
			b[i] = '/'
		}
		i -= len(s)
		copy(b[i:], s)
	}
	if name != "" {
		add(name)
	}
	for q := p; q.parent != nil; q = q.parent {
		add(q.name)
	}
	return string(b)
}

// path returns the path of name in p inside the snapshot (p's own if
// name is "").
func (p *pathElem) path(name string) string {
	root := p
	for root.parent != nil {
		root = root.parent
	}
	return path.Join(root.name, p.rel(name))
}

// elems returns the names from the restore's root down to p.
func (p *pathElem) elems() []string {
	var out []string
	for q := p; q.parent != nil; q = q.parent {
		out = append(out, q.name)
	}
	slices.Reverse(out)
	return out
}

// maxOpenDirs bounds the directory descriptors the walker holds: the
// deepest directories of its path. A directory whose descriptor was
// closed is opened again through ".." of its child on the way back up (or
// by name from the nearest open one, if that child is gone), and must be
// the directory the restore made (nodeID). So a tree of any depth needs
// at most this many descriptors, plus those of the batch, and typical
// trees, less deep than this, never re-open one.
const maxOpenDirs = 32

// dirCtx is a directory of the tree being walked.
type dirCtx struct {
	parent *dirCtx
	elem   *pathElem
	node   *snapshot.Node // nil for the target itself
	// fd is its open descriptor, or -1: not made yet, or closed to keep
	// the walker's descriptors at maxOpenDirs.
	fd      int
	id      nodeID // the directory made (or reused), once created
	created bool   // made or reused in the target (its metadata is set)
	// fresh says the restore made it (mkdir): it held nothing else, so
	// its entries need no look at what is there. virtual marks one that
	// a dry run would make: it does not exist.
	fresh, virtual bool
	failed         bool   // making or re-opening it failed (reported), or it is left (Overwrite): skip its contents
	fileGID        uint32 // the group of a file created in it
	// usedBy is the batch whose entries name fd as their directory: fd
	// must stay open until that batch is flushed.
	usedBy *batch
}

// path returns d's path inside the snapshot.
func (d *dirCtx) path() string { return d.elem.path("") }

// between returns the TestOnlyBetween call for a node made at path
// (built only if the seam is set), or nil.
func (rs *restore) between(dir *pathElem, name string, made bool) func() {
	hook := rs.opts.TestOnlyBetween
	if hook == nil {
		return nil
	}
	return func() { hook(dir.path(name), made) }
}

// ensureDir creates d (and its parents) in the target if not done yet,
// or opens it again, and returns its descriptor.
func (rs *restore) ensureDir(d *dirCtx) (int, error) {
	if d.fd >= 0 {
		return d.fd, nil
	}
	if d.failed {
		return -1, errReported
	}
	if d.virtual {
		return -1, nil
	}
	if d.created {
		return rs.reopen(d)
	}
	pfd, err := rs.ensureDir(d.parent)
	if err != nil {
		d.failed = true
		return -1, err
	}
	if d.parent.virtual {
		d.virtual = true
		rs.st.dirs.Add(1)
		return -1, nil
	}
	if !d.parent.fresh {
		if err := rs.dirInTheWay(d, pfd); err != nil {
			d.failed = true
			return -1, err
		}
	}
	if rs.opts.DryRun {
		return rs.probeDir(d, pfd)
	}
	fd, made, err := makeDir(pfd, d.elem.name, rs.between(d.parent.elem, d.elem.name, true))
	if err != nil {
		d.failed = true
		return -1, rs.skip(d.path(), err)
	}
	if err := rs.adopt(d, fd); err != nil {
		return -1, err
	}
	d.fresh = made
	return fd, nil
}

// adopt makes fd, a directory made or found in the target, d's: the
// walker holds it and d's metadata will be set.
func (rs *restore) adopt(d *dirCtx, fd int) error {
	st, err := fdStat(fd)
	if err != nil {
		closeFD(fd)
		d.failed = true
		return rs.skip(d.path(), err)
	}
	d.fd, d.id, d.created = fd, idOf(&st), true
	d.fileGID = rs.egid
	if st.Mode&unix.S_ISGID != 0 {
		d.fileGID = st.Gid
	}
	rs.st.dirs.Add(1) // made or reused: its metadata is set
	rs.hold(d)
	return nil
}

// reopen opens a directory made earlier whose descriptor was closed, by
// name from its parent (opened again first if need be), checking that it
// is the directory made. A failure is reported and d skipped.
func (rs *restore) reopen(d *dirCtx) (int, error) {
	if d.fd >= 0 {
		return d.fd, nil
	}
	if d.failed {
		return -1, errReported
	}
	pfd, err := rs.reopen(d.parent)
	if err != nil {
		d.failed = true
		return -1, err
	}
	fd, err := reopenDir(pfd, d.elem.name, d.id)
	if err != nil {
		d.failed = true
		return -1, rs.skip(d.path(), err)
	}
	d.fd = fd
	rs.hold(d)
	return fd, nil
}

// hold makes d's descriptor one of the walker's, the deepest, and
// releases the shallowest when more than maxOpenDirs are held.
func (rs *restore) hold(d *dirCtx) {
	rs.open = append(rs.open, d)
	if len(rs.open) > maxOpenDirs {
		rs.release(rs.open[0])
	}
}

// release closes d's descriptor, or hands it to the current batch if
// entries of that batch name it as their directory.
func (rs *restore) release(d *dirCtx) {
	if i := slices.Index(rs.open, d); i >= 0 {
		rs.open = slices.Delete(rs.open, i, i+1)
	}
	if d.fd < 0 || d.parent == nil {
		return
	}
	if d.usedBy == rs.b {
		rs.b.keep(d.fd)
	} else {
		closeFD(d.fd)
	}
	d.fd, d.usedBy = -1, nil
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
		return rs.report(d.path(), err)
	}
	if rs.opts.Delete {
		fd, err := rs.existingDir(d)
		if err == nil && fd >= 0 {
			err = rs.deleteExtra(d, fd, tree)
		}
		if err != nil && !errors.Is(err, errReported) {
			return err
		}
	}
	filtering := len(rs.include)+len(rs.exclude) > 0
	for _, n := range tree.Nodes {
		if rs.ctx.Err() != nil {
			return context.Cause(rs.ctx)
		}
		if err := snapshot.ValidName(n.Name); err != nil { // DecodeTree checked; belt and braces
			if err := rs.report(d.elem.path(n.Name), err); err != nil {
				return err
			}
			continue
		}
		self, descend := true, n.Type == snapshot.NodeDir
		if filtering {
			self, descend = rs.selected(d.elem.path(n.Name), n.Type == snapshot.NodeDir)
		}
		if !self && !descend {
			continue
		}
		if n.Type == snapshot.NodeDir {
			child := &dirCtx{parent: d, elem: &pathElem{parent: d.elem, name: n.Name}, node: n, fd: -1}
			if self {
				if _, err := rs.ensureDir(child); err != nil {
					if errors.Is(err, errReported) {
						continue
					}
					return err
				}
			}
			if err := rs.walkTree(child, *n.Subtree); err != nil {
				rs.release(child)
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
		if err := rs.restoreLeaf(d, pfd, n); err != nil && !errors.Is(err, errReported) {
			return err
		}
	}
	return nil
}

// leaveDir queues a directory made in the target for its metadata, now
// that all its contents are planned, and opens its parent again if the
// parent's descriptor was released meanwhile: through ".." of d, or, if
// d was moved elsewhere meanwhile, by name from above.
func (rs *restore) leaveDir(d *dirCtx) error {
	if (d.created || d.virtual) && !d.failed {
		rs.reportAction(ActionRestored, d.path(), 0)
	}
	if rs.opts.DryRun || !d.created || d.failed {
		rs.release(d)
		return nil
	}
	if _, err := rs.reopen(d); err != nil {
		if errors.Is(err, errReported) {
			return nil
		}
		return err
	}
	// d leaves the walk (the batch takes its descriptor below): out of
	// the walker's, so that opening p cannot release it.
	if i := slices.Index(rs.open, d); i >= 0 {
		rs.open = slices.Delete(rs.open, i, i+1)
	}
	p := d.parent
	if p.fd < 0 && !p.failed {
		if fd, err := reopenDir(d.fd, "..", p.id); err == nil {
			p.fd = fd
		} else if _, err := rs.reopen(p); err != nil && !errors.Is(err, errReported) {
			closeFD(d.fd)
			d.fd = -1
			return err
		}
	}
	if p.fd >= 0 && p.parent != nil && !slices.Contains(rs.open, p) {
		rs.hold(p)
	}
	// With its parent lost (reported), d's metadata is still set,
	// through its own descriptor; there is no name to check it against.
	rs.b.add(&entry{kind: kindDir, node: d.node, dir: p.elem, name: d.elem.name, dirfd: p.fd, fd: d.fd})
	p.usedBy = rs.b
	d.fd = -1 // the batch owns it now
	return rs.maybeFlush()
}

// restoreLeaf restores a non-directory node n into directory d, open as
// pfd.
func (rs *restore) restoreLeaf(d *dirCtx, pfd int, n *snapshot.Node) error {
	if n.Type == snapshot.NodeSocket {
		rs.st.skipped.Add(1) // a socket cannot be made, only bound by its program
		return nil
	}
	e := &entry{node: n, dir: d.elem, dirfd: pfd, name: n.Name, fd: -1, dirGID: d.fileGID}
	v, fd, err := rs.existing(d, pfd, n)
	if err != nil {
		return rs.skip(e.path(), err)
	}
	switch {
	case v == verdictSkip:
		rs.st.skipped.Add(1)
		rs.reportAction(ActionSkipped, e.path(), fileSizeOf(n))
		return nil
	case v == verdictKeep:
		return rs.keepFile(d, e, fd)
	case rs.opts.DryRun:
		rs.dryLeaf(n, e.path(), v == verdictReplace)
		return nil
	}
	e.replacing = v == verdictReplace
	switch n.Type {
	case snapshot.NodeFile:
		return rs.restoreFile(d, e)
	case snapshot.NodeSymlink:
		e.kind = kindSymlink
		fd, err := makeSymlink(pfd, n.Name, n.LinkTarget, rs.between(d.elem, n.Name, true))
		if err != nil {
			return rs.skip(e.path(), err)
		}
		e.fd = fd
		rs.st.symlinks.Add(1)
		rs.reportAction(ActionRestored, e.path(), 0)
	case snapshot.NodeFifo, snapshot.NodeDev, snapshot.NodeCharDev:
		e.kind = kindSpecial
		fd, err := makeSpecial(pfd, n, rs.between(d.elem, n.Name, true))
		if err != nil {
			return rs.skip(e.path(), err)
		}
		e.fd = fd
		rs.st.special.Add(1)
		rs.reportAction(ActionRestored, e.path(), 0)
	default:
		return rs.skip(e.path(), fmt.Errorf("unknown node type %q", n.Type))
	}
	rs.b.add(e) // owns e.fd from here on
	d.usedBy = rs.b
	return rs.maybeFlush()
}

// restoreFile creates a regular file and plans its content, or links it to
// the first restored name of its inode.
func (rs *restore) restoreFile(d *dirCtx, e *entry) error {
	n := e.node
	key := linkKey{n.DeviceID, n.Inode}
	linked := hardlinked(n)
	if linked {
		if first, ok := rs.links[key]; ok {
			err := linkFile(rs.rootFD, first.dir.elems(), first.name, first.id, e.dirfd, e.name)
			if err == nil {
				rs.st.hardlinks.Add(1)
				rs.reportAction(ActionRestored, e.path(), 0)
				return nil
			}
			// Report, then restore a copy: the content is still wanted.
			if err := rs.report(e.path(), fmt.Errorf("hardlink to %s: %w", first.dir.path(first.name), err)); err != nil {
				return err
			}
		}
	}
	action := ActionRestored
	if e.replacing {
		action = ActionUpdated
	}
	rs.reportAction(action, e.path(), n.Size)
	if !linked {
		// Created by flush or by a pack worker, in parallel with the
		// batch's other files: creating a file costs the kernel 50-200
		// µs, which the one walking goroutine would serialise over a tree
		// of small files.
		e.kind, e.create = kindFile, true
		f := &fileEntry{entry: e}
		e.file = f
		rs.b.add(e)
		d.usedBy = rs.b
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
		return rs.skip(e.path(), err)
	}
	rs.madeFile(e)
	e.kind, e.fd = kindFile, fd
	f := &fileEntry{entry: e}
	e.file = f
	rs.b.add(e) // owns fd from here on
	d.usedBy = rs.b
	if err := rs.planFile(f); err != nil {
		return err
	}
	if err := truncateFD(fd, f.size); err != nil {
		if err := rs.report(e.path(), err); err != nil {
			return err
		}
	}
	if _, ok := rs.links[key]; !ok {
		if st, err := fdStat(fd); err == nil {
			rs.links[key] = linkRef{dir: d.elem, name: e.name, id: idOf(&st)}
		}
	}
	return rs.maybeFlush()
}

// madeFile runs the TestOnlyBetween seam for a file just created.
func (rs *restore) madeFile(e *entry) {
	if hook := rs.opts.TestOnlyBetween; hook != nil {
		hook(e.path(), true)
	}
}

func (rs *restore) maybeFlush() error {
	if rs.b.fds >= rs.opts.BatchFiles || rs.b.refs >= rs.opts.BatchBlobs {
		return rs.flush()
	}
	return nil
}

// totals are what Progress.Totals reports.
type totals struct {
	files, bytes uint64
	// links holds the hardlinked inodes counted, whose later names are
	// restored as links, with no content of their own.
	links map[linkKey]bool
}

// count adds to t the files and bytes of content the restore of tree id
// at elem will write, with the selection walkTree applies. It loads each
// tree once more than the restore itself does (the repository caches
// them), holds one tree per level of the walk, and leaves every error to
// the restore's walk to report; it returns only ctx's.
func (rs *restore) count(elem *pathElem, id backend.ID, t *totals) error {
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	tree, err := snapshot.LoadTree(rs.ctx, rs.repo, id)
	if err != nil {
		return nil
	}
	filtering := len(rs.include)+len(rs.exclude) > 0
	for _, n := range tree.Nodes {
		self, descend := true, n.Type == snapshot.NodeDir
		if filtering {
			self, descend = rs.selected(elem.path(n.Name), n.Type == snapshot.NodeDir)
		}
		switch {
		case n.Type == snapshot.NodeDir && descend && n.Subtree != nil:
			if err := rs.count(&pathElem{parent: elem, name: n.Name}, *n.Subtree, t); err != nil {
				return err
			}
		case n.Type == snapshot.NodeFile && self:
			if n.Links > 1 && n.Inode != 0 {
				key := linkKey{n.DeviceID, n.Inode}
				if t.links[key] {
					continue
				}
				if t.links == nil {
					t.links = map[linkKey]bool{}
				}
				t.links[key] = true
			}
			t.files++
			t.bytes += n.Size
		}
	}
	return nil
}
