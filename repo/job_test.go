package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo/pack"
)

// indexedRepo makes a repository in a fresh backend holding one data blob,
// listed in an index file, and returns the backend and the blob's ID.
func indexedRepo(t *testing.T) (backend.Backend, backend.ID) {
	t.Helper()
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	data := []byte("a blob the index lists")
	id := backend.Hash(data)
	if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return be, id
}

// TestLoadIndexRefusesWithoutLock is issue 12 item 1: code that opens a
// repository without OpenForJob cannot load the index before it holds a
// lock, since an index read before the lock could predate a prune that
// ran in between.
func TestLoadIndexRefusesWithoutLock(t *testing.T) {
	ctx := context.Background()
	be, id := indexedRepo(t)
	r, err := Open(ctx, be, testPassword, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Has(pack.DataBlob, id) {
		t.Fatal("Open loaded the index")
	}
	err = r.LoadIndex(ctx)
	if !errors.Is(err, ErrNotLocked) || !strings.Contains(err.Error(), "OpenForJob") {
		t.Fatalf("LoadIndex before the lock: %v, want ErrNotLocked naming OpenForJob", err)
	}
	if r.Has(pack.DataBlob, id) {
		t.Fatal("a refused LoadIndex loaded the index")
	}

	l, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatalf("LoadIndex under the lock: %v", err)
	}
	if !r.Has(pack.DataBlob, id) {
		t.Fatal("LoadIndex under the lock did not load the index")
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("LoadIndex after Unlock: %v, want ErrNotLocked", err)
	}
}

// TestOpenForJobLocksBeforeIndex checks the order OpenForJob keeps: the
// lock file is stored before the index is listed, for every mode that
// locks; NoLock stores none and loads the index lock-free.
func TestOpenForJobLocksBeforeIndex(t *testing.T) {
	ctx := context.Background()
	inner, id := indexedRepo(t)
	for _, mode := range []LockMode{NoLock, LockRead, LockAppend, LockExclusive, LockExclusiveDryRun} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			f := faulty.New(inner)
			var (
				mu     sync.Mutex // guards events
				events []string
			)
			record := func(what string) func(backend.Handle) {
				return func(backend.Handle) {
					mu.Lock()
					events = append(events, what)
					mu.Unlock()
				}
			}
			f.AddFault(faulty.Put).Match(backend.LockFile, "").Times(1 << 20).Hook(record("lock"))
			f.AddFault(faulty.List).Match(backend.IndexFile, "").Times(1 << 20).Hook(record("index"))
			r, l, err := OpenForJob(ctx, f, testPassword, Options{}, mode)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if !r.Has(pack.DataBlob, id) {
				t.Fatal("the index was not loaded")
			}
			want := "lock index"
			if mode == NoLock {
				want = "index"
				if l != nil {
					t.Fatal("NoLock returned a lock")
				}
			}
			if got := strings.Join(events, " "); got != want {
				t.Fatalf("events %q, want %q", got, want)
			}
			if err := l.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOpenForJobReadOnlyLocation checks the fallback for a location that
// refuses to store the lock file: a job that only reads goes on without a
// lock after one warning; a job that writes fails.
func TestOpenForJobReadOnlyLocation(t *testing.T) {
	ctx := context.Background()
	inner, id := indexedRepo(t)
	for _, mode := range []LockMode{LockRead, LockAppend, LockExclusive, LockExclusiveDryRun} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			f := faulty.New(inner)
			f.AddFault(faulty.Put).Match(backend.LockFile, "").ErrorInstead(syscall.EROFS)
			var warnings []string
			r, l, err := OpenForJob(ctx, f, testPassword, Options{Warn: func(m string) { warnings = append(warnings, m) }}, mode)
			if !mode.ReadOnly() {
				if !errors.Is(err, ErrLocationReadOnly) {
					t.Fatalf("a job that writes: %v, want ErrLocationReadOnly", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if l != nil {
				t.Fatal("got a lock the location refused")
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], "reading without a lock") {
				t.Fatalf("warnings %q, want one about reading without a lock", warnings)
			}
			if !r.Has(pack.DataBlob, id) {
				t.Fatal("the index was not loaded")
			}
			// The nil lock is usable as "no lock".
			lctx, cancel := l.Context(ctx)
			defer cancel()
			if lctx.Err() != nil {
				t.Fatal("the context of no lock is done")
			}
			if err := l.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLockModeDryRun(t *testing.T) {
	for _, c := range []struct{ mode, dry LockMode }{
		{NoLock, NoLock}, {LockRead, LockRead}, {LockAppend, LockRead},
		{LockExclusive, LockExclusiveDryRun}, {LockExclusiveDryRun, LockExclusiveDryRun},
	} {
		if got := c.mode.DryRun(); got != c.dry || !got.ReadOnly() && got != NoLock {
			t.Errorf("%v.DryRun() = %v (read-only %v), want %v", c.mode, got, got.ReadOnly(), c.dry)
		}
	}
}
