package crypt

import (
	"encoding/binary"
	"fmt"
)

// KeyRing is a repository's master key: one or more data keys, of which one
// is current. New files are sealed with the current key; files sealed with
// any key of the ring open. Keeping old keys next to a new current one is
// how a repository's key can rotate without rewriting its data.
//
// A KeyRing never changes after it is made, so it is safe for concurrent
// use.
type KeyRing struct {
	keys    []*Key // in serialization order
	current int    // index into keys
}

// maxRingKeys caps the number of keys a ring may hold. It bounds what a
// key file can make us allocate, and at 40 bytes a key it keeps the largest
// ring's key file well under maxKeyFileSize.
const maxRingKeys = 1024

// NewKeyRing returns a ring holding one fresh random key, which is current.
func NewKeyRing() (*KeyRing, error) {
	k, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("new key ring: %w", err)
	}
	return &KeyRing{keys: []*Key{k}}, nil
}

// Current returns the key new files are sealed with.
func (r *KeyRing) Current() *Key { return r.keys[r.current] }

// Lookup returns the key with the given ID, if the ring holds it.
func (r *KeyRing) Lookup(id KeyID) (*Key, bool) {
	for _, k := range r.keys {
		if k.id == id {
			return k, true
		}
	}
	return nil, false
}

// Rotated returns a new ring that holds every key of r plus a fresh random
// key, which is current in the new ring. r itself is unchanged.
func (r *KeyRing) Rotated() (*KeyRing, error) {
	if len(r.keys) >= maxRingKeys {
		return nil, fmt.Errorf("rotate key ring: ring already holds the maximum of %d keys", maxRingKeys)
	}
	for {
		k, err := NewKey()
		if err != nil {
			return nil, fmt.Errorf("rotate key ring: %w", err)
		}
		if _, dup := r.Lookup(k.id); dup {
			continue // a 64-bit collision: draw again
		}
		keys := append(append([]*Key(nil), r.keys...), k)
		return &KeyRing{keys: keys, current: len(keys) - 1}, nil
	}
}

// String prints the key IDs only, marking the current one.
func (r *KeyRing) String() string {
	s := "crypt.KeyRing{"
	for i, k := range r.keys {
		if i > 0 {
			s += ", "
		}
		s += k.id.String()
		if i == r.current {
			s += "*"
		}
	}
	return s + ", redacted}"
}

// GoString is String.
func (r *KeyRing) GoString() string { return r.String() }

// Format prints String for every verb.
func (r *KeyRing) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(r.String())) }

// ringVersion is the version byte of a serialized key ring.
const ringVersion = 1

// ringHeaderSize is version(1) || count(2) || current(2).
const ringHeaderSize = 1 + 2 + 2

// ringEntrySize is KeyID(8) || key(32).
const ringEntrySize = 8 + KeySize

// marshal serializes the ring: version(1) || count(uint16) ||
// current(uint16) || count × (KeyID(8) || key(32)).
func (r *KeyRing) marshal() []byte {
	b := make([]byte, 0, ringHeaderSize+len(r.keys)*ringEntrySize)
	b = append(b, ringVersion)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.keys)))
	b = binary.LittleEndian.AppendUint16(b, uint16(r.current))
	for _, k := range r.keys {
		b = append(b, k.id[:]...)
		b = append(b, k.s.raw[:]...)
	}
	return b
}

