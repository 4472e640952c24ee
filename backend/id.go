package backend

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// IDSize is the length of an ID in bytes.
const IDSize = sha256.Size

// ID is a SHA-256 content hash: of a file's bytes (its name in the backend)
// or of a blob's plaintext (its blob ID).
type ID [IDSize]byte

// Hash returns the ID of data.
func Hash(data []byte) ID { return sha256.Sum256(data) }

// ParseID parses 64 lowercase hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("%w: %q is not 64 hex digits", ErrInvalidName, shorten(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return id, fmt.Errorf("%w: %q is not lowercase hex", ErrInvalidName, shorten(s))
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	return id, nil
}

// String is the lowercase hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Str is the 8-digit short form users see.
func (id ID) Str() string { return hex.EncodeToString(id[:4]) }

// IsNull reports whether id is all zeros (no ID).
func (id ID) IsNull() bool { return id == ID{} }

// Less orders IDs bytewise.
func (id ID) Less(o ID) bool { return bytes.Compare(id[:], o[:]) < 0 }

// MarshalText encodes the ID as hex (for JSON).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses hex (for JSON).
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
