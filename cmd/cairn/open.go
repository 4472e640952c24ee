package main

import (
	"context"
	"os"
	"os/user"
	"strings"

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
	r, err := repo.Open(ctx, be, pw, e.repoOptions(g, p))
	zero(pw)
	if err != nil {
		return err
	}
	defer r.Close()
	if mode != noLock {
		l, err := r.Lock(ctx, mode == exclusiveLock)
		if err != nil {
			return err
		}
		defer func() {
			if err := l.Unlock(ctx); err != nil {
				p.Warnf("unlock: %v", err)
			}
		}()
	}
	return fn(ctx, &session{repo: r, g: g, p: p})
}

// repoOptions are the repo.Options every command uses.
func (e *appEnv) repoOptions(g globalOptions, p *printer) repo.Options {
	return repo.Options{
		CacheDir: g.CacheDir,
		Warn:     func(msg string) { p.Warnf("%s", strings.TrimPrefix(msg, "warning: ")) },
		Hostname: hostname(),
		Username: username(),
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
