package backend

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"passes", live, time.Nanosecond, nil},
		{"no wait", live, 0, nil},
		{"negative", live, -time.Hour, nil},
		// An hour's sleep must end with the context: were it not, the
		// test would hang (and fail at the test binary's timeout).
		{"cancelled", cancelled, time.Hour, context.Canceled},
		{"cancelled, no wait", cancelled, 0, context.Canceled},
	} {
		if err := Sleep(c.ctx, c.d); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Sleep = %v, want %v", c.name, err, c.want)
		}
	}

	// A context that ends during the sleep ends it.
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, time.Hour) }()
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep cancelled while waiting = %v", err)
	}
}
