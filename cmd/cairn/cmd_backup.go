package main

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "back files and folders up into a new snapshot",
		Before:    useGCPercent(backupGCPercent),
		ArgsUsage: "PATH... | --stdin | --stdin-from-command -- COMMAND [ARG...]",
		Description: "Backs up the PATHs (recorded as absolute paths) into a new snapshot. Files\n" +
			"whose size, mtime, ctime and inode are unchanged since the parent snapshot\n" +
			"(the newest one of the same host and paths, or --parent) are not read again.\n\n" +
			"A file that cannot be read is reported on stderr and left out; the snapshot\n" +
			"is still made and the exit status is 3. So is a PATH that does not exist: it\n" +
			"is also left out of the snapshot's paths (so the next backup of the same\n" +
			"command line finds this one as its parent); with no PATH left, no snapshot\n" +
			"is made (exit status 1).\n\n" +
			"No snapshot relies on a missing pack: the packs are listed before the snapshot\n" +
			"is recorded, and a pack found missing (lost, or deleted meanwhile) makes the\n" +
			"backup warn and run over the paths again, which uploads the data it held;\n" +
			"after three such passes it fails (exit status 1) and records nothing.\n\n" +
			"--stdin backs up standard input, --stdin-from-command the standard output of\n" +
			"the command given as arguments (run without a shell), as one file named by\n" +
			"--stdin-filename (default \"stdin\", stored as /stdin; mode 0644, dated now).\n" +
			"If the command exits non-zero or cannot start, no snapshot is made and the\n" +
			"exit status is 1.\n\n" +
			"Patterns (--exclude, --iexclude, lines of --exclude-file) are globs: \"*\", \"?\",\n" +
			"\"[a-z]\" match within one path element, \"**\" any number of elements; a\n" +
			"pattern starting with \"/\" is anchored at the root, any other may match at\n" +
			"any depth. The last pattern that matches decides: \"!PATTERN\" re-includes what\n" +
			"an earlier one excluded (not inside an excluded folder, which is not\n" +
			"entered). In an exclude file, empty lines and lines starting with \"#\" are\n" +
			"ignored and $VAR or ${VAR} is replaced by the environment variable's value.\n\n" +
			"--files-from lists paths one a line (globs; \"#\" comments), --files-from-verbatim\n" +
			"one a line as they are, --files-from-raw each ended by a NUL byte; \"-\" is\n" +
			"standard input. They add to the PATHs given.\n\n" +
			"On a terminal one status line shows the files and bytes done of the total,\n" +
			"the percentage, the rate and the time left; a scanner counts the total ahead\n" +
			"of the backup (--no-scan skips it: no total, percentage or ETA then).\n" +
			"The summary says what the new data adds, and in brackets what it takes\n" +
			"stored (compressed and encrypted); --verbose adds the new blob counts.\n\n" +
			"With --json, status lines ({\"message_type\":\"status\",...}) are printed every\n" +
			"second on a terminal and every minute otherwise ($CAIRN_PROGRESS_FPS changes\n" +
			"that), then one summary line {\"message_type\":\"summary\",...}, with restic's\n" +
			"fields.",
		Flags:  backupFlags(),
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

func (e *appEnv) runBackup(c *cli.Context) error {
	opts, stream, err := e.backupOptions(c)
	if err != nil {
		return err
	}
	noScan := c.Bool("no-scan")
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
		if stream != nil {
			modTime := opts.Time
			if modTime.IsZero() {
				modTime = e.now()
			}
			st, cleanup, err := stream.open(ctx, e, modTime)
			if err != nil {
				return err
			}
			defer cleanup()
			opts.Stream = st
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
		scan := !noScan && opts.Stream == nil // a stream's size is not known ahead
		prog := newBackupProgress(s.p, scan)
		opts.Progress = prog
		if scan {
			opts.Scanned = prog.Scanned
		}
		opts.Warn = func(msg string) { s.p.Warnf("%s", msg) }
		opts.Error = func(path string, err error) error {
			prog.errors.Add(1)
			s.p.ItemWarn("archival", path, err)
			return nil
		}
		t := startTicker(s.p, s.p.statusInterval(), prog.tick)
		sn, sum, err := archiver.Backup(ctx, s.repo, l, opts)
		t.Stop()
		if err != nil {
			return err
		}
		rememberLog(s, l)
		printBackupSummary(s.p, sn, sum, opts.DryRun)
		if e.onBackup != nil {
			e.onBackup(sum)
		}
		if sum.ErrorCount > 0 && !opts.DryRun && sn != nil {
			return &partialBackupError{snapshot: sn.ID.Str(), skipped: sum.ErrorCount}
		}
		return nil
	})
}
