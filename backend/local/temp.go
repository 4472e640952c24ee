package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// RemoveStaleTemp implements backend.TempCleaner with the shared sweeper
// (backend.SweepStaleTemp), one folder at a time: a local disk gains
// nothing from more. The file system's current time is read from a probe
// file created in the repository folder, so a network file system whose
// server clock differs from this host's still measures ages by one clock.
func (b *Backend) RemoveStaleTemp(ctx context.Context, olderThan time.Duration) (removed int, bytes int64, err error) {
	return backend.SweepStaleTemp(ctx, tempFS{dir: b.dir}, olderThan, 1)
}

// tempFS is the repository folder as backend.SweepStaleTemp sees it.
type tempFS struct{ dir string }

func (f tempFS) path(name string) string { return filepath.Join(f.dir, filepath.FromSlash(name)) }

// CreateProbe implements backend.TempFS.
func (f tempFS) CreateProbe(_ context.Context, name string) (fs.FileInfo, error) {
	p := f.path(name)
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(p)
		return nil, err
	}
	return fi, nil
}

// ReadDir implements backend.TempFS, listBatch entries at a time.
func (f tempFS) ReadDir(_ context.Context, dir string, fn func(fs.DirEntry) error) error {
	fh, err := os.Open(f.path(dir))
	if err != nil {
		return err
	}
	defer fh.Close() // read-only folder handle: nothing to lose on close
	for {
		entries, rerr := fh.ReadDir(listBatch)
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read folder %s: %w", f.path(dir), rerr)
		}
	}
}

// Stat implements backend.TempFS.
func (f tempFS) Stat(_ context.Context, name string) (fs.FileInfo, error) {
	return os.Stat(f.path(name))
}

// Remove implements backend.TempFS. It makes the file writable first
// where Windows refuses to remove a read-only file.
func (f tempFS) Remove(_ context.Context, name string) error {
	p := f.path(name)
	err := os.Remove(p)
	if err != nil && runtime.GOOS == "windows" && errors.Is(err, fs.ErrPermission) {
		if cerr := os.Chmod(p, 0o600); cerr == nil {
			err = os.Remove(p)
		}
	}
	return err
}
