//go:build cairn_testonly

package faulty_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/backend/mem"
)

func TestSuiteWithoutFaults(t *testing.T) {
	backendtest.RunTests(t, func(t *testing.T) backend.Backend { return faulty.New(mem.New()) })
}

var errBoom = errors.New("boom")

func file(typ backend.FileType, content string) (backend.Handle, []byte) {
	data := []byte(content)
	return backend.Handle{Type: typ, Name: backend.Hash(data).String()}, data
}

func mustPut(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("put %v: %v", h, err)
	}
}

func readAll(t *testing.T, be backend.Backend, h backend.Handle) ([]byte, error) {
	t.Helper()
	var got []byte
	err := be.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	return got, err
}

func TestErrorInsteadMatchTimes(t *testing.T) {
	ctx := t.Context()
	m := mem.New()
	f := faulty.New(m)
	pack, packData := file(backend.PackFile, "pack")
	idx, idxData := file(backend.IndexFile, "index")
	f.AddFault(faulty.Put).Match(backend.PackFile, pack.Name[:4]).Times(2).ErrorInstead(errBoom)

	mustPut(t, f, idx, idxData) // another type: no fault
	for i := range 2 {
		if err := f.Put(ctx, pack, backend.NewByteReader(packData)); !errors.Is(err, errBoom) {
			t.Fatalf("put %d: %v, want the injected error", i, err)
		}
		if _, err := m.Stat(ctx, pack); !backend.IsNotExist(err) {
			t.Fatalf("an error-instead put reached the backend: %v", err)
		}
	}
	mustPut(t, f, pack, packData) // the fault is used up
	if n := f.Calls(faulty.Put); n != 4 {
		t.Errorf("Calls(Put) = %d, want 4", n)
	}
	f.VerifyAllFaultsHit(t)

	// A prefix that does not match leaves the fault unhit.
	f.AddFault(faulty.Stat).Match(0, "ffff"+strings.Repeat("0", 10)).ErrorInstead(errBoom)
	if _, err := f.Stat(ctx, pack); err != nil {
		t.Errorf("stat with a non-matching fault: %v", err)
	}
	// A List has no name: only an empty prefix matches it.
	f.AddFault(faulty.List).Match(backend.PackFile, "a").ErrorInstead(errBoom)
	if err := f.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil }); err != nil {
		t.Errorf("list with a named fault: %v", err)
	}
	rec := &recorder{TB: t}
	f.VerifyAllFaultsHit(rec)
	if len(rec.errs) != 2 || !strings.Contains(rec.errs[0], "List fault") || !strings.Contains(rec.errs[1], "Stat fault") {
		t.Errorf("VerifyAllFaultsHit reported %q, want the Stat and List faults", rec.errs)
	}
}

// recorder captures what VerifyAllFaultsHit reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestErrorAfter(t *testing.T) {
	ctx := t.Context()
	m := mem.New()
	f := faulty.New(m)
	h, data := file(backend.LockFile, "lock")
	f.AddFault(faulty.Put).ErrorAfter(errBoom)
	f.AddFault(faulty.Delete).ErrorAfter(errBoom)
	if err := f.Put(ctx, h, backend.NewByteReader(data)); !errors.Is(err, errBoom) {
		t.Fatalf("put: %v", err)
	}
	if _, err := m.Stat(ctx, h); err != nil {
		t.Errorf("the put should have happened: %v", err)
	}
	if err := f.Delete(ctx, h); !errors.Is(err, errBoom) {
		t.Fatalf("delete: %v", err)
	}
	if _, err := m.Stat(ctx, h); !backend.IsNotExist(err) {
		t.Errorf("the delete should have happened: %v", err)
	}
	// A failing call keeps its own error.
	f.AddFault(faulty.Stat).ErrorAfter(errBoom)
	if _, err := f.Stat(ctx, h); !backend.IsNotExist(err) {
		t.Errorf("stat of a missing file: %v", err)
	}
	f.VerifyAllFaultsHit(t)
}

