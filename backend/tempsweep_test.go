package backend_test

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// fakeTempFS is a repository folder in memory (testing/fstest's MapFS),
// whose clock is now, with failures planted by name.
type fakeTempFS struct {
	mu      sync.Mutex // guards files and removed
	files   fstest.MapFS
	removed []string
	now     time.Time
	failRm  map[string]error // Remove of the name fails so
	failDir map[string]error // ReadDir of the folder fails so
}

func (f *fakeTempFS) CreateProbe(_ context.Context, name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[name] = &fstest.MapFile{ModTime: f.now}
	return fs.Stat(f.files, name)
}

func (f *fakeTempFS) ReadDir(_ context.Context, dir string, fn func(fs.DirEntry) error) error {
	if err := f.failDir[dir]; err != nil {
		return err
	}
	f.mu.Lock()
	entries, err := fs.ReadDir(f.files, dir)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeTempFS) Stat(_ context.Context, name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fs.Stat(f.files, name)
}

func (f *fakeTempFS) Remove(_ context.Context, name string) error {
	if err := f.failRm[name]; err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; !ok {
		return fs.ErrNotExist
	}
	delete(f.files, name)
	f.removed = append(f.removed, name)
	return nil
}

func newFakeTempFS() *fakeTempFS {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	old := &fstest.MapFile{Data: []byte("12345"), ModTime: now.Add(-2 * time.Hour)}
	f := &fakeTempFS{now: now, files: fstest.MapFS{
		"config":           {ModTime: old.ModTime},
		".tmp-a":           old,
		"keys/.tmp-b":      old,
		"index/.tmp-c":     old,
		"log/.tmp-d":       old,
		"locks/.tmp-e":     old,
		"data/00/.tmp-f":   old,
		"data/01/.tmp-g":   old,
		"data/.tmp-h":      old, // not a folder Put writes to
		"keys/.tmp-fresh":  {Data: []byte("x"), ModTime: now.Add(-10 * time.Minute)},
		"keys/tmp-notours": old,
	}}
	return f
}

// TestSweepStaleTempErrors: a file that cannot be removed does not stop
// the sweep (the error names the first such file, the counts the rest);
// a folder that cannot be read does.
func TestSweepStaleTempErrors(t *testing.T) {
	ctx := context.Background()
	f := newFakeTempFS()
	n, size, err := backend.SweepStaleTemp(ctx, f, time.Hour, 4)
	if err != nil || n != 7 || size != 35 {
		t.Fatalf("clean sweep: %d files, %d bytes, %v; want 7, 35, nil", n, size, err)
	}
	for name := range f.files {
		if strings.HasPrefix(path.Base(name), backend.TempPrefix) && name != "data/.tmp-h" && name != "keys/.tmp-fresh" {
			t.Errorf("%s left (the probe included)", name)
		}
	}

	f = newFakeTempFS()
	errBusy := errors.New("remove index/.tmp-c: busy")
	f.failRm = map[string]error{"index/.tmp-c": errBusy}
	n, _, err = backend.SweepStaleTemp(ctx, f, time.Hour, 1)
	if !errors.Is(err, errBusy) || n != 6 {
		t.Fatalf("one file refused: %d removed, %v; want the other 6 and its error", n, err)
	}

	f = newFakeTempFS()
	errGone := errors.New("read folder log: connection lost")
	f.failDir = map[string]error{"log": errGone}
	if _, _, err = backend.SweepStaleTemp(ctx, f, time.Hour, 1); !errors.Is(err, errGone) {
		t.Fatalf("folder unreadable: %v, want its error", err)
	}
}
