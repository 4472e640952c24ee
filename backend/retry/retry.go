// Package retry wraps a backend to retry operations that fail for reasons
// that may pass: a dropped connection, a timeout, a peer restarting.
//
// Waits between attempts grow exponentially with jitter, and both the
// number of attempts and the total time are bounded, so a cron job fails
// within minutes rather than hanging. An operation is never started on a
// cancelled context, so nothing reaches the repository after the user
// pressed Ctrl-C, and errors that describe the request or the stored state
// rather than the connection (backend.IsPermanent) are returned at once.
//
// Put rewinds its content before each attempt. Get runs its callback again
// on each attempt, which the backend contract allows; an error the callback
// returns after reading the bytes it was given is its verdict on those
// bytes and is not retried, unless the reader failed or ended before the
// file did. List hands each file to its callback once, even when a listing
// is retried part-way, at the cost of remembering the names seen.
//
// Stack it outside a connection limit, so that waits hold no connection:
//
//	be = retry.New(limit.New(be, 0), retry.Options{})
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Wrapper = (*Backend)(nil)
)

// Options tune the retries. The zero value gives the defaults.
type Options struct {
	// MaxAttempts bounds the attempts of one operation, the first one
	// included. Default 10: with the default delays the last attempt
	// starts about three minutes after the first, long enough to ride out
	// a router or peer restarting.
	MaxAttempts int
	// MaxElapsed bounds the time from the first attempt to the start of
	// the last. Default 15 minutes.
	MaxElapsed time.Duration
	// InitialDelay is the wait after the first failure; each later wait
	// doubles, up to MaxDelay. Waits are jittered down by up to half, so
	// clients that failed together do not retry together. Defaults: 500ms
	// and one minute.
	InitialDelay time.Duration
	MaxDelay     time.Duration
	// Report, when set, is called before each wait with the operation
	// (such as "put data/<id>"), the error it failed with and the wait, so
	// the CLI can tell the user it is retrying. It runs on the goroutine
	// of the failed call.
	Report func(op string, err error, wait time.Duration)
	// Sleep waits for d or until ctx is done, returning ctx's error then.
	// Nil means a real timer; tests pass a function that returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now reads the clock for MaxElapsed. Nil means time.Now.
	Now func() time.Time
}

// Backend retries the operations of the backend it wraps.
type Backend struct {
	inner backend.Backend
	opts  Options
}

// New wraps inner. It rejects negative options and a MaxDelay below
// InitialDelay.
func New(inner backend.Backend, opts Options) (*Backend, error) {
	if opts.MaxAttempts < 0 || opts.MaxElapsed < 0 || opts.InitialDelay < 0 || opts.MaxDelay < 0 {
		return nil, errors.New("retry options: negative limit")
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 10
	}
	if opts.MaxElapsed == 0 {
		opts.MaxElapsed = 15 * time.Minute
	}
	if opts.InitialDelay == 0 {
		opts.InitialDelay = 500 * time.Millisecond
	}
	if opts.MaxDelay == 0 {
		opts.MaxDelay = max(time.Minute, opts.InitialDelay)
	}
	if opts.MaxDelay < opts.InitialDelay {
		return nil, fmt.Errorf("retry options: maximum delay %v is below the initial delay %v", opts.MaxDelay, opts.InitialDelay)
	}
	if opts.Sleep == nil {
		opts.Sleep = backend.Sleep
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Backend{inner: inner, opts: opts}, nil
}

// delay is the jittered wait after the given failed attempt (1-based).
func (b *Backend) delay(attempt int) time.Duration {
	d := b.opts.InitialDelay
	for i := 1; i < attempt && d < b.opts.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, b.opts.MaxDelay)
	half := d / 2
	return d - half + rand.N(half+1)
}

