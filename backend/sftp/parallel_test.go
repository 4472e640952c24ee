package sftp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestParallelRule checks the pools' one cancellation rule on parallel: at
// most folderWorkers calls at once; the first error cancels the context
// the calls in flight get and starts no more; that error is returned once
// they have all returned; a caller's context that ends first is reported.
func TestParallelRule(t *testing.T) {
	items := make([]string, 10*folderWorkers)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	errBoom := errors.New("boom")
	var calls, running, most atomic.Int32
	err := parallel(context.Background(), items, func(ctx context.Context, it string) error {
		calls.Add(1)
		now := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		if it == fmt.Sprint(folderWorkers-1) {
			return errBoom
		}
		<-ctx.Done() // only the error ends the others
		return ctx.Err()
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("err %v, want the first error", err)
	}
	if c, m := calls.Load(), most.Load(); c > folderWorkers || m > folderWorkers {
		t.Errorf("%d calls, %d at once; want at most %d", c, m, folderWorkers)
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("stopped by the caller")
	calls.Store(0)
	err = parallel(ctx, items, func(ctx context.Context, it string) error {
		if calls.Add(1) == 1 {
			cancel(cause)
		}
		return nil
	})
	if !errors.Is(err, cause) || int(calls.Load()) >= len(items) {
		t.Fatalf("caller cancelled after %d of %d calls: err %v, want its cause", calls.Load(), len(items), err)
	}
}
