package backend_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
)

// cleaner counts calls and reports a fixed result.
type cleaner struct {
	backend.Backend
	calls int
	age   time.Duration
}

func (c *cleaner) RemoveStaleTemp(_ context.Context, olderThan time.Duration) (int, int64, error) {
	c.calls++
	c.age = olderThan
	return 3, 300, nil
}

// wrap is a wrapper following the Unwrap convention; inner may be set
// later to make a cycle.
type wrap struct {
	backend.Backend
	inner backend.Backend
}

func (w *wrap) Unwrap() backend.Backend { return w.inner }

func TestRemoveStaleTempHelper(t *testing.T) {
	ctx := t.Context()
	m := mem.New()

	// No cleaner anywhere: nothing to do.
	if n, size, err := backend.RemoveStaleTemp(ctx, &wrap{Backend: m, inner: m}, time.Hour); n != 0 || size != 0 || err != nil {
		t.Errorf("no cleaner: %d, %d, %v; want 0, 0, nil", n, size, err)
	}
	if n, _, err := backend.RemoveStaleTemp(ctx, &wrap{Backend: m}, time.Hour); n != 0 || err != nil {
		t.Errorf("wrapper of nil: %d, %v; want 0, nil", n, err)
	}

	// The first cleaner down the chain is called, once.
	c := &cleaner{Backend: m}
	outer := &wrap{Backend: m, inner: &wrap{Backend: m, inner: c}}
	n, size, err := backend.RemoveStaleTemp(ctx, outer, 2*time.Hour)
	if n != 3 || size != 300 || err != nil || c.calls != 1 || c.age != 2*time.Hour {
		t.Errorf("through two wrappers: %d, %d, %v, %d calls with age %v", n, size, err, c.calls, c.age)
	}

	// A bad age is refused before the cleaner is called.
	for _, age := range []time.Duration{0, -time.Second} {
		if _, _, err := backend.RemoveStaleTemp(ctx, outer, age); err == nil || !backend.IsPermanent(err) {
			t.Errorf("age %v: %v, want a permanent error", age, err)
		}
	}
	if c.calls != 1 {
		t.Errorf("the cleaner ran %d times, want once", c.calls)
	}

	// A cycle of wrappers ends in an error, not a hang.
	a := &wrap{Backend: m}
	b := &wrap{Backend: m, inner: a}
	a.inner = b
	if _, _, err := backend.RemoveStaleTemp(ctx, a, time.Hour); err == nil {
		t.Error("a wrapper cycle: no error")
	}
}