// unmarshalRing parses what marshal writes. Errors wrap ErrFormat.
func unmarshalRing(b []byte) (*KeyRing, error) {
	if len(b) < ringHeaderSize {
		return nil, fmt.Errorf("key ring: %w: %d bytes is too short", ErrFormat, len(b))
	}
	if b[0] != ringVersion {
		return nil, fmt.Errorf("key ring: %w: unknown version %d", ErrFormat, b[0])
	}
	count := int(binary.LittleEndian.Uint16(b[1:]))
	current := int(binary.LittleEndian.Uint16(b[3:]))
	if count < 1 || count > maxRingKeys {
		return nil, fmt.Errorf("key ring: %w: %d keys, want 1..%d", ErrFormat, count, maxRingKeys)
	}
	if current >= count {
		return nil, fmt.Errorf("key ring: %w: current key %d of %d", ErrFormat, current, count)
	}
	if want := ringHeaderSize + count*ringEntrySize; len(b) != want {
		return nil, fmt.Errorf("key ring: %w: %d bytes, want %d for %d keys", ErrFormat, len(b), want, count)
	}
	r := &KeyRing{keys: make([]*Key, 0, count), current: current}
	for p := b[ringHeaderSize:]; len(p) > 0; p = p[ringEntrySize:] {
		var id KeyID
		copy(id[:], p)
		if _, dup := r.Lookup(id); dup {
			return nil, fmt.Errorf("key ring: %w: key %s appears twice", ErrFormat, id)
		}
		k, err := newKey(id, p[len(id):ringEntrySize])
		if err != nil {
			return nil, fmt.Errorf("key ring: %w", err)
		}
		r.keys = append(r.keys, k)
	}
	return r, nil
}

// fileVersion is the version byte of a sealed file.
const fileVersion = 1

// fileHeaderSize is version(1) || KeyID(8).
const fileHeaderSize = 1 + 8

// FileOverhead is how many bytes SealFile adds to a plaintext:
// version(1) || KeyID(8) || nonce(24) before the ciphertext, tag(16) after.
const FileOverhead = fileHeaderSize + Overhead

// fileADPrefix starts the associated data of every sealed file.
const fileADPrefix = "cairn-file"

// SealFile seals plaintext as a file of the given kind (a byte the caller
// assigns to each file type, such as config or index) with the ring's
// current key. The result is version(1) = 1 || KeyID(8) || nonce(24) ||
// ciphertext || tag(16). The associated data binds the kind, version and
// key ID, so a file cannot be opened as another kind.
func (r *KeyRing) SealFile(kind byte, plaintext []byte) []byte {
	return sealFile(r.Current(), kind, plaintext)
}

// OpenFile opens a file written by SealFile with the same kind. Errors:
// ErrFormat for a short file or an unknown version, ErrUnknownKey when the
// ring lacks the key the file names, ErrAuth when the file does not
// authenticate (altered, or of another kind).
func (r *KeyRing) OpenFile(kind byte, data []byte) ([]byte, error) {
	id, err := fileKeyID(data)
	if err != nil {
		return nil, fmt.Errorf("open file: %w", err)
	}
	k, ok := r.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("open file: %w %s", ErrUnknownKey, id)
	}
	return openFile(k, kind, data)
}

// fileKeyID checks a sealed file's length and version and returns the ID of
// the key it names.
func fileKeyID(data []byte) (KeyID, error) {
	var id KeyID
	if len(data) < FileOverhead {
		return id, fmt.Errorf("%w: sealed file of %d bytes is shorter than the %d-byte overhead", ErrFormat, len(data), FileOverhead)
	}
	if data[0] != fileVersion {
		return id, fmt.Errorf("%w: sealed file has unknown version %d", ErrFormat, data[0])
	}
	copy(id[:], data[1:fileHeaderSize])
	return id, nil
}

func fileAD(kind byte, header []byte) []byte {
	ad := make([]byte, 0, len(fileADPrefix)+1+fileHeaderSize)
	ad = append(ad, fileADPrefix...)
	ad = append(ad, kind)
	return append(ad, header...)
}

// sealFile is SealFile with an explicit key; key files use it with the
// password-derived key.
func sealFile(k *Key, kind byte, plaintext []byte) []byte {
	out := make([]byte, 0, FileOverhead+len(plaintext))
	out = append(out, fileVersion)
	out = append(out, k.id[:]...)
	return k.Seal(out, plaintext, fileAD(kind, out))
}

// openFile opens a sealed file with k, which must be the key the file names.
func openFile(k *Key, kind byte, data []byte) ([]byte, error) {
	if _, err := fileKeyID(data); err != nil {
		return nil, fmt.Errorf("open file: %w", err)
	}
	header := data[:fileHeaderSize]
	pt, err := k.Open(nil, data[fileHeaderSize:], fileAD(kind, header))
	if err != nil {
		return nil, fmt.Errorf("open file of kind %q: %w", kind, err)
	}
	return pt, nil
}
