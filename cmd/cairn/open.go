package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

// lockMode says which lock a command holds while it runs: the
// repository's own modes (repo.LockMode documents each), by the names the
// commands use.
type lockMode = repo.LockMode

const (
	noLock          = repo.NoLock              // init, unlock, key list
	sharedLock      = repo.LockRead            // restore, ls, check, ...
	appendLock      = repo.LockAppend          // backup, key add
	exclusiveLock   = repo.LockExclusive       // forget, prune, repair, key remove and passwd
	exclusiveDryRun = repo.LockExclusiveDryRun // forget and prune --dry-run
)

// dryRunLock is the lock of a command that takes mode, given whether it
// is a dry run (repo.LockMode.DryRun).
func dryRunLock(mode lockMode, dry bool) lockMode {
	if dry {
		return mode.DryRun()
	}
	return mode
}

// session is what a command that works on a repository gets: the open
// repository, the resolved global options and the printer.
type session struct {
	repo *repo.Repository
	g    globalOptions
	p    *printer
	// device is this device's identity and remembered log heads.
	device *snapshot.Device
	// seen is what this device remembered of the log before loadLog.
	seen snapshot.Seen
	// now is the clock for what the command records (appEnv.now).
	now func() time.Time
	// acksChecked says checkAcks ran; ackErr holds what it found wrong,
	// the command's result unless it failed otherwise.
	acksChecked bool
	ackErr      *repo.AckError
}

// withRepo opens the repository named by the global options for a job
// holding the lock mode asks for (repo.OpenForJob: lock, then index),
// runs fn, then unlocks (even after cancellation: unlocking has a short
// grace period of its own) and closes everything. fn runs under a context
// that is cancelled if the lock is lost (repo.Lock.Context); its error
// then says so.
func (e *appEnv) withRepo(c *cli.Context, mode lockMode, fn func(ctx context.Context, s *session) error) error {
	ctx := c.Context
	g := e.globals(c)
	if g.runOptions.err != nil {
		return g.runOptions.err
	}
	if g.NoLock {
		if mode != noLock && !mode.ReadOnly() {
			return fmt.Errorf("--no-lock: %q writes to the repository and must lock it (only commands that read, and dry runs, run without a lock)", commandPath(c))
		}
		mode = noLock
	}
	p := e.printer(g)
	// A command's other locations (repair packs --from, copy --from-repo)
	// count too; a bad copy source is reported by copy itself.
	from, _ := fromLocation(c)
	if err := checkOptionsUsed(g.Options, g.Repo, c.String("from"), from); err != nil {
		return err
	}
	be, pw, kitRepo, err := e.openRepoBackend(ctx, g, p)
	if err != nil {
		return err
	}
	defer be.Close()
	r, l, err := repo.OpenForJob(ctx, be, pw, e.repoOptions(g, p), mode)
	zero(pw)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := g.applyRun(r); err != nil {
		return err
	}
	p.Verbosef("opened with key file %s (tried %d)", r.KeyFileID().Str(), r.KeysTried())
	defer func() {
		if err := l.Unlock(ctx); err != nil {
			p.Warnf("unlock: %v", err)
		}
	}()
	if kitRepo != "" && r.Config().ID != kitRepo {
		return fmt.Errorf("the repository found with the kit is %s, not the kit's %s", r.Config().ID, kitRepo)
	}
	ctx, cancel := l.Context(ctx)
	defer cancel()
	sess := &session{repo: r, g: g, p: p, device: g.device(), now: e.now}
	err = fn(ctx, sess)
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, repo.ErrLockLost) {
		return cause
	}
	switch {
	case sess.ackErr == nil:
	case err == nil:
		return sess.ackErr
	default:
		return fmt.Errorf("%w; %w", err, sess.ackErr) // exit status 21 (main.exitCode)
	}
	return err
}

// forgetMissingPacks drops the packs the index lists and the repository
// lacks from the in-memory index (repo.ForgetMissingPacks) with a warning,
// so that a restore reads the copies of their blobs that other packs hold
// (a backup after the loss stores them again) and reports the rest as
// missing instead of failing to read the pack.
func forgetMissingPacks(ctx context.Context, s *session) error {
	missing, err := s.repo.ForgetMissingPacks(ctx)
	if err != nil {
		return err
	}
	if n := len(missing); n > 0 {
		more := ""
		if n > 1 {
			more = ", ..."
		}
		s.p.Warnf("the index lists %d pack(s) missing from the repository (data/%s%s): their blobs are read from other packs where stored, else reported missing (run 'cairn check')",
			n, missing[0].Str(), more)
	}
	return nil
}

// commandPath names the command running in c with its parents: "key add".
func commandPath(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	if len(names) > 0 {
		names = names[1:] // the application's own
	}
	return strings.Join(names, " ")
}

// repoOptions are the repo.Options every command uses.
func (e *appEnv) repoOptions(g globalOptions, p *printer) repo.Options {
	return repo.Options{
		CacheDir:  g.CacheDir,
		Warn:      func(msg string) { p.Warnf("%s", strings.TrimPrefix(msg, "warning: ")) },
		Hostname:  e.hostname(),
		Username:  username(),
		StateDir:  g.ConfigDir,
		Now:       e.now,
		RetryLock: g.RetryLock,
		// 0 (the default) unless a test shortens it.
		IndexInterval: e.testIndexInterval(),
	}
}

// kdfParams returns the derivation parameters for a new key file: the
// default, or the fast test-only ones when the test seam is set.
func (e *appEnv) kdfParams() (crypt.KDFParams, error) {
	if e.testFastKDF() {
		return crypt.FastKDFParamsForTests(), nil
	}
	return crypt.DefaultKDFParams()
}

// keySecret reads a new key's password with read and picks its KDF
// parameters, as init and key add/passwd do. On error no password is
// returned (one read is zeroed); otherwise the caller zeroes it.
func (e *appEnv) keySecret(read func() ([]byte, error)) ([]byte, crypt.KDFParams, error) {
	pw, err := read()
	if err != nil {
		return nil, crypt.KDFParams{}, err
	}
	kdf, err := e.kdfParams()
	if err != nil {
		zero(pw)
		return nil, crypt.KDFParams{}, err
	}
	return pw, kdf, nil
}

// hostname is this machine's hostname, or the test seam's stand-in when
// a test sets one (testHostname).
func (e *appEnv) hostname() string {
	if h := e.testHostname(); h != "" {
		return h
	}
	return hostname()
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

func username() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
