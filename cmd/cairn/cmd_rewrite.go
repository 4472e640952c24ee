package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) rewriteCommand() *cli.Command {
	flags := append(excludeFlags("remove"),
		&cli.BoolFlag{Name: "forget", Usage: "forget the original snapshots once the new ones are recorded"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only print what would be removed, from which snapshots"},
	)
	return &cli.Command{
		Name:      "rewrite",
		Usage:     "remove paths from existing snapshots",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Removes the paths the patterns match from the SNAPSHOTs (by default every snapshot\n" +
			"that passes --host, --path and --tag): for each one that holds such a path, it\n" +
			"records a new snapshot with the same time, host, paths, tags and summary (its file\n" +
			"and byte totals less what was removed) whose \"original\" field names the old one,\n" +
			"and tags it \"rewrite\". Only the folders on the way to a removed path are written\n" +
			"anew; the rest is shared with the original. Patterns are those of backup (see\n" +
			"\"cairn help backup\"), matched against the paths inside the snapshot\n" +
			"(/home/me/secret); a folder that matches goes with everything in it.\n\n" +
			"--forget forgets the originals once every new snapshot is recorded, and the new\n" +
			"snapshots get no \"rewrite\" tag. Killed at any moment, rewrite loses nothing: the\n" +
			"originals are forgotten only after their new snapshots are in the log, and running\n" +
			"it again finishes the job without making second copies.\n\n" +
			"A file backed up by mistake (a secret): run rewrite --exclude PATTERN --forget on\n" +
			"every snapshot, then \"cairn prune --max-unused 0\": prune deletes or repacks every\n" +
			"pack that holds the file's data, so no pack holds it any more (the default\n" +
			"--max-unused may leave it in a pack that is mostly used). Copies of the repository\n" +
			"(mirror) keep it until mirrored to with --prune.\n\n" +
			"--dry-run prints which snapshots would change and how much (with --verbose, every\n" +
			"path removed) and writes nothing. Holds a shared lock, an exclusive one with\n" +
			"--forget. With --json: one {\"message_type\":\"rewritten\",...} line per snapshot\n" +
			"changed, then a summary line.\n\n" + selectorHelp,
		Flags:  append(flags, filterFlags()...),
		Action: e.runRewrite,
	}
}

// rewriteExcluder builds the exclusion of rewrite's pattern flags.
func rewriteExcluder(c *cli.Context) (*archiver.Excluder, error) {
	excludes, err := patternsOf(c, "exclude", nil)
	if err != nil {
		return nil, err
	}
	iexcludes, err := patternsOf(c, "iexclude", nil)
	if err != nil {
		return nil, err
	}
	x, err := archiver.NewExcluder(excludes, iexcludes)
	if err != nil {
		return nil, err
	}
	if x.Empty() {
		return nil, errors.New("rewrite: nothing to remove: give --exclude, --iexclude, --exclude-file or --iexclude-file")
	}
	return x, nil
}

// rewrittenJSON is one snapshot of "rewrite --json".
type rewrittenJSON struct {
	MessageType string `json:"message_type"`
	snapshot.RewrittenSnapshot
}

// rewriteSummaryJSON is the last line of "rewrite --json".
type rewriteSummaryJSON struct {
	MessageType string `json:"message_type"`
	DryRun      bool   `json:"dry_run"`
	Rewritten   int    `json:"rewritten"`
	Unchanged   int    `json:"unchanged"`
}

func (e *appEnv) runRewrite(c *cli.Context) error {
	x, err := rewriteExcluder(c)
	if err != nil {
		return err
	}
	opts := snapshot.RewriteOptions{
		Exclude: func(p string, n *snapshot.Node) bool { return x.Excluded(p, n.Type == snapshot.NodeDir) },
		Forget:  c.Bool("forget"), DryRun: c.Bool("dry-run"), Now: e.now,
		TestOnlyBeforeForget: e.testPause("rewrite-before-forget"),
	}
	mode := appendLock
	if opts.Forget {
		mode = exclusiveLock
	}
	return e.withRepo(c, dryRunLock(mode, opts.DryRun), func(ctx context.Context, s *session) error {
		var ident *crypt.Identity
		if !opts.DryRun {
			var err error
			if ident, err = s.device.Identity(); err != nil {
				return err
			}
		}
		l, snaps, err := loadLive(ctx, s, c)
		if err != nil {
			return err
		}
		opts.Removed = func(p string, _ *snapshot.Node) {
			s.p.Verbosef("%s %s", verb(opts.DryRun, "would remove", "removing"), p)
		}
		res, err := snapshot.Rewrite(ctx, s.repo, l, ident, snaps, opts)
		if err != nil {
			return err
		}
		if !opts.DryRun {
			rememberLog(s, l)
		}
		printRewrite(s.p, res, opts)
		return nil
	})
}

func printRewrite(p *printer, res snapshot.RewriteResult, opts snapshot.RewriteOptions) {
	if p.json {
		for _, rs := range res.Snapshots {
			p.JSON(rewrittenJSON{"rewritten", rs})
		}
		p.JSON(rewriteSummaryJSON{"summary", opts.DryRun, len(res.Snapshots), res.Unchanged})
		return
	}
	for _, rs := range res.Snapshots {
		what := fmt.Sprintf("%d path(s) (%d file(s), %s)", rs.Excluded, rs.Files, formatBytes(rs.Bytes))
		switch {
		case opts.DryRun && opts.Forget:
			p.Printf("snapshot %s: would remove %s and forget the original", rs.Snapshot.Str(), what)
		case opts.DryRun:
			p.Printf("snapshot %s: would remove %s", rs.Snapshot.Str(), what)
		default:
			how := "saved as"
			if rs.Reused {
				how = "saved by an earlier run as"
			}
			done := ""
			if rs.Forgotten {
				done = "; original forgotten"
			}
			p.Printf("snapshot %s: removed %s: %s %s%s", rs.Snapshot.Str(), what, how, rs.New.Str(), done)
		}
	}
	n := len(res.Snapshots)
	switch {
	case n == 0:
		p.Printf("no snapshot holds a path to remove (%d snapshot(s) looked at)", res.Unchanged)
	case opts.DryRun:
		p.Printf("would rewrite %d snapshot(s), %d unchanged", n, res.Unchanged)
	case opts.Forget:
		p.Printf("rewrote %d snapshot(s), %d unchanged; run 'cairn prune --max-unused 0' to delete the removed data from every pack", n, res.Unchanged)
	default:
		p.Printf("rewrote %d snapshot(s), %d unchanged; the originals stay until forgotten", n, res.Unchanged)
	}
}
