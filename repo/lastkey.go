package repo

import (
	"io"
	"os"
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

// saveLastKey writes id to path atomically (WriteFileAtomic).
func saveLastKey(path string, id backend.ID) error {
	return WriteFileAtomic(path, []byte(id.String()+"\n"))
}
