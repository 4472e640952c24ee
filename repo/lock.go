package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// Lock timing.
//
// A held lock is refreshed by writing a new lock file (a new ID: the
// content holds the time and is sealed with a fresh nonce) and deleting
// the old one, once its file is lockRefresh old.
//
// A reader judges staleness only by what it observes on its own clocks,
// never by the time written in the file: the clocks of two hosts may be
// hours apart. A lock file this device has seen present for longer than
// lockStale was not refreshed, so its holder is gone; a lock file seen
// for the first time is never stale, however old its time field is. A
// lock from this host whose process is gone is stale at once.
//
// A holder whose current lock file is lockLost old (its refreshes failed,
// or the machine slept) gives the lock up: Lock.Context is cancelled, so
// it stops before a reader could take the lock for stale. The holder
// checks every lockTick, so it gives up at most lockLost+lockTick after
// its last write, well inside lockStale; the tick is short because a
// process that was stopped or a machine that slept learns only at its
// next tick that its lock is lost, and works on until then.
var (
	lockRefresh = 5 * time.Minute
	lockStale   = 30 * time.Minute
	lockLost    = 25 * time.Minute
	lockTick    = 10 * time.Second
)

// maxLockFile caps the stored size of a lock file read: a real one is a
// few hundred bytes. A larger one is treated as unreadable, unread.
const maxLockFile = 64 << 10

// ErrLocationReadOnly is wrapped by Lock's error when the location refused
// to store the lock file (backend.IsWriteRefused): a read-only mount, no
// permission, a full disk, a peer's quota. A command that only reads may
// go on without a lock.
var ErrLocationReadOnly = errors.New("the repository location refuses writes")

// ErrLockLost is wrapped by the cause of a Lock.Context's cancellation:
// the lock could not be refreshed for so long that other hosts may soon
// take it for stale, so the work it protects must stop.
var ErrLockLost = errors.New("lock lost")

// LockInfo is the content of a lock file.
type LockInfo struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Hostname  string    `json:"hostname"`
	Username  string    `json:"username"`
	PID       int       `json:"pid"`
	UID       uint32    `json:"uid"`
	GID       uint32    `json:"gid"`
}

// LockedError says the repository is locked by someone else; it names the
// holder.
type LockedError struct {
	ID     backend.ID
	Holder LockInfo
	// Seen is how long this device has seen the lock file, unrefreshed.
	Seen time.Duration
}

func (e *LockedError) Error() string {
	kind := "locked"
	if e.Holder.Exclusive {
		kind = "locked exclusively"
	}
	return fmt.Sprintf("repository is %s by PID %d on %s by %s since %s (its clock; lock %s, seen here for %s: if that process is gone, 'cairn unlock' removes the lock once seen here for %s, --remove-all at once)",
		kind, e.Holder.PID, e.Holder.Hostname, e.Holder.Username, e.Holder.Time.Local().Format("2006-01-02 15:04:05"),
		e.ID.Str(), e.Seen.Round(time.Second), lockStale)
}

// Lock is a held repository lock, refreshed in the background until
// Unlock. A nil *Lock stands for no lock (OpenForJob without one): its
// methods do nothing.
type Lock struct {
	r    *Repository
	info LockInfo

	mu       sync.Mutex // guards the fields below
	id       backend.ID
	written  clockReading // when id was written
	lost     error        // set once the lock is lost
	watchers []context.CancelCauseFunc

	stop chan struct{}
	done sync.WaitGroup
}

// Retrying a conflicting lock (Options.RetryLock): the first retry comes
// after lockRetryStart, each later one after twice the wait before, up to
// lockRetryMax, as restic's --retry-lock does. Each try writes a lock file,
// lists and reads the others, and removes its own on a conflict: a few
// requests, so a try every minute costs a remote repository nothing.
var (
	lockRetryStart = 5 * time.Second
	lockRetryMax   = time.Minute
)

