// Package backendtest is the conformance suite every backend.Backend must
// pass: mem, local, the wrappers, and the remote backends. It is imported
// only from _test.go files.
//
// A backend's own test runs it with a function that returns a fresh, empty
// backend:
//
//	func TestSuite(t *testing.T) {
//		backendtest.RunTests(t, func(t *testing.T) backend.Backend {
//			return mem.New()
//		})
//	}
//
// The suite closes each backend it is given. Random content comes from a
// seed that each test logs; set CAIRN_TEST_SEED to that number to replay it.
package backendtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// RunTests runs every conformance test as a subtest of t, each against its
// own backend from newBackend, which must return an empty backend.
func RunTests(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, be backend.Backend)
	}{
		{"ListEmpty", testListEmpty},
		{"RoundTripEveryType", testRoundTrip},
		{"EmptyFile", testEmptyFile},
		{"RangedGet", testRangedGet},
		{"Missing", testMissing},
		{"InvalidHandles", testInvalidHandles},
		{"PutExisting", testPutExisting},
		{"DeleteThenPut", testDeleteThenPut},
		{"GetCallbackError", testGetCallbackError},
		{"ListCallback", testListCallback},
		{"Cancelled", testCancelled},
		{"AtomicVisibility", testAtomicVisibility},
		{"BadContent", testBadContent},
		{"Concurrent", testConcurrent},
		{"LargeFile", testLargeFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := newBackend(t)
			t.Cleanup(func() {
				if err := be.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, be)
		})
	}
}

// waitLimit bounds every wait on another goroutine, so a hung backend
// fails the test instead of hanging it.
const waitLimit = 30 * time.Second

// newRand returns a generator seeded from CAIRN_TEST_SEED or at random,
// logging the seed.
func newRand(t *testing.T) *rand.ChaCha8 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("CAIRN_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CAIRN_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (set CAIRN_TEST_SEED to replay)", seed)
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return rand.NewChaCha8(key)
}

func randomBytes(rng *rand.ChaCha8, n int) []byte {
	b := make([]byte, n)
	_, _ = rng.Read(b) // ChaCha8.Read never fails
	return b
}

// handleFor names data as a file of type t: its hash, or the config name.
func handleFor(t backend.FileType, data []byte) backend.Handle {
	if t == backend.ConfigFile {
		return backend.Handle{Type: t, Name: backend.ConfigName}
	}
	return backend.Handle{Type: t, Name: backend.Hash(data).String()}
}

// randomFile returns n random bytes and their handle as a file of type t.
func randomFile(rng *rand.ChaCha8, t backend.FileType, n int) (backend.Handle, []byte) {
	data := randomBytes(rng, n)
	return handleFor(t, data), data
}

func put(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("put %v: %v", h, err)
	}
}

// getRange returns what Get hands over (at most 64 MiB).
func getRange(ctx context.Context, be backend.Backend, h backend.Handle, length int, offset int64) ([]byte, error) {
	var got []byte
	err := be.Get(ctx, h, length, offset, func(r io.Reader) error {
		b, err := io.ReadAll(io.LimitReader(r, 64<<20))
		got = b // overwritten when a retrying wrapper calls again
		return err
	})
	return got, err
}

func get(t *testing.T, be backend.Backend, h backend.Handle) []byte {
	t.Helper()
	got, err := getRange(t.Context(), be, h, 0, 0)
	if err != nil {
		t.Fatalf("get %v: %v", h, err)
	}
	return got
}

func wantContent(t *testing.T, be backend.Backend, h backend.Handle, want []byte) {
	t.Helper()
	fi, err := be.Stat(t.Context(), h)
	if err != nil {
		t.Fatalf("stat %v: %v", h, err)
	}
	if fi.Size != int64(len(want)) || fi.Name != h.Name {
		t.Errorf("stat %v = %+v, want name %s size %d", h, fi, h.Name, len(want))
	}
	if got := get(t, be, h); !bytes.Equal(got, want) {
		t.Errorf("get %v: got %d bytes that differ from the %d stored", h, len(got), len(want))
	}
}

func wantMissing(t *testing.T, be backend.Backend, h backend.Handle) {
	t.Helper()
	if _, err := be.Stat(t.Context(), h); !backend.IsNotExist(err) {
		t.Errorf("stat %v: got %v, want an error wrapping ErrNotExist", h, err)
	}
	called := false
	err := be.Get(t.Context(), h, 0, 0, func(io.Reader) error { called = true; return nil })
	if !backend.IsNotExist(err) {
		t.Errorf("get %v: got %v, want an error wrapping ErrNotExist", h, err)
	}
	if called {
		t.Errorf("get %v: callback called for a missing file", h)
	}
}

