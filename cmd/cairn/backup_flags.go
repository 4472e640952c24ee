package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/urfave/cli/v2"
)

// envReadConcurrency is restic's RESTIC_READ_CONCURRENCY.
const envReadConcurrency = "CAIRN_READ_CONCURRENCY"

// maxReadConcurrency bounds --read-concurrency: each reader holds a file
// open and up to one chunk buffer in flight, and beyond a few dozen more
// readers only add seeks.
const maxReadConcurrency = 256

// snapshotTimeLayout is --time's format, restic's.
const snapshotTimeLayout = "2006-01-02 15:04:05"

// backupFlags are the backup command's own flags.
func backupFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "host", EnvVars: []string{envHost}, Usage: "record `HOST` as the hostname (default: $CAIRN_HOST, else this machine's)"},
		&cli.StringSliceFlag{Name: "tag", Usage: "add `TAG` to the snapshot (repeatable)"},
	}
	flags = append(flags, excludeFlags("leave out")...)
	flags = append(flags, []cli.Flag{
		&cli.BoolFlag{Name: "exclude-caches", Usage: "leave out the content of folders holding a CACHEDIR.TAG file"},
		&cli.StringSliceFlag{Name: "exclude-if-present", Usage: "leave out the content of folders holding a file `NAME[:HEADER]` (repeatable)"},
		&cli.StringFlag{Name: "exclude-larger-than", Usage: "leave out files larger than `SIZE` (bytes, or with K, M, G, T suffix)"},
		&cli.BoolFlag{Name: "one-file-system", Aliases: []string{"x"}, Usage: "do not cross file system boundaries"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "read everything but save nothing"},
		&cli.BoolFlag{Name: "force", Usage: "read every file, even unchanged ones"},
		&cli.StringFlag{Name: "parent", Usage: "compare with snapshot `ID` instead of the newest of the same host and paths"},
		&cli.StringFlag{Name: "compression", Usage: "compress this backup's new data with `MODE`: off, fastest, auto or max (default: $CAIRN_COMPRESSION, else the repository's mode)"},
		&cli.StringFlag{Name: "time", Usage: "record `TIME` (\"2006-01-02 15:04:05\", local time) as the snapshot's time (default: now)"},
		&cli.BoolFlag{Name: "skip-if-unchanged", Usage: "make no snapshot when nothing changed since the parent snapshot"},
		&cli.IntFlag{Name: "read-concurrency", EnvVars: []string{envReadConcurrency}, Usage: "read `N` files at once (default: the number of cores, at least 2 and at most 8)"},
		&cli.BoolFlag{Name: "ignore-ctime", Usage: "read a file again only if its size, mtime or inode changed, not its ctime alone"},
		&cli.BoolFlag{Name: "ignore-inode", Usage: "read a file again only if its size or mtime changed (implies --ignore-ctime; for file systems that renumber inodes)"},
		&cli.BoolFlag{Name: "no-scan", Usage: "do not count the files ahead of the backup: progress then shows no total, percentage or ETA"},
		&cli.BoolFlag{Name: "with-atime", Usage: "record access times (default: the modification time stands in, so reading a file does not change its snapshot entry)"},
	}...)
	flags = append(flags, fileListFlags()...)
	return append(flags, streamFlags()...)
}

func (e *appEnv) backupOptions(c *cli.Context) (archiver.BackupOptions, *streamSpec, error) {
	stream, err := streamOptions(c)
	if err != nil {
		return archiver.BackupOptions{}, nil, err
	}
	o, err := e.pathOptions(c)
	if err != nil {
		return o, nil, err
	}
	if stream != nil {
		o.Paths = nil // --stdin-from-command's arguments are the command
		return o, stream, nil
	}
	p := e.printer(e.globals(c))
	listed, err := listedPaths(c, e.stdin, func(msg string) { p.Warnf("%s", msg) })
	if err != nil {
		return o, nil, err
	}
	o.Paths = append(listed, o.Paths...)
	if len(o.Paths) == 0 {
		if len(listed) == 0 && !c.IsSet("files-from") && !c.IsSet("files-from-verbatim") && !c.IsSet("files-from-raw") {
			return o, nil, wantArgs(c, 1, -1)
		}
		return o, nil, errors.New("backup: the --files-from lists name nothing to back up")
	}
	return o, nil, nil
}

// pathOptions reads the options of a backup of paths.
func (e *appEnv) pathOptions(c *cli.Context) (archiver.BackupOptions, error) {
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
	expand := func(pats []string) []string { return expandPatterns(pats, e.getenv) }
	var err error
	if o.Excludes, err = patternsOf(c, "exclude", expand); err != nil {
		return o, err
	}
	if o.IExcludes, err = patternsOf(c, "iexclude", expand); err != nil {
		return o, err
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
	o.WithAtime = c.Bool("with-atime")
	o.IgnoreCtime = c.Bool("ignore-ctime")
	o.IgnoreInode = c.Bool("ignore-inode")
	o.SkipIfUnchanged = c.Bool("skip-if-unchanged")
	o.ReadConcurrency = c.Int("read-concurrency")
	if n := o.ReadConcurrency; n < 0 || n > maxReadConcurrency {
		return o, fmt.Errorf("--read-concurrency: %d is not between 1 and %d (0: the default)", n, maxReadConcurrency)
	}
	if s := c.String("time"); s != "" {
		t, err := time.ParseInLocation(snapshotTimeLayout, s, time.Local)
		if err != nil {
			return o, fmt.Errorf("--time %q: want \"YYYY-MM-DD hh:mm:ss\" (local time)", s)
		}
		o.Time = t
	}
	return o, nil
}
