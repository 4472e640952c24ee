package limit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
)

// fakeTime is a clock whose sleeps advance it and are added up.
type fakeTime struct {
	mu    sync.Mutex // guards t and slept
	t     time.Time
	slept time.Duration
}

func newFakeTime() *fakeTime { return &fakeTime{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeTime) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeTime) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
	f.slept += d
	return nil
}

func (f *fakeTime) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

func near(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= float64(time.Millisecond)
}

// TestBucketRate: taking n bytes from a full bucket of rate r waits
// (n - r/10)/r seconds in all (a tenth of a second's worth passes at
// once); after a pause the bucket is full again, but never fuller.
func TestBucketRate(t *testing.T) {
	ft := newFakeTime()
	const rate = 100 << 10
	b := newBucket(rate, ft.now, ft.sleep)
	ctx := context.Background()
	for range 1000 {
		if err := b.take(ctx, 1<<10); err != nil { // 1000 KiB in all
			t.Fatal(err)
		}
	}
	if want := 9900 * time.Millisecond; !near(ft.slept, want) {
		t.Fatalf("slept %v for 1000 KiB at 100 KiB/s, want %v", ft.slept, want)
	}
	ft.advance(time.Hour) // idle: the bucket refills to one second's worth
	before := ft.slept
	if err := b.take(ctx, rate/10); err != nil {
		t.Fatal(err)
	}
	if ft.slept != before {
		t.Errorf("a burst of a tenth of a second's worth after a pause waited %v", ft.slept-before)
	}
	if err := b.take(ctx, rate); err != nil {
		t.Fatal(err)
	}
	if !near(ft.slept-before, time.Second) {
		t.Errorf("a second burst waited %v, want 1s (the bucket does not grow past its burst)", ft.slept-before)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.take(cctx, rate); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait: %v", err)
	}
}

// TestRatePutGet: a Put and a Get through Rate move the content intact
// and wait as the limits say, each way on its own budget.
func TestRatePutGet(t *testing.T) {
	ft := newFakeTime()
	inner := mem.New()
	const up, down = 10 << 10, 40 << 10
	r := newRate(inner, up, down, ft.now, ft.sleep)
	data := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16) // 100 KiB
	ctx := context.Background()
	h := backend.Handle{Type: backend.PackFile, Name: backend.Hash(data).String()}
	if err := r.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	if want := 9900 * time.Millisecond; !near(ft.slept, want) { // (100-1)/10
		t.Errorf("Put of 100 KiB at 10 KiB/s slept %v, want %v", ft.slept, want)
	}
	before := ft.slept
	var got []byte
	if err := r.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		got, err = io.ReadAll(rd)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("Get returned other bytes")
	}
	if want := 2400 * time.Millisecond; !near(ft.slept-before, want) { // (100-4)/40
		t.Errorf("Get of 100 KiB at 40 KiB/s slept %v, want %v", ft.slept-before, want)
	}
	if NewRate(inner, 0, 0) != backend.Backend(inner) {
		t.Error("no limits: want the backend itself")
	}
}