// run calls attempt until it succeeds, says not to retry, or the limits
// are reached. attempt gets the attempt number (1-based).
func (b *Backend) run(ctx context.Context, op string, attempt func(n int) (retry bool, err error)) error {
	start := b.opts.Now()
	var last error
	for n := 1; ; n++ {
		if cerr := ctx.Err(); cerr != nil {
			if last == nil {
				return fmt.Errorf("%s: %w", op, cerr)
			}
			return fmt.Errorf("stopped retrying: %w; last error: %w", cerr, last)
		}
		retry, err := attempt(n)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return err
			}
			return fmt.Errorf("%w; %w", err, cerr)
		}
		if !retry || backend.IsPermanent(err) {
			return err
		}
		if n >= b.opts.MaxAttempts {
			return fmt.Errorf("giving up after %d attempts: %w", n, err)
		}
		wait := b.delay(n)
		if b.opts.Now().Add(wait).Sub(start) > b.opts.MaxElapsed {
			return fmt.Errorf("giving up after %d attempts in %v: %w", n, b.opts.Now().Sub(start).Round(time.Second), err)
		}
		if b.opts.Report != nil {
			b.opts.Report(op, err, wait)
		}
		last = err
		if err := b.opts.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("stopped retrying: %w; last error: %w", err, last)
		}
	}
}

// Unwrap returns the wrapped backend (the backend.Wrapper convention),
// so optional interfaces such as backend.TempCleaner are found below
// it. Calls made on it directly are not retried.
func (b *Backend) Unwrap() backend.Backend { return b.inner }

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.inner.Location() }

// Properties implements backend.Backend.
func (b *Backend) Properties() backend.Properties { return b.inner.Properties() }

// List implements backend.Backend. An error from fn stops the listing and
// is returned without retrying.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	seen := map[string]struct{}{}
	return b.run(ctx, "list "+t.String(), func(int) (bool, error) {
		var fnErr error
		err := b.inner.List(ctx, t, func(fi backend.FileInfo) error {
			if _, ok := seen[fi.Name]; ok {
				return nil
			}
			seen[fi.Name] = struct{}{}
			fnErr = fn(fi)
			return fnErr
		})
		if fnErr != nil {
			return false, err
		}
		return true, err
	})
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	var fi backend.FileInfo
	err := b.run(ctx, "stat "+h.String(), func(int) (bool, error) {
		var err error
		fi, err = b.inner.Stat(ctx, h)
		return true, err
	})
	if err != nil {
		return backend.FileInfo{}, err
	}
	return fi, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	return b.run(ctx, "get "+h.String(), func(int) (bool, error) {
		var (
			fnErr error
			rd    *countingReader
		)
		err := b.inner.Get(ctx, h, length, offset, func(r io.Reader) error {
			rd = &countingReader{r: r}
			fnErr = fn(rd)
			return fnErr
		})
		if err == nil || fnErr == nil || rd.err != nil {
			// Not the callback's verdict, or the reader broke under it.
			return true, err
		}
		if !rd.eof {
			return false, err
		}
		// The reader ended; was that the end of the file or a connection
		// closed early? Only a short read is worth another attempt.
		fi, serr := b.inner.Stat(ctx, h)
		if serr != nil {
			return true, err
		}
		want := max(fi.Size-offset, 0)
		if length > 0 {
			want = min(want, int64(length))
		}
		return rd.n < want, err
	})
}

// Put implements backend.Backend. On a backend without atomic replace, a
// retry first checks whether an earlier attempt stored the file after all
// (its reply lost), since putting it again would fail.
func (b *Backend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	replace := b.inner.Properties().HasAtomicReplace
	return b.run(ctx, "put "+h.String(), func(n int) (bool, error) {
		if n > 1 && !replace {
			if fi, err := b.inner.Stat(ctx, h); err == nil && fi.Size == rd.Length() {
				return false, nil
			}
		}
		if err := rd.Rewind(); err != nil {
			return false, fmt.Errorf("put %s: rewind: %w", h, err)
		}
		return true, b.inner.Put(ctx, h, rd)
	})
}

// Delete implements backend.Backend. A retry that finds the file gone
// succeeds: the failed attempt deleted it after all.
func (b *Backend) Delete(ctx context.Context, h backend.Handle) error {
	return b.run(ctx, "delete "+h.String(), func(n int) (bool, error) {
		err := b.inner.Delete(ctx, h)
		if n > 1 && backend.IsNotExist(err) {
			return false, nil
		}
		return true, err
	})
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return b.inner.Close() }

// countingReader records how a callback's reads went.
type countingReader struct {
	r   io.Reader
	n   int64
	eof bool
	err error // the first error other than io.EOF
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if errors.Is(err, io.EOF) {
		c.eof = true
	} else if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}
