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
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// RemoveStaleTemp implements backend.TempCleaner. It looks in the
// repository folder (beside the config), keys/, index/, log/, locks/ and
// each data/XX/ (following a link to a folder, as List does), and removes
// the regular files named ".tmp-..." whose modification time is more than
// olderThan before the file system's current time. That time is read from
// a probe file the call creates (and removes) in the repository folder,
// so a network file system whose server clock differs from this host's
// still measures ages by one clock.
func (b *Backend) RemoveStaleTemp(ctx context.Context, olderThan time.Duration) (removed int, bytes int64, err error) {
	if err := backend.CheckTempAge(olderThan); err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files: %w", err)
	}
	now, err := b.storageNow()
	if err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files in %s: %w", b.dir, err)
	}
	dirs, err := b.tempDirs()
	if err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files in %s: %w", b.dir, err)
	}
	cutoff := now.Add(-olderThan)
	var first error // the first file that could not be removed
	for _, dir := range dirs {
		n, size, ferr, err := sweepDir(ctx, dir, cutoff)
		removed += n
		bytes += size
		if first == nil {
			first = ferr
		}
		if err != nil {
			return removed, bytes, fmt.Errorf("remove stale temporary files: %w", err)
		}
	}
	if first != nil {
		return removed, bytes, fmt.Errorf("remove stale temporary files: %w", first)
	}
	return removed, bytes, nil
}

// storageNow is the file system's current time: the modification time of
// a probe file just created in the repository folder.
func (b *Backend) storageNow() (time.Time, error) {
	f, err := os.CreateTemp(b.dir, tempPrefix+"*")
	if err != nil {
		return time.Time{}, fmt.Errorf("probe the file system's clock: %w", err)
	}
	fi, err := f.Stat()
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	switch {
	case err != nil:
		return time.Time{}, fmt.Errorf("probe the file system's clock: %w", err)
	case cerr != nil:
		return time.Time{}, fmt.Errorf("probe the file system's clock: %w", cerr)
	case rerr != nil:
		return time.Time{}, fmt.Errorf("probe the file system's clock: %w", rerr)
	}
	return fi.ModTime(), nil
}

// tempDirs lists the folders where Put creates temporary files and that
// exist.
func (b *Backend) tempDirs() ([]string, error) {
	dirs := []string{b.dir}
	for _, t := range backend.AllTypes {
		if t != backend.ConfigFile && t != backend.PackFile {
			dirs = append(dirs, filepath.Join(b.dir, t.Dir()))
		}
	}
	data := filepath.Join(b.dir, backend.PackFile.Dir())
	subs, err := os.ReadDir(data)
	if errors.Is(err, fs.ErrNotExist) {
		return dirs, nil
	}
	if err != nil {
		return nil, err
	}
	for _, sub := range subs {
		if !backend.IsPackDir(sub.Name()) {
			continue
		}
		p := filepath.Join(data, sub.Name())
		if !sub.IsDir() {
			if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
				continue // not a folder List would read either
			}
		}
		dirs = append(dirs, p)
	}
	return dirs, nil
}

// sweepDir removes the stale temporary files of dir: regular files named
// with tempPrefix last modified before cutoff. A missing dir holds none.
// fileErr is the first file that could not be removed (the sweep goes on
// past it); err is a failure to read the folder or a cancelled ctx.
func sweepDir(ctx context.Context, dir string, cutoff time.Time) (removed int, bytes int64, fileErr, err error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil, nil
	}
	if err != nil {
		return 0, 0, nil, err
	}
	defer f.Close() // read-only folder handle: nothing to lose on close
	for {
		entries, rerr := f.ReadDir(listBatch)
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return removed, bytes, fileErr, err
			}
			// Type comes from lstat: a link named like a temporary
			// file is not one of ours and is left alone.
			if !strings.HasPrefix(e.Name(), tempPrefix) || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // renamed or removed since the folder was read
			}
			if err != nil {
				if fileErr == nil {
					fileErr = err
				}
				continue
			}
			if !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
				continue
			}
			switch err := removeFile(filepath.Join(dir, e.Name())); {
			case err == nil:
				removed++
				bytes += fi.Size()
			case errors.Is(err, fs.ErrNotExist):
				// Another cleaner got there first.
			case fileErr == nil:
				fileErr = err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return removed, bytes, fileErr, nil
		}
		if rerr != nil {
			return removed, bytes, fileErr, fmt.Errorf("read folder %s: %w", dir, rerr)
		}
	}
}

// removeFile removes p, making it writable first where Windows refuses to
// remove a read-only file.
func removeFile(p string) error {
	err := os.Remove(p)
	if err != nil && runtime.GOOS == "windows" && errors.Is(err, fs.ErrPermission) {
		if cerr := os.Chmod(p, 0o600); cerr == nil {
			err = os.Remove(p)
		}
	}
	return err
}
