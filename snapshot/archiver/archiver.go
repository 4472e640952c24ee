package archiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restic/chunker"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// Repository is what the archiver needs from a repository; *repo.Repository
// implements it.
type Repository interface {
	// ChunkerPolynomial returns the repository's secret chunker polynomial.
	ChunkerPolynomial() chunker.Pol
	// SaveBlob stores data (plaintext) under id, which must be
	// SHA-256(data), unless the blob already exists; known reports that.
	// It may block for back-pressure. It copies data or finishes with it
	// before returning, so the caller may reuse the buffer afterwards. It
	// must be safe for concurrent use.
	SaveBlob(ctx context.Context, t pack.BlobType, id backend.ID, data []byte) (known bool, err error)
	// LoadBlob returns the plaintext of a blob, using buf if it is large
	// enough. The archiver loads only tree blobs of the parent snapshot.
	LoadBlob(ctx context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error)
	// Has reports whether the repository holds the blob.
	Has(t pack.BlobType, id backend.ID) bool
}

// ErrNoTargets is returned by Snapshot when none of the given paths could
// be read or all of them were excluded.
var ErrNoTargets = errors.New("no backup target could be read")

// Status says how an item compares with the same path in the parent
// snapshot.
type Status int

// The item statuses.
const (
	StatusNew        Status = iota // not in the parent snapshot
	StatusChanged                  // in the parent snapshot, different now
	StatusUnmodified               // same as in the parent snapshot
)

// String names the status as restic's JSON output does.
func (s Status) String() string {
	switch s {
	case StatusNew:
		return "new"
	case StatusChanged:
		return "changed"
	case StatusUnmodified:
		return "unchanged"
	}
	return "invalid"
}

// Progress receives reports while Snapshot runs. Its methods are called
// from many goroutines at once (the walker, the file readers, the blob and
// tree savers), so an implementation must be safe for concurrent use, and
// it must return quickly: a slow Progress slows the backup.
type Progress interface {
	// StartFile is called when a reader starts reading a file's content;
	// unchanged files that are not read are not started.
	StartFile(path string)
	// BytesRead is called as file content is read, with the number of
	// bytes just read (for a throughput display).
	BytesRead(path string, n uint64)
	// CompleteItem is called once for every item recorded in the
	// snapshot (files, directories, symlinks, devices, ...) when its node
	// is final. node must not be modified or kept after the call.
	CompleteItem(path string, node *snapshot.Node, status Status)
	// Error is called for an item that could not be read, before
	// Options.Error decides whether to skip it.
	Error(path string, err error)
	// Warn is called for a problem that did not stop the item from being
	// recorded: an unreadable extended attribute, a parent tree that could
	// not be loaded, a file that changed size while it was read.
	Warn(path string, err error)
}