func TestTruncatedPut(t *testing.T) {
	for _, c := range []struct {
		name  string
		inner func(t *testing.T) backend.Backend
	}{
		{"mem", func(*testing.T) backend.Backend { return mem.New() }},
		{"local", func(t *testing.T) backend.Backend {
			be, err := local.Create(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return be
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			inner := c.inner(t)
			f := faulty.New(inner)
			h, data := file(backend.PackFile, strings.Repeat("pack data ", 10000))
			f.AddFault(faulty.Put).FailAfter(5000, nil)
			err := f.Put(ctx, h, backend.NewByteReader(data))
			if !errors.Is(err, faulty.ErrInjected) {
				t.Fatalf("truncated put: %v, want ErrInjected", err)
			}
			if _, err := inner.Stat(ctx, h); !backend.IsNotExist(err) {
				t.Errorf("a truncated put became visible: %v", err)
			}
			n := 0
			if err := inner.List(ctx, backend.PackFile, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 0 {
				t.Errorf("list after a truncated put: %d files, %v", n, err)
			}
			mustPut(t, f, h, data)
			f.VerifyAllFaultsHit(t)
		})
	}
}

func TestGetFaults(t *testing.T) {
	ctx := t.Context()
	f := faulty.New(mem.New())
	h, data := file(backend.PackFile, strings.Repeat("0123456789", 100))
	mustPut(t, f, h, data)

	f.AddFault(faulty.Get).ShortRead(10)
	got, err := readAll(t, f, h)
	if err != nil || !bytes.Equal(got, data[:10]) {
		t.Errorf("short read: %q, %v", got, err)
	}

	f.AddFault(faulty.Get).FailAfter(20, errBoom)
	got, err = readAll(t, f, h)
	if !errors.Is(err, errBoom) || !bytes.Equal(got, data[:20]) {
		t.Errorf("failing read: %d bytes, %v", len(got), err)
	}

	f.AddFault(faulty.Get).CorruptRead(500)
	got, err = readAll(t, f, h)
	if err != nil || len(got) != len(data) || got[500] != data[500]^1 ||
		!bytes.Equal(got[:500], data[:500]) || !bytes.Equal(got[501:], data[501:]) {
		t.Errorf("corrupt read: %v; bytes differ elsewhere than at 500", err)
	}

	f.AddFault(faulty.Get).SmallReads(3)
	err = f.Get(ctx, h, 100, 50, func(r io.Reader) error {
		buf := make([]byte, 64)
		n, err := r.Read(buf)
		if n != 3 || err != nil || !bytes.Equal(buf[:3], data[50:53]) {
			return fmt.Errorf("first read gave %d bytes, %v", n, err)
		}
		rest, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(rest, data[53:150]) {
			return fmt.Errorf("rest: %d bytes, %v", len(rest), err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("small reads: %v", err)
	}

	f.AddFault(faulty.Get).ErrorInstead(errBoom)
	called := false
	if err := f.Get(ctx, h, 0, 0, func(io.Reader) error { called = true; return nil }); !errors.Is(err, errBoom) || called {
		t.Errorf("error instead of get: %v, callback called %v", err, called)
	}

	got, err = readAll(t, f, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("get after the faults: %d bytes, %v", len(got), err)
	}
	if n := f.Calls(faulty.Get); n != 6 {
		t.Errorf("Calls(Get) = %d, want 6", n)
	}
	f.VerifyAllFaultsHit(t)
}

func TestListFailAfter(t *testing.T) {
	ctx := t.Context()
	f := faulty.New(mem.New())
	for i := range 5 {
		h, data := file(backend.IndexFile, fmt.Sprint("index ", i))
		mustPut(t, f, h, data)
	}
	f.AddFault(faulty.List).Match(backend.IndexFile, "").FailAfter(2, errBoom)
	n := 0
	err := f.List(ctx, backend.IndexFile, func(backend.FileInfo) error { n++; return nil })
	if !errors.Is(err, errBoom) || n != 2 {
		t.Errorf("list failing after 2: %d entries, %v", n, err)
	}
	f.VerifyAllFaultsHit(t)
}

func TestSleepAndHook(t *testing.T) {
	f := faulty.New(mem.New())
	h, data := file(backend.KeyFile, "key")
	var hooked []backend.Handle
	f.AddFault(faulty.Put).Sleep(20 * time.Millisecond).Hook(func(h backend.Handle) { hooked = append(hooked, h) })
	start := time.Now()
	mustPut(t, f, h, data)
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("put took %v, want at least the 20ms sleep", d)
	}
	if len(hooked) != 1 || hooked[0] != h {
		t.Errorf("hook saw %v", hooked)
	}

	// A cancelled context ends the sleep.
	f.AddFault(faulty.Stat).Sleep(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Stat(ctx, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stat sleeping past its deadline: %v", err)
	}
	f.VerifyAllFaultsHit(t)
}

func TestMisuse(t *testing.T) {
	f := faulty.New(mem.New())
	for name, fn := range map[string]func(){
		"ShortRead on Put": func() { f.AddFault(faulty.Put).ShortRead(1) },
		"Times(0)":         func() { f.AddFault(faulty.Get).Times(0) },
		"SmallReads(0)":    func() { f.AddFault(faulty.Get).SmallReads(0) },
		"no such method":   func() { f.AddFault(faulty.Method(42)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			fn()
		}()
	}
}
