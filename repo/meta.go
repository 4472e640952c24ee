package repo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// kindMeta seals meta records (meta/<id>).
const kindMeta byte = 'M'

// Bounds of meta records. A record is a small note (a peer's signed
// receipt is about 400 bytes); the caps keep a hostile copy from making
// a reader allocate much.
const (
	// MaxMetaPayload caps a record's payload.
	MaxMetaPayload = 64 << 10
	// maxMetaFile caps a stored meta file: the payload in base64 plus
	// the other fields and the 49 bytes of sealing.
	maxMetaFile = MaxMetaPayload*4/3 + 4<<10
	// maxMetaKind caps the length of a kind.
	maxMetaKind = 128
	// MetaKeep is how many records of one kind SaveMeta keeps: it
	// removes older ones of the kind (where the backend allows).
	MetaKeep = 8
)

// ErrMetaFormat is wrapped by every error about a meta record's plaintext
// that does not parse.
var ErrMetaFormat = errors.New("malformed meta record")

// MetaRecord is one small sealed record of meta/: a note about the
// repository that must travel with its copies (a friend's signed
// receipt, the saved destinations).
type MetaRecord struct {
	// ID is the file's name (the hash of its stored bytes); zero in a
	// record not read from a backend.
	ID backend.ID
	// Kind says what the payload is ("receipt:<peer ID>",
	// "destinations", ...): 1 to 128 characters of a-z, 0-9 and
	// ".:_-/".
	Kind string
	// Time is when the record was written, by the writer's clock.
	Time time.Time
	// Seq is one more than the largest Seq of the kind the writer saw.
	Seq uint64
	// Payload is the record's content, at most MaxMetaPayload bytes.
	Payload []byte
}

// metaJSON is a record's plaintext.
type metaJSON struct {
	Version int    `json:"v"`
	Kind    string `json:"kind"`
	Time    string `json:"time"`
	Seq     uint64 `json:"seq"`
	Payload []byte `json:"payload"`
}

// ValidMetaKind checks a record kind: 1 to 128 characters of a-z, 0-9
// and ".:_-/".
func ValidMetaKind(kind string) error {
	if kind == "" || len(kind) > maxMetaKind {
		return fmt.Errorf("%w: kind of %d characters (1 to %d)", ErrMetaFormat, len(kind), maxMetaKind)
	}
	for _, c := range []byte(kind) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(".:_-/", c) >= 0) {
			return fmt.Errorf("%w: kind %q: character %q not allowed", ErrMetaFormat, kind, c)
		}
	}
	return nil
}

// EncodeMeta is the plaintext of rec (its ID is not part of it).
func EncodeMeta(rec MetaRecord) ([]byte, error) {
	if err := ValidMetaKind(rec.Kind); err != nil {
		return nil, err
	}
	if len(rec.Payload) > MaxMetaPayload {
		return nil, fmt.Errorf("%w: payload of %d bytes (at most %d)", ErrMetaFormat, len(rec.Payload), MaxMetaPayload)
	}
	payload := rec.Payload
	if payload == nil {
		payload = []byte{}
	}
	return json.Marshal(metaJSON{Version: 1, Kind: rec.Kind, Time: rec.Time.UTC().Format(time.RFC3339Nano),
		Seq: rec.Seq, Payload: payload})
}

