package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
)

// LockMode says which lock a job holds on the repository it opens with
// OpenForJob.
type LockMode int

// The lock modes.
const (
	// NoLock takes no lock, on purpose: a job that needs none (unlock,
	// key list) or one whose user asked for none (--no-lock) for a job
	// that writes nothing (see ReadOnly). The index then loads lock-free.
	NoLock LockMode = iota
	// LockRead is a shared lock for a job that only reads (restore,
	// ls, check, ...): many run at once. A location that refuses to
	// store the lock file makes it go on without one, with a warning.
	LockRead
	// LockAppend is a shared lock for a job that adds to the repository
	// beside others (backup, key add); it is never skipped.
	LockAppend
	// LockExclusive is the lock of a change no one else may see half
	// done (forget, prune, repair, key remove and passwd).
	LockExclusive
	// LockExclusiveDryRun is the dry run of a job that takes
	// LockExclusive (forget, prune): exclusive, so that its report is
	// exact, but it writes nothing, so a location that refuses the lock
	// file makes it go on without one, as LockRead does.
	LockExclusiveDryRun
)

// ReadOnly says a job holding m writes nothing to the repository, so it
// may run without a lock: by the user's choice (--no-lock) or because the
// location refuses to store the lock file.
func (m LockMode) ReadOnly() bool { return m == LockRead || m == LockExclusiveDryRun }

// DryRun is the lock of the dry run of a job that takes m: the dry run of
// an exclusive job still takes the exclusive lock (its report is then
// exact), and that of a job that appends a shared one; both write nothing
// and so are ReadOnly.
func (m LockMode) DryRun() LockMode {
	switch m {
	case LockExclusive:
		return LockExclusiveDryRun
	case LockAppend:
		return LockRead
	}
	return m
}

// String names the mode for messages.
func (m LockMode) String() string {
	switch m {
	case NoLock:
		return "no lock"
	case LockRead:
		return "shared (read)"
	case LockAppend:
		return "shared (append)"
	case LockExclusive:
		return "exclusive"
	case LockExclusiveDryRun:
		return "exclusive (dry run)"
	}
	return fmt.Sprintf("LockMode(%d)", int(m))
}

func (m LockMode) exclusive() bool { return m == LockExclusive || m == LockExclusiveDryRun }

// ErrNotLocked is wrapped by LoadIndex's error on a repository that holds
// no lock and was not opened lock-free on purpose (OpenForJob with
// NoLock).
var ErrNotLocked = errors.New("the repository is not locked")

// OpenForJob opens the repository for one job: it opens it (see Open for
// the errors), takes the lock mode asks for, and only then loads the
// index. That order is what keeps a prune from racing the job: an index
// loaded before the lock could predate a prune that ran in between, and a
// backup trusting it would skip uploading data the prune deleted.
//
// A job that only reads (mode.ReadOnly) goes on without a lock when the
// location refuses to store the lock file (ErrLocationReadOnly: a
// read-only mount, a friend's copy at its quota), after a warning through
// opts.Warn. The returned lock is nil when the job holds none; a nil
// Lock's methods do nothing. The caller unlocks it, then closes the
// repository.
func OpenForJob(ctx context.Context, be backend.Backend, password []byte, opts Options, mode LockMode) (*Repository, *Lock, error) {
	r, err := Open(ctx, be, password, opts)
	if err != nil {
		return nil, nil, err
	}
	var l *Lock
	if mode != NoLock {
		l, err = r.Lock(ctx, mode.exclusive())
		if err != nil && mode.ReadOnly() && errors.Is(err, ErrLocationReadOnly) {
			r.opts.Warn(fmt.Sprintf("%v; reading without a lock, as with --no-lock (a prune running meanwhile could make this command fail)", err))
			l, err = nil, nil
		}
		if err != nil {
			r.Close()
			return nil, nil, err
		}
	}
	r.lockFree = l == nil
	if err := r.LoadIndex(ctx); err != nil {
		_ = l.Unlock(ctx)
		r.Close()
		return nil, nil, err
	}
	return r, l, nil
}