// list returns every listed file of type ft by name, failing on a name
// listed twice or one not valid for ft.
func list(t *testing.T, be backend.Backend, ft backend.FileType) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	err := be.List(t.Context(), ft, func(fi backend.FileInfo) error {
		if err := (backend.Handle{Type: ft, Name: fi.Name}).Valid(); err != nil {
			t.Errorf("list %v: invalid name listed: %v", ft, err)
		}
		if _, ok := m[fi.Name]; ok {
			t.Errorf("list %v: %s listed twice", ft, fi.Name)
		}
		m[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("list %v: %v", ft, err)
	}
	return m
}

func wantList(t *testing.T, be backend.Backend, ft backend.FileType, want map[string]int64) {
	t.Helper()
	got := list(t, be, ft)
	if len(got) != len(want) {
		t.Errorf("list %v: %d files, want %d", ft, len(got), len(want))
	}
	for name, size := range want {
		if gs, ok := got[name]; !ok {
			t.Errorf("list %v: %s missing", ft, name)
		} else if gs != size {
			t.Errorf("list %v: %s has size %d, want %d", ft, name, gs, size)
		}
	}
}

func testListEmpty(t *testing.T, be backend.Backend) {
	for _, ft := range backend.AllTypes {
		err := be.List(t.Context(), ft, func(fi backend.FileInfo) error {
			t.Errorf("list %v of an empty backend: got %+v", ft, fi)
			return nil
		})
		if err != nil {
			t.Errorf("list %v: %v", ft, err)
		}
	}
}

func testRoundTrip(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	for _, ft := range backend.AllTypes {
		h, data := randomFile(rng, ft, 1+int(rng.Uint64()%4096))
		put(t, be, h, data)
		wantContent(t, be, h, data)
		wantList(t, be, ft, map[string]int64{h.Name: int64(len(data))})
		// Files of other types stay out of this type's listing.
		for _, other := range backend.AllTypes {
			if other == ft {
				continue
			}
			if _, ok := list(t, be, other)[h.Name]; ok {
				t.Errorf("%v listed as a %v file", h, other)
			}
		}
		if err := be.Delete(t.Context(), h); err != nil {
			t.Fatalf("delete %v: %v", h, err)
		}
		wantMissing(t, be, h)
		wantList(t, be, ft, nil)
	}
}

func testEmptyFile(t *testing.T, be backend.Backend) {
	h := handleFor(backend.IndexFile, nil)
	put(t, be, h, []byte{})
	wantContent(t, be, h, []byte{})
	wantList(t, be, backend.IndexFile, map[string]int64{h.Name: 0})
	got, err := getRange(t.Context(), be, h, 10, 5)
	if err != nil || len(got) != 0 {
		t.Errorf("get 10 bytes at 5 of an empty file: %d bytes, %v", len(got), err)
	}
}

func testRangedGet(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	const size = 10000
	h, data := randomFile(rng, backend.PackFile, size)
	put(t, be, h, data)
	for _, c := range []struct {
		length int
		offset int64
		want   []byte
	}{
		{0, 0, data},
		{size, 0, data},
		{100, 0, data[:100]},
		{0, 100, data[100:]},
		{1, 5000, data[5000:5001]},
		{1, size - 1, data[size-1:]},
		{123, 4567, data[4567 : 4567+123]},
		{100, size - 10, data[size-10:]},
		{size + 1, 0, data},
		{0, size, nil},
		{10, size, nil},
		{5, 2 * size, nil},
	} {
		got, err := getRange(t.Context(), be, h, c.length, c.offset)
		if err != nil {
			t.Errorf("get length %d at %d: %v", c.length, c.offset, err)
			continue
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("get length %d at %d: got %d bytes, want %d (or bytes differ)",
				c.length, c.offset, len(got), len(c.want))
		}
	}
	// A caller that needs the whole range reads it with io.ReadFull.
	err := be.Get(t.Context(), h, 1000, 2000, func(r io.Reader) error {
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		if !bytes.Equal(buf, data[2000:3000]) {
			return errors.New("range content differs")
		}
		return nil
	})
	if err != nil {
		t.Errorf("get with io.ReadFull: %v", err)
	}
	for _, c := range []struct {
		length int
		offset int64
	}{{-1, 0}, {0, -1}, {-5, -5}} {
		called := false
		err := be.Get(t.Context(), h, c.length, c.offset, func(io.Reader) error { called = true; return nil })
		if err == nil || called {
			t.Errorf("get length %d at %d: err %v, callback called %v; want an error and no call",
				c.length, c.offset, err, called)
		}
	}
}

func testMissing(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	for _, ft := range backend.AllTypes {
		h, _ := randomFile(rng, ft, 10)
		wantMissing(t, be, h)
		if err := be.Delete(t.Context(), h); !backend.IsNotExist(err) {
			t.Errorf("delete missing %v: got %v, want an error wrapping ErrNotExist", h, err)
		}
	}
	// A missing file among present ones.
	h, data := randomFile(rng, backend.PackFile, 100)
	put(t, be, h, data)
	other, _ := randomFile(rng, backend.PackFile, 100)
	wantMissing(t, be, other)
}

// badHandles are handles every backend must refuse with ErrInvalidName.
func badHandles() []backend.Handle {
	id := backend.Hash([]byte("cairn")).String()
	return []backend.Handle{
		{Type: 0, Name: id},
		{Type: 99, Name: id},
		{Type: backend.PackFile, Name: ""},
		{Type: backend.PackFile, Name: strings.ToUpper(id)},
		{Type: backend.PackFile, Name: id[:63]},
		{Type: backend.PackFile, Name: id + "0"},
		{Type: backend.PackFile, Name: backend.ConfigName},
		{Type: backend.PackFile, Name: "../" + id[3:]},
		{Type: backend.IndexFile, Name: id[:30] + "/" + id[31:]},
		{Type: backend.KeyFile, Name: ".tmp-" + id[5:]},
		{Type: backend.LogFile, Name: id[:63] + "\x00"},
		{Type: backend.LockFile, Name: "." + id[1:]},
		{Type: backend.ConfigFile, Name: ""},
		{Type: backend.ConfigFile, Name: id},
		{Type: backend.ConfigFile, Name: "../config"},
	}
}

func testInvalidHandles(t *testing.T, be backend.Backend) {
	data := []byte("cairn")
	for _, h := range badHandles() {
		if err := be.Put(t.Context(), h, backend.NewByteReader(data)); !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("put %q/%q: got %v, want ErrInvalidName", h.Type, h.Name, err)
		}
		if _, err := be.Stat(t.Context(), h); !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("stat %q/%q: got %v, want ErrInvalidName", h.Type, h.Name, err)
		}
		called := false
		err := be.Get(t.Context(), h, 0, 0, func(io.Reader) error { called = true; return nil })
		if !errors.Is(err, backend.ErrInvalidName) || called {
			t.Errorf("get %q/%q: got %v (callback called %v), want ErrInvalidName", h.Type, h.Name, err, called)
		}
		if err := be.Delete(t.Context(), h); !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("delete %q/%q: got %v, want ErrInvalidName", h.Type, h.Name, err)
		}
	}
	for _, ft := range []backend.FileType{0, 99} {
		err := be.List(t.Context(), ft, func(backend.FileInfo) error { return nil })
		if !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("list type %d: got %v, want ErrInvalidName", ft, err)
		}
	}
	for _, ft := range backend.AllTypes {
		wantList(t, be, ft, nil)
	}
}

