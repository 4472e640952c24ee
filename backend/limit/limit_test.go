package limit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/limit"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/backend/mem"
)

func TestSuiteLocal(t *testing.T) {
	backendtest.RunTests(t, func(t *testing.T) backend.Backend {
		be, err := local.Create(t.Context(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return limit.New(be, 0)
	})
}

// gauge is a backend whose Put and Stat take a while and record how many
// ran at once.
type gauge struct {
	*mem.Backend
	mu       sync.Mutex
	now, max int
}

func (g *gauge) enter() {
	g.mu.Lock()
	g.now++
	g.max = max(g.max, g.now)
	g.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	g.mu.Lock()
	g.now--
	g.mu.Unlock()
}

func (g *gauge) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	g.enter()
	return g.Backend.Put(ctx, h, rd)
}

func (g *gauge) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	g.enter()
	return g.Backend.Stat(ctx, h)
}

func TestBoundsConcurrency(t *testing.T) {
	ctx := t.Context()
	for _, n := range []int{0, 1, 3} {
		g := &gauge{Backend: mem.New()}
		be := limit.New(g, n)
		want := n
		if n == 0 {
			want = g.Properties().Connections
		}
		if be.Properties().Connections != want {
			t.Errorf("limit %d: Properties().Connections = %d, want %d", n, be.Properties().Connections, want)
		}
		var wg sync.WaitGroup
		for i := range 4 * want {
			wg.Go(func() {
				data := []byte(fmt.Sprint("file ", i))
				h := backend.Handle{Type: backend.PackFile, Name: backend.Hash(data).String()}
				if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
					t.Error(err)
				}
				if _, err := be.Stat(ctx, h); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if g.max > want {
			t.Errorf("limit %d: %d requests ran at once", n, g.max)
		}
		if want > 1 && g.max < 2 {
			t.Errorf("limit %d: requests never overlapped", n)
		}
	}
}

func TestListCallbackMayUseBackend(t *testing.T) {
	ctx := t.Context()
	be := limit.New(mem.New(), 1)
	for i := range 3 {
		data := []byte(fmt.Sprint("index ", i))
		h := backend.Handle{Type: backend.IndexFile, Name: backend.Hash(data).String()}
		if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		done <- be.List(ctx, backend.IndexFile, func(fi backend.FileInfo) error {
			return be.Get(ctx, backend.Handle{Type: backend.IndexFile, Name: fi.Name}, 0, 0, func(r io.Reader) error {
				_, err := io.Copy(io.Discard, r)
				return err
			})
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("list whose callback uses the backend deadlocked")
	}
	// Every slot was given back.
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.IndexFile, Name: backend.Hash(nil).String()}); !backend.IsNotExist(err) {
		t.Errorf("stat after list: %v", err)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	be := limit.New(mem.New(), 1)
	data := []byte("pack")
	h := backend.Handle{Type: backend.PackFile, Name: backend.Hash(data).String()}
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	holding := make(chan struct{})
	release := make(chan struct{})
	go func() {
		_ = be.Get(t.Context(), h, 0, 0, func(io.Reader) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := be.Stat(ctx, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stat waiting for the only slot: %v, want DeadlineExceeded", err)
	}
	cancelled, cancelNow := context.WithCancel(t.Context())
	cancelNow()
	close(release)
	if err := be.Delete(cancelled, h); !errors.Is(err, context.Canceled) {
		t.Errorf("delete with a cancelled context: %v", err)
	}
	if _, err := be.Stat(t.Context(), h); err != nil {
		t.Errorf("stat after the slot was freed: %v", err)
	}
}

func TestSuiteRate(t *testing.T) {
	backendtest.RunTests(t, func(t *testing.T) backend.Backend {
		// Fast enough for the suite, still through the wrapper.
		return limit.NewRate(mem.New(), 1<<30, 1<<30)
	})
}
