package archiver

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/snapshot"
)

// BackupRepository is what Backup needs: the archiver's Repository, the
// log's, and Flush to make saved blobs durable before the snapshot that
// references them is recorded.
type BackupRepository interface {
	Repository
	snapshot.LogRepository
	Flush(ctx context.Context) error
}

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
}

// Backup runs the archiver over opts.Paths, flushes the repository and
// records a snapshot in the log. In a dry run nothing is saved and the
// returned snapshot has no ID. The parent is chosen from log.
func Backup(ctx context.Context, r BackupRepository, log *snapshot.Log, opts BackupOptions) (*snapshot.Snapshot, Summary, error) {
	if len(opts.Paths) == 0 {
		return nil, Summary{}, fmt.Errorf("backup: no paths given")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	paths := make([]string, 0, len(opts.Paths))
	for _, p := range opts.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, Summary{}, fmt.Errorf("backup %s: %w", p, err)
		}
		paths = append(paths, abs)
	}
	sort.Strings(paths)
	start := opts.Now()

	var parent *snapshot.Snapshot
	if opts.ParentSelector != "" {
		p, err := snapshot.Find(log.Snapshots(), opts.ParentSelector, snapshot.Filter{})
		if err != nil {
			return nil, Summary{}, fmt.Errorf("parent: %w", err)
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
		return nil, Summary{}, err
	}
	root, sum, err := a.Snapshot(ctx, paths)
	if err != nil {
		return nil, sum, err
	}
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
		Summary: &snapshot.Summary{
			BackupStart:         sum.BackupStart,
			BackupEnd:           sum.BackupEnd,
			FilesNew:            uint64(sum.FilesNew),
			FilesChanged:        uint64(sum.FilesChanged),
			FilesUnmodified:     uint64(sum.FilesUnmodified),
			DirsNew:             uint64(sum.DirsNew),
			DirsChanged:         uint64(sum.DirsChanged),
			DirsUnmodified:      uint64(sum.DirsUnmodified),
			DataBlobs:           uint64(sum.DataBlobs),
			TreeBlobs:           uint64(sum.TreeBlobs),
			DataAdded:           sum.DataAdded,
			TotalFilesProcessed: uint64(sum.TotalFilesProcessed),
			TotalBytesProcessed: sum.TotalBytesProcessed,
			ErrorCount:          uint64(sum.Errors),
		},
	}
	if parent != nil {
		id := parent.ID
		sn.Parent = &id
	}
	if opts.DryRun {
		return sn, sum, nil
	}
	if err := r.Flush(ctx); err != nil {
		return nil, sum, fmt.Errorf("backup: %w", err)
	}
	if opts.TestOnlyBeforeSnapshot != nil {
		if err := opts.TestOnlyBeforeSnapshot(ctx); err != nil {
			return nil, sum, fmt.Errorf("backup: %w", err)
		}
	}
	if opts.Identity == nil {
		return nil, sum, fmt.Errorf("backup: no device identity to sign the snapshot")
	}
	if _, err := log.AddSnapshot(ctx, r, opts.Identity, sn, opts.Now()); err != nil {
		return nil, sum, err
	}
	return sn, sum, nil
}
