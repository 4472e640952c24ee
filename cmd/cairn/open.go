package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

// lockMode says which lock a command holds while it runs.
type lockMode int

const (
	noLock lockMode = iota // takes none: init, unlock, key list
	// sharedLock is a command that only reads (restore, ls, check, ...):
	// many run at once. --no-lock skips it, and so does a location that
	// refuses to store the lock file, with a warning.
	sharedLock
	// appendLock is a command that adds to the repository beside others
	// (backup, key add): shared, but never skipped.
	appendLock
	// exclusiveLock is a change that no one else may see half done
	// (forget, prune, repair, key remove and passwd).
	exclusiveLock
	// exclusiveDryRun is a dry run of a command that takes the
	// exclusive lock (forget, prune): it writes nothing, so --no-lock
	// and a read-only location skip it as they skip sharedLock.
	exclusiveDryRun
)

// readOnly says the command writes nothing to the repository.
func (m lockMode) readOnly() bool { return m == sharedLock || m == exclusiveDryRun }

// dryRunLock is the lock of a command that takes mode, given whether it
// is a dry run. A dry run writes nothing, so --no-lock and a read-only
// location may skip its lock; otherwise the dry run of an exclusive
// command still takes the exclusive lock (its report is then exact), and
// a backup's dry run a shared one.
func dryRunLock(mode lockMode, dry bool) lockMode {
	switch {
	case !dry:
		return mode
	case mode == exclusiveLock:
		return exclusiveDryRun
	case mode == appendLock:
		return sharedLock
	}
	return mode
}

// session is what a command that works on a repository gets: the open
// repository, the resolved global options and the printer.
type session struct {
	repo *repo.Repository
	g    globalOptions
	p    *printer
	// seen is what this device remembered of the log before loadLog.
	seen snapshot.Seen
	// now is the clock for what the command records (appEnv.now).
	now func() time.Time
}

// withRepo opens the repository named by the global options, takes the
// lock, runs fn, then unlocks (even after cancellation: unlocking has a
// short grace period of its own) and closes everything. fn runs under a
// context that is cancelled if the lock is lost (repo.Lock.Context); its
// error then says so.
func (e *appEnv) withRepo(c *cli.Context, mode lockMode, fn func(ctx context.Context, s *session) error) error {
	ctx := c.Context
	g := e.globals(c)
	if g.NoLock {
		if mode != noLock && !mode.readOnly() {
			return fmt.Errorf("--no-lock: %q writes to the repository and must lock it (only commands that read, and dry runs, run without a lock)", commandPath(c))
		}
		mode = noLock
	}
	p := e.printer(g)
	// A command's other locations (repair packs --from) count too.
	if err := checkOptionsUsed(g.Options, g.Repo, c.String("from")); err != nil {
		return err
	}
	be, err := openBackend(ctx, g.Repo, e.locEnv(g, p))
	if err != nil {
		return err
	}
	defer be.Close()
	pw, err := e.password(ctx, g)
	if err != nil {
		return err
	}
	r, l, err := openLocked(ctx, be, pw, e.repoOptions(g, p), mode)
	zero(pw)
	if err != nil {
		return err
	}
	defer r.Close()
	p.Verbosef("opened with key file %s (tried %d)", r.KeyFileID().Str(), r.KeysTried())
	if l != nil {
		defer func() {
			if err := l.Unlock(ctx); err != nil {
				p.Warnf("unlock: %v", err)
			}
		}()
		var cancel context.CancelFunc
		ctx, cancel = l.Context(ctx)
		defer cancel()
	}
	err = fn(ctx, &session{repo: r, g: g, p: p, now: e.now})
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, repo.ErrLockLost) {
		return cause
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

// openLocked opens the repository, takes the lock mode asks for (l is nil
// for noLock), and only then loads the index: an index loaded before the
// lock could predate a prune that ran in between, and a backup trusting
// it would skip uploading data the prune deleted. A command that only
// reads goes on without a lock, with a warning, when the location
// refuses to store the lock file (a read-only mount, a friend's copy at
// its quota).
func openLocked(ctx context.Context, be backend.Backend, pw []byte, opts repo.Options, mode lockMode) (r *repo.Repository, l *repo.Lock, err error) {
	opts.NoIndex = true
	if r, err = repo.Open(ctx, be, pw, opts); err != nil {
		return nil, nil, err
	}
	if mode != noLock {
		l, err = r.Lock(ctx, mode == exclusiveLock || mode == exclusiveDryRun)
		if err != nil && mode.readOnly() && errors.Is(err, repo.ErrLocationReadOnly) {
			opts.Warn(fmt.Sprintf("%v; reading without a lock, as with --no-lock (a prune running meanwhile could make this command fail)", err))
			l, err = nil, nil
		}
		if err != nil {
			r.Close()
			return nil, nil, err
		}
	}
	if err := r.LoadIndex(ctx); err != nil {
		if l != nil {
			_ = l.Unlock(ctx)
		}
		r.Close()
		return nil, nil, err
	}
	return r, l, nil
}

// repoOptions are the repo.Options every command uses.
func (e *appEnv) repoOptions(g globalOptions, p *printer) repo.Options {
	return repo.Options{
		CacheDir: g.CacheDir,
		Warn:     func(msg string) { p.Warnf("%s", strings.TrimPrefix(msg, "warning: ")) },
		Hostname: e.hostname(),
		Username: username(),
		StateDir: g.ConfigDir,
		Now:      e.now,
	}
}

// kdfParams returns the derivation parameters for a new key file: the
// default, or the fast test-only ones when the test seam is set.
func (e *appEnv) kdfParams() (crypt.KDFParams, error) {
	if e.getenv(envTestFastKDF) == "1" {
		return crypt.FastKDFParamsForTests(), nil
	}
	return crypt.DefaultKDFParams()
}

// hostname is this machine's hostname, or $CAIRN_TESTONLY_HOSTNAME
// when a test sets it (see envTestHostname).
func (e *appEnv) hostname() string {
	if h := e.getenv(envTestHostname); h != "" {
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