// Options configure an Archiver. The zero value is a valid configuration:
// no parent, no exclusions, errors abort the backup.
type Options struct {
	// Parent is the root tree ID of the parent snapshot; the zero ID means
	// none. A file whose type, size, mtime, ctime and inode equal its node
	// in the parent is recorded with the parent's content, unread.
	Parent backend.ID
	// Force reads every file even when it is unchanged since the parent.
	Force bool
	// IgnoreCtime leaves the ctime out of the comparison with the parent
	// that decides whether a file is read again; IgnoreInode leaves out
	// the inode and the ctime (restic's --ignore-inode implies
	// --ignore-ctime: file systems that renumber inodes, FUSE ones, also
	// report ctimes that move).
	IgnoreCtime, IgnoreInode bool
	// DryRun reads and chunks everything but saves nothing; the summary
	// reports what would have been added.
	DryRun bool

	// Excludes are patterns (see the package documentation) of paths to
	// leave out; IExcludes are matched case-insensitively.
	Excludes, IExcludes []string
	// ExcludeCaches leaves out the content of directories that hold a
	// CACHEDIR.TAG file with the standard signature (the tag file itself is
	// kept).
	ExcludeCaches bool
	// ExcludeIfPresent leaves out the content of directories that hold a
	// file of this name; "NAME:HEADER" also requires the file to start with
	// HEADER. The tag file itself is kept.
	ExcludeIfPresent []string
	// ExcludeLargerThan leaves out regular files larger than this many
	// bytes; 0 means no limit.
	ExcludeLargerThan int64
	// OneFileSystem does not descend into directories on another file
	// system than the backup targets; such mount points are recorded as
	// empty directories.
	OneFileSystem bool
	// WithAtime records each item's access time. Without it the access
	// time recorded is the modification time, as restic does: reading a
	// file or listing a folder (another program's, since the archiver
	// itself reads with O_NOATIME where it may) then does not make the
	// item differ from the parent snapshot, so its tree is not stored
	// again.
	WithAtime bool

	// Error is called when an item cannot be read (it vanished, a read
	// failed, its name cannot be stored). Returning nil skips the item and
	// carries on: the item is left out of the snapshot and counted in
	// the summary's ErrorCount. Returning an error aborts the backup with
	// it. Calls are serialised: Error is never called concurrently with
	// itself. If nil, every such error aborts the backup.
	Error func(path string, err error) error
	// Progress receives progress reports; nil means none.
	Progress Progress
	// Now is the clock, used for the summary's BackupStart and BackupEnd;
	// nil means time.Now.
	Now func() time.Time

	// ReadConcurrency is the number of files read at once; 0 means
	// GOMAXPROCS clamped to [2, 8]. A reader runs the chunker over a large
	// file, which costs about a core, and waits on the disk for small
	// files; at least two keep a large file from stalling the small ones,
	// and more than eight mostly adds seeks. Use 1 or 2 on spinning disks.
	ReadConcurrency int
	// SaveConcurrency is the number of workers hashing chunks and calling
	// SaveBlob, and also the number of workers assembling trees; 0 means
	// GOMAXPROCS. Hashing is CPU-bound (SHA-256, about 1.7 GB/s a core with
	// SHA-NI) and SaveBlob does its compression and sealing on the
	// repository's own bounded workers, so more savers than cores only
	// queue there.
	SaveConcurrency int
}

// Archiver backs up file system paths into a repository. It may be used for
// several Snapshots, also concurrently.
type Archiver struct {
	repo Repository
	opts Options
	sel  *selector

	// open opens files and directories; a test seam for read errors.
	open func(name string, flag int) (fsFile, error)

	names *nameCache
}

// New returns an Archiver saving into repo. It checks opts: a malformed
// exclude pattern or a negative size is an error.
func New(repo Repository, opts Options) (*Archiver, error) {
	if repo == nil {
		return nil, errors.New("archiver: nil repository")
	}
	if opts.ExcludeLargerThan < 0 {
		return nil, fmt.Errorf("archiver: negative size limit %d", opts.ExcludeLargerThan)
	}
	if opts.ReadConcurrency < 0 || opts.SaveConcurrency < 0 {
		return nil, errors.New("archiver: negative concurrency")
	}
	sel, err := newSelector(opts)
	if err != nil {
		return nil, err
	}
	opts.applyDefaults()
	return &Archiver{
		repo: repo,
		opts: opts,
		sel:  sel,
		open: func(name string, flag int) (fsFile, error) {
			f, err := os.OpenFile(name, flag, 0)
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return f, nil
		},
		names: newNameCache(),
	}, nil
}

