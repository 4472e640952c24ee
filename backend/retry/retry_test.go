package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/backend/retry"
)

// noSleep skips the waits, so retries cost nothing in tests.
func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func TestSuiteLocal(t *testing.T) {
	backendtest.RunTests(t, func(t *testing.T) backend.Backend {
		be, err := local.Create(t.Context(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r, err := retry.New(be, retry.Options{Sleep: noSleep})
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

var errFlaky = errors.New("connection reset")

// waits records the retries a wrapper reports.
type waits struct {
	mu  sync.Mutex
	ops []string
	d   []time.Duration
}

func (w *waits) report(op string, err error, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ops = append(w.ops, op)
	w.d = append(w.d, d)
}

func (w *waits) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ops)
}

func newRetry(t *testing.T, inner backend.Backend, opts retry.Options) (*retry.Backend, *waits) {
	t.Helper()
	w := &waits{}
	if opts.Sleep == nil {
		opts.Sleep = noSleep
	}
	opts.Report = w.report
	r, err := retry.New(inner, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

func file(typ backend.FileType, content string) (backend.Handle, []byte) {
	data := []byte(content)
	return backend.Handle{Type: typ, Name: backend.Hash(data).String()}, data
}

func readAll(ctx context.Context, be backend.Backend, h backend.Handle) ([]byte, error) {
	var got []byte
	err := be.Get(ctx, h, 0, 0, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	return got, err
}

func TestRecoversFromTransientErrors(t *testing.T) {
	ctx := t.Context()
	m := mem.New()
	f := faulty.New(m)
	r, w := newRetry(t, f, retry.Options{InitialDelay: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond})
	h, data := file(backend.PackFile, "pack")
	f.AddFault(faulty.Put).Times(4).ErrorInstead(errFlaky)
	if err := r.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("put: %v", err)
	}
	if n := f.Calls(faulty.Put); n != 5 {
		t.Errorf("%d put attempts, want 5", n)
	}
	// Waits double from 100ms up to 300ms, each jittered down by up to half.
	if len(w.d) != 4 {
		t.Fatalf("%d retries reported, want 4", len(w.d))
	}
	for i, max := range []time.Duration{100, 200, 300, 300} {
		max *= time.Millisecond
		if w.d[i] < max/2 || w.d[i] > max {
			t.Errorf("wait %d: %v, want within [%v, %v]", i, w.d[i], max/2, max)
		}
	}
	if w.ops[0] != "put "+h.String() {
		t.Errorf("reported op %q", w.ops[0])
	}

	f.AddFault(faulty.Stat).Times(2).ErrorInstead(errFlaky)
	if fi, err := r.Stat(ctx, h); err != nil || fi.Size != int64(len(data)) {
		t.Errorf("stat: %+v, %v", fi, err)
	}
	f.AddFault(faulty.Get).Times(2).ErrorInstead(errFlaky)
	if got, err := readAll(ctx, r, h); err != nil || !bytes.Equal(got, data) {
		t.Errorf("get: %q, %v", got, err)
	}
	f.AddFault(faulty.Delete).Times(2).ErrorInstead(errFlaky)
	if err := r.Delete(ctx, h); err != nil {
		t.Errorf("delete: %v", err)
	}
	f.VerifyAllFaultsHit(t)
}

func TestGivesUp(t *testing.T) {
	ctx := t.Context()
	f := faulty.New(mem.New())
	r, w := newRetry(t, f, retry.Options{MaxAttempts: 4})
	h, data := file(backend.PackFile, "pack")
	f.AddFault(faulty.Put).Times(100).ErrorInstead(errFlaky)
	err := r.Put(ctx, h, backend.NewByteReader(data))
	if !errors.Is(err, errFlaky) || !strings.Contains(err.Error(), "giving up after 4 attempts") {
		t.Errorf("put: %v", err)
	}
	if n := f.Calls(faulty.Put); n != 4 {
		t.Errorf("%d attempts, want 4", n)
	}
	if w.count() != 3 {
		t.Errorf("%d retries reported, want 3", w.count())
	}
}

func TestMaxElapsed(t *testing.T) {
	ctx := t.Context()
	f := faulty.New(mem.New())
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var slept time.Duration
	r, _ := newRetry(t, f, retry.Options{
		MaxAttempts: 1000,
		MaxElapsed:  10 * time.Minute,
		Now:         func() time.Time { return now.Add(slept) },
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept += d
			return nil
		},
	})
	f.AddFault(faulty.Stat).Times(1000).ErrorInstead(errFlaky)
	h, _ := file(backend.PackFile, "pack")
	_, err := r.Stat(ctx, h)
	if !errors.Is(err, errFlaky) || !strings.Contains(err.Error(), "giving up") {
		t.Errorf("stat: %v", err)
	}
	if slept > 10*time.Minute || slept < 8*time.Minute {
		t.Errorf("waited %v in all, want just under the 10m bound", slept)
	}
	if n := f.Calls(faulty.Stat); n > 30 {
		t.Errorf("%d attempts in 10 minutes of doubling waits", n)
	}
}

func TestPermanentErrors(t *testing.T) {
	ctx := t.Context()
	h, data := file(backend.PackFile, "pack")
	for _, perm := range []error{
		backend.ErrQuota,
		backend.ErrAppendOnly,
		backend.ErrHashMismatch,
		backend.ErrInvalidName,
		backend.ErrNotExist,
		fmt.Errorf("put: %w", backend.Permanent(errors.New("authentication failed"))),
	} {
		f := faulty.New(mem.New())
		r, w := newRetry(t, f, retry.Options{})
		f.AddFault(faulty.Put).Times(10).ErrorInstead(perm)
		if err := r.Put(ctx, h, backend.NewByteReader(data)); !errors.Is(err, perm) {
			t.Errorf("put failing with %v: got %v", perm, err)
		}
		if n := f.Calls(faulty.Put); n != 1 || w.count() != 0 {
			t.Errorf("%v: %d attempts, %d retries reported; want one attempt", perm, n, w.count())
		}
	}
	// A missing file is not retried.
	f := faulty.New(mem.New())
	r, _ := newRetry(t, f, retry.Options{})
	if _, err := r.Stat(ctx, h); !backend.IsNotExist(err) || f.Calls(faulty.Stat) != 1 {
		t.Errorf("stat of a missing file: %v after %d attempts", err, f.Calls(faulty.Stat))
	}
	if err := r.Delete(ctx, h); !backend.IsNotExist(err) || f.Calls(faulty.Delete) != 1 {
		t.Errorf("delete of a missing file: %v after %d attempts", err, f.Calls(faulty.Delete))
	}
}

func TestCancel(t *testing.T) {
	h, data := file(backend.PackFile, "pack")
	f := faulty.New(mem.New())
	r, _ := newRetry(t, f, retry.Options{Sleep: func(ctx context.Context, d time.Duration) error {
		<-ctx.Done()
		return ctx.Err()
	}})

	// A cancelled context starts nothing.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Put(ctx, h, backend.NewByteReader(data)); !errors.Is(err, context.Canceled) {
		t.Errorf("put: %v", err)
	}
	if err := r.Delete(ctx, h); !errors.Is(err, context.Canceled) {
		t.Errorf("delete: %v", err)
	}
	if _, err := r.Stat(ctx, h); !errors.Is(err, context.Canceled) {
		t.Errorf("stat: %v", err)
	}
	if f.Calls(faulty.Put)+f.Calls(faulty.Delete)+f.Calls(faulty.Stat) != 0 {
		t.Errorf("calls reached the backend after cancel")
	}

	// Cancelling during a wait ends the retries, naming both errors.
	ctx, cancel = context.WithCancel(t.Context())
	f.AddFault(faulty.Put).Times(100).Hook(func(backend.Handle) { cancel() }).ErrorInstead(errFlaky)
	err := r.Put(ctx, h, backend.NewByteReader(data))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errFlaky) {
		t.Errorf("put cancelled while retrying: %v", err)
	}
	if n := f.Calls(faulty.Put); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestPutRewinds(t *testing.T) {
	ctx := t.Context()
	m := mem.New()
	f := faulty.New(m)
	r, _ := newRetry(t, f, retry.Options{})
	h, data := file(backend.PackFile, strings.Repeat("pack content ", 1000))
	f.AddFault(faulty.Put).Times(2).FailAfter(1000, errFlaky)
	rd := backend.NewByteReader(data)
	if _, err := io.CopyN(io.Discard, rd, 10); err != nil { // a reader not at its start
		t.Fatal(err)
	}
	if err := r.Put(ctx, h, rd); err != nil {
		t.Fatalf("put: %v", err)
	}
	if got := m.Files()[h]; !bytes.Equal(got, data) {
		t.Errorf("stored %d bytes that differ from the %d put", len(got), len(data))
	}
	f.VerifyAllFaultsHit(t)
}

func TestGetCallbackVerdicts(t *testing.T) {
	ctx := t.Context()
	f := faulty.New(mem.New())
	r, _ := newRetry(t, f, retry.Options{})
	h, data := file(backend.PackFile, strings.Repeat("0123456789", 100))
	if err := r.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	readFull := func(length int, offset int64) ([]byte, error) {
		var got []byte
		err := r.Get(ctx, h, length, offset, func(rd io.Reader) error {
			buf := make([]byte, length)
			if _, err := io.ReadFull(rd, buf); err != nil {
				return err
			}
			got = buf
			return nil
		})
		return got, err
	}
	calls := func() int { return f.Calls(faulty.Get) }

	// A connection closed early: retried.
	f.AddFault(faulty.Get).ShortRead(50)
	before := calls()
	if got, err := readFull(100, 10); err != nil || !bytes.Equal(got, data[10:110]) || calls()-before != 2 {
		t.Errorf("short read: %v after %d attempts", err, calls()-before)
	}
	// A reader failing mid-way: retried.
	f.AddFault(faulty.Get).Times(2).FailAfter(30, errFlaky)
	before = calls()
	if got, err := readFull(100, 0); err != nil || !bytes.Equal(got, data[:100]) || calls()-before != 3 {
		t.Errorf("failing reader: %v after %d attempts", err, calls()-before)
	}
	// The file really ends before the range: the callback's error stands.
	before = calls()
	if _, err := readFull(100, 950); !errors.Is(err, io.ErrUnexpectedEOF) || calls()-before != 1 {
		t.Errorf("range past the end: %v after %d attempts", err, calls()-before)
	}
	// The callback rejects the bytes it read: not retried.
	errBad := errors.New("bad content")
	before = calls()
	err := r.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		if _, err := io.ReadAll(rd); err != nil {
			return err
		}
		return errBad
	})
	if !errors.Is(err, errBad) || calls()-before != 1 {
		t.Errorf("callback error: %v after %d attempts", err, calls()-before)
	}
	// Nor when it stops reading early.
	before = calls()
	err = r.Get(ctx, h, 0, 0, func(io.Reader) error { return errBad })
	if !errors.Is(err, errBad) || calls()-before != 1 {
		t.Errorf("callback error before reading: %v after %d attempts", err, calls()-before)
	}
	// A lost reply after a good read: the callback runs again.
	f.AddFault(faulty.Get).ErrorAfter(errFlaky)
	runs := 0
	err = r.Get(ctx, h, 10, 0, func(rd io.Reader) error { runs++; _, err := io.ReadAll(rd); return err })
	if err != nil || runs != 2 {
		t.Errorf("lost reply: %v, callback ran %d times", err, runs)
	}
	f.VerifyAllFaultsHit(t)
}

func TestListRetriedOnce(t *testing.T) {
	ctx := t.Context()
	f := faulty.New(mem.New())
	r, _ := newRetry(t, f, retry.Options{})
	want := map[string]bool{}
	for i := range 6 {
		h, data := file(backend.IndexFile, fmt.Sprint("index ", i))
		if err := r.Put(ctx, h, backend.NewByteReader(data)); err != nil {
			t.Fatal(err)
		}
		want[h.Name] = true
	}
	f.AddFault(faulty.List).FailAfter(2, errFlaky)
	f.AddFault(faulty.List).FailAfter(4, errFlaky)
	seen := map[string]int{}
	err := r.List(ctx, backend.IndexFile, func(fi backend.FileInfo) error { seen[fi.Name]++; return nil })
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if n := f.Calls(faulty.List); n != 3 {
		t.Errorf("%d list attempts, want 3", n)
	}
	for name := range want {
		if seen[name] != 1 {
			t.Errorf("%s seen %d times, want once", name, seen[name])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("saw %d files, want %d", len(seen), len(want))
	}

	// The callback's own error is not retried.
	errStop := errors.New("stop")
	before := f.Calls(faulty.List)
	err = r.List(ctx, backend.IndexFile, func(backend.FileInfo) error { return errStop })
	if err != errStop || f.Calls(faulty.List)-before != 1 {
		t.Errorf("list stopped by its callback: %v after %d attempts", err, f.Calls(faulty.List)-before)
	}
}

func TestLostAcknowledgements(t *testing.T) {
	ctx := t.Context()
	m := mem.New()
	f := faulty.New(m)
	r, _ := newRetry(t, f, retry.Options{})
	h, data := file(backend.LockFile, "lock")
	if err := r.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	// The delete happened, its reply was lost; the retry finds it gone.
	f.AddFault(faulty.Delete).ErrorAfter(errFlaky)
	if err := r.Delete(ctx, h); err != nil {
		t.Errorf("delete: %v", err)
	}
	if f.Calls(faulty.Delete) != 2 {
		t.Errorf("%d delete attempts, want 2", f.Calls(faulty.Delete))
	}

	// Without atomic replace, a retried put that landed is not sent again.
	nf := faulty.New(noReplace{mem.New()})
	nr, _ := newRetry(t, nf, retry.Options{})
	nf.AddFault(faulty.Put).ErrorAfter(errFlaky)
	if err := nr.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Errorf("put: %v", err)
	}
	if nf.Calls(faulty.Put) != 1 {
		t.Errorf("%d put attempts, want 1", nf.Calls(faulty.Put))
	}
	f.VerifyAllFaultsHit(t)
	nf.VerifyAllFaultsHit(t)
}

// noReplace is a backend that cannot replace files.
type noReplace struct{ *mem.Backend }

func (noReplace) Properties() backend.Properties {
	return backend.Properties{Connections: 1, HasAtomicReplace: false}
}

func TestOptions(t *testing.T) {
	be := mem.New()
	for _, o := range []retry.Options{
		{MaxAttempts: -1},
		{MaxElapsed: -time.Second},
		{InitialDelay: -time.Second},
		{InitialDelay: time.Minute, MaxDelay: time.Second},
	} {
		if _, err := retry.New(be, o); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
	if _, err := retry.New(be, retry.Options{InitialDelay: 2 * time.Minute}); err != nil {
		t.Errorf("an initial delay above the default maximum: %v", err)
	}
}
