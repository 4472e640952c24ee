package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/backend"
)

// OpenDir returns the backend of the folder dir whether or not it holds a
// config, creating nothing: it is for looking into a location that Open
// refused, such as one an interrupted init left without a config. A dir
// that does not exist returns an error wrapping backend.ErrNoRepository.
func OpenDir(ctx context.Context, dir string) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open %s: %w", dir, backend.ErrNoRepository)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", dir, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("open %s: %w: not a folder", dir, backend.ErrNoRepository)
	}
	return &Backend{dir: dir}, nil
}
