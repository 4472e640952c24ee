package main

import (
	"context"
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
	noLock        lockMode = iota // reads nothing that a concurrent prune could remove
	sharedLock                    // backup, restore, ls: many may run at once
	exclusiveLock                 // changes that no one else may see half done
)

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
// short grace period of its own) and closes everything.
func (e *appEnv) withRepo(c *cli.Context, mode lockMode, fn func(ctx context.Context, s *session) error) error {
	ctx := c.Context
	g := e.globals(c)
	p := e.printer(g)
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
	if l != nil {
		defer func() {
			if err := l.Unlock(ctx); err != nil {
				p.Warnf("unlock: %v", err)
			}
		}()
	}
	return fn(ctx, &session{repo: r, g: g, p: p, now: e.now})
}

// openLocked opens the repository, takes the lock mode asks for (l is nil
// for noLock), and only then loads the index: an index loaded before the
// lock could predate a prune that ran in between, and a backup trusting
// it would skip uploading data the prune deleted.
func openLocked(ctx context.Context, be backend.Backend, pw []byte, opts repo.Options, mode lockMode) (r *repo.Repository, l *repo.Lock, err error) {
	opts.NoIndex = true
	if r, err = repo.Open(ctx, be, pw, opts); err != nil {
		return nil, nil, err
	}
	if mode != noLock {
		if l, err = r.Lock(ctx, mode == exclusiveLock); err != nil {
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
