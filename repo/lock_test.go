package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/mem"
)

// fakeClock is a settable stand-in for this device's clocks (clockFn).
type fakeClock struct {
	mu sync.Mutex // guards c
	c  clockReading
}

func newFakeClock() *fakeClock {
	return &fakeClock{c: clockReading{wall: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), boot: "boot-1", up: time.Hour}}
}

func (f *fakeClock) read() clockReading {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c
}

// advance moves both clocks on by d, as time passing does.
func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c.wall = f.c.wall.Add(d)
	f.c.up += d
}

// set replaces the reading: a wall clock set by hand, a reboot.
func (f *fakeClock) set(fn func(c *clockReading)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.c)
}

// foreignLock writes an exclusive lock of a process on another host,
// with the given time in it.
func foreignLock(t *testing.T, r *Repository, at time.Time) backend.ID {
	t.Helper()
	id, err := r.writeLock(context.Background(), LockInfo{Time: at, Exclusive: true, Hostname: "elsewhere", PID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// wantLocked asserts that an exclusive lock is refused (by the lock id).
func wantLocked(t *testing.T, r *Repository, id backend.ID, what string) {
	t.Helper()
	l, err := r.Lock(context.Background(), true)
	var le *LockedError
	if !errors.As(err, &le) || le.ID != id {
		if l != nil {
			_ = l.Unlock(context.Background())
		}
		t.Fatalf("%s: want the lock refused by %s, got %v", what, id.Str(), err)
	}
}

// wantFree asserts that an exclusive lock is granted.
func wantFree(t *testing.T, r *Repository, what string) {
	t.Helper()
	l, err := r.Lock(context.Background(), true)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestLockTimeFieldDecidesNothing is issue 11 item 1: the holder's clock,
// written into its lock, must not make the lock stale for a reader. A
// lock two hours old or two hours in the future by its time field is
// live when first seen, and stale only once this device has seen it,
// unrefreshed, for longer than lockStale.
func TestLockTimeFieldDecidesNothing(t *testing.T) {
	for _, skew := range []time.Duration{-2 * time.Hour, 2 * time.Hour, -365 * 24 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			r := testInit(t, mem.New(), InitOptions{Options: Options{Hostname: "here"}})
			clk := newFakeClock()
			r.clockFn = clk.read
			id := foreignLock(t, r, clk.read().wall.Add(skew))
			wantLocked(t, r, id, "first seen")
			clk.advance(lockStale - time.Second)
			wantLocked(t, r, id, "seen for just under lockStale")
			clk.advance(2 * time.Second)
			wantFree(t, r, "seen for longer than lockStale")
		})
	}
}

// TestLockSightingsClocks: within one boot the age of a sighting is
// measured on the boot clock, so a wall clock set forward (or back) by
// hours changes nothing; across a reboot the wall clock is all there is,
// and a wall clock that went back counts as no time at all.
func TestLockSightingsClocks(t *testing.T) {
	cache := t.TempDir()
	r := testInit(t, mem.New(), InitOptions{Options: Options{Hostname: "here", CacheDir: cache}})
	clk := newFakeClock()
	r.clockFn = clk.read
	id := foreignLock(t, r, clk.read().wall)
	wantLocked(t, r, id, "first seen")

	clk.set(func(c *clockReading) { c.wall = c.wall.Add(10 * time.Hour); c.up += time.Minute })
	wantLocked(t, r, id, "wall clock set 10 h forward, one minute later")

	// A reboot: the boot clock starts again; the wall clock went back
	// by the 10 h it had been set forward.
	clk.set(func(c *clockReading) { c.boot, c.up = "boot-2", time.Minute; c.wall = c.wall.Add(-10 * time.Hour) })
	wantLocked(t, r, id, "after a reboot, wall clock behind the sighting")
	clk.advance(lockStale - time.Second)
	wantLocked(t, r, id, "just under lockStale in the new boot")
	clk.advance(2 * time.Second)
	wantFree(t, r, "seen for longer than lockStale in the new boot")

	// Across a reboot, the wall clock measures.
	id2 := foreignLock(t, r, clk.read().wall)
	wantLocked(t, r, id2, "second lock, first seen")
	clk.set(func(c *clockReading) {
		c.boot, c.up = "boot-3", time.Second
		c.wall = c.wall.Add(lockStale + time.Second)
	})
	wantFree(t, r, "rebooted, wall clock past lockStale")
}

// TestLockSightingsPersist: a cron job sees a lock left by a crashed
// backup on one night and finds it still there the next: the sightings
// live in the cache, so the second run (another process, another
// Repository) takes it for stale. Without a cache, nothing is stale but
// locks of dead processes on this host.
func TestLockSightingsPersist(t *testing.T) {
	be := mem.New()
	cache := t.TempDir()
	r1 := testInit(t, be, InitOptions{Options: Options{Hostname: "here", CacheDir: cache}})
	clk := newFakeClock()
	r1.clockFn = clk.read
	id := foreignLock(t, r1, clk.read().wall)
	wantLocked(t, r1, id, "first night")
	if _, err := os.Stat(filepath.Join(cache, r1.Config().ID, lockSightingsFile)); err != nil {
		t.Fatalf("no sightings file: %v", err)
	}

	clk.advance(24 * time.Hour)
	r2 := testOpen(t, be, Options{Hostname: "here", CacheDir: cache})
	r2.clockFn = clk.read
	wantFree(t, r2, "next night, same cache")

	r3 := testOpen(t, be, Options{Hostname: "here"})
	r3.clockFn = clk.read
	wantLocked(t, r3, id, "next night, no cache")
	clk.advance(24 * time.Hour)
	r4 := testOpen(t, be, Options{Hostname: "here"})
	r4.clockFn = clk.read
	wantLocked(t, r4, id, "a night later, still no cache")

	// A damaged sightings file is a warning and a fresh start.
	if err := os.WriteFile(filepath.Join(cache, r1.Config().ID, lockSightingsFile), []byte("{nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	var warned []string
	r5 := testOpen(t, be, Options{Hostname: "here", CacheDir: cache, Warn: func(m string) { warned = append(warned, m) }})
	r5.clockFn = clk.read
	wantLocked(t, r5, id, "damaged sightings file")
	if len(warned) != 1 || !strings.Contains(warned[0], "lock sightings") {
		t.Fatalf("warnings: %q", warned)
	}
}

// TestLockRefreshIsANewFile: a refresh writes a lock file under a new ID
// and deletes the old one, so a reader never sees a live holder's file
// for longer than the refresh interval.
func TestLockRefreshIsANewFile(t *testing.T) {
	setLockTiming(t, time.Millisecond)
	be := mem.New()
	r := testInit(t, be, InitOptions{Options: Options{Hostname: "here"}})
	clk := newFakeClock()
	r.clockFn = clk.read
	l, err := r.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(context.Background())
	first := lockFiles(t, be)
	clk.advance(lockRefresh)
	waitUntil(t, "the lock is refreshed", func() bool {
		now := lockFiles(t, be)
		return len(now) == 1 && now[0] != first[0]
	})
}

// TestLockLostWhenRefreshFails: a holder that cannot refresh its lock for
// lockLost gives it up: Lock.Context is cancelled with ErrLockLost, before
// other hosts (lockStale) could take the lock for stale.
func TestLockLostWhenRefreshFails(t *testing.T) {
	setLockTiming(t, time.Millisecond)
	f := faulty.New(mem.New())
	r := testInit(t, f, InitOptions{Options: Options{Hostname: "here"}})
	clk := newFakeClock()
	r.clockFn = clk.read
	var mu sync.Mutex
	var warned []string
	r.opts.Warn = func(m string) { mu.Lock(); warned = append(warned, m); mu.Unlock() }
	l, err := r.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(context.Background())
	ctx, cancel := l.Context(context.Background())
	defer cancel()
	f.AddFault(faulty.Put).Match(backend.LockFile, "").Times(1 << 30).ErrorInstead(errors.New("link down"))
	clk.advance(lockRefresh)
	waitUntil(t, "a refresh is attempted", func() bool { mu.Lock(); defer mu.Unlock(); return len(warned) > 0 })
	if ctx.Err() != nil {
		t.Fatal("lost after one failed refresh")
	}
	clk.advance(lockLost - lockRefresh)
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the lock was not given up")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, ErrLockLost) {
		t.Fatalf("cause %v", cause)
	}
	// A context asked for afterwards is cancelled at once.
	ctx2, cancel2 := l.Context(context.Background())
	defer cancel2()
	if !errors.Is(context.Cause(ctx2), ErrLockLost) {
		t.Fatal("a later Context is not cancelled")
	}
}

// TestLockLostAfterSleep: a machine that slept longer than lockLost (the
// boot clock counts the sleep) gives its lock up even though the refresh
// that follows works: other hosts may have taken it for stale meanwhile.
func TestLockLostAfterSleep(t *testing.T) {
	setLockTiming(t, time.Millisecond)
	r := testInit(t, mem.New(), InitOptions{Options: Options{Hostname: "here"}})
	clk := newFakeClock()
	r.clockFn = clk.read
	l, err := r.Lock(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(context.Background())
	ctx, cancel := l.Context(context.Background())
	defer cancel()
	clk.advance(2 * time.Hour)
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the lock was not given up after the sleep")
	}
}

// TestUnreadableLocks: a file in locks/ that is not a lock (junk put there
// by anyone who can write the folder, or damaged) blocks no one and is
// kept by unlock without --remove-all; one too large to be a lock is not
// even read. But a lock that cannot be read because the backend fails
// stops the locking: ignoring it could let a prune run under a live
// backup.
func TestUnreadableLocks(t *testing.T) {
	ctx := context.Background()
	f := faulty.New(mem.New())
	r := testInit(t, f, InitOptions{Options: Options{Hostname: "here"}})
	for _, junk := range [][]byte{[]byte("junk"), make([]byte, maxLockFile+1)} {
		h := backend.Handle{Type: backend.LockFile, Name: backend.Hash(junk).String()}
		if err := f.Put(ctx, h, backend.NewByteReader(junk)); err != nil {
			t.Fatal(err)
		}
	}
	gets := f.Calls(faulty.Get)
	wantFree(t, r, "junk in locks/")
	if n := f.Calls(faulty.Get) - gets; n != 1 {
		t.Fatalf("read %d lock files, want 1 (the large one is not read)", n)
	}
	locks, err := r.RemoveLocks(ctx, false)
	if err != nil || len(locks) != 2 || removedCount(locks) != 0 {
		t.Fatalf("unlock: %+v %v", locks, err)
	}
	for _, l := range locks {
		if l.Err == nil || !strings.Contains(l.Why, "blocks no one") {
			t.Fatalf("junk judged %+v", l)
		}
	}

	id := foreignLock(t, r, time.Now())
	f.AddFault(faulty.Get).Match(backend.LockFile, id.String()).ErrorInstead(errors.New("connection reset"))
	if l, err := r.Lock(ctx, true); err == nil || !strings.Contains(err.Error(), "connection reset") {
		if l != nil {
			_ = l.Unlock(ctx)
		}
		t.Fatalf("a lock that could not be read was ignored: %v", err)
	}
	if files := lockFiles(t, f); len(files) != 3 {
		t.Fatalf("the failed attempt left its lock: %d files", len(files))
	}
}

// TestLockRefusedLocation: a location that refuses writes makes Lock fail
// with ErrLocationReadOnly.
func TestLockRefusedLocation(t *testing.T) {
	f := faulty.New(mem.New())
	r := testInit(t, f, InitOptions{})
	f.AddFault(faulty.Put).Match(backend.LockFile, "").ErrorInstead(backend.ErrQuota)
	if _, err := r.Lock(context.Background(), false); !errors.Is(err, ErrLocationReadOnly) || !errors.Is(err, backend.ErrQuota) {
		t.Fatalf("got %v", err)
	}
	f.AddFault(faulty.Put).Match(backend.LockFile, "").ErrorInstead(errors.New("timeout"))
	if _, err := r.Lock(context.Background(), false); err == nil || errors.Is(err, ErrLocationReadOnly) {
		t.Fatalf("a failure taken for a refusal: %v", err)
	}
}

// TestLocksConcurrent takes and releases shared and exclusive locks from
// many goroutines of one process (run with -race): an exclusive lock is
// never held together with any other.
func TestLocksConcurrent(t *testing.T) {
	setLockTiming(t, time.Millisecond)
	r := testInit(t, mem.New(), InitOptions{Options: Options{Hostname: "here"}})
	var mu sync.Mutex
	shared, exclusive := 0, 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				ex := (g+i)%4 == 0
				l, err := r.Lock(context.Background(), ex)
				var le *LockedError
				if errors.As(err, &le) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if ex {
					exclusive++
				} else {
					shared++
				}
				if exclusive > 1 || (exclusive == 1 && shared > 0) {
					t.Errorf("exclusive lock held with others: %d exclusive, %d shared", exclusive, shared)
				}
				mu.Unlock()
				ctx, cancel := l.Context(context.Background())
				_ = ctx
				cancel()
				mu.Lock()
				if ex {
					exclusive--
				} else {
					shared--
				}
				mu.Unlock()
				if err := l.Unlock(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// setLockTiming makes the holders check their locks every tick, for the
// length of the test.
func setLockTiming(t *testing.T, tick time.Duration) {
	old := lockTick
	lockTick = tick
	t.Cleanup(func() { lockTick = old })
}

func lockFiles(t *testing.T, be backend.Backend) []string {
	t.Helper()
	var names []string
	if err := be.List(context.Background(), backend.LockFile, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

// waitUntil polls cond, for conditions a background goroutine brings
// about; it gives up after a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}