// DecodeMeta parses a record's plaintext. Every error wraps
// ErrMetaFormat. Fields a later version adds are ignored.
func DecodeMeta(plain []byte) (MetaRecord, error) {
	if len(plain) > maxMetaFile {
		return MetaRecord{}, fmt.Errorf("%w: %d bytes", ErrMetaFormat, len(plain))
	}
	var j metaJSON
	dec := json.NewDecoder(bytes.NewReader(plain))
	if err := dec.Decode(&j); err != nil {
		return MetaRecord{}, fmt.Errorf("%w: %v", ErrMetaFormat, err)
	}
	if dec.More() {
		return MetaRecord{}, fmt.Errorf("%w: data after the record", ErrMetaFormat)
	}
	if j.Version != 1 {
		return MetaRecord{}, fmt.Errorf("%w: version %d", ErrMetaFormat, j.Version)
	}
	if err := ValidMetaKind(j.Kind); err != nil {
		return MetaRecord{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, j.Time)
	if err != nil {
		return MetaRecord{}, fmt.Errorf("%w: time: %v", ErrMetaFormat, err)
	}
	if len(j.Payload) > MaxMetaPayload {
		return MetaRecord{}, fmt.Errorf("%w: payload of %d bytes", ErrMetaFormat, len(j.Payload))
	}
	if j.Payload == nil {
		j.Payload = []byte{}
	}
	return MetaRecord{Kind: j.Kind, Time: t.UTC(), Seq: j.Seq, Payload: j.Payload}, nil
}

// SaveMeta stores a new record of kind with payload, timed by the
// repository's clock and numbered one past the newest record of the kind,
// then removes the records of the kind older than the MetaKeep newest
// (a backend that refuses deletes keeps them). It returns the record.
func (r *Repository) SaveMeta(ctx context.Context, kind string, payload []byte) (MetaRecord, error) {
	if err := ValidMetaKind(kind); err != nil {
		return MetaRecord{}, err
	}
	old, err := r.LoadMeta(ctx, kind)
	if err != nil {
		return MetaRecord{}, err
	}
	rec := MetaRecord{Kind: kind, Time: r.opts.Now().UTC(), Seq: 1, Payload: payload}
	if len(old) > 0 {
		rec.Seq = old[0].Seq + 1
	}
	plain, err := EncodeMeta(rec)
	if err != nil {
		return MetaRecord{}, err
	}
	if rec.ID, err = r.SaveFile(ctx, backend.MetaFile, plain); err != nil {
		return MetaRecord{}, err
	}
	for _, o := range old[min(len(old), MetaKeep-1):] {
		if err := r.DeleteFile(ctx, backend.MetaFile, o.ID); err != nil && !backend.IsNotExist(err) {
			if errors.Is(err, backend.ErrAppendOnly) {
				break
			}
			return rec, err
		}
	}
	return rec, nil
}

// LoadMeta returns the records of kind, newest first (by Seq, then
// Time, then ID). A meta file that does not match its name, does not
// open with the repository's keys or does not parse is left out and
// named to Options.Warn: a copy cannot make a reader accept a record the
// owner did not write.
func (r *Repository) LoadMeta(ctx context.Context, kind string) ([]MetaRecord, error) {
	return LoadMetaFrom(ctx, r.be, r.keys, kind, r.opts.Warn)
}

// LoadMetaFrom is LoadMeta on be, a copy of the repository whose keys
// are keys; an empty kind returns the records of every kind. warn may be
// nil.
func LoadMetaFrom(ctx context.Context, be backend.Backend, keys *crypt.KeyRing, kind string, warn func(string)) ([]MetaRecord, error) {
	if warn == nil {
		warn = func(string) {}
	}
	var ids []backend.ID
	err := be.List(ctx, backend.MetaFile, func(fi backend.FileInfo) error {
		if id, err := backend.ParseID(fi.Name); err == nil && fi.Size <= maxMetaFile {
			ids = append(ids, id)
		} else if err == nil {
			warn(fmt.Sprintf("meta/%s: %d bytes, larger than a meta record may be: skipped", fi.Name, fi.Size))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list meta of %s: %w", be.Location(), err)
	}
	var out []MetaRecord
	for _, id := range ids {
		rec, err := loadMetaFile(ctx, be, keys, id)
		if errors.Is(err, ErrDamaged) || errors.Is(err, ErrMetaFormat) {
			warn(err.Error() + ": skipped")
			continue
		}
		if backend.IsNotExist(err) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		if kind == "" || rec.Kind == kind {
			out = append(out, rec)
		}
	}
	SortMeta(out)
	return out, nil
}

// SortMeta sorts records newest first: by Seq, then Time, then ID, all
// descending.
func SortMeta(recs []MetaRecord) {
	slices.SortFunc(recs, func(a, b MetaRecord) int {
		if c := cmp.Compare(b.Seq, a.Seq); c != 0 {
			return c
		}
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return bytes.Compare(b.ID[:], a.ID[:])
	})
}

// loadMetaFile reads, checks and opens one meta file.
func loadMetaFile(ctx context.Context, be backend.Backend, keys *crypt.KeyRing, id backend.ID) (MetaRecord, error) {
	h := backend.Handle{Type: backend.MetaFile, Name: id.String()}
	data, err := readAll(ctx, be, h, maxMetaFile)
	if err != nil {
		return MetaRecord{}, fmt.Errorf("load %s: %w", h, err)
	}
	if backend.Hash(data) != id {
		return MetaRecord{}, fmt.Errorf("load %s: %w: content does not match its name", h, ErrDamaged)
	}
	plain, err := keys.OpenFile(kindMeta, data)
	if err != nil {
		return MetaRecord{}, fmt.Errorf("load %s: %w: %v", h, ErrDamaged, err)
	}
	rec, err := DecodeMeta(plain)
	if err != nil {
		return MetaRecord{}, fmt.Errorf("load %s: %w", h, err)
	}
	rec.ID = id
	return rec, nil
}
