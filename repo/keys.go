package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// maxKeyFileSize caps a key file before it is parsed.
const maxKeyFileSize = 64 << 10

// Opening tries the password on every key file it may have to (see
// unlock): key files are few, and an attacker who adds fake ones must not
// be able to push the real one out of a shortlist. These numbers only
// shape the messages and memory of that search.
const (
	// manyKeyFiles is the count of key files above which opening warns
	// that it may be slow: more than a repository's users normally make.
	manyKeyFiles = 32
	// maxSkipWarnings is how many skipped key files are named one by one
	// before the rest are counted in one line.
	maxSkipWarnings = 5
	// keptKeyBytes bounds the key file bytes held between the scan and the
	// tries; files beyond it are read again when their turn comes. Real
	// key files are under 1 KiB, so only a flood of large fakes reaches it.
	keptKeyBytes = 4 << 20
)

// ErrNoUsableKey is returned when every key file was skipped (malformed,
// damaged or too costly to try), so the password was never tried.
var ErrNoUsableKey = errors.New("no key file could be tried")

// KeyInfo describes one key file, as far as it can be read without its
// password: the metadata of a version 2 key file is known only for the
// key that opened the repository.
type KeyInfo struct {
	ID      backend.ID
	Current bool  // the key file that opened this repository
	Err     error // why the file could not be read or parsed; the rest is zero then
	crypt.KeyFileInfo
}

// writeKeyFile stores a key file for password wrapping r.keys. It returns
// the file's ID and metadata and the key the password derived for it
// (see Repository.wrapKey).
func (r *Repository) writeKeyFile(ctx context.Context, password []byte, kdf crypt.KDFParams) (backend.ID, crypt.KeyFileInfo, *crypt.Key, error) {
	info := crypt.KeyFileInfo{Created: r.opts.Now().UTC(), Hostname: r.opts.Hostname, Username: r.opts.Username}
	data, wrap, err := crypt.NewKeyFileWrap(r.keys, password, kdf, info)
	if err != nil {
		return backend.ID{}, info, nil, err
	}
	info.Version, info.KDF = 2, kdf
	id := backend.Hash(data)
	h := backend.Handle{Type: backend.KeyFile, Name: id.String()}
	if err := r.be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		return id, info, nil, fmt.Errorf("save %s: %w", h, err)
	}
	return id, info, wrap, nil
}

// readKeyFile reads a key file and checks it against its name.
func (r *Repository) readKeyFile(ctx context.Context, id backend.ID) ([]byte, error) {
	data, err := r.readWhole(ctx, backend.Handle{Type: backend.KeyFile, Name: id.String()}, maxKeyFileSize)
	if err == nil && backend.Hash(data) != id {
		err = fmt.Errorf("%w: content does not match its name", ErrDamaged)
	}
	return data, err
}

