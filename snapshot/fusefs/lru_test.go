package fusefs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLRUBoundAndOrder(t *testing.T) {
	c := newLRU[int, []byte](100)
	ctx := context.Background()
	loads := 0
	get := func(k, size int) {
		t.Helper()
		v, err := c.get(ctx, k, func() ([]byte, int, error) {
			loads++
			return make([]byte, size), size, nil
		})
		if err != nil || len(v) != size {
			t.Fatalf("get %d: %v, %d bytes", k, err, len(v))
		}
	}
	get(1, 40)
	get(2, 40)
	get(1, 40) // cached; 1 is now the most recent
	if loads != 2 {
		t.Fatalf("%d loads, want 2", loads)
	}
	get(3, 40) // evicts 2, the least recently used
	if n, used := c.stats(); n != 2 || used != 80 {
		t.Fatalf("%d values, %d bytes; want 2, 80", n, used)
	}
	get(1, 40)
	if loads != 3 {
		t.Fatalf("1 was evicted instead of 2 (%d loads)", loads)
	}
	get(2, 40)
	if loads != 4 {
		t.Fatalf("2 was not evicted (%d loads)", loads)
	}
	// Larger than the whole cache: returned, not kept, nothing evicted.
	get(9, 101)
	if n, used := c.stats(); n != 2 || used != 80 {
		t.Fatalf("after an oversized value: %d values, %d bytes; want 2, 80", n, used)
	}
}

func TestLRUErrorNotCached(t *testing.T) {
	c := newLRU[int, int](10)
	boom := errors.New("boom")
	if _, err := c.get(context.Background(), 1, func() (int, int, error) { return 0, 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	v, err := c.get(context.Background(), 1, func() (int, int, error) { return 7, 1, nil })
	if err != nil || v != 7 {
		t.Fatalf("after a failed load: %v, %v", v, err)
	}
}

// Readers asking for one value at once share one load.
func TestLRUConcurrentLoadOnce(t *testing.T) {
	c := newLRU[int, int](10)
	var loads atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]int, 8)
	for i := range results {
		wg.Go(func() {
			v, err := c.get(context.Background(), 1, func() (int, int, error) {
				loads.Add(1)
				close(started)
				<-release
				return 42, 1, nil
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		})
	}
	<-started
	// Every other reader is waiting or yet to come: none may load.
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
	for i, v := range results {
		if v != 42 {
			t.Fatalf("reader %d got %d", i, v)
		}
	}
}

// A reader waiting on another's load that the other's interruption
// cancelled loads the value itself instead of failing.
func TestLRUWaiterRetriesAfterLoaderCancelled(t *testing.T) {
	c := newLRU[int, int](10)
	loaderCtx, cancel := context.WithCancel(context.Background())
	inLoad := make(chan struct{})
	loaderDone := make(chan error)
	go func() {
		_, err := c.get(loaderCtx, 1, func() (int, int, error) {
			close(inLoad)
			<-loaderCtx.Done()
			return 0, 0, loaderCtx.Err()
		})
		loaderDone <- err
	}()
	<-inLoad
	waiterDone := make(chan int)
	go func() {
		v, err := c.get(context.Background(), 1, func() (int, int, error) { return 5, 1, nil })
		if err != nil {
			t.Error(err)
		}
		waiterDone <- v
	}()
	cancel()
	if err := <-loaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("loader: %v", err)
	}
	if v := <-waiterDone; v != 5 {
		t.Fatalf("waiter got %d, want 5", v)
	}
}
