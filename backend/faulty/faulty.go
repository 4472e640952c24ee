//go:build cairn_testonly

// Package faulty wraps a backend to inject faults, for tests of the code
// that must survive them: retry, mirror, the repository's recovery paths.
//
// Each method has a queue of faults. A call takes the first fault in its
// method's queue that matches its handle and still has hits left; a fault
// configured with Times(n) is taken by n calls (one by default). A fault
// can delay the call, run a hook, fail it before or after it reaches the
// wrapped backend, or damage what flows through it: a Get whose reader
// ends early, fails mid-way, returns a flipped bit or trickles bytes, a Put
// whose content breaks off mid-way (the wrapped backend sees a failing
// reader and must store nothing), a List that fails after some entries.
//
//	f := faulty.New(mem.New())
//	f.AddFault(faulty.Put).Match(backend.PackFile, "").Times(2).ErrorInstead(errTimeout)
//	f.AddFault(faulty.Get).ShortRead(100)
//	... run the code under test on f ...
//	f.VerifyAllFaultsHit(t)
//
// Configure a fault fully before the calls that should hit it start.
//
// The package builds only with the cairn_testonly tag (go test -tags
// cairn_testonly, as the Makefile's test targets run it), so that no
// release binary can hold a fault injector.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Wrapper = (*Backend)(nil)
)

// ErrInjected is the error FailAfter uses when given none.
var ErrInjected = errors.New("injected fault")

// Method names a backend method that faults can be attached to.
type Method int

// The methods faults can be attached to.
const (
	List Method = iota + 1
	Stat
	Get
	Put
	Delete
)

