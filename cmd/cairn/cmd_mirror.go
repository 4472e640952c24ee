package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) mirrorCommand() *cli.Command {
	return &cli.Command{
		Name:      "mirror",
		Usage:     "copy the repository to other locations (peers, sftp, local)",
		ArgsUsage: "DEST...",
		Description: "Copies every file each DEST lacks from the repository given by -r: packs first, then\n" +
			"index files, keys and the config, then the snapshot log, so a DEST never refers to a\n" +
			"file it does not have. Each file's hash is checked before it is sent; an interrupted\n" +
			"mirror resumes by copying what is still missing. A DEST that does not hold a\n" +
			"repository yet is created. No password is needed: everything copied is encrypted\n" +
			"and named by its hash.\n\n" +
			"Before copying log entries, mirror checks that DEST's log is a prefix of the\n" +
			"source's; a DEST that holds entries the source lacks (someone else wrote to it, or\n" +
			"the source was rolled back) is refused, and nothing is copied to it.\n\n" +
			"--prune removes files DEST holds that the source no longer has (after prune or\n" +
			"forget). An append-only peer keeps them: old snapshots stay restorable from it.\n\n" +
			"DEST is any location: a path, sftp:user@host:/path, peer://PEERID@host:port/NAME.\n" +
			"A DEST that fails is reported and the others are still copied (exit status 1); a\n" +
			"peer that hangs is given up within about two minutes (see docs/peers.md).\n" +
			"A mirror with nothing to copy only lists files, which is quick.\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "prune", Usage: "remove files DEST has and the source does not, where DEST allows it"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only report what would be copied and removed"},
			&cli.Int64Flag{Name: "limit-upload", Usage: "limit uploads to `KIB` KiB/s (0: no limit)"},
		},
		Action: e.runMirror,
	}
}

// mirrorSummaryJSON is one destination's line of "mirror --json".
type mirrorSummaryJSON struct {
	MessageType string `json:"message_type"`
	Destination string `json:"destination"`
	DryRun      bool   `json:"dry_run"`
	repo.MirrorStats
}

func (e *appEnv) runMirror(c *cli.Context) error {
	if err := wantArgs(c, 1, -1); err != nil {
		return err
	}
	if c.Int64("limit-upload") < 0 {
		return errors.New("--limit-upload must not be negative")
	}
	ctx := c.Context
	g := e.globals(c)
	p := e.printer(g)
	env := e.locEnv(g, p)
	src, err := openBackend(ctx, g.Repo, env)
	if err != nil {
		return err
	}
	defer src.Close()
	var failed []string
	for _, dest := range c.Args().Slice() {
		if err := e.mirrorTo(ctx, c, p, env, src, dest); err != nil {
			if ctx.Err() != nil {
				return err
			}
			if c.NArg() == 1 {
				return err
			}
			p.Warnf("mirror to %s: %v", redactLocation(dest), err)
			failed = append(failed, redactLocation(dest))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("mirror failed for %d of %d destinations: %v", len(failed), c.NArg(), failed)
	}
	return nil
}

func (e *appEnv) mirrorTo(ctx context.Context, c *cli.Context, p *printer, env locEnv, src backend.Backend, dest string) error {
	dry := c.Bool("dry-run")
	dst, err := openBackend(ctx, dest, env)
	if errors.Is(err, backend.ErrNoRepository) {
		if dry {
			// Planned against an empty store, so the summary counts
			// everything; a dry run writes nothing anywhere.
			p.Printf("%s holds no repository yet: everything would be copied", redactLocation(dest))
			dst, err = mem.New(), nil
		} else {
			dst, err = createBackend(ctx, dest, env)
		}
	}
	if err != nil {
		return err
	}
	defer dst.Close()
	opts := repo.MirrorOptions{Prune: c.Bool("prune"), DryRun: dry, LimitUpload: c.Int64("limit-upload") * 1024,
		Warn: func(msg string) { p.Warnf("%s", strings.TrimPrefix(msg, "warning: ")) }}
	if p.progress() {
		opts.Progress = func(st repo.MirrorStats) {
			p.Status(fmt.Sprintf("%s: %d/%d files, %s/%s copied", redactLocation(dest), st.FilesCopied, st.FilesToCopy,
				formatBytes(uint64(st.BytesCopied)), formatBytes(uint64(st.BytesToCopy))))
		}
	}
	st, err := repo.Mirror(ctx, src, dst, opts)
	if err != nil {
		return err
	}
	if g := e.globals(c); g.JSON {
		p.JSON(mirrorSummaryJSON{MessageType: "summary", Destination: redactLocation(dest), DryRun: dry, MirrorStats: st})
		return nil
	}
	verb := "copied"
	if dry {
		verb = "would copy"
		st.FilesCopied, st.BytesCopied = st.FilesToCopy, st.BytesToCopy
	}
	p.Printf("%s: %s %d files (%s), %d already there (%s)", redactLocation(dest), verb,
		st.FilesCopied, formatBytes(uint64(st.BytesCopied)), st.FilesSkipped, formatBytes(uint64(st.BytesSkipped)))
	if opts.Prune {
		removed := "removed"
		if dry {
			removed = "would remove"
		}
		p.Printf("%s: %s %d files (%s)", redactLocation(dest), removed, st.FilesRemoved, formatBytes(uint64(st.BytesRemoved)))
		if st.FilesKept > 0 {
			p.Printf("%s: kept %d files the destination does not let us delete (append-only)", redactLocation(dest), st.FilesKept)
		}
	}
	if st.TempFilesRemoved > 0 {
		p.Printf("%s: removed %d stale temporary file(s) (%s) left by interrupted uploads", redactLocation(dest),
			st.TempFilesRemoved, formatBytes(uint64(st.TempBytesRemoved)))
	}
	return nil
}
