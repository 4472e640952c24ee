package main

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/cairn-backup/cairn/snapshot/restorer"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot into a folder",
		ArgsUsage: "SNAPSHOT[:SUBPATH]",
		Description: "Restores the snapshot into the --target folder, which is created if needed:\n" +
			"the snapshot's absolute paths appear under it (TARGET/home/me/...). With\n" +
			"SNAPSHOT:SUBPATH the contents of that folder are restored at TARGET itself.\n" +
			"Content, mode, owner and group (when run as root), times with nanoseconds,\n" +
			"symlinks, hardlinks, fifos, devices, extended attributes and sparse holes are\n" +
			"restored. Existing folders are reused, other existing files in the way are\n" +
			"replaced, and files not in the snapshot are left alone. Metadata is set\n" +
			"through each restored file itself and never follows a symlink: a name that\n" +
			"another process (or a case-insensitive file system) turns into something\n" +
			"else during the restore, a symlink for instance, is reported and left as it\n" +
			"is. Folders of any depth are restored, with a bounded number of open files.\n\n" +
			"On a terminal one status line shows the files and bytes written of the\n" +
			"total (counted before anything is written), the percentage, the rate and the\n" +
			"time left. With --json: status lines, then a summary, with restic's fields.\n\n" +
			"A damaged or missing blob, or a file changed under the restore, is reported\n" +
			"with the file it belongs to and the restore goes on; the exit status is then 1.\n\n" +
			"Patterns (--include, --exclude) are globs as for backup, matched against the\n" +
			"paths inside the snapshot.\n\n" + selectorHelp,
		Flags: append(filterFlags(),
			&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Usage: "restore into `DIR` (required)"},
			&cli.StringSliceFlag{Name: "include", Aliases: []string{"i"}, Usage: "restore only paths matching `PATTERN`, with their parent folders (repeatable)"},
			&cli.StringSliceFlag{Name: "exclude", Aliases: []string{"e"}, Usage: "leave out paths matching `PATTERN` (repeatable)"},
			&cli.BoolFlag{Name: "ignore-case", Usage: "match --include and --exclude without regard to case"},
			&cli.BoolFlag{Name: "verify", Usage: "read every restored file back and check it against the snapshot"},
		),
		Action: e.runRestore,
	}
}

// restoreSummaryJSON is the last line of "restore --json": restic's
// summary (files_deleted and bytes_skipped stay 0: cairn's restore
// deletes nothing and skips no content) and cairn's counts.
type restoreSummaryJSON struct {
	MessageType    string `json:"message_type"`
	SecondsElapsed uint64 `json:"seconds_elapsed"`
	TotalFiles     uint64 `json:"total_files"`
	TotalBytes     uint64 `json:"total_bytes"`
	FilesDeleted   uint64 `json:"files_deleted"`
	BytesSkipped   uint64 `json:"bytes_skipped"`
	SnapshotID     string `json:"snapshot_id"`
	Target         string `json:"target"`
	restorer.Stats
}

func (e *appEnv) runRestore(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	target := c.String("target")
	if target == "" {
		return errors.New("restore: --target is required")
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		if err := forgetMissingPacks(ctx, s); err != nil {
			return err
		}
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		sel, err := selectSnapshot(ctx, s, l, c.Args().First(), filterFrom(c))
		if err != nil {
			return err
		}
		prog := &restoreProgress{p: s.p, start: time.Now()}
		rootPath := path.Clean("/" + sel.subpath)
		opts := restorer.Options{
			Include: c.StringSlice("include"), Exclude: c.StringSlice("exclude"),
			IgnoreCase: c.Bool("ignore-case"), RootPath: rootPath,
			Verify: c.Bool("verify"), Progress: prog,
			TestOnlyBetween: e.restoreSwapSeam(target, rootPath),
			Error: func(p string, err error) error {
				prog.errors.Add(1)
				s.p.ItemWarn("restore", p, err)
				return nil
			},
		}
		res, err := restorer.New(s.repo, sel.tree, opts)
		if err != nil {
			return err
		}
		if !s.g.JSON {
			s.p.Printf("restoring snapshot %s of %v at %s to %s", sel.sn.ID.Str(), sel.sn.Paths,
				sel.sn.Time.Local().Format("2006-01-02 15:04:05"), target)
		}
		t := startTicker(s.p.statusInterval(), prog.tick)
		st, err := res.Restore(ctx, target)
		t.Stop()
		if err != nil {
			return err
		}
		elapsed := time.Since(prog.start)
		if s.g.JSON {
			s.p.JSON(restoreSummaryJSON{MessageType: "summary", SecondsElapsed: uint64(elapsed / time.Second),
				TotalFiles: prog.totalFiles.Load(), TotalBytes: prog.totalBytes.Load(),
				SnapshotID: sel.sn.ID.String(), Target: target, Stats: st})
		} else {
			s.p.Printf("restored %d files (%s) in %s", st.Files, formatBytes(st.Bytes), formatDuration(elapsed))
			s.p.Printf("and %d folders, %d symlinks, %d hardlinks, %d special files", st.Dirs, st.Symlinks, st.Hardlinks, st.Special)
			if st.Verified > 0 {
				s.p.Printf("verified %d files", st.Verified)
			}
		}
		if st.Errors > 0 {
			return fmt.Errorf("restore: %d error(s), see the warnings above", st.Errors)
		}
		return nil
	})
}
