package repo

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/mem"
)

// fastLockRetry shortens the waits between lock tries for a test.
func fastLockRetry(t *testing.T) {
	start, maxWait := lockRetryStart, lockRetryMax
	lockRetryStart, lockRetryMax = time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { lockRetryStart, lockRetryMax = start, maxWait })
}

// TestLockRetryWaitsForRelease: with RetryLock, a conflicting lock makes
// Lock warn and try again, and it gets the lock once the holder lets go.
func TestLockRetryWaitsForRelease(t *testing.T) {
	fastLockRetry(t)
	be := mem.New()
	holder := testInit(t, be, InitOptions{Options: Options{Hostname: "here"}})
	held, err := holder.Lock(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var warnings []string
	waiter := testOpen(t, be, Options{Hostname: "here", RetryLock: time.Minute, Warn: func(msg string) {
		warnings = append(warnings, msg)
		// Warned of the conflict: the holder lets go now.
		once.Do(func() {
			if err := held.Unlock(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}})
	l, err := waiter.Lock(context.Background(), false)
	if err != nil {
		t.Fatalf("lock after the holder let go: %v", err)
	}
	_ = l.Unlock(context.Background())
	if len(warnings) == 0 || !strings.Contains(warnings[0], "retrying in") {
		t.Errorf("warnings %q, want one saying it retries", warnings)
	}
}

// TestLockRetryGivesUp: a lock still held when RetryLock has passed is a
// *LockedError that says how long cairn tried; without RetryLock there is
// no retry at all.
func TestLockRetryGivesUp(t *testing.T) {
	fastLockRetry(t)
	be := mem.New()
	holder := testInit(t, be, InitOptions{Options: Options{Hostname: "here"}})
	held, err := holder.Lock(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock(context.Background())
	tries := 0
	r := testOpen(t, be, Options{Hostname: "here", RetryLock: 20 * time.Millisecond, Warn: func(string) { tries++ }})
	_, err = r.Lock(context.Background(), false)
	var le *LockedError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "gave up after retrying for 20ms") || tries == 0 {
		t.Fatalf("after %d retries: %v", tries, err)
	}
	once := testOpen(t, be, Options{Hostname: "here"})
	if _, err := once.Lock(context.Background(), false); !errors.As(err, &le) || strings.Contains(err.Error(), "retrying") {
		t.Fatalf("without RetryLock: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r2 := testOpen(t, be, Options{Hostname: "here", RetryLock: time.Hour, Warn: func(string) {}})
	if _, err := r2.Lock(ctx, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while retrying: %v", err)
	}
}

// TestLockRetrySeesStale: the lock of a holder that is gone (another
// host's, never refreshed) goes stale while a retry watches it: once this
// device has seen it for longer than lockStale, the retry takes the lock.
func TestLockRetrySeesStale(t *testing.T) {
	fastLockRetry(t)
	clk := newFakeClock()
	r := testInit(t, mem.New(), InitOptions{Options: Options{Hostname: "here", RetryLock: time.Hour, Warn: func(string) {
		clk.advance(10 * time.Minute) // time passes between tries
	}}})
	r.clockFn = clk.read
	foreignLock(t, r, clk.read().wall)
	l, err := r.Lock(context.Background(), true)
	if err != nil {
		t.Fatalf("a dead holder's lock watched for %s: %v", 4*10*time.Minute, err)
	}
	_ = l.Unlock(context.Background())
	if seen := clk.read().up - time.Hour; seen <= lockStale {
		t.Errorf("took the lock after watching it for %s, not beyond %s", seen, lockStale)
	}
}
