package repo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/index"
)

// Reading single repository files by name, for "cairn cat" and "cairn
// list": each checks the file against its name like every other reader.

// FindFile resolves a unique prefix of a file name of type t (at least
// one hex digit; a whole ID is a prefix of itself) to the file's ID. No
// match wraps backend.ErrNotExist.
func (r *Repository) FindFile(ctx context.Context, t backend.FileType, prefix string) (backend.ID, error) {
	prefix = strings.ToLower(prefix)
	if prefix == "" || len(prefix) > 2*backend.IDSize || strings.Trim(prefix, "0123456789abcdef") != "" {
		return backend.ID{}, fmt.Errorf("invalid ID %q (want hex digits, a prefix of the ID)", prefix)
	}
	var found []backend.ID
	err := r.ListFiles(ctx, t, func(id backend.ID, _ int64) error {
		if strings.HasPrefix(id.String(), prefix) {
			found = append(found, id)
		}
		return nil
	})
	if err != nil {
		return backend.ID{}, fmt.Errorf("list %s: %w", t, err)
	}
	switch len(found) {
	case 0:
		return backend.ID{}, fmt.Errorf("no %s file matches %q: %w", t, prefix, backend.ErrNotExist)
	case 1:
		return found[0], nil
	}
	return backend.ID{}, fmt.Errorf("%s ID prefix %q is ambiguous (%d files match)", t, prefix, len(found))
}

// LoadIndexFile reads, authenticates and decodes the index file id.
func (r *Repository) LoadIndexFile(ctx context.Context, id backend.ID) (*index.File, error) {
	return r.loadIndexFile(ctx, id)
}

// LoadLock reads and opens the lock file id.
func (r *Repository) LoadLock(ctx context.Context, id backend.ID) (LockInfo, error) {
	plain, err := r.LoadFile(ctx, backend.LockFile, id)
	if err != nil {
		return LockInfo{}, err
	}
	info, err := decodeLock(plain)
	if err != nil {
		return LockInfo{}, fmt.Errorf("lock %s: %w", id.Str(), err)
	}
	return info, nil
}

// KeyFile reads the key file id and describes it as ListKeys does (the
// metadata of a version 2 key file is known only for the one in use). It
// also returns the file's bytes, which hold nothing the storage does not
// already show.
func (r *Repository) KeyFile(ctx context.Context, id backend.ID) (KeyInfo, []byte, error) {
	data, err := r.readKeyFile(ctx, id)
	if err != nil {
		return KeyInfo{}, nil, fmt.Errorf("key %s: %w", id.Str(), err)
	}
	if id == r.keyID {
		return KeyInfo{ID: id, Current: true, KeyFileInfo: r.keyInfo}, data, nil
	}
	info, err := crypt.ParseKeyFileInfo(data)
	if err != nil {
		return KeyInfo{}, nil, fmt.Errorf("key %s: %w", id.Str(), err)
	}
	return KeyInfo{ID: id, KeyFileInfo: info}, data, nil
}

// CopyFile writes the stored bytes of the file id of type t to w as they
// are read, without holding the file in memory, and then checks them
// against the name: a mismatch (written all the same, so it can be looked
// at) is an error wrapping ErrDamaged. The backend may re-run a read
// (see backend.Backend.Get); the bytes w already has are then read past,
// not written again. A failing w ends the copy at once.
func (r *Repository) CopyFile(ctx context.Context, t backend.FileType, id backend.ID, w io.Writer) (int64, error) {
	h := backend.Handle{Type: t, Name: id.String()}
	hash := sha256.New()
	buf := make([]byte, copyBufSize)
	var done int64
	err := r.be.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		// Skip what an earlier attempt wrote (and hashed).
		if _, err := io.CopyN(io.Discard, rd, done); err != nil {
			return err
		}
		for {
			n, rerr := rd.Read(buf)
			if n > 0 {
				hash.Write(buf[:n])
				done += int64(n)
				if _, err := w.Write(buf[:n]); err != nil {
					return backend.Permanent(fmt.Errorf("write: %w", err))
				}
			}
			if rerr == io.EOF {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	})
	if err != nil {
		return done, fmt.Errorf("read %s: %w", h, err)
	}
	if backend.ID(hash.Sum(nil)) != id {
		return done, fmt.Errorf("%s: %w: content does not match its name", h, ErrDamaged)
	}
	return done, nil
}

// copyBufSize is CopyFile's buffer: large enough that a pack takes few
// writes, small beside a pack.
const copyBufSize = 256 << 10
