package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/snapshot/dump"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) dumpCommand() *cli.Command {
	return &cli.Command{
		Name:      "dump",
		Usage:     "write a file from a snapshot to stdout, or a folder as a tar or zip archive",
		ArgsUsage: "SNAPSHOT[:SUBPATH] PATH",
		Description: "Writes what the snapshot holds at PATH to stdout (or to --target FILE): a\n" +
			"file's content, byte for byte, or a folder (\"/\" for the whole snapshot) as a\n" +
			"tar stream, or a zip with --archive zip. PATH is inside the snapshot, or inside\n" +
			"SUBPATH with SNAPSHOT:SUBPATH. Content is streamed a few chunks at a time, so\n" +
			"memory stays small whatever the size.\n\n" +
			"Archive entries are named by their path without the leading slash\n" +
			"(home/me/docs/...), so \"tar -x\" rebuilds it under the current folder; the\n" +
			"dumped folder is an entry, its parents are not. A tar (PAX) keeps modes,\n" +
			"owners by ID and name, times to the nanosecond, symlinks, hardlinks, devices,\n" +
			"fifos and extended attributes (restored by \"tar --xattrs -x\"); sockets are\n" +
			"left out with a warning. A zip keeps modes, symlinks, times to the second and\n" +
			"owner IDs (restored by \"unzip -X\"); hardlinks become copies, and devices,\n" +
			"fifos and sockets are left out with a warning.\n\n" +
			"An archive is not written to a terminal: redirect stdout or use --target.\n" +
			"--target writes to a temporary file beside FILE (mode 0600) and renames it\n" +
			"over FILE once complete, so a failed dump leaves no partial FILE. A damaged\n" +
			"blob stops the dump with exit status 1; on stdout, what was written by then\n" +
			"is incomplete.\n\n" + selectorHelp,
		Flags: append(filterFlags(),
			&cli.GenericFlag{Name: "archive", Aliases: []string{"a"}, Value: new(dump.Format), DefaultText: "tar", Usage: "archive `FORMAT` of a folder: tar or zip"},
			&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Usage: "write to `FILE` instead of stdout"},
		),
		Action: e.runDump,
	}
}

func (e *appEnv) runDump(c *cli.Context) error {
	if err := wantArgs(c, 2, 2); err != nil {
		return err
	}
	format := *c.Generic("archive").(*dump.Format)
	target := c.String("target")
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		if err := forgetMissingPacks(ctx, s); err != nil {
			return err
		}
		sel, err := selectArg(ctx, s, c, c.Args().Get(0))
		if err != nil {
			return err
		}
		opts := dump.Options{
			Format: format,
			Warn:   func(name, why string) { s.p.Warnf("%s: left out: %s", name, why) },
			BeforeArchive: func() error {
				if target == "" && e.stdoutTTY {
					return errors.New("dump: stdout is a terminal: an archive is not written there (redirect stdout or use --target FILE)")
				}
				return nil
			},
		}
		write := func(w io.Writer) error {
			return dump.Dump(ctx, s.repo, sel.tree, c.Args().Get(1), w, opts)
		}
		if target == "" {
			bw := bufio.NewWriterSize(e.stdout, 256<<10)
			if err := write(bw); err != nil {
				_ = bw.Flush()
				return err
			}
			return bw.Flush()
		}
		return writeFileAtomically(target, write)
	})
}

// writeFileAtomically runs write on a new temporary file beside target
// and renames it to target once write succeeded and the file is synced;
// on any error the temporary file is removed and target left as it was.
func writeFileAtomically(target string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(target), ".cairn-dump-*")
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dump: write %s: %w", target, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("dump: sync %s: %w", target, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dump: close %s: %w", target, err)
	}
	if err := os.Rename(f.Name(), target); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	return nil
}