// String is the method's name.
func (m Method) String() string {
	switch m {
	case List:
		return "List"
	case Stat:
		return "Stat"
	case Get:
		return "Get"
	case Put:
		return "Put"
	case Delete:
		return "Delete"
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// Backend wraps a backend with fault injection; without faults it passes
// every call through unchanged.
type Backend struct {
	inner backend.Backend

	mu     sync.Mutex
	faults map[Method][]*Fault // guarded by mu; every fault ever added, in order
	calls  map[Method]int      // guarded by mu
	random *randomFaults       // guarded by mu; nil unless InjectRandomly was called
}

// New wraps inner.
func New(inner backend.Backend) *Backend {
	return &Backend{inner: inner, faults: map[Method][]*Fault{}, calls: map[Method]int{}}
}

// AddFault appends a fault to m's queue and returns it for configuring.
// As added, it matches any file, is hit once and does nothing.
func (b *Backend) AddFault(m Method) *Fault {
	if m < List || m > Delete {
		panic(fmt.Sprintf("faulty: AddFault(%v): no such method (test bug)", m))
	}
	f := &Fault{b: b, method: m, times: 1, failAfter: -1, shortRead: -1, corruptAt: -1}
	b.mu.Lock()
	b.faults[m] = append(b.faults[m], f)
	b.mu.Unlock()
	return f
}

// Calls returns how many calls of m the wrapper has received.
func (b *Backend) Calls(m Method) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[m]
}

// TB is the part of testing.TB that VerifyAllFaultsHit uses; the package
// does not import testing, so that a program may link it (the soak test's
// fault-injecting cairn binary does).
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// VerifyAllFaultsHit fails t for every fault that was hit fewer times than
// configured.
func (b *Backend) VerifyAllFaultsHit(t TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range []Method{List, Stat, Get, Put, Delete} {
		for _, f := range b.faults[m] {
			if f.hits < f.times {
				t.Errorf("faulty: %s was hit %d of %d times", f.describe(), f.hits, f.times)
			}
		}
	}
}

// Fault is one configured fault. Its methods configure it and return it,
// so they chain.
type Fault struct {
	b      *Backend
	method Method

	// All fields are guarded by b.mu.
	fileType   backend.FileType // 0: any
	prefix     string
	times      int
	hits       int
	sleep      time.Duration
	hook       func(backend.Handle)
	errInstead error
	errAfter   error
	failAfter  int64 // -1: none
	failErr    error
	shortRead  int64 // -1: none
	corruptAt  int64 // -1: none
	smallReads int   // 0: none
}

func (f *Fault) set(fn func()) *Fault {
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	fn()
	return f
}

func (f *Fault) only(what string, ms ...Method) {
	for _, m := range ms {
		if f.method == m {
			return
		}
	}
	panic(fmt.Sprintf("faulty: %s does not apply to %v (test bug)", what, f.method))
}

// Match restricts the fault to files of type t (0 for any type) whose name
// starts with namePrefix. A List call has an empty name, so only an empty
// prefix matches it.
func (f *Fault) Match(t backend.FileType, namePrefix string) *Fault {
	return f.set(func() { f.fileType, f.prefix = t, namePrefix })
}

// Times makes the fault apply to n matching calls; n must be at least 1.
func (f *Fault) Times(n int) *Fault {
	if n < 1 {
		panic(fmt.Sprintf("faulty: Times(%d): need at least 1 (test bug)", n))
	}
	return f.set(func() { f.times = n })
}

// Sleep delays the call by d, as a slow link would; a context cancelled
// meanwhile ends the call with its error.
func (f *Fault) Sleep(d time.Duration) *Fault {
	return f.set(func() { f.sleep = d })
}

// Hook runs fn with the call's handle (for List, only its type is set)
// before the call proceeds, on the caller's goroutine.
func (f *Fault) Hook(fn func(h backend.Handle)) *Fault {
	return f.set(func() { f.hook = fn })
}

// ErrorInstead makes the call return err without reaching the wrapped
// backend.
func (f *Fault) ErrorInstead(err error) *Fault {
	return f.set(func() { f.errInstead = err })
}

// ErrorAfter lets the call run and then returns err even when it
// succeeded: the operation happened but its acknowledgement was lost.
func (f *Fault) ErrorAfter(err error) *Fault {
	return f.set(func() { f.errAfter = err })
}

// FailAfter breaks the call's data stream after n units with err
// (ErrInjected if nil): for Get, the reader fails after n bytes; for Put,
// the content the wrapped backend reads fails after n bytes on every pass,
// a put that broke off mid-upload; for List, the listing fails after n
// entries.
func (f *Fault) FailAfter(n int64, err error) *Fault {
	f.only("FailAfter", Get, Put, List)
	if err == nil {
		err = ErrInjected
	}
	return f.set(func() { f.failAfter, f.failErr = n, err })
}

// ShortRead makes Get's reader end cleanly (io.EOF) after n bytes, as a
// connection closed early without an error would.
func (f *Fault) ShortRead(n int64) *Fault {
	f.only("ShortRead", Get)
	return f.set(func() { f.shortRead = n })
}

// CorruptRead flips the lowest bit of the byte at position at of what
// Get's reader returns (counted from the start of the range).
func (f *Fault) CorruptRead(at int64) *Fault {
	f.only("CorruptRead", Get)
	return f.set(func() { f.corruptAt = at })
}

// SmallReads makes each Read of Get's reader return at most n bytes, for
// code that wrongly assumes one Read fills its buffer.
func (f *Fault) SmallReads(n int) *Fault {
	f.only("SmallReads", Get)
	if n < 1 {
		panic(fmt.Sprintf("faulty: SmallReads(%d): need at least 1 (test bug)", n))
	}
	return f.set(func() { f.smallReads = n })
}

// describe names the fault in messages; b.mu must be held.
func (f *Fault) describe() string {
	var parts []string
	if f.sleep > 0 {
		parts = append(parts, fmt.Sprintf("sleep %v", f.sleep))
	}
	if f.hook != nil {
		parts = append(parts, "hook")
	}
	if f.errInstead != nil {
		parts = append(parts, fmt.Sprintf("error instead (%v)", f.errInstead))
	}
	if f.errAfter != nil {
		parts = append(parts, fmt.Sprintf("error after (%v)", f.errAfter))
	}
	if f.failAfter >= 0 {
		parts = append(parts, fmt.Sprintf("fail after %d", f.failAfter))
	}
	if f.shortRead >= 0 {
		parts = append(parts, fmt.Sprintf("short read of %d", f.shortRead))
	}
	if f.corruptAt >= 0 {
		parts = append(parts, fmt.Sprintf("corrupt byte %d", f.corruptAt))
	}
	if f.smallReads > 0 {
		parts = append(parts, fmt.Sprintf("reads of %d", f.smallReads))
	}
	what := "no-op"
	if len(parts) > 0 {
		what = strings.Join(parts, ", ")
	}
	match := "any file"
	if f.fileType != 0 || f.prefix != "" {
		match = fmt.Sprintf("%v files named %s*", f.fileType, f.prefix)
		if f.fileType == 0 {
			match = fmt.Sprintf("files named %s*", f.prefix)
		}
	}
	return fmt.Sprintf("%v fault (%s) on %s", f.method, what, match)
}

// spec is a copy of a fault's settings, taken when a call hits it.
type spec struct {
	sleep      time.Duration
	hook       func(backend.Handle)
	errInstead error
	errAfter   error
	failAfter  int64
	failErr    error
	shortRead  int64
	corruptAt  int64
	smallReads int
}

// hit counts the call, takes the fault that applies to it, if any, and
// runs its sleep, hook and ErrorInstead. A nil spec means no fault.
func (b *Backend) hit(ctx context.Context, m Method, h backend.Handle) (*spec, error) {
	b.mu.Lock()
	b.calls[m]++
	var s *spec
	for _, f := range b.faults[m] {
		if f.hits >= f.times ||
			(f.fileType != 0 && f.fileType != h.Type) || !strings.HasPrefix(h.Name, f.prefix) {
			continue
		}
		f.hits++
		s = &spec{
			sleep: f.sleep, hook: f.hook, errInstead: f.errInstead, errAfter: f.errAfter,
			failAfter: f.failAfter, failErr: f.failErr, shortRead: f.shortRead,
			corruptAt: f.corruptAt, smallReads: f.smallReads,
		}
		break
	}
	if s == nil && b.random != nil {
		s = b.random.draw(m, h)
	}
	b.mu.Unlock()
	if s == nil {
		return nil, nil
	}
	if s.sleep > 0 {
		if err := backend.Sleep(ctx, s.sleep); err != nil {
			return nil, err
		}
	}
	if s.hook != nil {
		s.hook(h)
	}
	if s.errInstead != nil {
		return nil, s.errInstead
	}
	return s, nil
}

// after applies ErrorAfter to a call's result.
func (s *spec) after(err error) error {
	if err == nil && s != nil && s.errAfter != nil {
		return s.errAfter
	}
	return err
}

// Unwrap returns the wrapped backend (the backend.Wrapper convention),
// so optional interfaces such as backend.TempCleaner are found below
// it. No fault is injected into calls made on it directly.
func (b *Backend) Unwrap() backend.Backend { return b.inner }

// Location implements backend.Backend.
func (b *Backend) Location() string { return "faulty:" + b.inner.Location() }

// Properties implements backend.Backend.
func (b *Backend) Properties() backend.Properties { return b.inner.Properties() }

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	s, err := b.hit(ctx, List, backend.Handle{Type: t})
	if err != nil {
		return err
	}
	if s != nil && s.failAfter >= 0 {
		inner, n := fn, int64(0)
		fn = func(fi backend.FileInfo) error {
			if n >= s.failAfter {
				return s.failErr
			}
			n++
			return inner(fi)
		}
	}
	return s.after(b.inner.List(ctx, t, fn))
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	s, err := b.hit(ctx, Stat, h)
	if err != nil {
		return backend.FileInfo{}, err
	}
	fi, err := b.inner.Stat(ctx, h)
	if err = s.after(err); err != nil {
		return backend.FileInfo{}, err
	}
	return fi, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	s, err := b.hit(ctx, Get, h)
	if err != nil {
		return err
	}
	if s == nil {
		return b.inner.Get(ctx, h, length, offset, fn)
	}
	return s.after(b.inner.Get(ctx, h, length, offset, func(r io.Reader) error {
		if s.shortRead >= 0 {
			r = io.LimitReader(r, s.shortRead)
		}
		if s.failAfter >= 0 {
			r = &failingReader{r: r, left: s.failAfter, err: s.failErr}
		}
		if s.corruptAt >= 0 {
			r = &corruptingReader{r: r, at: s.corruptAt}
		}
		if s.smallReads > 0 {
			r = &smallReader{r: r, n: s.smallReads}
		}
		return fn(r)
	}))
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	s, err := b.hit(ctx, Put, h)
	if err != nil {
		return err
	}
	if s != nil && s.failAfter >= 0 {
		rd = &failingRewindReader{RewindReader: rd, n: s.failAfter, left: s.failAfter, err: s.failErr}
	}
	return s.after(b.inner.Put(ctx, h, rd))
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, h backend.Handle) error {
	s, err := b.hit(ctx, Delete, h)
	if err != nil {
		return err
	}
	return s.after(b.inner.Delete(ctx, h))
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return b.inner.Close() }

// failingReader returns err once left bytes have been read.
type failingReader struct {
	r    io.Reader
	left int64
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	return n, err
}

// failingRewindReader fails after n bytes of each pass over the content.
type failingRewindReader struct {
	backend.RewindReader
	n, left int64
	err     error
}

func (f *failingRewindReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.RewindReader.Read(p)
	f.left -= int64(n)
	return n, err
}

func (f *failingRewindReader) Rewind() error {
	f.left = f.n
	return f.RewindReader.Rewind()
}

// corruptingReader flips the lowest bit of byte at of the stream.
type corruptingReader struct {
	r   io.Reader
	pos int64
	at  int64
}

func (c *corruptingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.at >= c.pos && c.at < c.pos+int64(n) {
		p[c.at-c.pos] ^= 1
	}
	c.pos += int64(n)
	return n, err
}

// smallReader returns at most n bytes per Read.
type smallReader struct {
	r io.Reader
	n int
}

func (s *smallReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}
