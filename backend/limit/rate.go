package limit

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

var (
	_ backend.Backend = (*Rate)(nil)
	_ backend.Wrapper = (*Rate)(nil)
)

// Rate bounds the bytes per second that go into the backend it wraps
// (Put's content) and come out of it (what Get's callback reads), as
// restic's --limit-upload and --limit-download do. All requests share
// the two budgets, so the bound holds whatever the concurrency. List,
// Stat and Delete move no file content and are not limited.
type Rate struct {
	inner    backend.Backend
	up, down *bucket // nil: unlimited
}

// NewRate wraps inner with upload and download limits in bytes per
// second; 0 means no limit that way. Both 0 returns inner itself.
func NewRate(inner backend.Backend, upload, download int64) backend.Backend {
	if upload <= 0 && download <= 0 {
		return inner
	}
	return newRate(inner, upload, download, nil, nil)
}

// newRate is NewRate with a clock (nil: the real one), for tests.
func newRate(inner backend.Backend, upload, download int64, now func() time.Time, sleep func(context.Context, time.Duration) error) *Rate {
	return &Rate{inner: inner, up: newBucket(upload, now, sleep), down: newBucket(download, now, sleep)}
}

// bucket is a token bucket of bytes, filled at rate per second up to
// burst. A taker may run it into debt (take more than it holds) and then
// sleeps until the debt is paid, so concurrent takers queue behind each
// other and the long-run rate is exact.
type bucket struct {
	rate  float64 // bytes per second
	burst float64
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time
}

// burstTime is how much of the rate a bucket holds when full: a tenth of
// a second's worth, so that a short request after a pause goes at full
// speed while even a short transfer keeps close to the rate.
const burstTime = 100 * time.Millisecond

// maxStep is the most one Read passes through at once, so that waits are
// spread over a transfer rather than taken in one long sleep.
const maxStep = 32 << 10

// newBucket returns a bucket for rate bytes per second, nil for no limit.
// now and sleep are the clock (nil: the real one).
func newBucket(rate int64, now func() time.Time, sleep func(context.Context, time.Duration) error) *bucket {
	if rate <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = backend.Sleep
	}
	b := &bucket{rate: float64(rate), now: now, sleep: sleep}
	b.burst = b.rate * burstTime.Seconds()
	b.tokens = b.burst
	b.last = now()
	return b
}

// take takes n bytes' worth of tokens, sleeping while the bucket is in
// debt; it returns early with ctx's error.
func (b *bucket) take(ctx context.Context, n int) error {
	b.mu.Lock()
	now := b.now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	debt := -b.tokens
	b.mu.Unlock()
	if debt <= 0 {
		return nil
	}
	return b.sleep(ctx, time.Duration(debt/b.rate*float64(time.Second)))
}

// reader passes reads through a bucket.
type reader struct {
	ctx context.Context
	rd  io.Reader
	b   *bucket
}

func (r *reader) Read(p []byte) (int, error) {
	if len(p) > maxStep {
		p = p[:maxStep]
	}
	n, err := r.rd.Read(p)
	if n > 0 {
		if werr := r.b.take(r.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// rewindReader is a backend.RewindReader through a bucket.
type rewindReader struct {
	reader
	inner backend.RewindReader
}

func (r *rewindReader) Rewind() error { return r.inner.Rewind() }
func (r *rewindReader) Length() int64 { return r.inner.Length() }

// Unwrap returns the wrapped backend (the backend.Wrapper convention).
func (b *Rate) Unwrap() backend.Backend { return b.inner }

// Location implements backend.Backend.
func (b *Rate) Location() string { return b.inner.Location() }

// Properties implements backend.Backend.
func (b *Rate) Properties() backend.Properties { return b.inner.Properties() }

// List implements backend.Backend.
func (b *Rate) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	return b.inner.List(ctx, t, fn)
}

// Stat implements backend.Backend.
func (b *Rate) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	return b.inner.Stat(ctx, h)
}

// Get implements backend.Backend: fn reads at most the download rate.
func (b *Rate) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	if b.down == nil {
		return b.inner.Get(ctx, h, length, offset, fn)
	}
	return b.inner.Get(ctx, h, length, offset, func(rd io.Reader) error {
		return fn(&reader{ctx: ctx, rd: rd, b: b.down})
	})
}

// Put implements backend.Backend: the content is read at most at the
// upload rate, a resend after Rewind included.
func (b *Rate) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if b.up == nil {
		return b.inner.Put(ctx, h, rd)
	}
	return b.inner.Put(ctx, h, &rewindReader{reader: reader{ctx: ctx, rd: rd, b: b.up}, inner: rd})
}

// Delete implements backend.Backend.
func (b *Rate) Delete(ctx context.Context, h backend.Handle) error { return b.inner.Delete(ctx, h) }

// Close implements backend.Backend.
func (b *Rate) Close() error { return b.inner.Close() }