// unlock finds the key file that opens with password and whose ring
// accept takes (nil accepts any), and sets r.keys, r.keyID, r.keyInfo and
// r.keysTried. The order cannot be steered by whoever adds key files:
//
//  1. the key file that opened this repository last time on this device
//     (remembered under hint, see lastKeyFile), if it is still there;
//  2. every other key file whose KDF parameters are within the cost limit
//     (crypt.KDFParams.CheckCost), cheapest first, in random order among
//     equal costs. Nothing unauthenticated (creation time, name, count)
//     decides whether a key file is tried, so fake key files can slow
//     opening down by their KDF cost each but never lock a password out.
//
// Key files that cannot be read or parsed, or are too costly, are skipped
// with a warning. Errors: ErrNoUsableKey when every key file was skipped,
// crypt.ErrWrongPassword when the password opened none.
func (r *Repository) unlock(ctx context.Context, password []byte, hint string, accept func(*crypt.KeyRing) error) error {
	s := &keySearch{r: r, password: password, accept: accept}
	defer s.warnSkipped()

	last, haveLast := loadLastKey(hint)
	lastFound := false
	if haveLast {
		data, err := r.readKeyFile(ctx, last)
		lastFound = !backend.IsNotExist(err)
		switch {
		case err == nil:
			if ok, err := s.try(ctx, last, data); ok || err != nil {
				return err
			}
		case !backend.IsNotExist(err):
			s.skip(last, err)
		}
	}

	var ids []backend.ID
	if err := r.ListFiles(ctx, backend.KeyFile, func(id backend.ID, _ int64) error {
		if !haveLast || id != last {
			ids = append(ids, id)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	if len(ids) == 0 && !lastFound {
		return fmt.Errorf("open %s: %w: no key files", r.be.Location(), backend.ErrNoRepository)
	}
	if len(ids) > manyKeyFiles {
		r.opts.Warn(fmt.Sprintf("%d key files: the password is tried on each, cheapest first, which may take a while; "+
			"remove the ones you do not know (cairn key list, cairn key remove)", len(ids)))
	}
	cands, err := s.candidates(ctx, ids)
	if err != nil {
		return err
	}
	for _, c := range cands {
		if ok, err := s.tryCandidate(ctx, c); ok || err != nil {
			return err
		}
	}
	return s.failure()
}

// keySearch is one run of unlock: the password, the check a ring must
// pass, and the counts its messages report.
type keySearch struct {
	r        *Repository
	password []byte
	accept   func(*crypt.KeyRing) error
	tried    int // key files the password was tried on
	skipped  int // key files skipped as unreadable, malformed or too costly
	// acceptErr is the first ring that opened with the password but that
	// accept refused: a damaged config, or a key file of an interrupted
	// init's ring that never sealed one. Reported if nothing else opens.
	acceptErr error
}

// keyCandidate is a key file to try the password on, with its KDF cost.
type keyCandidate struct {
	id   backend.ID
	cost uint64
	data []byte // nil when it did not fit in keptKeyBytes: read again
}

// skip counts a skipped key file and warns about the first
// maxSkipWarnings of them.
func (s *keySearch) skip(id backend.ID, err error) {
	s.skipped++
	if s.skipped <= maxSkipWarnings {
		s.r.opts.Warn(fmt.Sprintf("skipping key file %s: %v", id.Str(), err))
	}
}

// warnSkipped counts, in one warning, the skipped key files not named
// one by one.
func (s *keySearch) warnSkipped() {
	if s.skipped > maxSkipWarnings {
		s.r.opts.Warn(fmt.Sprintf("skipped %d more key files", s.skipped-maxSkipWarnings))
	}
}

// try opens key file id (its bytes data) with the password and reports
// whether it opened a ring that accept takes; if so it sets the
// repository's keys. An error stops the search (a cancelled ctx); a key
// file that does not open is not one.
func (s *keySearch) try(ctx context.Context, id backend.ID, data []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := usableKeyFile(data); err != nil {
		s.skip(id, err)
		return false, nil
	}
	s.tried++
	ring, info, wrap, err := crypt.OpenKeyFileWrap(data, s.password)
	if errors.Is(err, crypt.ErrWrongPassword) {
		return false, nil
	}
	if err != nil {
		s.skip(id, err)
		return false, nil
	}
	if s.accept != nil {
		if err := s.accept(ring); err != nil {
			if s.acceptErr == nil {
				s.acceptErr = fmt.Errorf("open config with key file %s: %w", id.Str(), err)
			}
			return false, nil
		}
	}
	r := s.r
	r.keys, r.keyID, r.keyInfo, r.keysTried, r.wrapKey = ring, id, info, s.tried, wrap
	return true, nil
}

// candidates reads and parses the key files ids, skips those that cannot
// be read or cost too much, and returns the rest in the order to try
// them: cheapest first, shuffled among equal costs. It keeps at most
// keptKeyBytes of their bytes.
func (s *keySearch) candidates(ctx context.Context, ids []backend.ID) ([]keyCandidate, error) {
	cands := make([]keyCandidate, 0, len(ids))
	kept := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := s.r.readKeyFile(ctx, id)
		if backend.IsNotExist(err) || (err == nil && crypt.IsRingRecord(data)) {
			continue // removed since the listing, or a ring record (rotate.go)
		}
		var info crypt.KeyFileInfo
		if err == nil {
			info, err = crypt.ParseKeyFileInfo(data)
		}
		if err == nil {
			err = info.KDF.CheckCost()
		}
		if err != nil {
			s.skip(id, err)
			continue
		}
		if kept+len(data) > keptKeyBytes {
			data = nil
		}
		kept += len(data)
		cands = append(cands, keyCandidate{id, info.KDF.Cost(), data})
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].cost < cands[j].cost })
	return cands, nil
}

// tryCandidate is try on c, reading its bytes again if candidates did not
// keep them.
func (s *keySearch) tryCandidate(ctx context.Context, c keyCandidate) (bool, error) {
	data := c.data
	if data == nil {
		var err error
		if data, err = s.r.readKeyFile(ctx, c.id); err != nil {
			if !backend.IsNotExist(err) {
				s.skip(c.id, err)
			}
			return false, nil
		}
	}
	return s.try(ctx, c.id, data)
}

