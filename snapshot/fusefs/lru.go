package fusefs

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// lru is a cache bounded by the total cost of its values (their size in
// bytes), least recently used first out. get loads a missing value once:
// concurrent gets of one key wait for the first one's load instead of
// loading it again (the kernel's read-ahead asks for neighbouring pieces
// of one chunk at once). It is safe for concurrent use.
type lru[K comparable, V any] struct {
	mu       sync.Mutex
	capacity int
	used     int
	order    *list.List // of *lruEntry, most recently used at the front
	entries  map[K]*lruEntry[K, V]
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	cost int
	err  error
	// done is closed when the load has finished; elem is nil until then
	// (an entry being loaded costs nothing and cannot be evicted).
	done chan struct{}
	elem *list.Element
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	return &lru[K, V]{capacity: capacity, order: list.New(), entries: make(map[K]*lruEntry[K, V])}
}

// get returns the value of key, calling load (on the caller's goroutine)
// when it is not cached. load returns the value and its cost. A failed
// load is not cached. A value whose cost exceeds the capacity is returned
// but not kept.
//
// When another get's load of the same key fails because that caller's
// context was cancelled (a reader interrupted), get loads the value again
// under its own context instead of passing that error on.
func (c *lru[K, V]) get(ctx context.Context, key K, load func() (V, int, error)) (V, error) {
	for {
		c.mu.Lock()
		e, ok := c.entries[key]
		if ok && e.elem != nil {
			c.order.MoveToFront(e.elem)
			c.mu.Unlock()
			return e.val, nil
		}
		if ok {
			c.mu.Unlock()
			select {
			case <-e.done:
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
			if e.err == nil {
				return e.val, nil
			}
			if isCancel(e.err) && ctx.Err() == nil {
				continue // the loader was interrupted, not us
			}
			return e.val, e.err
		}
		e = &lruEntry[K, V]{key: key, done: make(chan struct{})}
		c.entries[key] = e
		c.mu.Unlock()
		return c.fill(e, load)
	}
}

// fill runs the load of e, a placeholder entry, and publishes its result.
func (c *lru[K, V]) fill(e *lruEntry[K, V], load func() (V, int, error)) (V, error) {
	val, cost, err := load()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.val, e.cost, e.err = val, cost, err
	close(e.done)
	if err != nil || cost > c.capacity {
		delete(c.entries, e.key)
		return val, err
	}
	e.elem = c.order.PushFront(e)
	c.used += cost
	for c.used > c.capacity {
		last := c.order.Back()
		old := last.Value.(*lruEntry[K, V])
		c.order.Remove(last)
		delete(c.entries, old.key)
		c.used -= old.cost
	}
	return val, nil
}

// stats returns the number of cached values and their total cost.
func (c *lru[K, V]) stats() (n, used int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.used
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
