package repo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-backup/cairn/backend"
)

// The remembered key file (see lastKeyFile) is one line: the key file's
// ID in hex. It is a hint only: a missing, unreadable or malformed file
// means "nothing remembered", and the key file it names must still open
// with the password like any other.

// loadLastKey reads the remembered key file ID at path.
func loadLastKey(path string) (backend.ID, bool) {
	if path == "" {
		return backend.ID{}, false
	}
	f, err := os.Open(path)
	if err != nil {
		return backend.ID{}, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(2*len(backend.ID{})+2)))
	if err != nil {
		return backend.ID{}, false
	}
	id, err := backend.ParseID(strings.TrimSuffix(string(b), "\n"))
	if err != nil {
		return backend.ID{}, false
	}
	return id, true
}

// saveLastKey writes id to path atomically (temporary file, sync, rename),
// making the folder (0700) if needed.
func saveLastKey(path string, id backend.ID) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(id.String() + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