// failure is unlock's error when no key file opened.
func (s *keySearch) failure() error {
	if s.acceptErr != nil {
		return s.acceptErr
	}
	if s.tried == 0 {
		return fmt.Errorf("open %s: %w: all %d key files were skipped (see the warnings)", s.r.be.Location(), ErrNoUsableKey, s.skipped)
	}
	files := "key files"
	if s.tried == 1 {
		files = "key file"
	}
	return fmt.Errorf("%w (tried %d %s)", crypt.ErrWrongPassword, s.tried, files)
}

// usableKeyFile checks, without deriving anything, that data is a key
// file whose KDF parameters are within the cost limit.
func usableKeyFile(data []byte) error {
	info, err := crypt.ParseKeyFileInfo(data)
	if err != nil {
		return err
	}
	return info.KDF.CheckCost()
}

// ListKeys describes every key file, oldest first (version 2 key files
// other than the current one show no creation time and come last). A key
// file that cannot be read or parsed is listed with its error.
func (r *Repository) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := r.ListFiles(ctx, backend.KeyFile, func(id backend.ID, _ int64) error {
		if id == r.keyID {
			out = append(out, KeyInfo{ID: id, Current: true, KeyFileInfo: r.keyInfo})
			return nil
		}
		data, err := r.readKeyFile(ctx, id)
		if backend.IsNotExist(err) || (err == nil && crypt.IsRingRecord(data)) {
			return nil // removed since the listing, or a ring record (rotate.go)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var info crypt.KeyFileInfo
		if err == nil {
			info, err = crypt.ParseKeyFileInfo(data)
		}
		out = append(out, KeyInfo{ID: id, Err: err, KeyFileInfo: info})
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Created.IsZero() != b.Created.IsZero() {
			return !a.Created.IsZero()
		}
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.ID.Less(b.ID)
	})
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
	id, _, _, err := r.writeKeyFile(ctx, password, kdf)
	return id, err
}

// ErrLastKey is returned when removing a key would leave the repository
// without one, or when removing the key in use.
var ErrLastKey = errors.New("refusing to remove the key in use")

// ErrRingRecord is returned when `key remove` names a ring record.
var ErrRingRecord = errors.New("a ring record written by key rotate, not a key file: removing it would make data sealed with the rotated key unreadable")

// RemoveKey deletes a key file other than the one in use; it refuses a
// ring record (rotate.go).
func (r *Repository) RemoveKey(ctx context.Context, id backend.ID) error {
	if id == r.keyID {
		return ErrLastKey
	}
	h := backend.Handle{Type: backend.KeyFile, Name: id.String()}
	data, err := r.readKeyFile(ctx, id)
	if err != nil {
		return fmt.Errorf("key %s: %w", id.Str(), err)
	}
	if crypt.IsRingRecord(data) {
		return fmt.Errorf("key %s: %w", id.Str(), ErrRingRecord)
	}
	return r.be.Delete(ctx, h)
}

// ChangePassword writes a key file for the new password, then removes the
// one in use. Crashing in between leaves both passwords working.
func (r *Repository) ChangePassword(ctx context.Context, password []byte, kdf crypt.KDFParams) (backend.ID, error) {
	if kdf.Algorithm == "" {
		var err error
		if kdf, err = crypt.DefaultKDFParams(); err != nil {
			return backend.ID{}, err
		}
	}
	old := r.keyID
	id, info, wrap, err := r.writeKeyFile(ctx, password, kdf)
	if err != nil {
		return id, err
	}
	r.keyID, r.keyInfo, r.wrapKey = id, info, wrap
	r.rememberKey()
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

// KeysTried is how many key files Open tried the password on before one
// opened (1 when the remembered key file opened at once).
func (r *Repository) KeysTried() int { return r.keysTried }

// lastKeyFile is where this device remembers which key file opened the
// repository whose config file has the bytes cfg: StateDir/last-key/ and
// the SHA-256 of the config, which is public (anyone with the repository
// can hash it) and the same in every copy of the repository. The
// repository ID would do as well but is sealed inside the config, which
// only the key opens. "" when there is no StateDir.
func lastKeyFile(stateDir string, cfg []byte) string {
	if stateDir == "" {
		return ""
	}
	sum := sha256.Sum256(cfg)
	return filepath.Join(stateDir, "last-key", hex.EncodeToString(sum[:]))
}

// rememberKey records r.keyID as the key file that opens this repository
// on this device, if it is not already. A failure costs only speed, so it
// is a warning.
func (r *Repository) rememberKey() {
	if r.lastKeyFile == "" {
		return
	}
	if id, ok := loadLastKey(r.lastKeyFile); ok && id == r.keyID {
		return
	}
	if err := saveLastKey(r.lastKeyFile, r.keyID); err != nil {
		r.opts.Warn(fmt.Sprintf("remember the key file in use: %v", err))
	}
}
