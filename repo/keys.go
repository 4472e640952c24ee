package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// maxKeyFileSize caps a key file before it is parsed.
const maxKeyFileSize = 64 << 10

// KeyInfo describes one key file, readable without a password.
type KeyInfo struct {
	ID      backend.ID
	Current bool // the key file that opened this repository
	crypt.KeyFileInfo
}

func (r *Repository) writeKeyFile(ctx context.Context, password []byte, kdf crypt.KDFParams) (backend.ID, error) {
	info := crypt.KeyFileInfo{Created: r.opts.Now().UTC(), Hostname: r.opts.Hostname, Username: r.opts.Username, KDF: kdf}
	data, err := crypt.NewKeyFile(r.keys, password, kdf, info)
	if err != nil {
		return backend.ID{}, err
	}
	id := backend.Hash(data)
	h := backend.Handle{Type: backend.KeyFile, Name: id.String()}
	if err := r.be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		return id, fmt.Errorf("save %s: %w", h, err)
	}
	return id, nil
}

// unlockKeys tries the password against the key files, newest first.
func (r *Repository) unlockKeys(ctx context.Context, password []byte) error {
	type cand struct {
		id   backend.ID
		data []byte
		info crypt.KeyFileInfo
	}
	var cands []cand
	var ids []backend.ID
	if err := r.ListFiles(ctx, backend.KeyFile, func(id backend.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	if len(ids) == 0 {
		return fmt.Errorf("open %s: %w: no key files", r.be.Location(), backend.ErrNoRepository)
	}
	var firstErr error
	for _, id := range ids {
		data, err := r.readWhole(ctx, backend.Handle{Type: backend.KeyFile, Name: id.String()}, maxKeyFileSize)
		if err == nil && backend.Hash(data) != id {
			err = fmt.Errorf("%w: content does not match its name", ErrDamaged)
		}
		var info crypt.KeyFileInfo
		if err == nil {
			info, err = crypt.ParseKeyFileInfo(data)
		}
		if err != nil {
			r.opts.Warn(fmt.Sprintf("skipping key file %s: %v", id.Str(), err))
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		cands = append(cands, cand{id, data, info})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].info.Created.After(cands[j].info.Created) })
	if len(cands) > maxKeyFiles {
		cands = cands[:maxKeyFiles]
	}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return err
		}
		ring, _, err := crypt.OpenKeyFile(c.data, password)
		if errors.Is(err, crypt.ErrWrongPassword) {
			continue
		}
		if err != nil {
			r.opts.Warn(fmt.Sprintf("skipping key file %s: %v", c.id.Str(), err))
			continue
		}
		r.keys = ring
		r.keyID = c.id
		return nil
	}
	if len(cands) == 0 && firstErr != nil {
		return fmt.Errorf("open keys: %w", firstErr)
	}
	return crypt.ErrWrongPassword
}

// ListKeys describes every key file.
func (r *Repository) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := r.ListFiles(ctx, backend.KeyFile, func(id backend.ID, _ int64) error {
		data, err := r.readWhole(ctx, backend.Handle{Type: backend.KeyFile, Name: id.String()}, maxKeyFileSize)
		if err != nil {
			return fmt.Errorf("read key %s: %w", id.Str(), err)
		}
		info, err := crypt.ParseKeyFileInfo(data)
		if err != nil {
			return fmt.Errorf("key %s: %w", id.Str(), err)
		}
		out = append(out, KeyInfo{ID: id, Current: id == r.keyID, KeyFileInfo: info})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// AddKey wraps the master key with a new password in a new key file.
func (r *Repository) AddKey(ctx context.Context, password []byte, kdf crypt.KDFParams) (backend.ID, error) {
	if kdf.Algorithm == "" {
		var err error
		if kdf, err = crypt.DefaultKDFParams(); err != nil {
			return backend.ID{}, err
		}
	}
	return r.writeKeyFile(ctx, password, kdf)
}

// ErrLastKey is returned when removing a key would leave the repository
// without one, or when removing the key in use.
var ErrLastKey = errors.New("refusing to remove the key in use")

// RemoveKey deletes a key file other than the one in use.
func (r *Repository) RemoveKey(ctx context.Context, id backend.ID) error {
	if id == r.keyID {
		return ErrLastKey
	}
	h := backend.Handle{Type: backend.KeyFile, Name: id.String()}
	if _, err := r.be.Stat(ctx, h); err != nil {
		return fmt.Errorf("key %s: %w", id.Str(), err)
	}
	return r.be.Delete(ctx, h)
}

// ChangePassword writes a key file for the new password, then removes the
// one in use. Crashing in between leaves both passwords working.
func (r *Repository) ChangePassword(ctx context.Context, password []byte, kdf crypt.KDFParams) (backend.ID, error) {
	old := r.keyID
	id, err := r.AddKey(ctx, password, kdf)
	if err != nil {
		return id, err
	}
	r.keyID = id
	if err := r.be.Delete(ctx, backend.Handle{Type: backend.KeyFile, Name: old.String()}); err != nil {
		return id, fmt.Errorf("remove old key %s: %w", old.Str(), err)
	}
	return id, nil
}

// FindKey resolves a key ID prefix to a key file ID.
func (r *Repository) FindKey(ctx context.Context, prefix string) (backend.ID, error) {
	var found []backend.ID
	err := r.ListFiles(ctx, backend.KeyFile, func(id backend.ID, _ int64) error {
		if len(prefix) > 0 && len(prefix) <= 64 && id.String()[:len(prefix)] == prefix {
			found = append(found, id)
		}
		return nil
	})
	if err != nil {
		return backend.ID{}, err
	}
	switch len(found) {
	case 0:
		return backend.ID{}, fmt.Errorf("no key matches %q: %w", prefix, backend.ErrNotExist)
	case 1:
		return found[0], nil
	}
	return backend.ID{}, fmt.Errorf("key prefix %q is ambiguous", prefix)
}
