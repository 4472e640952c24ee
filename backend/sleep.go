package backend

import (
	"context"
	"time"
)

// Sleep waits until d has passed or ctx ends, whichever comes first: nil
// in the first case, ctx.Err() in the second. A d of zero or less does
// not wait and returns ctx.Err(). Retries, rate limits and injected
// faults wait with it, so a cancelled operation stops waiting at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
