package archiver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// BackupRepository is what Backup needs: the archiver's Repository, the
// log's, Flush to make saved blobs durable before the snapshot that
// references them is recorded, ForgetMissingPacks to confirm that the
// packs it deduplicated against still exist, and UploadedPackBytes for
// the summary's DataAddedPacked.
type BackupRepository interface {
	Repository
	snapshot.LogRepository
	Flush(ctx context.Context) error
	// UploadedPackBytes is the total size of the packs the repository
	// uploaded since it was opened; Backup takes the difference across
	// its run, so the repository must upload no packs for others
	// meanwhile.
	UploadedPackBytes() uint64
	// ForgetMissingPacks lists the stored packs, drops the packs the
	// index lists and the backend lacks from the in-memory index (their
	// blobs are then unknown unless stored elsewhere) and returns them.
	// It is not called while blobs are saved.
	ForgetMissingPacks(ctx context.Context) ([]backend.ID, error)
	// SaveUploadedIndex indexes the packs uploaded so far (without
	// finishing the packs being filled): Backup calls it when it stops
	// early, so that a rerun reuses what was uploaded.
	SaveUploadedIndex(ctx context.Context) error
}

// stopIndexGrace bounds the index write of a backup that stops early:
// after SIGINT or SIGTERM the user waits for it.
const stopIndexGrace = 30 * time.Second

// backupPasses bounds how often Backup archives the paths when packs
// vanish under it (see Backup).
const backupPasses = 3

// BackupOptions describe one backup run.
type BackupOptions struct {
	Options
	// Paths are the files and folders to back up.
	Paths []string
	// Hostname, Username, UID and GID are recorded in the snapshot.
	Hostname, Username string
	UID, GID           uint32
	Tags               []string
	// ParentSelector picks the parent snapshot ("" means the newest
	// snapshot of the same host and paths).
	ParentSelector string
	// Identity signs the log entry.
	Identity *crypt.Identity
	// ProgramVersion is recorded in the snapshot.
	ProgramVersion string
	// TestOnlyBeforeSnapshot, if set, is called after the archived data
	// is flushed and before the snapshot is recorded; an error aborts
	// the backup. A test seam (the CLI's $CAIRN_TESTONLY_PAUSE): it lets
	// a test act on the repository at that moment.
	TestOnlyBeforeSnapshot func(ctx context.Context) error
	// Warn receives problems that do not stop the backup (packs found
	// missing); nil discards them.
	Warn func(msg string)
	// Scanned, if set, makes Backup run a scanner (Archiver.Scan) on a
	// goroutine of its own, ahead of the archiver, and receives its
	// running totals; Backup stops it and waits for it before returning.
	// Nil runs no scanner (restic's --no-scan).
	Scanned func(ScanStats)
	// Time is the snapshot's time; zero means the start of the backup.
	// The parent is then the newest snapshot not newer than Time.
	Time time.Time
	// SkipIfUnchanged makes no snapshot when the backed-up tree is the
	// parent's: Backup then returns a nil snapshot and no error.
	SkipIfUnchanged bool
	// Stream, if set, is backed up instead of Paths (which must then be
	// empty): the snapshot's one path is Stream.Name. Exclusions do not
	// apply to it. Its Wait runs after its content is stored and before
	// the snapshot is recorded; packs found missing then fail the
	// backup, since a stream cannot be read twice.
	Stream *Stream
}

