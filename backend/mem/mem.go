// Package mem is an in-memory backend for tests.
//
// It keeps every file in a map guarded by one mutex, so it is safe for any
// number of goroutines. Tests reach into the map with Files, SetFile,
// Corrupt and DeleteRaw to simulate damage a real store could suffer
// (bit rot, a lost file, a file edited behind the repository's back).
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/cairn-backup/cairn/backend"
)

var _ backend.Backend = (*Backend)(nil)

// Backend stores files in memory. The zero value is not usable; call New.
type Backend struct {
	mu sync.RWMutex
	// files holds each file's bytes. A stored slice is never modified in
	// place (Corrupt and SetFile store fresh copies), so readers may keep
	// using a slice after releasing mu.
	files map[backend.Handle][]byte // guarded by mu
}

// New returns an empty in-memory backend.
func New() *Backend {
	return &Backend{files: make(map[backend.Handle][]byte)}
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return "mem:" }

// Properties implements backend.Backend. Eight connections let tests
// exercise concurrency; the map itself has no limit.
func (b *Backend) Properties() backend.Properties {
	return backend.Properties{Connections: 8, HasAtomicReplace: true}
}

// List implements backend.Backend. It lists a snapshot taken when it
// starts, so fn may call the backend.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := backend.CheckType(ctx, t); err != nil {
		return err
	}
	var infos []backend.FileInfo
	b.mu.RLock()
	for h, data := range b.files {
		if h.Type == t {
			infos = append(infos, backend.FileInfo{Name: h.Name, Size: int64(len(data))})
		}
	}
	b.mu.RUnlock()
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := backend.CheckHandle(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	b.mu.RLock()
	data, ok := b.files[h]
	b.mu.RUnlock()
	if !ok {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, backend.ErrNotExist)
	}
	return backend.FileInfo{Name: h.Name, Size: int64(len(data))}, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	if err := backend.CheckHandle(ctx, "get", h); err != nil {
		return err
	}
	if length < 0 || offset < 0 {
		return backend.Permanent(fmt.Errorf("get %s: invalid range: offset %d, length %d", h, offset, length))
	}
	b.mu.RLock()
	data, ok := b.files[h]
	b.mu.RUnlock()
	if !ok {
		return fmt.Errorf("get %s: %w", h, backend.ErrNotExist)
	}
	if offset >= int64(len(data)) {
		data = nil
	} else {
		data = data[offset:]
	}
	if length > 0 && length < len(data) {
		data = data[:length]
	}
	return fn(bytes.NewReader(data))
}

// Put implements backend.Backend. The content becomes visible only after
// it has been read whole and its length checked.
func (b *Backend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	n, err := backend.CheckPut(ctx, h, rd)
	if err != nil {
		return err
	}
	// Allocate by the declared length only up to a modest size: a reader
	// that lies about its length must not make us reserve gigabytes.
	buf := bytes.NewBuffer(make([]byte, 0, min(n, 64<<20)))
	got, err := io.Copy(buf, io.LimitReader(backend.NewContextReader(ctx, rd), n+1))
	if err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	if got != n {
		return fmt.Errorf("put %s: content is %d bytes, reader said %d", h, got, n)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	b.mu.Lock()
	b.files[h] = buf.Bytes()
	b.mu.Unlock()
	return nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, h backend.Handle) error {
	if err := backend.CheckHandle(ctx, "delete", h); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.files[h]; !ok {
		return fmt.Errorf("delete %s: %w", h, backend.ErrNotExist)
	}
	delete(b.files, h)
	return nil
}

// Close implements backend.Backend. The files stay, so a test may inspect
// them after the code under test closed the backend.
func (b *Backend) Close() error { return nil }

// Files returns a copy of every stored file, bytes included.
func (b *Backend) Files() map[backend.Handle][]byte {
	b.mu.RLock()
	defer b.mu.RUnlock()
	m := make(map[backend.Handle][]byte, len(b.files))
	for h, data := range b.files {
		m[h] = bytes.Clone(data)
	}
	return m
}

// SetFile stores a copy of data under h, bypassing every check but the
// handle's validity, as someone editing the store directly would.
func (b *Backend) SetFile(h backend.Handle, data []byte) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("set %s: %w", h, err)
	}
	data = bytes.Clone(data)
	if data == nil {
		data = []byte{}
	}
	b.mu.Lock()
	b.files[h] = data
	b.mu.Unlock()
	return nil
}

// Corrupt flips the lowest bit of the byte at offset in the stored file,
// as bit rot would. It fails if the file is missing or shorter.
func (b *Backend) Corrupt(h backend.Handle, offset int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.files[h]
	if !ok {
		return fmt.Errorf("corrupt %s: %w", h, backend.ErrNotExist)
	}
	if offset < 0 || offset >= int64(len(data)) {
		return fmt.Errorf("corrupt %s: offset %d outside a %d-byte file", h, offset, len(data))
	}
	c := bytes.Clone(data)
	c[offset] ^= 1
	b.files[h] = c
	return nil
}

// DeleteRaw removes h, reporting whether it was there.
func (b *Backend) DeleteRaw(h backend.Handle) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.files[h]
	delete(b.files, h)
	return ok
}
