package sftp

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// RemoveStaleTemp implements backend.TempCleaner with the shared sweeper
// (backend.SweepStaleTemp), folderWorkers folders at a time. The server's
// time is read from a probe file created in the repository folder: the
// ages are then measured by the server's clock, which stamped the files,
// however far this host's clock is off.
func (b *Backend) RemoveStaleTemp(ctx context.Context, olderThan time.Duration) (removed int, bytes int64, err error) {
	if err := backend.CheckTempAge(olderThan); err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files: %w", err)
	}
	cl, err := b.client(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files: %w", err)
	}
	return backend.SweepStaleTemp(ctx, tempFS{b: b, cl: cl}, olderThan, folderWorkers)
}

// tempFS is the repository folder on the server as backend.SweepStaleTemp
// sees it, over one connection. An error from the connection marks it
// broken (Backend.check), so the next call dials again.
type tempFS struct {
	b  *Backend
	cl *conn
}

func (f tempFS) path(name string) string { return path.Join(f.b.base, name) }

// CreateProbe implements backend.TempFS.
func (f tempFS) CreateProbe(_ context.Context, name string) (fs.FileInfo, error) {
	p := f.path(name)
	fh, err := f.cl.sftp.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", p, f.b.check(f.cl, err))
	}
	fi, err := fh.Stat()
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = f.cl.sftp.Remove(p)
		return nil, fmt.Errorf("create %s: %w", p, f.b.check(f.cl, err))
	}
	return fi, nil
}

// ReadDir implements backend.TempFS. The server reads folders with lstat.
func (f tempFS) ReadDir(ctx context.Context, dir string, fn func(fs.DirEntry) error) error {
	p := f.path(dir)
	entries, err := f.cl.sftp.ReadDirContext(ctx, p)
	if err != nil {
		return fmt.Errorf("read folder %s: %w", p, f.b.check(f.cl, err))
	}
	for _, e := range entries {
		if err := fn(fs.FileInfoToDirEntry(e)); err != nil {
			return err
		}
	}
	return nil
}

// Stat implements backend.TempFS.
func (f tempFS) Stat(_ context.Context, name string) (fs.FileInfo, error) {
	fi, err := f.cl.sftp.Stat(f.path(name))
	if err != nil {
		return nil, f.b.check(f.cl, err)
	}
	return fi, nil
}

// Remove implements backend.TempFS.
func (f tempFS) Remove(_ context.Context, name string) error {
	p := f.path(name)
	if err := f.cl.sftp.Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, f.b.check(f.cl, err))
	}
	return nil
}