// applyDefaults fills in the zero fields; the reasons for the numbers are
// on the Options fields.
func (o *Options) applyDefaults() {
	procs := runtime.GOMAXPROCS(0)
	if o.ReadConcurrency == 0 {
		o.ReadConcurrency = min(max(procs, 2), 8)
	}
	if o.SaveConcurrency == 0 {
		o.SaveConcurrency = procs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	if o.Error == nil {
		o.Error = func(_ string, err error) error { return err }
	}
}

type nopProgress struct{}

func (nopProgress) StartFile(string)                            {}
func (nopProgress) BytesRead(string, uint64)                    {}
func (nopProgress) CompleteItem(string, *snapshot.Node, Status) {}
func (nopProgress) Error(string, error)                         {}
func (nopProgress) Warn(string, error)                          {}

// Snapshot backs up paths (absolute or relative to the working directory)
// and returns the ID of the root tree, which mirrors the absolute paths
// from "/". A path inside another given path is backed up once.
//
// Items that cannot be read go to Options.Error; any other error (the
// repository failing, ctx being cancelled) aborts the backup, stops every
// worker and is returned, and nothing written so far is referenced.
//
// The summary is snapshot.Summary without DataAddedPacked, which only
// Backup, knowing what the repository uploaded, fills in.
func (a *Archiver) Snapshot(ctx context.Context, paths []string) (root backend.ID, sum snapshot.Summary, err error) {
	sum.BackupStart = a.opts.Now()
	top, err := buildTargets(paths)
	if err != nil {
		return backend.ID{}, sum, err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	r := a.newRun(cancel)
	if err := r.statTargets(top); err != nil {
		return backend.ID{}, r.summary(sum), err
	}

	var readers, savers, trees sync.WaitGroup
	for range a.opts.ReadConcurrency {
		readers.Go(func() { r.fileReader(ctx) })
	}
	for range a.opts.SaveConcurrency {
		savers.Go(func() { r.blobSaver(ctx) })
		trees.Go(func() { r.treeSaver(ctx) })
	}

	rootFut, walkErr := r.walkRoot(ctx, top)
	if walkErr != nil {
		cancel(walkErr)
	}
	// The walker is the only sender on fileCh and treeCh, the readers the
	// only senders on blobCh: close each after its senders are done.
	close(r.fileCh)
	close(r.treeCh)
	readers.Wait()
	close(r.blobCh)
	savers.Wait()
	trees.Wait()

	if err := context.Cause(ctx); err != nil {
		return backend.ID{}, r.summary(sum), err
	}
	if rootFut == nil {
		// "/" itself was the target and could not be listed.
		return backend.ID{}, r.summary(sum), ErrNoTargets
	}
	node := rootFut.node
	if node == nil || node.Subtree == nil {
		panic("archiver: internal error: root tree finished without an ID")
	}
	sum = r.summary(sum)
	sum.BackupEnd = a.opts.Now()
	return *node.Subtree, sum, nil
}

// run is the state of one Snapshot call.
type run struct {
	a        *Archiver
	repo     Repository // a.repo, or a discarding wrapper for a dry run
	cancel   context.CancelCauseFunc
	progress Progress
	pol      chunker.Pol
	devices  map[uint64]bool // for OneFileSystem: the targets' devices

	fileCh chan *fileJob
	blobCh chan *blobJob
	treeCh chan *treeJob
	bufs   *bufferPool

	errMu sync.Mutex // serialises calls of a.opts.Error

	stats stats
}

// stats are the summary's counters, updated from many goroutines.
type stats struct {
	files, dirs            statusCounts
	dataBlobs, treeBlobs   atomic.Uint64
	dataAdded              atomic.Uint64
	totalFiles, totalBytes atomic.Uint64
	errors                 atomic.Uint64
}

// statusCounts counts completed files, or folders, by Status.
type statusCounts struct {
	new, changed, unmodified atomic.Uint64
}

func (c *statusCounts) add(st Status) {
	switch st {
	case StatusNew:
		c.new.Add(1)
	case StatusChanged:
		c.changed.Add(1)
	case StatusUnmodified:
		c.unmodified.Add(1)
	}
}

// fileQueue is how many files the walker may queue ahead of the readers.
// A queued file holds only its metadata, so the queue is cheap; it lets the
// walker keep listing while the readers are busy with a large file.
const fileQueue = 64

func (a *Archiver) newRun(cancel context.CancelCauseFunc) *run {
	repo := a.repo
	if a.opts.DryRun {
		repo = newDryRunRepo(repo)
	}
	savers := a.opts.SaveConcurrency
	// Chunk buffers in flight: one per saver and one more, which a
	// reader fills while the savers are busy. blobCh is unbuffered and
	// the readers take a token from the pool for each buffer: they cut
	// chunks several times faster than the savers hash and compress
	// them, so one filled chunk waiting is queue enough, and each more
	// held 2-8 MiB (initial backups of the bench trees, GOGC 25: peak RSS
	// of the mixed tree 112 -> 99 MiB with savers+1 instead of
	// readers+savers, the GOROOT copy 100 -> 99, same CPU and wall time).
	// The pool keeps as many idle buffers as can be in flight.
	inFlight := savers + 1
	return &run{
		a:        a,
		repo:     repo,
		cancel:   cancel,
		progress: a.opts.Progress,
		pol:      repo.ChunkerPolynomial(),
		fileCh:   make(chan *fileJob, fileQueue),
		blobCh:   make(chan *blobJob),
		treeCh:   make(chan *treeJob),
		bufs:     newBufferPool(inFlight),
	}
}

func (r *run) summary(s snapshot.Summary) snapshot.Summary {
	st := &r.stats
	s.FilesNew, s.FilesChanged, s.FilesUnmodified = st.files.new.Load(), st.files.changed.Load(), st.files.unmodified.Load()
	s.DirsNew, s.DirsChanged, s.DirsUnmodified = st.dirs.new.Load(), st.dirs.changed.Load(), st.dirs.unmodified.Load()
	s.DataBlobs = st.dataBlobs.Load()
	s.TreeBlobs = st.treeBlobs.Load()
	s.DataAdded = st.dataAdded.Load()
	s.TotalFilesProcessed = st.totalFiles.Load()
	s.TotalBytesProcessed = st.totalBytes.Load()
	s.ErrorCount = st.errors.Load()
	return s
}

// itemError reports that the item at path could not be read. It returns
// nil when the item is to be skipped, or the fatal error (after cancelling
// the run) when Options.Error refused to carry on.
func (r *run) itemError(path string, err error) error {
	r.progress.Error(path, err)
	r.errMu.Lock()
	ferr := r.a.opts.Error(path, err)
	r.errMu.Unlock()
	if ferr != nil {
		r.cancel(ferr)
		return ferr
	}
	r.stats.errors.Add(1)
	return nil
}

// fail aborts the run with err; the first cause wins.
func (r *run) fail(err error) { r.cancel(err) }

func (r *run) warn(path string, err error) { r.progress.Warn(path, err) }

// countFile updates the file counters for a completed file node.
func (r *run) countFile(path string, node *snapshot.Node, st Status) {
	r.stats.files.add(st)
	r.stats.totalFiles.Add(1)
	r.stats.totalBytes.Add(node.Size)
	r.progress.CompleteItem(path, node, st)
}

func (r *run) countDir(path string, node *snapshot.Node, st Status) {
	r.stats.dirs.add(st)
	r.progress.CompleteItem(path, node, st)
}

// statusOf compares a finished node with the parent snapshot's node.
func statusOf(node, prev *snapshot.Node) Status {
	switch {
	case prev == nil || prev.Type != node.Type:
		return StatusNew
	case nodeEqual(node, prev):
		return StatusUnmodified
	}
	return StatusChanged
}

// send puts v on ch unless ctx ends first.
func send[T any](ctx context.Context, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// receive takes the next value from ch; ok is false when ch is closed or
// ctx has ended.
func receive[T any](ctx context.Context, ch <-chan T) (v T, ok bool) {
	select {
	case v, ok = <-ch:
		return v, ok
	case <-ctx.Done():
		return v, false
	}
}
