package repo

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
)

// The client's own files (the remembered key, lock sightings, the cache,
// snapshot's remembered log heads) are written whole or not at all, so a
// crash or a second process never leaves a half-written one. They are
// private: folders 0700, files 0600.

// WriteFileAtomic writes data to path so that readers see the old content
// or the new one, whole: through a temporary file (".tmp-" and random hex,
// mode 0600) in the same folder, flushed to disk and renamed over path.
// It makes the folder (0700) if missing, and removes the temporary file
// when a step fails.
func WriteFileAtomic(path string, data []byte) error {
	return writeFile(path, data, true)
}

// writeCacheFile is WriteFileAtomic without the flush to disk, for files
// whose loss in a power cut costs only a later fetch or a warning.
func writeCacheFile(path string, data []byte) error {
	return writeFile(path, data, false)
}

func writeFile(path string, data []byte, durable bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
