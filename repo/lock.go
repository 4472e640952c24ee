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

// Lock timing. A lock is refreshed (rewritten) every lockRefresh while it
// is held; one that has not been refreshed for lockStale is taken to belong
// to a process that died on another host. A lock from this host whose
// process is gone is stale at once.
var (
	lockRefresh = 5 * time.Minute
	lockStale   = 30 * time.Minute
)

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
}

func (e *LockedError) Error() string {
	kind := "locked"
	if e.Holder.Exclusive {
		kind = "locked exclusively"
	}
	return fmt.Sprintf("repository is %s by PID %d on %s by %s since %s (lock %s; run 'cairn unlock' if that process is gone)",
		kind, e.Holder.PID, e.Holder.Hostname, e.Holder.Username, e.Holder.Time.Local().Format("2006-01-02 15:04:05"), e.ID.Str())
}

// Lock is a held repository lock, refreshed in the background until
// Unlock.
type Lock struct {
	r    *Repository
	info LockInfo

	mu sync.Mutex // guards id
	id backend.ID

	stop chan struct{}
	done sync.WaitGroup
}

// Lock takes a shared (backup, restore, check) or exclusive (prune, repair)
// lock. A conflicting lock that is not stale makes it fail with a
// *LockedError.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	info := LockInfo{
		Time:      r.opts.Now().UTC(),
		Exclusive: exclusive,
		Hostname:  r.opts.Hostname,
		Username:  r.opts.Username,
		PID:       os.Getpid(),
		UID:       uint32(os.Getuid()),
		GID:       uint32(os.Getgid()),
	}
	id, err := r.writeLock(ctx, info)
	if err != nil {
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
	l := &Lock{r: r, info: info, id: id, stop: make(chan struct{})}
	l.done.Go(l.refreshLoop)
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
	var conflict *LockedError
	err := r.eachLock(ctx, func(id backend.ID, info LockInfo, err error) error {
		if id == ours || err != nil || r.lockIsStale(info) {
			return nil
		}
		if exclusive || info.Exclusive {
			conflict = &LockedError{ID: id, Holder: info}
		}
		return nil
	})
	return conflict, err
}

// eachLock calls fn for every lock file with its content or read error.
func (r *Repository) eachLock(ctx context.Context, fn func(id backend.ID, info LockInfo, err error) error) error {
	var ids []backend.ID
	if err := r.ListFiles(ctx, backend.LockFile, func(id backend.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	for _, id := range ids {
		plain, err := r.LoadFile(ctx, backend.LockFile, id)
		if backend.IsNotExist(err) {
			continue // removed meanwhile
		}
		var info LockInfo
		if err == nil {
			if info, err = decodeLock(plain); err != nil {
				err = fmt.Errorf("lock %s: %w", id.Str(), err)
			}
		}
		if err := fn(id, info, err); err != nil {
			return err
		}
	}
	return nil
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

func (r *Repository) lockIsStale(info LockInfo) bool {
	if r.opts.Now().Sub(info.Time) > lockStale {
		return true
	}
	if info.Hostname == r.opts.Hostname && info.PID > 0 {
		if err := syscall.Kill(info.PID, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}

func (l *Lock) refreshLoop() {
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.refresh()
		}
	}
}

// refresh writes a lock with a fresh time, then removes the old one.
func (l *Lock) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info := l.info
	info.Time = l.r.opts.Now().UTC()
	id, err := l.r.writeLock(ctx, info)
	if err != nil {
		l.r.opts.Warn(fmt.Sprintf("warning: refresh lock: %v", err))
		return
	}
	l.mu.Lock()
	old := l.id
	l.id = id
	l.mu.Unlock()
	_ = l.r.DeleteFile(ctx, backend.LockFile, old)
}

// Unlock stops refreshing and removes the lock file. It works after ctx
// is cancelled: removal gets a short grace period of its own.
func (l *Lock) Unlock(ctx context.Context) error {
	close(l.stop)
	l.done.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	l.mu.Lock()
	id := l.id
	l.mu.Unlock()
	return l.r.DeleteFile(ctx, backend.LockFile, id)
}

// RemoveLocks deletes stale locks, or every lock when all is set, and
// returns how many it removed.
func (r *Repository) RemoveLocks(ctx context.Context, all bool) (int, error) {
	n := 0
	err := r.eachLock(ctx, func(id backend.ID, info LockInfo, err error) error {
		if !all && err == nil && !r.lockIsStale(info) {
			return nil
		}
		if !all && err != nil {
			// Unreadable locks block no one but clutter the folder; they
			// go only with --remove-all.
			return nil
		}
		if derr := r.DeleteFile(ctx, backend.LockFile, id); derr != nil && !backend.IsNotExist(derr) {
			return derr
		}
		n++
		return nil
	})
	return n, err
}
