// Package limit wraps a backend to bound how many requests run at once,
// normally to the backend's own Properties().Connections (New), or how
// many bytes a second go up and come down (NewRate: --limit-upload and
// --limit-download).
//
// A request holds a slot from its start until it returns; for Get that
// includes the callback, since the reader it is given is a live
// connection, so a Get callback must not call the same limited backend.
// List holds its slot only while the wrapped backend works: the slot is
// given back while the callback runs, so the callback may call the backend
// (to load each listed file, say) even with a single slot.
package limit

import (
	"context"
	"fmt"
	"io"

	"github.com/cairn-backup/cairn/backend"
)

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Wrapper = (*Backend)(nil)
)

// Backend bounds the concurrent requests to the backend it wraps.
type Backend struct {
	inner backend.Backend
	slots chan struct{}
}

// New wraps inner, allowing n requests at once; n <= 0 means
// inner.Properties().Connections (at least one).
func New(inner backend.Backend, n int) *Backend {
	if n <= 0 {
		n = max(inner.Properties().Connections, 1)
	}
	return &Backend{inner: inner, slots: make(chan struct{}, n)}
}

// acquire waits for a free slot or for ctx to end.
func (b *Backend) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Backend) release() { <-b.slots }

// Unwrap returns the wrapped backend (the backend.Wrapper convention),
// so optional interfaces such as backend.TempCleaner are found below
// it. Calls made on it directly do not count against the limit.
func (b *Backend) Unwrap() backend.Backend { return b.inner }

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.inner.Location() }

// Properties implements backend.Backend: the inner backend's, with
// Connections set to this wrapper's limit.
func (b *Backend) Properties() backend.Properties {
	p := b.inner.Properties()
	p.Connections = cap(b.slots)
	return p
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := b.acquire(ctx); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	held := true
	defer func() {
		if held {
			b.release()
		}
	}()
	return b.inner.List(ctx, t, func(fi backend.FileInfo) error {
		b.release()
		held = false
		if err := fn(fi); err != nil {
			return err
		}
		if err := b.acquire(ctx); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		held = true
		return nil
	})
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := b.acquire(ctx); err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	defer b.release()
	return b.inner.Stat(ctx, h)
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	if err := b.acquire(ctx); err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	defer b.release()
	return b.inner.Get(ctx, h, length, offset, fn)
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := b.acquire(ctx); err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	defer b.release()
	return b.inner.Put(ctx, h, rd)
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, h backend.Handle) error {
	if err := b.acquire(ctx); err != nil {
		return fmt.Errorf("delete %s: %w", h, err)
	}
	defer b.release()
	return b.inner.Delete(ctx, h)
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return b.inner.Close() }