func testPutExisting(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	atomic := be.Properties().HasAtomicReplace
	h, data := randomFile(rng, backend.PackFile, 1000)
	put(t, be, h, data)
	err := be.Put(t.Context(), h, backend.NewByteReader(data))
	if atomic && err != nil {
		t.Errorf("second put of %v on a backend with atomic replace: %v", h, err)
	}
	if !atomic && err == nil {
		t.Errorf("second put of %v on a backend without atomic replace succeeded", h)
	}
	wantContent(t, be, h, data)
	wantList(t, be, backend.PackFile, map[string]int64{h.Name: 1000})

	// The config is the one name whose content may change.
	cfg := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	first, second := randomBytes(rng, 300), randomBytes(rng, 200)
	put(t, be, cfg, first)
	err = be.Put(t.Context(), cfg, backend.NewByteReader(second))
	switch {
	case atomic && err != nil:
		t.Errorf("replace config: %v", err)
	case atomic:
		wantContent(t, be, cfg, second)
	case err == nil:
		t.Errorf("replace config on a backend without atomic replace succeeded")
	default:
		wantContent(t, be, cfg, first)
	}
}

func testDeleteThenPut(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	h, data := randomFile(rng, backend.LockFile, 500)
	put(t, be, h, data)
	if err := be.Delete(t.Context(), h); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := be.Delete(t.Context(), h); !backend.IsNotExist(err) {
		t.Errorf("second delete: got %v, want ErrNotExist", err)
	}
	put(t, be, h, data)
	wantContent(t, be, h, data)
}

