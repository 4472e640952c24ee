package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/urfave/cli/v2"
)

// runOptions are the global options of how a command uses the locations
// it opens: restic's --retry-lock, --limit-upload, --limit-download,
// --pack-size and $RESTIC_COMPRESSION.
type runOptions struct {
	// RetryLock is how long to keep trying a lock another process holds.
	RetryLock time.Duration
	// LimitUpload and LimitDownload are bytes per second, 0 for none;
	// they apply to every location the command opens.
	LimitUpload, LimitDownload int64
	// PackSize is the target size in bytes of the packs the command
	// writes; 0 means the repository's.
	PackSize int
	// Compression, from $CAIRN_COMPRESSION, is the compression of the
	// data the command writes; nil means the repository's.
	Compression *repo.CompressionMode
	// err is the first bad value among them or --repository-file's
	// problem: a command that opens a location fails with it first.
	err error
}

// Bounds of --pack-size in MiB, restic's: smaller packs make many files
// for little gain, larger ones cost memory (a pack is built in memory).
const (
	minPackSizeMiB = 4
	maxPackSizeMiB = repo.MaxPackSize >> 20
)

// maxRepositoryFile caps the --repository-file read: a location is a
// line.
const maxRepositoryFile = 64 << 10

// runFlags are the run options' flags; root and env as in globalFlags.
func runFlags(root bool, env func(string) []string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "repository-file", Usage: "read the repository location from `FILE` (instead of -r)", EnvVars: env(envRepositoryFile), Hidden: !root},
		&cli.DurationFlag{Name: "retry-lock", Usage: "if the repository is locked, retry for up to `DURATION` (e.g. 10m) before giving up", DefaultText: "0s: fail at once", Hidden: !root},
		&cli.Int64Flag{Name: "limit-upload", Usage: "upload at most `KiB` per second to every location", DefaultText: "0: no limit", Hidden: !root},
		&cli.Int64Flag{Name: "limit-download", Usage: "download at most `KiB` per second from every location", DefaultText: "0: no limit", Hidden: !root},
		&cli.IntFlag{Name: "pack-size", Usage: fmt.Sprintf("target size in `MiB` of the packs this run writes, %d to %d; with init, the repository's", minPackSizeMiB, maxPackSizeMiB), DefaultText: "the repository's, 16 unless init set another", EnvVars: env(envPackSize), Hidden: !root},
	}
}

func globalInt64(c *cli.Context, name string) int64 {
	if l := globalLevel(c, name); l != nil {
		return l.Int64(name)
	}
	return 0
}

// runOptionsFrom resolves the run options for the command in c, and reads
// the repository location from --repository-file into *loc when given.
func (e *appEnv) runOptionsFrom(c *cli.Context, loc *string) runOptions {
	var o runOptions
	fail := func(err error) {
		if o.err == nil {
			o.err = err
		}
	}
	if l := globalLevel(c, "retry-lock"); l != nil {
		o.RetryLock = l.Duration("retry-lock")
	}
	if o.RetryLock < 0 {
		fail(fmt.Errorf("--retry-lock %s: not a positive duration", o.RetryLock))
	}
	for _, lim := range []struct {
		name string
		to   *int64
	}{{"limit-upload", &o.LimitUpload}, {"limit-download", &o.LimitDownload}} {
		kib := globalInt64(c, lim.name)
		if kib < 0 || kib > 1<<40 {
			fail(fmt.Errorf("--%s %d: want KiB per second, 0 for no limit", lim.name, kib))
			continue
		}
		*lim.to = kib << 10
	}
	if mib := globalInt64(c, "pack-size"); mib != 0 {
		if mib < minPackSizeMiB || mib > maxPackSizeMiB {
			fail(fmt.Errorf("--pack-size %d: want %d to %d MiB", mib, minPackSizeMiB, maxPackSizeMiB))
		}
		o.PackSize = int(mib) << 20
	}
	if s := e.getenv(envCompression); s != "" {
		m, err := repo.ParseCompression(s)
		if err != nil {
			fail(fmt.Errorf("$%s: %w", envCompression, err))
		}
		o.Compression = &m
	}
	if f := globalString(c, "repository-file", ""); f != "" {
		if *loc != "" {
			fail(errors.New("-r/--repo (or $" + envRepository + ") and --repository-file (or $" + envRepositoryFile + ") cannot be used together: give one"))
		} else if l, err := readRepositoryFile(f); err != nil {
			fail(err)
		} else {
			*loc = l
		}
	}
	return o
}

// readRepositoryFile reads a repository location from a file: its
// content without surrounding white space.
func readRepositoryFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("--repository-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRepositoryFile+1))
	if err != nil {
		return "", fmt.Errorf("--repository-file %s: %w", name, err)
	}
	if len(b) > maxRepositoryFile {
		return "", fmt.Errorf("--repository-file %s: larger than %d bytes, not a location", name, maxRepositoryFile)
	}
	loc := strings.TrimSpace(string(b))
	if loc == "" || strings.ContainsAny(loc, "\n\x00") {
		return "", fmt.Errorf("--repository-file %s: want one line naming the repository", name)
	}
	return loc, nil
}

// applyRun sets the run options that act on an open repository: the
// pack size and the compression of what it writes.
func (o runOptions) applyRun(r *repo.Repository) error {
	if o.PackSize != 0 {
		if err := r.SetPackSize(o.PackSize); err != nil {
			return err
		}
	}
	if o.Compression != nil {
		r.SetCompression(*o.Compression)
	}
	return nil
}