// Backup runs the archiver over opts.Paths, flushes the repository and
// records a snapshot in the log. In a dry run nothing is saved and the
// returned snapshot has no ID. The parent is chosen from log. With
// SkipIfUnchanged, a tree equal to the parent's records nothing and the
// snapshot returned is nil.
//
// Backup never records a snapshot that refers to a pack it did not see
// in the backend after its data was flushed. After archiving and
// flushing, it lists the packs: if any pack the index lists is missing
// (lost before the backup, so that it deduplicated against data that is
// gone, or deleted meanwhile by a prune that did not see this backup's
// lock), it drops those packs from the in-memory index and archives the
// paths again, which uploads what they held where this backup has it (and
// so repairs older snapshots that share it), up to backupPasses times in
// all; after that it fails and records nothing. That costs one listing
// per backup; listing before the first pass as well would only spare a
// backup after a pack loss (rare) its second pass, and cost every other
// backup a second listing. A dry run lists the packs before it starts
// instead, so that its summary counts the data of lost packs.
func Backup(ctx context.Context, r BackupRepository, log *snapshot.Log, opts BackupOptions) (*snapshot.Snapshot, snapshot.Summary, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	paths, missing, err := backupPaths(opts)
	if err != nil {
		return nil, snapshot.Summary{}, err
	}
	start := opts.Now()
	if !opts.Time.IsZero() {
		start = opts.Time
	}

	var parent *snapshot.Snapshot
	if opts.ParentSelector != "" {
		p, err := snapshot.Find(log.Snapshots(), opts.ParentSelector, snapshot.Filter{})
		if err != nil {
			return nil, snapshot.Summary{}, fmt.Errorf("parent: %w", err)
		}
		parent = p
	} else {
		parent = snapshot.FindParent(log.Snapshots(), opts.Hostname, paths, start)
	}
	aopts := opts.Options
	if parent != nil {
		// With Force the archiver reads every file but still tells
		// changed files from new ones by the parent.
		aopts.Parent = parent.Tree
	}
	a, err := New(r, aopts)
	if err != nil {
		return nil, snapshot.Summary{}, err
	}
	if opts.DryRun {
		// A real run finds lost packs after its first pass (below); a
		// dry run asks first, so that its summary counts their data.
		missing, err := r.ForgetMissingPacks(ctx)
		if err != nil {
			return nil, snapshot.Summary{}, fmt.Errorf("backup: %w", err)
		}
		if len(missing) > 0 {
			opts.Warn(fmt.Sprintf("%s missing from the repository: a backup uploads the data it held again where it has it (run 'cairn check')", packList(missing)))
		}
	}
	if opts.Scanned != nil {
		scanCtx, stopScan := context.WithCancel(ctx)
		var scan sync.WaitGroup
		scan.Go(func() { _, _ = a.Scan(scanCtx, paths, opts.Scanned) }) // what it cannot read, the archiver reports
		defer scan.Wait()
		defer stopScan()
	}
	root, sum, err := archivePasses(ctx, r, a, paths, opts)
	sum.ErrorCount += missing
	if err == nil && opts.Stream != nil && opts.Stream.Wait != nil {
		err = opts.Stream.Wait()
	}
	if err != nil {
		if !opts.DryRun {
			saveUploadedIndex(ctx, r, opts.Warn)
		}
		return nil, sum, err
	}
	if opts.SkipIfUnchanged && parent != nil && root == parent.Tree {
		return nil, sum, nil
	}
	stored := sum
	sn := &snapshot.Snapshot{
		Time:           start,
		Tree:           root,
		Paths:          paths,
		Hostname:       opts.Hostname,
		Username:       opts.Username,
		UID:            opts.UID,
		GID:            opts.GID,
		Excludes:       append(append([]string(nil), opts.Excludes...), opts.IExcludes...),
		Tags:           opts.Tags,
		ProgramVersion: opts.ProgramVersion,
		Summary:        &stored,
	}
	if parent != nil {
		id := parent.ID
		sn.Parent = &id
	}
	if opts.DryRun {
		return sn, sum, nil
	}
	if opts.Identity == nil {
		return nil, sum, fmt.Errorf("backup: no device identity to sign the snapshot")
	}
	if err := context.Cause(ctx); err != nil {
		return nil, sum, fmt.Errorf("backup: %w", err)
	}
	if _, err := log.AddSnapshot(ctx, r, opts.Identity, sn, opts.Now()); err != nil {
		return nil, sum, err
	}
	return sn, sum, nil
}

// backupPaths returns the snapshot's paths: the stream's name, or the
// absolute, sorted paths given that exist (existingPaths), with how many
// were dropped.
func backupPaths(opts BackupOptions) ([]string, uint64, error) {
	if opts.Stream != nil {
		if len(opts.Paths) > 0 {
			return nil, 0, errors.New("backup: paths given with a stream")
		}
		if err := CheckStreamName(opts.Stream.Name); err != nil {
			return nil, 0, err
		}
		return []string{opts.Stream.Name}, 0, nil
	}
	if len(opts.Paths) == 0 {
		return nil, 0, errors.New("backup: no paths given")
	}
	paths := make([]string, 0, len(opts.Paths))
	for _, p := range opts.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, 0, fmt.Errorf("backup %s: %w", p, err)
		}
		paths = append(paths, abs)
	}
	sort.Strings(paths)
	return existingPaths(paths, opts.Error)
}

// saveUploadedIndex indexes what a backup that stops early (interrupted,
// failed) uploaded, so that the next run does not upload it again. It runs
// after ctx is cancelled, with a short grace period of its own, but not
// after the lock was lost: a prune may then be deleting those packs.
func saveUploadedIndex(ctx context.Context, r BackupRepository, warn func(string)) {
	if errors.Is(context.Cause(ctx), repo.ErrLockLost) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopIndexGrace)
	defer cancel()
	if err := r.SaveUploadedIndex(ctx); err != nil {
		warn(fmt.Sprintf("index the packs uploaded before the backup stopped: %v (the next backup uploads their data again)", err))
	}
}

