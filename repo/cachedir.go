package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CacheDir is one repository's folder in the local cache root: everything
// in it may be deleted at any time (it is fetched again, or, for lock
// sightings, makes locks look new).
type CacheDir struct {
	// ID is the repository ID, the folder's name.
	ID string
	// Path is the folder.
	Path string
	// LastUsed is when a cairn last opened the repository with this
	// cache: the folder's modification time, which Open sets.
	LastUsed time.Time
	// Size is the bytes of the files in the folder, or -1 when not
	// measured.
	Size int64
}

// Old reports whether the cache was last used longer than maxAge before
// now.
func (c CacheDir) Old(now time.Time, maxAge time.Duration) bool {
	return now.Sub(c.LastUsed) > maxAge
}

// isRepoID reports whether name is a repository ID: 64 lowercase hex
// digits, as Init makes them. Only such folders are the cache's: anything
// else under the root (CACHEDIR.TAG, a folder someone put there) is left
// alone.
func isRepoID(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ListCaches returns the repository folders under the cache root, sorted
// by ID; none when the root does not exist. With withSize it adds up the
// files in each (a walk of the folder), else Size is -1.
func ListCaches(root string, withSize bool) ([]CacheDir, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list caches: %w", err)
	}
	var out []CacheDir
	for _, e := range ents {
		if !e.IsDir() || !isRepoID(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list caches: %w", err)
		}
		c := CacheDir{ID: e.Name(), Path: filepath.Join(root, e.Name()), LastUsed: fi.ModTime(), Size: -1}
		if withSize {
			if c.Size, err = dirSize(c.Path); err != nil {
				return nil, fmt.Errorf("list caches: %w", err)
			}
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CacheDir) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// dirSize adds up the sizes of the regular files under dir; files that
// vanish during the walk (a cairn running meanwhile) are not counted.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

// RemoveCache deletes the cache folder of repository id under root.
func RemoveCache(root, id string) error {
	if !isRepoID(id) {
		return fmt.Errorf("remove cache: %q is not a repository ID", id)
	}
	if err := os.RemoveAll(filepath.Join(root, id)); err != nil {
		return fmt.Errorf("remove cache %s: %w", id, err)
	}
	return nil
}

// touch records that the repository was opened now: the folder's
// modification time is the LastUsed of ListCaches. A failure only makes
// the cache look older.
func (c *cache) touch(now time.Time) {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return
	}
	_ = os.Chtimes(c.dir, now, now)
}
