package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

// Environment variables of copy's source repository.
const (
	envFromRepository      = "CAIRN_FROM_REPOSITORY"
	envFromRepositoryFile  = "CAIRN_FROM_REPOSITORY_FILE"
	envFromPasswordFile    = "CAIRN_FROM_PASSWORD_FILE"
	envFromPasswordCommand = "CAIRN_FROM_PASSWORD_COMMAND"
	envFromPassword        = "CAIRN_FROM_PASSWORD"
)

func (e *appEnv) copyCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "from-repo", Usage: "copy from the repository at `LOCATION`", EnvVars: []string{envFromRepository}},
		&cli.StringFlag{Name: "from-repository-file", Usage: "read the source repository's location from `FILE`", EnvVars: []string{envFromRepositoryFile}},
		&cli.StringFlag{Name: "from-password-file", Usage: "read the source repository's password from `FILE`", EnvVars: []string{envFromPasswordFile}},
		&cli.StringFlag{Name: "from-password-command", Usage: "run `COMMAND` with sh -c for the source repository's password", EnvVars: []string{envFromPasswordCommand}},
	}
	return &cli.Command{
		Name:      "copy",
		Usage:     "copy snapshots from another repository into this one",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Copies the SNAPSHOTs (by default every snapshot that passes --host, --path and\n" +
			"--tag) of the repository at --from-repo into the repository given by -r, a\n" +
			"repository with its own password and keys: every blob the destination lacks is\n" +
			"read from the source, decrypted, checked, and stored encrypted under the\n" +
			"destination's key, compressed with its mode; blobs the destination holds are\n" +
			"not copied again. Each copied snapshot is a new entry in the destination's log,\n" +
			"signed by this device, with the source snapshot's time, host, paths, tags and\n" +
			"summary, no parent, and the source snapshot as \"original\". Unlike mirror, which\n" +
			"keeps an identical copy of one repository, copy merges snapshots into another.\n\n" +
			"copy can run again at any time: a snapshot the destination holds already (the\n" +
			"same original, time, tree, host, user, paths and tags, as restic decides) is\n" +
			"skipped, and an interrupted copy leaves only data, which the next run reuses.\n\n" +
			"Blobs are copied as they are, not chunked anew: when the repositories' chunker\n" +
			"polynomials differ (two repositories made by separate inits), files backed up\n" +
			"into the destination later do not deduplicate against the copied ones (copy\n" +
			"says so).\n\n" +
			"The source's password comes from --from-password-file, --from-password-command,\n" +
			"$" + envFromPassword + ", else a prompt on a terminal. A source that does not exist\n" +
			"exits 10, a wrong source password 12, as for the destination; the message then\n" +
			"names --from-repo. copy holds a shared lock on the source and a shared (append)\n" +
			"lock on the destination. With --json: one {\"message_type\":\"copied\",...} line\n" +
			"per snapshot, then a summary line.\n\n" + selectorHelp,
		Flags:  append(flags, filterFlags()...),
		Action: e.runCopy,
	}
}

// fromLocation is copy's source location, from --from-repo or
// --from-repository-file; "" for a command without them.
func fromLocation(c *cli.Context) (string, error) {
	loc, file := c.String("from-repo"), c.String("from-repository-file")
	switch {
	case loc != "" && file != "":
		return "", errors.New("copy: give --from-repo or --from-repository-file, not both")
	case file != "":
		return readLocationFile(file)
	}
	return loc, nil
}

// maxLocationFileSize caps a repository file.
const maxLocationFileSize = 64 << 10

// readLocationFile reads a repository location from a file: its content,
// white space around it removed.
func readLocationFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("repository file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLocationFileSize+1))
	if err != nil {
		return "", fmt.Errorf("repository file %s: %w", name, err)
	}
	loc := strings.TrimSpace(string(b))
	if len(b) > maxLocationFileSize || loc == "" || strings.ContainsAny(loc, "\n\r") {
		return "", fmt.Errorf("repository file %s: want one line holding a location", name)
	}
	return loc, nil
}

// fromPassword returns the source repository's password: from
// --from-password-file, --from-password-command, $CAIRN_FROM_PASSWORD,
// else a prompt when standard input is a terminal. The caller must zero it.
func (e *appEnv) fromPassword(ctx context.Context, c *cli.Context) ([]byte, error) {
	switch {
	case c.String("from-password-file") != "":
		return readPasswordFile(c.String("from-password-file"))
	case c.String("from-password-command") != "":
		return e.runPasswordCommand(ctx, c.String("from-password-command"))
	case e.getenv(envFromPassword) != "":
		return []byte(e.getenv(envFromPassword)), nil
	case e.stdinTTY:
		return promptPassword(ctx, "enter password for source repository: ")
	}
	return nil, errors.New("no password given for the source repository (use --from-password-file, --from-password-command, $" +
		envFromPasswordFile + ", $" + envFromPasswordCommand + " or $" + envFromPassword + ")")
}

// copiedJSON is one snapshot of "copy --json".
type copiedJSON struct {
	MessageType string `json:"message_type"`
	snapshot.CopiedSnapshot
}

// copySummaryJSON is the last line of "copy --json".
type copySummaryJSON struct {
	MessageType     string `json:"message_type"`
	Copied          int    `json:"copied"`
	Skipped         int    `json:"skipped"`
	Blobs           int    `json:"blobs"`
	Bytes           uint64 `json:"bytes"`
	DataAddedPacked uint64 `json:"data_added_packed"`
	// PolynomialsDiffer says the repositories chunk files differently.
	PolynomialsDiffer bool `json:"chunker_polynomials_differ"`
}