// Lock takes a shared (backup, restore, check) or exclusive (prune, repair)
// lock. A conflicting lock that is not stale makes it fail with a
// *LockedError, at once, or after retrying for Options.RetryLock. A
// location that refuses to store the lock file makes it fail with an
// error wrapping ErrLocationReadOnly.
//
// Each try looks at the other locks anew, and records this device's
// sightings of them (see the staleness rule above): a retry that watches
// a lock for longer than lockStale without its holder refreshing it finds
// it stale and takes the lock. A live holder refreshes its lock every
// lockRefresh, so only a lock whose holder is gone goes stale so; with
// --retry-lock longer than 30 minutes, waiting out a crashed process's
// lock is what a retry does.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	l, err := r.tryLock(ctx, exclusive)
	var locked *LockedError
	if r.opts.RetryLock <= 0 || !errors.As(err, &locked) {
		return l, err
	}
	start := time.Now() // monotonic: a wait, not a time recorded
	wait := lockRetryStart
	for {
		left := r.opts.RetryLock - time.Since(start)
		if left <= 0 {
			return nil, fmt.Errorf("%w (gave up after retrying for %s)", err, r.opts.RetryLock)
		}
		d := min(wait, left)
		r.opts.Warn(fmt.Sprintf("%v; retrying in %s (--retry-lock: %s left)", err, d.Round(time.Second), left.Round(time.Second)))
		if backend.Sleep(ctx, d) != nil {
			return nil, fmt.Errorf("lock: %w", context.Cause(ctx))
		}
		wait = min(2*wait, lockRetryMax)
		l, err = r.tryLock(ctx, exclusive)
		if !errors.As(err, &locked) {
			return l, err
		}
	}
}

