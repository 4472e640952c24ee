package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "back files and folders up into a new snapshot",
		Before:    useGCPercent(backupGCPercent),
		ArgsUsage: "PATH...",
		Description: "Backs up the PATHs (recorded as absolute paths) into a new snapshot. Files\n" +
			"whose size, mtime, ctime and inode are unchanged since the parent snapshot\n" +
			"(the newest one of the same host and paths, or --parent) are not read again.\n\n" +
			"A file that cannot be read is reported on stderr and left out; the snapshot\n" +
			"is still made and the exit status is 3.\n\n" +
			"No snapshot relies on a missing pack: the packs are listed before the snapshot\n" +
			"is recorded, and a pack found missing (lost, or deleted meanwhile) makes the\n" +
			"backup warn and run over the paths again, which uploads the data it held;\n" +
			"after three such passes it fails (exit status 1) and records nothing.\n\n" +
			"Patterns (--exclude, --iexclude, lines of --exclude-file) are globs: \"*\", \"?\",\n" +
			"\"[a-z]\" match within one path element, \"**\" any number of elements; a\n" +
			"pattern starting with \"/\" is anchored at the root, any other may match at\n" +
			"any depth. In an exclude file, empty lines and lines starting with \"#\" are\n" +
			"ignored.\n\n" +
			"With --json, status lines ({\"message_type\":\"status\",...}) are printed every\n" +
			"second on a terminal and every minute otherwise, then one summary line\n" +
			"{\"message_type\":\"summary\",...} with restic's field names.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "host", Usage: "record `HOST` as the hostname (default: this machine's)"},
			&cli.StringSliceFlag{Name: "tag", Usage: "add `TAG` to the snapshot (repeatable)"},
			&cli.StringSliceFlag{Name: "exclude", Aliases: []string{"e"}, Usage: "leave out paths matching `PATTERN` (repeatable)"},
			&cli.StringSliceFlag{Name: "iexclude", Usage: "like --exclude `PATTERN`, ignoring case (repeatable)"},
			&cli.StringSliceFlag{Name: "exclude-file", Usage: "read exclude patterns from `FILE`, one a line (repeatable)"},
			&cli.BoolFlag{Name: "exclude-caches", Usage: "leave out the content of folders holding a CACHEDIR.TAG file"},
			&cli.StringSliceFlag{Name: "exclude-if-present", Usage: "leave out the content of folders holding a file `NAME[:HEADER]` (repeatable)"},
			&cli.StringFlag{Name: "exclude-larger-than", Usage: "leave out files larger than `SIZE` (bytes, or with K, M, G, T suffix)"},
			&cli.BoolFlag{Name: "one-file-system", Aliases: []string{"x"}, Usage: "do not cross file system boundaries"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "read everything but save nothing"},
			&cli.BoolFlag{Name: "force", Usage: "read every file, even unchanged ones"},
			&cli.StringFlag{Name: "parent", Usage: "compare with snapshot `ID` instead of the newest of the same host and paths"},
			&cli.StringFlag{Name: "compression", Usage: "compress this backup's new data with `MODE`: off, fastest, auto or max (default: the repository's mode)"},
		},
		Action: e.runBackup,
	}
}

// partialBackupError says the snapshot was saved but some files could not
// be read: exit status 3.
type partialBackupError struct {
	snapshot string
	skipped  uint64
}

func (e *partialBackupError) Error() string {
	return fmt.Sprintf("snapshot %s saved, but %d file(s) could not be read", e.snapshot, e.skipped)
}

func (e *appEnv) backupOptions(c *cli.Context) (archiver.BackupOptions, error) {
	o := archiver.BackupOptions{
		Paths: c.Args().Slice(), Hostname: c.String("host"), Tags: c.StringSlice("tag"),
		ParentSelector: c.String("parent"), ProgramVersion: "cairn " + programVersion().Version,
		Username: username(), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
	}
	o.Now = e.now
	o.TestOnlyBeforeSnapshot = e.testPause("before-snapshot")
	if o.Hostname == "" {
		o.Hostname = e.hostname()
	}
	o.Excludes = c.StringSlice("exclude")
	o.IExcludes = c.StringSlice("iexclude")
	for _, f := range c.StringSlice("exclude-file") {
		pats, err := readPatternFile(f)
		if err != nil {
			return o, err
		}
		o.Excludes = append(o.Excludes, pats...)
	}
	if _, err := snapshot.ParsePatterns(o.Excludes, false); err != nil {
		return o, fmt.Errorf("--exclude: %w", err)
	}
	if _, err := snapshot.ParsePatterns(o.IExcludes, true); err != nil {
		return o, fmt.Errorf("--iexclude: %w", err)
	}
	o.ExcludeCaches = c.Bool("exclude-caches")
	o.ExcludeIfPresent = c.StringSlice("exclude-if-present")
	if s := c.String("exclude-larger-than"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			return o, fmt.Errorf("--exclude-larger-than: %w", err)
		}
		o.ExcludeLargerThan = n
	}
	o.OneFileSystem = c.Bool("one-file-system")
	o.DryRun = c.Bool("dry-run")
	o.Force = c.Bool("force")
	return o, nil
}

func (e *appEnv) runBackup(c *cli.Context) error {
	if err := wantArgs(c, 1, -1); err != nil {
		return err
	}
	opts, err := e.backupOptions(c)
	if err != nil {
		return err
	}
	var compression *repo.CompressionMode
	if s := c.String("compression"); s != "" {
		m, err := repo.ParseCompression(s)
		if err != nil {
			return err
		}
		compression = &m
	}
	return e.withRepo(c, dryRunLock(appendLock, opts.DryRun), func(ctx context.Context, s *session) error {
		if compression != nil {
			s.repo.SetCompression(*compression)
		}
		if !opts.DryRun {
			ident, err := s.device.Identity()
			if err != nil {
				return err
			}
			opts.Identity = ident
		}
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		prog := &backupProgress{p: s.p, start: time.Now(), expectBytes: expectedBytes(l, opts, e.now())}
		opts.Progress = prog
		opts.Warn = func(msg string) { s.p.Warnf("%s", msg) }
		opts.Error = func(path string, err error) error {
			prog.errors.Add(1)
			s.p.ItemWarn("archival", path, err)
			return nil
		}
		t := startTicker(s.p.statusInterval(), prog.tick)
		sn, sum, err := archiver.Backup(ctx, s.repo, l, opts)
		t.Stop()
		if err != nil {
			return err
		}
		rememberLog(s, l)
		printBackupSummary(s.p, sn, sum, opts.DryRun)
		if sum.ErrorCount > 0 && !opts.DryRun {
			return &partialBackupError{snapshot: sn.ID.Str(), skipped: sum.ErrorCount}
		}
		return nil
	})
}

// expectedBytes estimates the backup's size from the snapshot it will
// likely compare with, for the progress display's percentage and ETA.
func expectedBytes(l *snapshot.Log, o archiver.BackupOptions, now time.Time) uint64 {
	var paths []string
	for _, p := range o.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return 0
		}
		paths = append(paths, abs)
	}
	parent := snapshot.FindParent(l.Snapshots(), o.Hostname, paths, now)
	if parent == nil || parent.Summary == nil {
		return 0
	}
	return parent.Summary.TotalBytesProcessed
}