func (e *appEnv) runCopy(c *cli.Context) error {
	from, err := fromLocation(c)
	if err != nil {
		return err
	}
	if from == "" {
		return errors.New("copy: give the source repository with --from-repo or --from-repository-file")
	}
	return e.withRepo(c, appendLock, func(ctx context.Context, s *session) error {
		src, err := e.openSource(ctx, c, s, from)
		if err != nil {
			return err
		}
		defer src.close(ctx)
		ctx, cancel := src.lock.Context(ctx)
		defer cancel()
		err = e.copyFrom(ctx, c, s, src.session)
		if cause := context.Cause(ctx); err != nil && errors.Is(cause, repo.ErrLockLost) {
			return fmt.Errorf("source: %w", cause)
		}
		return err
	})
}

// copySource is copy's open source repository.
type copySource struct {
	*session
	lock  *repo.Lock
	close func(ctx context.Context)
}

// openSource opens the repository at from for reading, under a shared
// lock (repo.OpenForJob), as a session of its own.
func (e *appEnv) openSource(ctx context.Context, c *cli.Context, s *session, from string) (*copySource, error) {
	be, err := openBackend(ctx, from, e.locEnv(s.g, s.p))
	if err != nil {
		return nil, fmt.Errorf("--from-repo %s: %w", redactLocation(from), err)
	}
	pw, err := e.fromPassword(ctx, c)
	if err != nil {
		be.Close()
		return nil, err
	}
	r, l, err := repo.OpenForJob(ctx, be, pw, e.repoOptions(s.g, s.p), sharedLock)
	zero(pw)
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("--from-repo %s: %w", redactLocation(from), err)
	}
	if r.Config().ID == s.repo.Config().ID {
		_ = l.Unlock(ctx)
		r.Close()
		be.Close()
		return nil, fmt.Errorf("--from-repo %s is the repository itself (or a mirror of it): nothing to copy (to keep copies of a repository, use cairn mirror)", redactLocation(from))
	}
	g := s.g
	g.Repo = from
	return &copySource{
		session: &session{repo: r, g: g, p: s.p, device: s.device, now: s.now},
		lock:    l,
		close: func(ctx context.Context) {
			if err := l.Unlock(ctx); err != nil {
				s.p.Warnf("unlock %s: %v", redactLocation(from), err)
			}
			r.Close()
			be.Close()
		},
	}, nil
}

// copyFrom copies the selected snapshots of the session src into the
// session s's repository.
func (e *appEnv) copyFrom(ctx context.Context, c *cli.Context, s, src *session) error {
	srcLog, err := loadLog(ctx, src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	snaps, err := selectLive(srcLog, c.Args().Slice(), filterFrom(c))
	if err != nil {
		return err
	}
	dstLog, err := loadLog(ctx, s)
	if err != nil {
		return err
	}
	ident, err := s.device.Identity()
	if err != nil {
		return err
	}
	sum := copySummaryJSON{MessageType: "summary", PolynomialsDiffer: src.repo.ChunkerPolynomial() != s.repo.ChunkerPolynomial()}
	pp := startPhaseProgress(s.p, false)
	defer pp.stop()
	opts := snapshot.CopyOptions{Now: e.now, Progress: pp.report, TestOnlyBeforeSnapshot: e.testPause("copy-before-snapshot"),
		Done: func(cs snapshot.CopiedSnapshot) { printCopied(s.p, cs, &sum) }}
	_, err = snapshot.Copy(ctx, src.repo, s.repo, dstLog, ident, snaps, opts)
	if sum.Copied > 0 {
		rememberLog(s, dstLog)
	}
	if err != nil {
		return err
	}
	sum.DataAddedPacked = s.repo.UploadedPackBytes()
	if s.g.JSON {
		s.p.JSON(sum)
		return nil
	}
	switch {
	case len(snaps) == 0:
		s.p.Printf("no snapshot to copy")
	case sum.Copied == 0:
		s.p.Printf("nothing to copy: all %d snapshot(s) are in the destination already", sum.Skipped)
	default:
		s.p.Printf("copied %d snapshot(s), %d in the destination already: %d blobs, %s (%s stored)",
			sum.Copied, sum.Skipped, sum.Blobs, formatBytes(sum.Bytes), formatBytes(sum.DataAddedPacked))
		if sum.PolynomialsDiffer {
			s.p.Printf("note: the two repositories chunk files differently (their chunker polynomials differ): " +
				"files backed up into the destination will not deduplicate against the copied ones")
		}
	}
	return nil
}

// printCopied reports one snapshot as Copy finishes it, and counts it in
// sum.
func printCopied(p *printer, cs snapshot.CopiedSnapshot, sum *copySummaryJSON) {
	if cs.Skipped {
		sum.Skipped++
	} else {
		sum.Copied++
		sum.Blobs += cs.Blobs
		sum.Bytes += cs.Bytes
	}
	switch {
	case p.json:
		p.JSON(copiedJSON{"copied", cs})
	case cs.Skipped:
		p.Verbosef("snapshot %s: in the destination already as %s", cs.Snapshot.Str(), cs.New.Str())
	default:
		p.Printf("snapshot %s: copied as %s (%d new blobs, %s)", cs.Snapshot.Str(), cs.New.Str(), cs.Blobs, formatBytes(cs.Bytes))
	}
}