func testGetCallbackError(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	h, data := randomFile(rng, backend.IndexFile, 100)
	put(t, be, h, data)
	errStop := errors.New("callback says stop")
	err := be.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
		if _, err := io.ReadAll(r); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Errorf("get: got %v, want the callback's error", err)
	}
}

func testListCallback(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	want := map[string]int64{}
	for range 5 {
		h, data := randomFile(rng, backend.IndexFile, 50+int(rng.Uint64()%50))
		put(t, be, h, data)
		want[h.Name] = int64(len(data))
	}
	errStop := errors.New("enough")
	calls := 0
	err := be.List(t.Context(), backend.IndexFile, func(backend.FileInfo) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("list stopped by its callback: got %v after %d calls, want the callback's error after 1", err, calls)
	}
	// The callback may use the backend.
	err = be.List(t.Context(), backend.IndexFile, func(fi backend.FileInfo) error {
		h := backend.Handle{Type: backend.IndexFile, Name: fi.Name}
		st, err := be.Stat(t.Context(), h)
		if err != nil {
			return err
		}
		if st.Size != fi.Size || st.Size != want[fi.Name] {
			return fmt.Errorf("%s: listed size %d, stat size %d, stored %d", fi.Name, fi.Size, st.Size, want[fi.Name])
		}
		return nil
	})
	if err != nil {
		t.Errorf("list calling stat: %v", err)
	}
}

func testCancelled(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	h, data := randomFile(rng, backend.PackFile, 100)
	if err := be.Put(ctx, h, backend.NewByteReader(data)); !errors.Is(err, context.Canceled) {
		t.Errorf("put with a cancelled context: got %v, want context.Canceled", err)
	}
	wantMissing(t, be, h)
	put(t, be, h, data)
	if err := be.Delete(ctx, h); !errors.Is(err, context.Canceled) {
		t.Errorf("delete with a cancelled context: got %v, want context.Canceled", err)
	}
	wantContent(t, be, h, data)

	// Cancelled while the content is being sent.
	h2, data2 := randomFile(rng, backend.PackFile, 256<<10)
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	rd := &scriptedReader{data: data2, at: len(data2) / 2, action: func() error { cancel(); return nil }}
	if err := be.Put(ctx, h2, rd); err == nil {
		t.Errorf("put cancelled mid-way succeeded")
	}
	wantMissing(t, be, h2)
	wantList(t, be, backend.PackFile, map[string]int64{h.Name: 100})
}

func testAtomicVisibility(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	other, otherData := randomFile(rng, backend.PackFile, 1000)
	put(t, be, other, otherData)
	onlyOther := map[string]int64{other.Name: 1000}

	h, data := randomFile(rng, backend.PackFile, 1<<20)
	reached := make(chan struct{})
	release := make(chan struct{})
	rd := &scriptedReader{data: data, at: len(data) / 2, action: func() error {
		close(reached)
		<-release
		return nil
	}}
	done := make(chan error, 1)
	go func() { done <- be.Put(t.Context(), h, rd) }()
	select {
	case <-reached:
	case err := <-done:
		t.Fatalf("put returned before reading half its content: %v", err)
	case <-time.After(waitLimit):
		t.Fatalf("put did not read half its content within %v", waitLimit)
	}
	// Half the content has been sent: nothing of it may be seen.
	wantList(t, be, backend.PackFile, onlyOther)
	wantMissing(t, be, h)
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("put: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("put did not finish within %v of its reader's release", waitLimit)
	}
	wantContent(t, be, h, data)
}

func testBadContent(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	other, otherData := randomFile(rng, backend.KeyFile, 1000)
	put(t, be, other, otherData)
	onlyOther := map[string]int64{other.Name: 1000}

	errRead := errors.New("source broke")
	data := randomBytes(rng, 64<<10)
	h := handleFor(backend.KeyFile, data)
	for _, c := range []struct {
		name string
		rd   backend.RewindReader
	}{
		{"read error mid-way", &scriptedReader{data: data, at: len(data) / 2, action: func() error { return errRead }}},
		{"fewer bytes than its length", &scriptedReader{data: data[:len(data)/2], length: int64(len(data))}},
		{"more bytes than its length", &scriptedReader{data: data, length: int64(len(data) / 2)}},
	} {
		if err := be.Put(t.Context(), h, c.rd); err == nil {
			t.Errorf("put with a reader giving %s succeeded", c.name)
		}
		wantMissing(t, be, h)
		wantList(t, be, backend.KeyFile, onlyOther)
	}
}

