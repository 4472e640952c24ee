package local

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/limit"
	"github.com/cairn-backup/cairn/backend/retry"
)

// tempFixture is a repository holding one real file of each type, every
// one of them older than the stale age, plus temporary files, old and
// fresh, in every folder, and look-alikes that are not ours.
type tempFixture struct {
	real     map[backend.Handle][]byte
	old      []string // paths that must go
	oldBytes int64
	keep     []string // paths that must stay
}

func plantTemps(t *testing.T, be backend.Backend, root string) tempFixture {
	t.Helper()
	ctx := t.Context()
	long := time.Now().Add(-3 * time.Hour)
	fx := tempFixture{real: map[backend.Handle][]byte{}}
	for i, ft := range backend.AllTypes {
		data := bytes.Repeat([]byte{byte(i + 1)}, 100+i)
		h := backend.Handle{Type: ft, Name: backend.Hash(data).String()}
		if ft == backend.ConfigFile {
			h.Name = backend.ConfigName
		}
		if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
			t.Fatal(err)
		}
		fx.real[h] = data
		p := filepath.Join(root, filepath.FromSlash(h.String()))
		if ft == backend.PackFile {
			p = filepath.Join(root, "data", backend.PackDir(h.Name), h.Name)
		}
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, size int, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	dirs := []string{"", "keys", "index", "log", "locks", "data/00", "data/7f", "data/ff"}
	for i, d := range dirs {
		dir := filepath.Join(root, filepath.FromSlash(d))
		old := filepath.Join(dir, ".tmp-old"+d[min(len(d), 5):])
		write(old, 1000+i, long)
		fx.old = append(fx.old, old)
		fx.oldBytes += int64(1000 + i)
		// Written 10 minutes ago, as by a slow upload from another host.
		fresh := filepath.Join(dir, ".tmp-fresh")
		write(fresh, 10, time.Now().Add(-10*time.Minute))
		fx.keep = append(fx.keep, fresh)
		// Old, but not named as a temporary file.
		other := filepath.Join(dir, "tmp-notes")
		write(other, 5, long)
		fx.keep = append(fx.keep, other)
	}
	// A folder named like a temporary file, and one directly in data/
	// (not a folder Put writes to), are left alone.
	odd := filepath.Join(root, "index", ".tmp-folder")
	if err := os.Mkdir(odd, 0o700); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(odd, "inside"), 1, long)
	if err := os.Chtimes(odd, long, long); err != nil {
		t.Fatal(err)
	}
	fx.keep = append(fx.keep, odd, filepath.Join(odd, "inside"))
	notLayout := filepath.Join(root, "data", ".tmp-notlayout")
	write(notLayout, 1, long)
	fx.keep = append(fx.keep, notLayout)
	if runtime.GOOS != "windows" {
		// A link named like a temporary file is not ours, nor its target.
		target := filepath.Join(t.TempDir(), "target")
		write(target, 1, long)
		link := filepath.Join(root, "log", ".tmp-link")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		fx.keep = append(fx.keep, link, target)
	}
	return fx
}

// checkSwept checks what RemoveStaleTemp returned and left.
func checkSwept(t *testing.T, be backend.Backend, fx tempFixture, removed int, size int64, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("remove stale temporary files: %v", err)
	}
	if removed != len(fx.old) || size != fx.oldBytes {
		t.Errorf("removed %d files (%d bytes), want %d (%d bytes)", removed, size, len(fx.old), fx.oldBytes)
	}
	for _, p := range fx.old {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("old temporary file %s: %v, want it removed", p, err)
		}
	}
	for _, p := range fx.keep {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s must stay: %v", p, err)
		}
	}
	for h, want := range fx.real {
		var got []byte
		err := be.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		})
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("real file %s after the sweep: %v (%d bytes, want %d)", h, err, len(got), len(want))
		}
	}
	for _, ft := range backend.AllTypes {
		var names []string
		if err := be.List(t.Context(), ft, func(fi backend.FileInfo) error {
			names = append(names, fi.Name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(names) != 1 {
			t.Errorf("list %s: %v, want the one real file", ft, names)
		}
	}
}

func TestRemoveStaleTemp(t *testing.T) {
	be := newTestBackend(t)
	fx := plantTemps(t, be, be.dir)
	n, size, err := be.RemoveStaleTemp(t.Context(), time.Hour)
	checkSwept(t, be, fx, n, size, err)

	// Nothing left to remove; the probe file is gone too.
	n, size, err = be.RemoveStaleTemp(t.Context(), time.Hour)
	if err != nil || n != 0 || size != 0 {
		t.Errorf("second sweep: %d files, %d bytes, %v; want nothing", n, size, err)
	}
	entries, err := os.ReadDir(be.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	want := []string{".tmp-fresh", "config", "data", "index", "keys", "locks", "log", "meta", "tmp-notes"}
	if !slices.Equal(names, want) {
		t.Errorf("repository folder holds %v, want %v", names, want)
	}
}

// The helper finds the cleaner below the wrappers cmd/cairn stacks.
func TestRemoveStaleTempThroughWrappers(t *testing.T) {
	be := newTestBackend(t)
	fx := plantTemps(t, be, be.dir)
	f := faulty.New(be)
	r, err := retry.New(limit.New(f, 0), retry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, size, err := backend.RemoveStaleTemp(t.Context(), r, time.Hour)
	checkSwept(t, be, fx, n, size, err)
}

func TestRemoveStaleTempRefuses(t *testing.T) {
	be := newTestBackend(t)
	old := filepath.Join(be.dir, "keys", ".tmp-x")
	if err := os.WriteFile(old, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	for _, age := range []time.Duration{0, -time.Hour} {
		if n, _, err := be.RemoveStaleTemp(t.Context(), age); err == nil || n != 0 {
			t.Errorf("age %v: %d removed, error %v; want a refusal", age, n, err)
		}
		if n, _, err := backend.RemoveStaleTemp(t.Context(), be, age); err == nil || n != 0 {
			t.Errorf("helper, age %v: %d removed, error %v; want a refusal", age, n, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if n, _, err := be.RemoveStaleTemp(ctx, time.Hour); err == nil || n != 0 {
		t.Errorf("cancelled: %d removed, error %v; want the cancellation", n, err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Errorf("a refused sweep removed %s: %v", old, err)
	}
	// A two-day-old file is kept by a three-day age.
	if n, _, err := be.RemoveStaleTemp(t.Context(), 72*time.Hour); err != nil || n != 0 {
		t.Errorf("age 72h: %d removed, %v; want none", n, err)
	}
}
