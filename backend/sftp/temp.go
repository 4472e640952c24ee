package sftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// RemoveStaleTemp implements backend.TempCleaner. It looks in the
// repository folder (beside the config), keys/, index/, log/, locks/ and
// each data/XX/ (following a link to a folder, as List does), folderWorkers
// folders at a time, and removes the regular files named ".tmp-..." whose
// modification time is more than olderThan before the server's current
// time. The server's time is read from a probe file the call creates (and
// removes) in the repository folder: the ages are then measured by the
// server's clock, which stamped the files, however far this host's clock
// is off.
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
	now, err := b.serverNow(cl)
	if err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files: %w", err)
	}
	dirs, err := b.tempDirs(ctx, cl)
	if err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files: %w", err)
	}
	cutoff := now.Add(-olderThan)
	var mu sync.Mutex // guards removed, bytes and first
	var first error   // the first file that could not be removed
	err = parallel(ctx, dirs, func(ctx context.Context, dir string) error {
		n, size, ferr, err := b.sweepDir(ctx, cl, dir, cutoff)
		mu.Lock()
		defer mu.Unlock()
		removed += n
		bytes += size
		if first == nil {
			first = ferr
		}
		return err
	})
	if err != nil {
		return removed, bytes, fmt.Errorf("remove stale temporary files: %w", err)
	}
	if first != nil {
		return removed, bytes, fmt.Errorf("remove stale temporary files: %w", first)
	}
	return removed, bytes, nil
}

// serverNow is the server's current time: the modification time of a probe
// file just created in the repository folder.
func (b *Backend) serverNow(cl *conn) (time.Time, error) {
	p, err := tempName(b.base)
	if err != nil {
		return time.Time{}, err
	}
	f, err := cl.sftp.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return time.Time{}, fmt.Errorf("probe the server's clock: %w", b.check(cl, err))
	}
	fi, err := f.Stat()
	cerr := f.Close()
	rerr := cl.sftp.Remove(p)
	switch {
	case err != nil:
		return time.Time{}, fmt.Errorf("probe the server's clock: %w", b.check(cl, err))
	case cerr != nil:
		return time.Time{}, fmt.Errorf("probe the server's clock: %w", b.check(cl, cerr))
	case rerr != nil:
		return time.Time{}, fmt.Errorf("probe the server's clock: %w", b.check(cl, rerr))
	}
	return fi.ModTime(), nil
}

// tempDirs lists the folders where Put creates temporary files; some may
// not exist.
func (b *Backend) tempDirs(ctx context.Context, cl *conn) ([]string, error) {
	dirs := []string{b.base}
	for _, t := range backend.AllTypes {
		if t != backend.ConfigFile && t != backend.PackFile {
			dirs = append(dirs, path.Join(b.base, t.Dir()))
		}
	}
	data := path.Join(b.base, backend.PackFile.Dir())
	subs, err := cl.sftp.ReadDirContext(ctx, data)
	if errors.Is(err, fs.ErrNotExist) {
		return dirs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read folder %s: %w", data, b.check(cl, err))
	}
	for _, s := range subs {
		if !backend.IsPackDir(s.Name()) {
			continue
		}
		p := path.Join(data, s.Name())
		if s.Mode()&fs.ModeSymlink != 0 {
			fi, err := cl.sftp.Stat(p)
			if err != nil || !fi.IsDir() {
				continue // dangling, or not a folder List would read either
			}
			s = fi
		}
		if s.IsDir() {
			dirs = append(dirs, p)
		}
	}
	return dirs, nil
}

// sweepDir removes the stale temporary files of dir: regular files named
// with tempPrefix last modified before cutoff. A missing dir holds none.
// fileErr is the first file that could not be removed (the sweep goes on
// past it); err is a failure to read the folder, a broken connection or a
// cancelled ctx.
func (b *Backend) sweepDir(ctx context.Context, cl *conn, dir string, cutoff time.Time) (removed int, bytes int64, fileErr, err error) {
	entries, err := cl.sftp.ReadDirContext(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil, nil
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("read folder %s: %w", dir, b.check(cl, err))
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, bytes, fileErr, err
		}
		// The server reads folders with lstat: a link named like a
		// temporary file is not one of ours and is left alone.
		if !strings.HasPrefix(e.Name(), tempPrefix) || !e.Mode().IsRegular() || !e.ModTime().Before(cutoff) {
			continue
		}
		p := path.Join(dir, e.Name())
		switch err := cl.sftp.Remove(p); {
		case err == nil:
			removed++
			bytes += e.Size()
		case errors.Is(err, fs.ErrNotExist):
			// Renamed by its writer or removed by another cleaner.
		case isConnError(err):
			return removed, bytes, fileErr, fmt.Errorf("remove %s: %w", p, b.check(cl, err))
		case fileErr == nil:
			fileErr = fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return removed, bytes, fileErr, nil
}
