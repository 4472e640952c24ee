package main

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/restorer"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot into a folder",
		ArgsUsage: "[--host HOST] [--path PATH] [--tag TAG] SNAPSHOT[:SUBPATH] --target DIR",
		Description: "Restores the snapshot into the --target folder, which is created if needed:\n" +
			"the snapshot's absolute paths appear under it (TARGET/home/me/...). With\n" +
			"SNAPSHOT:SUBPATH the contents of that folder are restored at TARGET itself.\n" +
			"--host, --path and --tag choose which snapshot \"latest\" is. Content, mode,\n" +
			"owner and group (when run as root), times with nanoseconds, symlinks,\n" +
			"hardlinks, fifos, devices, extended attributes and sparse holes are restored.\n" +
			"Metadata is set through each restored file itself and never follows a\n" +
			"symlink: a name that another process (or a case-insensitive file system) turns\n" +
			"into something else during the restore, a symlink for instance, is reported\n" +
			"and left as it is. Folders of any depth are restored, with a bounded number of\n" +
			"open files.\n\n" +
			"What the target holds already: existing folders are reused (their metadata\n" +
			"set). Where the snapshot has a file (or symlink, fifo, device) and the target\n" +
			"has something, --overwrite decides, as restic's does:\n" +
			"   always      replace it, unless it is a file with the snapshot's content (read\n" +
			"               and compared): that one is kept and its metadata set (default)\n" +
			"   if-changed  the same, but a file of the snapshot's size and modification\n" +
			"               time is taken to have its content, without reading it\n" +
			"   if-newer    replace it only if the snapshot's is newer (modification time);\n" +
			"               otherwise leave it as it is\n" +
			"   never       leave it as it is\n" +
			"A file is replaced by a new one, never written through: its other hardlinks\n" +
			"(perhaps outside the target) keep their content, and a file with other links\n" +
			"is never kept. Files not in the snapshot are left alone unless --delete: then,\n" +
			"in each folder restored, entries the snapshot does not have are removed (with\n" +
			"all they hold; only those the patterns select), and a folder is replaced by the\n" +
			"snapshot's file of the same name. --delete into / needs --include or\n" +
			"--exclude. --dry-run writes nothing and prints what would be restored,\n" +
			"updated (replaced) and deleted, one line each (with --verbose the files\n" +
			"unchanged and skipped too; --json: \"verbose_status\" lines); with --verbose a\n" +
			"real restore prints those lines as well.\n\n" +
			"On a terminal one status line shows the files and bytes written of the\n" +
			"total (counted before anything is written), the percentage, the rate and the\n" +
			"time left. With --json: status lines, then a summary, with restic's fields.\n\n" +
			"A damaged or missing blob, or a file changed under the restore, is reported\n" +
			"with the file it belongs to and the restore goes on; the exit status is then 1.\n" +
			"A file that could not be restored whole keeps the time of the restore as its\n" +
			"modification time, so it never passes for complete. A full disk (or quota)\n" +
			"stops the restore at once, with one error line and exit status 1: the files\n" +
			"being written are removed, so every file left is complete, with its metadata.\n\n" +
			"Patterns are globs as for backup, matched against the full paths inside the\n" +
			"snapshot (with SNAPSHOT:SUBPATH too: /home/me/docs/a, not /a).\n" +
			"--include restores only matching paths (and the folders that lead to them),\n" +
			"--exclude leaves matching paths out; --iinclude and --iexclude match without\n" +
			"regard to case, and --ignore-case makes --include and --exclude do so too.\n" +
			"The -file forms read patterns from a file, one a line (empty lines and lines\n" +
			"starting with # are skipped). All may be repeated and combined: a path is\n" +
			"restored if no exclude matches it and, when there are includes, one does.\n\n" + selectorHelp,
		Flags: append(append(append(filterFlags(),
			&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Usage: "restore into `DIR` (required)"}),
			restorePatternFlags()...),
			&cli.BoolFlag{Name: "ignore-case", Usage: "match --include and --exclude (and their -file forms) without regard to case"},
			&cli.BoolFlag{Name: "verify", Usage: "read every restored file back and check it against the snapshot"},
			&cli.StringFlag{Name: "overwrite", Value: "always", Usage: "what to do with files already in the target: `MODE` always, if-changed, if-newer or never"},
			&cli.BoolFlag{Name: "delete", Usage: "delete files in the restored folders of the target that the snapshot does not have"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "write nothing: print what would be restored, replaced and deleted"},
		),
		Action: e.runRestore,
	}
}

