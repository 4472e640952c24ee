package repo

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/backend/limit"
	"github.com/cairn-backup/cairn/backend/mem"
)

// TestForEachParallelRule checks the pools' one cancellation rule on
// forEachParallel: at most Connections calls at once; the first error
// cancels the context the calls in flight get and starts no more; that
// error is returned once they have all returned. A caller's context that
// ends first is reported even though no call failed.
func TestForEachParallelRule(t *testing.T) {
	const workers, n = 4, 100
	r := &Repository{be: limit.New(mem.New(), workers)}
	errBoom := errors.New("boom")
	var calls, running, most atomic.Int32
	err := r.forEachParallel(context.Background(), n, func(ctx context.Context, i int) error {
		calls.Add(1)
		now := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		if i == workers-1 {
			return errBoom
		}
		<-ctx.Done() // only the error ends the others
		return ctx.Err()
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("err %v, want the first error", err)
	}
	if c := calls.Load(); c > workers {
		t.Errorf("%d calls, want at most the %d that could start before the error", c, workers)
	}
	if m := most.Load(); m > workers {
		t.Errorf("%d calls at once, want at most %d", m, workers)
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("stopped by the caller")
	calls.Store(0)
	err = r.forEachParallel(ctx, n, func(ctx context.Context, i int) error {
		if calls.Add(1) == 1 {
			cancel(cause)
		}
		return nil
	})
	if !errors.Is(err, cause) || calls.Load() >= n {
		t.Fatalf("caller cancelled after %d of %d calls: err %v, want its cause", calls.Load(), n, err)
	}
}
