package repo

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/backend"
)

// The local cache keeps copies of index files and tree packs under
// <root>/<repository id>/, so an incremental backup of a remote repository
// costs few round trips. Everything in it is a verbatim copy of a
// repository file (still sealed), named by its hash; a missing or broken
// entry is simply fetched again.
type cache struct {
	dir  string
	warn func(string)
}

const (
	cacheIndex = "index"
	cacheData  = "data"
)

// cacheDirTag marks the cache so backup tools (cairn's --exclude-caches
// among them) skip it.
const cacheDirTag = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cairn.\n"

func newCache(root, repoID string, warn func(string)) *cache {
	c := &cache{dir: filepath.Join(root, repoID), warn: warn}
	if err := os.MkdirAll(root, 0o700); err == nil {
		tag := filepath.Join(root, "CACHEDIR.TAG")
		if _, err := os.Stat(tag); os.IsNotExist(err) {
			_ = os.WriteFile(tag, []byte(cacheDirTag), 0o644)
		}
	}
	return c
}

func (c *cache) path(kind string, id backend.ID) string {
	return filepath.Join(c.dir, kind, id.String())
}

// get returns a cached file if it is there and intact.
func (c *cache) get(kind string, id backend.ID) []byte {
	data, err := os.ReadFile(c.path(kind, id))
	if err != nil {
		return nil
	}
	if backend.Hash(data) != id {
		c.warn(fmt.Sprintf("warning: cache entry %s/%s is damaged, fetching it again", kind, id.Str()))
		_ = os.Remove(c.path(kind, id))
		return nil
	}
	return data
}

// readRange reads part of a cached file; the caller authenticates it.
func (c *cache) readRange(kind string, id backend.ID, off int64, n int) []byte {
	f, err := os.Open(c.path(kind, id))
	if err != nil {
		return nil
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil
	} else if err == io.EOF {
		return nil
	}
	return buf
}

// put stores a copy atomically; failures only cost a later fetch.
func (c *cache) put(kind string, id backend.ID, data []byte) {
	if err := writeCacheFile(c.path(kind, id), data); err != nil {
		c.warn(fmt.Sprintf("warning: cache: %v", err))
	}
}

// prune removes cached files of kind that the repository no longer has.
func (c *cache) prune(kind string, keep []backend.ID) {
	want := make(map[string]bool, len(keep))
	for _, id := range keep {
		want[id.String()] = true
	}
	entries, err := os.ReadDir(filepath.Join(c.dir, kind))
	if err != nil {
		return
	}
	for _, e := range entries {
		if !want[e.Name()] {
			_ = os.Remove(filepath.Join(c.dir, kind, e.Name()))
		}
	}
}