// existingPaths drops the backup paths that cannot be looked at (they do
// not exist, or a folder on the way cannot be searched), as restic does:
// each goes to onError (nil aborts on the first) and is left out of the
// snapshot's paths, so that the next backup of the same paths finds this
// snapshot as its parent. It returns the paths kept and how many were
// dropped; none kept is ErrNoTargets.
func existingPaths(paths []string, onError func(string, error) error) (kept []string, dropped uint64, err error) {
	for _, p := range paths {
		_, lerr := os.Lstat(p)
		if lerr == nil {
			kept = append(kept, p)
			continue
		}
		lerr = &skippedPathError{path: p, err: lerr}
		if onError == nil {
			return nil, 0, lerr
		}
		if ferr := onError(p, lerr); ferr != nil {
			return nil, 0, ferr
		}
		dropped++
	}
	if len(kept) == 0 {
		return nil, dropped, ErrNoTargets
	}
	return kept, dropped, nil
}

// skippedPathError reports a backup path left out (existingPaths).
type skippedPathError struct {
	path string
	err  error // from lstat
}

func (e *skippedPathError) Error() string {
	if errors.Is(e.err, fs.ErrNotExist) {
		return e.path + " does not exist, skipping"
	}
	return e.err.Error() + ", skipping"
}

func (e *skippedPathError) Unwrap() error { return e.err }

// archivePasses archives paths with a, flushes the repository and confirms
// that every pack its index lists is in the backend, archiving the paths
// again (up to backupPasses times in all) while packs are found missing;
// see Backup. A dry run makes one pass and flushes nothing. The summary
// adds up the blobs of every pass, and DataAddedPacked is what they all
// uploaded.
func archivePasses(ctx context.Context, r BackupRepository, a *Archiver, paths []string, opts BackupOptions) (root backend.ID, sum snapshot.Summary, err error) {
	var added snapshot.Summary // DataBlobs, TreeBlobs and DataAdded of earlier passes
	uploaded := r.UploadedPackBytes()
	for pass := 1; ; pass++ {
		if opts.Stream != nil {
			root, sum, err = a.SnapshotStream(ctx, opts.Stream)
		} else {
			root, sum, err = a.Snapshot(ctx, paths)
		}
		sum.DataBlobs += added.DataBlobs
		sum.TreeBlobs += added.TreeBlobs
		sum.DataAdded += added.DataAdded
		if pass > 1 {
			sum.BackupStart = added.BackupStart
		}
		if err != nil || opts.DryRun {
			return root, sum, err
		}
		if err := r.Flush(ctx); err != nil {
			return root, sum, fmt.Errorf("backup: %w", err)
		}
		// Every pass's packs are in data/ now, those of a pass that
		// uploads again what lost packs held included.
		sum.DataAddedPacked = r.UploadedPackBytes() - uploaded
		if pass == 1 && opts.TestOnlyBeforeSnapshot != nil {
			if err := opts.TestOnlyBeforeSnapshot(ctx); err != nil {
				return root, sum, fmt.Errorf("backup: %w", err)
			}
		}
		missing, err := r.ForgetMissingPacks(ctx)
		if err != nil {
			return root, sum, fmt.Errorf("backup: confirm packs: %w", err)
		}
		if len(missing) == 0 {
			// The backup ends when its last pack is uploaded and
			// confirmed, not when the archiver has read the last file:
			// the flush can take most of the time on a slow link.
			sum.BackupEnd = opts.Now()
			return root, sum, nil
		}
		if opts.Stream != nil {
			return root, sum, fmt.Errorf("backup: %s missing from the repository (lost, or deleted while this backup ran): a stream cannot be read again, so no snapshot was written: run the backup again (and 'cairn check')",
				packList(missing))
		}
		if pass == backupPasses {
			return root, sum, fmt.Errorf("backup: %s missing from the repository, after %d passes that each found packs gone: no snapshot written (is a prune running that does not see this backup's lock?)",
				packList(missing), pass)
		}
		opts.Warn(fmt.Sprintf("%s missing from the repository (lost, or deleted while this backup ran by a prune that did not see its lock): backing the paths up again to upload what it held (run 'cairn check')",
			packList(missing)))
		added = snapshot.Summary{BackupStart: sum.BackupStart, DataBlobs: sum.DataBlobs, TreeBlobs: sum.TreeBlobs, DataAdded: sum.DataAdded}
	}
}

// packList names packs for a message: the count and the first few.
func packList(ids []backend.ID) string {
	const show = 3
	names := make([]string, 0, show)
	for _, id := range ids[:min(len(ids), show)] {
		names = append(names, "data/"+id.Str())
	}
	list := strings.Join(names, ", ")
	if len(ids) > show {
		list += ", ..."
	}
	if len(ids) == 1 {
		return "pack " + list
	}
	return fmt.Sprintf("%d packs (%s)", len(ids), list)
}