func (e *appEnv) runRestore(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	target := c.String("target")
	if target == "" {
		return errors.New("restore: --target is required")
	}
	opts, err := restorePatterns(c)
	if err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		if err := forgetMissingPacks(ctx, s); err != nil {
			return err
		}
		sel, err := selectArg(ctx, s, c, c.Args().First())
		if err != nil {
			return err
		}
		prog := &restoreProgress{p: s.p, start: time.Now()}
		rootPath := path.Clean("/" + sel.subpath)
		opts.RootPath, opts.Progress = rootPath, prog
		opts.TestOnlyBetween = e.restoreSwapSeam(target, rootPath)
		opts.Error = func(p string, err error) error {
			prog.errors.Add(1)
			s.p.ItemWarn("restore", p, err)
			return nil
		}
		opts.Report = restoreReporter(s.p, opts.DryRun)
		res, err := restorer.New(s.repo, sel.tree, opts)
		if err != nil {
			return err
		}
		if !s.g.JSON {
			verb := "restoring"
			if opts.DryRun {
				verb = "dry run: would restore"
			}
			s.p.Printf("%s snapshot %s of %v at %s to %s", verb, sel.sn.ID.Str(), sel.sn.Paths,
				sel.sn.Time.Local().Format("2006-01-02 15:04:05"), target)
		}
		var t *ticker // a dry run writes nothing to show progress of
		if !opts.DryRun {
			t = startTicker(s.p, s.p.statusInterval(), prog.tick)
		}
		st, err := res.Restore(ctx, target)
		if t != nil {
			t.Stop()
		}
		if errors.Is(err, restorer.ErrNoSpace) {
			return fmt.Errorf("restore stopped: %w; %d file(s) were restored whole before, the files being written were removed", err, st.Files)
		}
		if err != nil {
			return err
		}
		elapsed := time.Since(prog.start)
		printRestoreSummary(s, restoreSummaryJSON{MessageType: "summary", SecondsElapsed: uint64(elapsed / time.Second),
			TotalFiles: prog.totalFiles.Load(), TotalBytes: prog.totalBytes.Load(),
			SnapshotID: sel.sn.ID.String(), Target: target, DryRun: opts.DryRun, Stats: st}, elapsed, opts.Overwrite)
		if st.Errors > 0 {
			return fmt.Errorf("restore: %d error(s), see the warnings above", st.Errors)
		}
		return nil
	})
}

// restorePatterns reads the pattern flags and files into opts, and checks
// the patterns' syntax before the repository is opened.
func restorePatterns(c *cli.Context) (restorer.Options, error) {
	opts := restorer.Options{IgnoreCase: c.Bool("ignore-case"), Verify: c.Bool("verify"),
		Delete: c.Bool("delete"), DryRun: c.Bool("dry-run")}
	if err := opts.Overwrite.Set(c.String("overwrite")); err != nil {
		return opts, fmt.Errorf("--overwrite: %w", err)
	}
	for _, l := range restorePatternLists(&opts) {
		pats, err := patternsOf(c, l.flag, nil)
		if err != nil {
			return opts, fmt.Errorf("--%s-file: %w", l.flag, err)
		}
		*l.dst = pats
		if _, err := snapshot.ParsePatterns(pats, l.fold || opts.IgnoreCase); err != nil {
			return opts, fmt.Errorf("--%s: %w", l.flag, err)
		}
	}
	return opts, nil
}

// restorePatternList is one of restore's pattern flags: --FLAG and
// --FLAG-file fill dst; fold says the flag ignores case whatever
// --ignore-case says.
type restorePatternList struct {
	flag, alias, usage string
	dst                *[]string
	fold               bool
}

// restorePatternLists are restore's pattern flags, filling opts.
func restorePatternLists(opts *restorer.Options) []restorePatternList {
	return []restorePatternList{
		{"include", "i", "restore only paths matching `PATTERN`, with their parent folders", &opts.Include, false},
		{"exclude", "e", "leave out paths matching `PATTERN`", &opts.Exclude, false},
		{"iinclude", "", "like --include, without regard to case", &opts.IInclude, true},
		{"iexclude", "", "like --exclude, without regard to case", &opts.IExclude, true},
	}
}

// restorePatternFlags are the flags of restorePatternLists: each
// --FLAG, then each --FLAG-file.
func restorePatternFlags() []cli.Flag {
	lists := restorePatternLists(&restorer.Options{})
	var flags, files []cli.Flag
	for _, l := range lists {
		f := &cli.StringSliceFlag{Name: l.flag, Usage: l.usage + " (repeatable)"}
		if l.alias != "" {
			f.Aliases = []string{l.alias}
		}
		flags = append(flags, f)
		files = append(files, &cli.StringSliceFlag{Name: l.flag + "-file", Usage: "read --" + l.flag + " patterns from `FILE`, one a line (repeatable)"})
	}
	return append(flags, files...)
}
