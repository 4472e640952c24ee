package crypt

import (
	"bytes"
	"fmt"
)

// A ring record carries a newer key ring (one more key, made current, by
// `cairn key rotate`) to whoever can open it. It lives under keys/ next to
// the key files and is sealed either
//
//   - with a key of the older ring (SealRingForRing): every holder of that
//     ring, so every password, reaches the newer one; or
//   - with the key a password derives for one key file
//     (SealRingForKeyFile): only that password, through that key file,
//     reaches it. Other key files keep the older ring and open only what
//     was sealed before the rotation.
//
// Bytes: magic(8) "cairnRR1" || mode(1) || KeyID(8) || keyFile(32) ||
// nonce(24) || ciphertext || tag(16). Mode 'r' names in KeyID the key of
// the older ring that seals it (keyFile all zero); mode 'p' names in
// keyFile the SHA-256 ID of the key file whose password-derived key seals
// it (KeyID all zero). The associated data is "cairn-ring-record" followed
// by the 49 header bytes after the magic; the plaintext is the newer ring
// serialized as in a key file. docs/design.md specifies it.
type RingRecord struct {
	Mode    byte     // RingByRing or RingByKeyFile
	KeyID   KeyID    // for RingByRing: the sealing key
	KeyFile [32]byte // for RingByKeyFile: the key file's ID
	sealed  []byte   // nonce || ciphertext || tag
	header  []byte   // mode || KeyID || keyFile
}

// Ring record modes.
const (
	RingByRing    = 'r'
	RingByKeyFile = 'p'
)

const (
	ringRecordMagic  = "cairnRR1"
	ringRecordHeader = 1 + 8 + 32
	ringRecordAD     = "cairn-ring-record"
	// MaxRingRecordSize caps a ring record: the header, the largest ring,
	// the AEAD overhead.
	MaxRingRecordSize = len(ringRecordMagic) + ringRecordHeader + Overhead + ringHeaderSize + maxRingKeys*ringEntrySize
)

// IsRingRecord reports whether data starts as a ring record does (a key
// file starts with "{"). It does not check the rest.
func IsRingRecord(data []byte) bool { return bytes.HasPrefix(data, []byte(ringRecordMagic)) }

// SealRingForRing seals next as a ring record that every holder of old
// opens; it is sealed with old's current key.
func SealRingForRing(old, next *KeyRing) []byte {
	k := old.Current()
	return sealRingRecord(k, RingByRing, k.id, [32]byte{}, next)
}

// SealRingForKeyFile seals next as a ring record that only wrap opens:
// the key derived from the password of the key file named keyFile (see
// OpenKeyFileWrap).
func SealRingForKeyFile(wrap *Key, keyFile [32]byte, next *KeyRing) []byte {
	return sealRingRecord(wrap, RingByKeyFile, KeyID{}, keyFile, next)
}

func sealRingRecord(k *Key, mode byte, id KeyID, keyFile [32]byte, next *KeyRing) []byte {
	out := make([]byte, 0, len(ringRecordMagic)+ringRecordHeader+Overhead+ringHeaderSize+len(next.keys)*ringEntrySize)
	out = append(out, ringRecordMagic...)
	out = append(out, mode)
	out = append(out, id[:]...)
	out = append(out, keyFile[:]...)
	plain := next.marshal()
	defer clear(plain)
	return k.Seal(out, plain, ringAD(out[len(ringRecordMagic):]))
}

func ringAD(header []byte) []byte {
	return append([]byte(ringRecordAD), header...)
}

// ParseRingRecord checks a ring record's framing without opening it.
// Errors wrap ErrFormat.
func ParseRingRecord(data []byte) (*RingRecord, error) {
	if !IsRingRecord(data) {
		return nil, fmt.Errorf("ring record: %w: no ring record magic", ErrFormat)
	}
	if len(data) > MaxRingRecordSize {
		return nil, fmt.Errorf("ring record: %w: %d bytes, more than %d", ErrFormat, len(data), MaxRingRecordSize)
	}
	body := data[len(ringRecordMagic):]
	if len(body) < ringRecordHeader+Overhead+ringHeaderSize+ringEntrySize {
		return nil, fmt.Errorf("ring record: %w: %d bytes is too short", ErrFormat, len(data))
	}
	rec := &RingRecord{Mode: body[0], header: body[:ringRecordHeader], sealed: body[ringRecordHeader:]}
	copy(rec.KeyID[:], body[1:9])
	copy(rec.KeyFile[:], body[9:ringRecordHeader])
	switch {
	case rec.Mode == RingByRing && rec.KeyFile == [32]byte{}:
	case rec.Mode == RingByKeyFile && rec.KeyID == KeyID{}:
	default:
		return nil, fmt.Errorf("ring record: %w: bad mode %d or reference", ErrFormat, rec.Mode)
	}
	return rec, nil
}

// OpenWithRing opens a RingByRing record with the ring that holds its
// sealing key. Errors: ErrUnknownKey when ring lacks that key (or the
// record is of the other mode), ErrAuth when it does not authenticate,
// ErrFormat when what it holds is no ring.
func (rec *RingRecord) OpenWithRing(ring *KeyRing) (*KeyRing, error) {
	if rec.Mode != RingByRing {
		return nil, fmt.Errorf("ring record: %w: sealed for a key file", ErrUnknownKey)
	}
	k, ok := ring.Lookup(rec.KeyID)
	if !ok {
		return nil, fmt.Errorf("ring record: %w %s", ErrUnknownKey, rec.KeyID)
	}
	return rec.open(k)
}

// OpenWithKeyFile opens a RingByKeyFile record with the key a password
// derived for the key file it names. Errors as OpenWithRing.
func (rec *RingRecord) OpenWithKeyFile(wrap *Key) (*KeyRing, error) {
	if rec.Mode != RingByKeyFile {
		return nil, fmt.Errorf("ring record: %w: sealed with a ring key", ErrUnknownKey)
	}
	return rec.open(wrap)
}

func (rec *RingRecord) open(k *Key) (*KeyRing, error) {
	plain, err := k.Open(nil, rec.sealed, ringAD(rec.header))
	if err != nil {
		return nil, fmt.Errorf("ring record: %w", err)
	}
	defer clear(plain)
	ring, err := unmarshalRing(plain)
	if err != nil {
		return nil, fmt.Errorf("ring record: %w", err)
	}
	return ring, nil
}

// Len is the number of keys in the ring: its generation. Rotation only
// adds keys, so a newer ring of the same repository is longer.
func (r *KeyRing) Len() int { return len(r.keys) }

// Extends reports whether r holds every key of old, with the same bytes:
// r is old or a rotation of it.
func (r *KeyRing) Extends(old *KeyRing) bool {
	for _, k := range old.keys {
		mine, ok := r.Lookup(k.id)
		if !ok || *mine.s.raw != *k.s.raw {
			return false
		}
	}
	return true
}