func testConcurrent(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	workers := max(be.Properties().Connections, 1)
	const perWorker = 8
	type file struct {
		h    backend.Handle
		data []byte
	}
	jobs := make([][]file, workers)
	want := map[string]int64{}
	for w := range jobs {
		for range perWorker {
			h, data := randomFile(rng, backend.PackFile, 1+int(rng.Uint64()%(64<<10)))
			jobs[w] = append(jobs[w], file{h, data})
			want[h.Name] = int64(len(data))
		}
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	for _, files := range jobs {
		wg.Go(func() {
			for _, f := range files {
				if err := be.Put(ctx, f.h, backend.NewByteReader(f.data)); err != nil {
					t.Errorf("put %v: %v", f.h, err)
					return
				}
			}
			for _, f := range files {
				got, err := getRange(ctx, be, f.h, 0, 0)
				if err != nil || !bytes.Equal(got, f.data) {
					t.Errorf("get %v: %d bytes, %v", f.h, len(got), err)
				}
				if fi, err := be.Stat(ctx, f.h); err != nil || fi.Size != int64(len(f.data)) {
					t.Errorf("stat %v: %+v, %v", f.h, fi, err)
				}
			}
			if err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil }); err != nil {
				t.Errorf("list: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	wantList(t, be, backend.PackFile, want)

	// Every worker stores the same name at once.
	h, data := randomFile(rng, backend.PackFile, 32<<10)
	var okMu sync.Mutex
	ok := 0
	for range workers {
		wg.Go(func() {
			for range 4 {
				err := be.Put(ctx, h, backend.NewByteReader(data))
				if err == nil {
					okMu.Lock()
					ok++
					okMu.Unlock()
				} else if be.Properties().HasAtomicReplace {
					t.Errorf("concurrent put of one name: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if ok == 0 {
		t.Errorf("no concurrent put of one name succeeded")
	}
	wantContent(t, be, h, data)
	want[h.Name] = int64(len(data))

	for _, files := range jobs {
		wg.Go(func() {
			for _, f := range files {
				if err := be.Delete(ctx, f.h); err != nil {
					t.Errorf("delete %v: %v", f.h, err)
				}
			}
		})
	}
	wg.Wait()
	wantList(t, be, backend.PackFile, map[string]int64{h.Name: int64(len(data))})
}

func testLargeFile(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	const size = 20 << 20
	h, data := randomFile(rng, backend.PackFile, size)
	put(t, be, h, data)
	wantContent(t, be, h, data)
	got, err := getRange(t.Context(), be, h, 2<<20, size-(1<<20))
	if err != nil || !bytes.Equal(got, data[size-(1<<20):]) {
		t.Errorf("get the last MiB (asking for two): %d bytes, %v", len(got), err)
	}
	got, err = getRange(t.Context(), be, h, 4096, size/2)
	if err != nil || !bytes.Equal(got, data[size/2:size/2+4096]) {
		t.Errorf("get 4 KiB from the middle: %d bytes, %v", len(got), err)
	}
	wantList(t, be, backend.PackFile, map[string]int64{h.Name: size})
}

// scriptedReader is a RewindReader that runs action once, on the first
// pass, when it reaches byte at; an error from action is returned by that
// Read and every later Read of the pass. length, when not zero, is the
// length it claims instead of len(data).
type scriptedReader struct {
	data   []byte
	length int64
	at     int
	action func() error

	pos  int
	done bool  // action has run
	err  error // action's error, sticky
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.action != nil && !r.done && r.pos == r.at {
		r.done = true
		if err := r.action(); err != nil {
			r.err = err
			return 0, err
		}
	}
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	end := len(r.data)
	if r.action != nil && !r.done && r.pos < r.at {
		end = r.at
	}
	n := copy(p, r.data[r.pos:end])
	r.pos += n
	return n, nil
}

func (r *scriptedReader) Rewind() error {
	r.pos = 0
	if r.done && r.err == nil {
		return nil
	}
	// A failing reader fails again on every pass.
	r.done, r.err = false, nil
	return nil
}

func (r *scriptedReader) Length() int64 {
	if r.length != 0 {
		return r.length
	}
	return int64(len(r.data))
}
