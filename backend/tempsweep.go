package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// TempFS is a repository folder as the stale-temporary-file sweeper
// (SweepStaleTemp) sees it. Names are slash-separated paths relative to
// the repository folder, "." being the folder itself. The backends that
// write to a temporary name and rename (local, sftp) implement it over
// their file systems. Its methods may be called from several goroutines
// at once.
type TempFS interface {
	// CreateProbe creates the empty file name in the repository folder,
	// failing if it exists, and returns its information as the storage
	// stamped it: its modification time is the storage's current time.
	// On an error it leaves no file behind.
	CreateProbe(ctx context.Context, name string) (fs.FileInfo, error)
	// ReadDir calls fn with each entry of the folder dir, as lstat
	// describes it (a link is a link, not what it points to), on the
	// caller's goroutine; fn's error stops the reading and is returned.
	// A missing folder returns an error wrapping fs.ErrNotExist.
	ReadDir(ctx context.Context, dir string, fn func(fs.DirEntry) error) error
	// Stat describes name, following links.
	Stat(ctx context.Context, name string) (fs.FileInfo, error)
	// Remove removes the file name. Its error names the file, and wraps
	// fs.ErrNotExist when the file is already gone.
	Remove(ctx context.Context, name string) error
}

// SweepStaleTemp implements TempCleaner.RemoveStaleTemp over fsys, for the
// backends whose Put writes a temporary file beside the final one. It
// looks in the repository folder (beside the config), keys/, index/,
// log/, locks/ and each data/XX/ (following a link to a folder, as List
// does), workers folders at a time, and removes the regular files named
// TempPrefix... whose modification time is more than olderThan before the
// storage's current time. That time is read from a probe file it creates
// (and removes) in the repository folder, so that ages are measured by
// the clock that stamped the files, however far this host's clock is off.
//
// Removal goes on past a file that cannot be removed, and the error then
// names the first such file; a folder that cannot be read stops the sweep
// (the first error cancels the other folders: the pools' one rule). The
// counts say what was removed either way.
func SweepStaleTemp(ctx context.Context, fsys TempFS, olderThan time.Duration, workers int) (removed int, bytes int64, err error) {
	if err := CheckTempAge(olderThan); err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files: %w", err)
	}
	now, err := storageNow(ctx, fsys)
	if err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files: %w", err)
	}
	dirs, err := tempDirs(ctx, fsys)
	if err != nil {
		return 0, 0, fmt.Errorf("remove stale temporary files: %w", err)
	}
	cutoff := now.Add(-olderThan)
	var (
		mu    sync.Mutex // guards removed, bytes and first
		first error      // the first file that could not be removed
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	for _, dir := range dirs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			n, size, ferr, err := sweepDir(gctx, fsys, dir, cutoff)
			mu.Lock()
			defer mu.Unlock()
			removed += n
			bytes += size
			if first == nil {
				first = ferr
			}
			return err
		})
	}
	err = g.Wait()
	if err == nil {
		err = ctx.Err() // folders may have been left out
	}
	if err == nil {
		err = first
	}
	if err != nil {
		return removed, bytes, fmt.Errorf("remove stale temporary files: %w", err)
	}
	return removed, bytes, nil
}

// storageNow is the storage's current time: the modification time of a
// probe file just created in the repository folder.
func storageNow(ctx context.Context, fsys TempFS) (time.Time, error) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return time.Time{}, fmt.Errorf("probe the storage's clock: %w", err)
	}
	name := TempPrefix + hex.EncodeToString(r[:])
	fi, err := fsys.CreateProbe(ctx, name)
	if err != nil {
		return time.Time{}, fmt.Errorf("probe the storage's clock: %w", err)
	}
	if err := fsys.Remove(ctx, name); err != nil {
		return time.Time{}, fmt.Errorf("probe the storage's clock: %w", err)
	}
	return fi.ModTime(), nil
}

// tempDirs lists the folders where Put creates temporary files; some may
// not exist.
func tempDirs(ctx context.Context, fsys TempFS) ([]string, error) {
	dirs := []string{"."}
	for _, t := range AllTypes {
		if t != ConfigFile && t != PackFile {
			dirs = append(dirs, t.Dir())
		}
	}
	data := PackFile.Dir()
	err := fsys.ReadDir(ctx, data, func(e fs.DirEntry) error {
		if !IsPackDir(e.Name()) {
			return nil
		}
		p := path.Join(data, e.Name())
		if e.Type()&fs.ModeSymlink != 0 {
			fi, err := fsys.Stat(ctx, p)
			if err != nil || !fi.IsDir() {
				return nil // dangling, or not a folder List would read either
			}
		} else if !e.IsDir() {
			return nil
		}
		dirs = append(dirs, p)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return dirs, nil
}

// sweepDir removes the stale temporary files of dir: regular files named
// with TempPrefix last modified before cutoff. A missing dir holds none.
// fileErr is the first file that could not be removed (the sweep goes on
// past it); err is a failure to read the folder or a cancelled ctx.
func sweepDir(ctx context.Context, fsys TempFS, dir string, cutoff time.Time) (removed int, bytes int64, fileErr, err error) {
	err = fsys.ReadDir(ctx, dir, func(e fs.DirEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The type is lstat's: a link named like a temporary file is
		// not one of ours and is left alone.
		if !strings.HasPrefix(e.Name(), TempPrefix) || !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // renamed or removed since the folder was read
		}
		if err != nil {
			if fileErr == nil {
				fileErr = err
			}
			return nil
		}
		if !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
			return nil
		}
		switch err := fsys.Remove(ctx, path.Join(dir, e.Name())); {
		case err == nil:
			removed++
			bytes += fi.Size()
		case errors.Is(err, fs.ErrNotExist):
			// Renamed by its writer, or removed by another cleaner.
		case fileErr == nil:
			fileErr = err
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil // a missing folder holds none
	}
	return removed, bytes, fileErr, err
}
