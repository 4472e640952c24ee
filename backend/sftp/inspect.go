package sftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/cairn-backup/cairn/backend"
)

// OpenDir connects to the server and returns the backend for the folder at
// cfg.Path whether or not it holds a config, creating nothing: it is for
// looking into a location that Open refused, such as one an interrupted
// init left without a config. A folder that does not exist returns an
// error wrapping backend.ErrNoRepository.
func OpenDir(ctx context.Context, cfg Config) (*Backend, error) {
	b, cl, err := connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg, err)
	}
	fi, err := cl.sftp.Stat(b.base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = backend.ErrNoRepository
	case err != nil:
		err = b.check(cl, err)
	case !fi.IsDir():
		err = fmt.Errorf("%w: not a folder", backend.ErrNoRepository)
	}
	if err != nil {
		_ = b.Close() // err is the one to report
		return nil, fmt.Errorf("open %s: %w", b.loc, err)
	}
	return b, nil
}
