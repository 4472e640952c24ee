package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// Key rotation. A key file wraps the ring it was written with and never
// changes; `key rotate` adds a key to the ring and publishes the rotated
// ring in a ring record under keys/ (crypt.RingRecord), sealed either with
// the old ring's current key (every password follows it) or, to revoke
// the other passwords, with the key the password in use derives for its
// key file (only that key file follows it). Opening follows the records
// it can open from the ring its key file holds to the longest ring that
// extends it (followRings); a ring's generation is its number of keys.
//
// Rotation writes one file, so a crash leaves either the old ring (the
// record was not stored) or the new one; nothing is sealed with the new
// key before its record is stored.

// RotateResult is what RotateKey did.
type RotateResult struct {
	NewKey crypt.KeyID // the key added, now current
	Record backend.ID  // the ring record that carries it
	Keys   int         // keys in the new ring: its generation
}

// RotateKey adds a fresh key to the ring and makes it current, for this
// Repository and every later opening that reaches the ring record it
// stores: with revoke, only openings through the key file in use (its
// password); without, openings through any key file. It does not re-seal
// data already stored. The caller holds an exclusive lock, so no backup
// seals new data with the old key after the rotation.
func (r *Repository) RotateKey(ctx context.Context, revoke bool) (RotateResult, error) {
	next, err := r.keys.Rotated()
	if err != nil {
		return RotateResult{}, err
	}
	var data []byte
	if revoke {
		if r.wrapKey == nil {
			return RotateResult{}, errors.New("rotate key: internal error: no key file key")
		}
		data = crypt.SealRingForKeyFile(r.wrapKey, r.keyID, next)
	} else {
		data = crypt.SealRingForRing(r.keys, next)
	}
	// Check what we wrote opens to what we meant before storing it.
	if got, err := r.openRecord(data); err != nil || !got.Extends(next) || got.Len() != next.Len() {
		return RotateResult{}, fmt.Errorf("rotate key: internal error: the ring record does not open back (%v)", err)
	}
	id := backend.Hash(data)
	h := backend.Handle{Type: backend.KeyFile, Name: id.String()}
	if err := r.be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		return RotateResult{}, fmt.Errorf("rotate key: save %s: %w", h, err)
	}
	r.keys = next
	return RotateResult{NewKey: next.Current().ID(), Record: id, Keys: next.Len()}, nil
}

// openRecord opens a ring record with what this opening holds: the ring,
// or for a record sealed for the key file in use, its password's key.
func (r *Repository) openRecord(data []byte) (*crypt.KeyRing, error) {
	rec, err := crypt.ParseRingRecord(data)
	if err != nil {
		return nil, err
	}
	if rec.Mode == crypt.RingByKeyFile {
		if rec.KeyFile != r.keyID || r.wrapKey == nil {
			return nil, fmt.Errorf("ring record: %w: sealed for another key file", crypt.ErrUnknownKey)
		}
		return rec.OpenWithKeyFile(r.wrapKey)
	}
	return rec.OpenWithRing(r.keys)
}

// followRings moves r.keys to the newest ring the ring records under
// keys/ lead to from it: repeatedly, a record this opening can open whose
// ring extends the current one with more keys. Records it cannot open
// (sealed for other key files, or with keys a revoked key file's ring
// lacks) are passed over; one that should open and does not is a warning.
// Each record is used at most once, so the loop ends.
func (r *Repository) followRings(ctx context.Context) error {
	var records [][]byte
	err := r.ListFiles(ctx, backend.KeyFile, func(id backend.ID, size int64) error {
		if size > int64(crypt.MaxRingRecordSize) || id == r.keyID {
			return nil // too large to be a ring record, or the key file in use
		}
		data, err := r.readKeyFile(ctx, id)
		if err == nil && crypt.IsRingRecord(data) {
			records = append(records, data)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil // unreadable files are check's to report
	})
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	used := make([]bool, len(records))
	for progress := true; progress; {
		progress = false
		for i, data := range records {
			if used[i] {
				continue
			}
			next, err := r.openRecord(data)
			switch {
			case errors.Is(err, crypt.ErrUnknownKey):
				continue // not for this ring or key file (yet)
			case err != nil:
				used[i] = true
				r.opts.Warn(fmt.Sprintf("skipping ring record %s: %v", backend.Hash(data).Str(), err))
				continue
			}
			used[i] = true
			if next.Len() > r.keys.Len() && next.Extends(r.keys) {
				r.keys, progress = next, true
			}
		}
	}
	return nil
}

// checkRingRecord checks a ring record under keys/ for check: it must
// parse; whether this opening can open it is not for check to say (records
// sealed for other key files are normal).
func (r *Repository) checkRingRecord(id backend.ID, data []byte, add func(Problem)) {
	if _, err := crypt.ParseRingRecord(data); err != nil {
		add(Problem{Kind: ProblemKeyJunk, File: handleOf(backend.KeyFile, id), Warning: true,
			Message: fmt.Sprintf("not a ring record (%v): it opens nothing, and opening skips it: delete it if you do not know it", err)})
	}
}

// KeyRingLen is the number of keys in the ring this opening reached: its
// generation.
func (r *Repository) KeyRingLen() int { return r.keys.Len() }