// tryLock is one try of Lock.
func (r *Repository) tryLock(ctx context.Context, exclusive bool) (*Lock, error) {
	info := LockInfo{
		Time:      r.opts.Now().UTC(),
		Exclusive: exclusive,
		Hostname:  r.opts.Hostname,
		Username:  r.opts.Username,
		PID:       os.Getpid(),
		UID:       uint32(os.Getuid()),
		GID:       uint32(os.Getgid()),
	}
	written := r.clock()
	id, err := r.writeLock(ctx, info)
	if err != nil {
		if backend.IsWriteRefused(err) {
			return nil, fmt.Errorf("lock: %w: %w", ErrLocationReadOnly, err)
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	conflict, err := r.findConflict(ctx, id, exclusive)
	if err == nil && conflict != nil {
		err = conflict
	}
	if err != nil {
		_ = r.DeleteFile(context.WithoutCancel(ctx), backend.LockFile, id)
		return nil, err
	}
	l := &Lock{r: r, info: info, id: id, written: written, stop: make(chan struct{})}
	r.locksHeld.Add(1)
	l.done.Go(l.refreshLoop)
	if exclusive {
		r.heldMu.Lock()
		r.held = l
		r.heldMu.Unlock()
	}
	return l, nil
}

func (r *Repository) writeLock(ctx context.Context, info LockInfo) (backend.ID, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return backend.ID{}, err
	}
	return r.SaveFile(ctx, backend.LockFile, b)
}

// findConflict looks for a live lock other than ours that conflicts.
func (r *Repository) findConflict(ctx context.Context, ours backend.ID, exclusive bool) (*LockedError, error) {
	locks, err := r.viewLocks(ctx, ours)
	if err != nil {
		return nil, err
	}
	for _, l := range locks {
		if l.Err != nil || l.Stale {
			continue
		}
		if exclusive || l.Info.Exclusive {
			return &LockedError{ID: l.ID, Holder: l.Info, Seen: l.Seen}, nil
		}
	}
	return nil, nil
}

// LockState is what this device makes of one lock file.
type LockState struct {
	ID backend.ID
	// Info is the lock's content; zero when Err is set.
	Info LockInfo
	// Err says the file is not a lock this repository's keys open (it is
	// damaged, or junk someone put there). Such a file blocks no one.
	Err error
	// Seen is how long this device has seen the file, by its own clocks.
	Seen time.Duration
	// Stale says the lock's holder is gone; Why says how that is known,
	// or why the lock is taken to be live.
	Stale bool
	Why   string
	// Removed is set by RemoveLocks for the files it deleted.
	Removed bool
}

// viewLocks reads every lock file but ours, records this device's
// sightings of them, and judges each. A file that vanishes meanwhile is
// left out. A read that fails for another reason than the file's content
// (the network, the disk) is an error: a lock that cannot be read cannot
// be judged, and ignoring it could let a prune run under a live backup.
func (r *Repository) viewLocks(ctx context.Context, ours backend.ID) ([]LockState, error) {
	type listed struct {
		id   backend.ID
		size int64
	}
	var files []listed
	if err := r.ListFiles(ctx, backend.LockFile, func(id backend.ID, size int64) error {
		if id != ours {
			files = append(files, listed{id, size})
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	var locks []LockState
	for _, f := range files {
		st := LockState{ID: f.id}
		if f.size > maxLockFile {
			st.Err = fmt.Errorf("lock %s: %w: %d bytes is too large for a lock", f.id.Str(), ErrFormat, f.size)
			locks = append(locks, st)
			continue
		}
		plain, err := r.LoadFile(ctx, backend.LockFile, f.id)
		if backend.IsNotExist(err) {
			continue // removed meanwhile
		}
		if err == nil {
			st.Info, err = decodeLock(plain)
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrDamaged), errors.Is(err, ErrFormat):
			st.Err = fmt.Errorf("lock %s: %w", f.id.Str(), err)
		default:
			return nil, fmt.Errorf("read lock %s: %w", f.id.Str(), err)
		}
		locks = append(locks, st)
	}
	var readable []backend.ID
	for _, l := range locks {
		if l.Err == nil {
			readable = append(readable, l.ID)
		}
	}
	seen := r.sightLocks(readable)
	for i := range locks {
		l := &locks[i]
		if l.Err != nil {
			l.Why = "not a lock this repository's keys open: it blocks no one"
			continue
		}
		l.Seen = seen[l.ID]
		l.Stale, l.Why = r.judgeLock(l.Info, l.Seen)
	}
	return locks, nil
}

// judgeLock decides whether a lock is stale, from what this device
// observed: its process on this host is gone, or this device has seen
// the same lock file for longer than lockStale.
func (r *Repository) judgeLock(info LockInfo, seen time.Duration) (stale bool, why string) {
	running := ""
	if info.Hostname == r.opts.Hostname && info.PID > 0 {
		if err := syscall.Kill(info.PID, 0); errors.Is(err, syscall.ESRCH) {
			return true, fmt.Sprintf("its process %d on this host is gone", info.PID)
		}
		running = fmt.Sprintf("a process %d runs on this host; ", info.PID)
	}
	if seen > lockStale {
		return true, fmt.Sprintf("%sthis device has seen it unrefreshed for %s (a live holder writes a new lock file every %s)",
			running, seen.Round(time.Second), lockRefresh)
	}
	if seen == 0 {
		return false, fmt.Sprintf("%sthis device sees it for the first time; it is stale once seen unrefreshed for %s", running, lockStale)
	}
	return false, fmt.Sprintf("%sthis device has seen it unrefreshed for %s; it is stale once that reaches %s",
		running, seen.Round(time.Second), lockStale)
}

// decodeLock parses a lock file's plaintext. Errors wrap ErrFormat. A PID
// outside what the kernel hands out is refused: it would be truncated in
// the liveness check and could name a live process.
func decodeLock(plain []byte) (LockInfo, error) {
	var info LockInfo
	if err := json.Unmarshal(plain, &info); err != nil {
		return LockInfo{}, fmt.Errorf("%w: lock: %v", ErrFormat, err)
	}
	if info.PID < 0 || info.PID > math.MaxInt32 {
		return LockInfo{}, fmt.Errorf("%w: lock: PID %d out of range", ErrFormat, info.PID)
	}
	return info, nil
}

func (l *Lock) refreshLoop() {
	t := time.NewTicker(lockTick)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := l.r.clock()
		l.mu.Lock()
		age := l.written.until(now)
		l.mu.Unlock()
		if age >= lockLost {
			// Refreshes failed, or the machine slept: another host
			// may already take the lock for stale, so even a refresh
			// that works now comes too late.
			l.lose(fmt.Errorf("%w: not refreshed for %s (the limit is %s, and other hosts take a lock unrefreshed for %s for stale)",
				ErrLockLost, age.Round(time.Second), lockLost, lockStale))
			return
		}
		if age < lockRefresh {
			continue
		}
		if err := l.refresh(now); err != nil {
			if !failing {
				l.r.opts.Warn(fmt.Sprintf("warning: refresh lock: %v (retrying every %s)", err, lockTick))
			}
			failing = true
			continue
		}
		failing = false
	}
}

// refresh writes a lock with a fresh time, then removes the old one.
func (l *Lock) refresh(now clockReading) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info := l.info
	info.Time = now.wall.UTC()
	id, err := l.r.writeLock(ctx, info)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.id
	l.id, l.written = id, now
	l.mu.Unlock()
	_ = l.r.DeleteFile(ctx, backend.LockFile, old)
	return nil
}

// lostErr returns the error the lock was lost with, or nil.
func (l *Lock) lostErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// lose records that the lock is lost and cancels every Context.
func (l *Lock) lose(err error) {
	l.r.opts.Warn("warning: " + err.Error())
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lost = err
	for _, cancel := range l.watchers {
		cancel(err)
	}
	l.watchers = nil
}

// Context returns a context derived from ctx that is cancelled, with a
// cause wrapping ErrLockLost, if the lock is lost: not refreshed for
// lockLost, so that other hosts may soon take it for stale. The work the
// lock protects runs under it. cancel releases the context.
func (l *Lock) Context(ctx context.Context) (_ context.Context, cancel context.CancelFunc) {
	ctx, cancelCause := context.WithCancelCause(ctx)
	if l == nil {
		return ctx, func() { cancelCause(context.Canceled) }
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		cancelCause(l.lost)
	} else {
		l.watchers = append(l.watchers, cancelCause)
	}
	return ctx, func() { cancelCause(context.Canceled) }
}

// Unlock stops refreshing and removes the lock file. It works after ctx
// is cancelled: removal gets a short grace period of its own.
func (l *Lock) Unlock(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.r.heldMu.Lock()
	if l.r.held == l {
		l.r.held = nil
	}
	l.r.heldMu.Unlock()
	close(l.stop)
	l.done.Wait()
	l.r.locksHeld.Add(-1)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	l.mu.Lock()
	id := l.id
	l.mu.Unlock()
	return l.r.DeleteFile(ctx, backend.LockFile, id)
}

// RemoveLocks deletes stale locks, or every lock file when all is set,
// and returns every lock file it found, the removed ones marked. Without
// all, it keeps live locks and files that are not locks (they block no
// one), and LockState.Why says why each was kept; with all, it deletes
// every file in locks/ without reading it.
func (r *Repository) RemoveLocks(ctx context.Context, all bool) ([]LockState, error) {
	var locks []LockState
	if all {
		if err := r.ListFiles(ctx, backend.LockFile, func(id backend.ID, _ int64) error {
			locks = append(locks, LockState{ID: id, Why: "--remove-all"})
			return nil
		}); err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
		}
	} else {
		var err error
		if locks, err = r.viewLocks(ctx, backend.ID{}); err != nil {
			return nil, err
		}
	}
	for i := range locks {
		l := &locks[i]
		if !all && (l.Err != nil || !l.Stale) {
			continue
		}
		if derr := r.DeleteFile(ctx, backend.LockFile, l.ID); derr != nil && !backend.IsNotExist(derr) {
			return locks, derr
		}
		l.Removed = true
	}
	return locks, nil
}
