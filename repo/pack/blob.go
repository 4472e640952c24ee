package pack

import (
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// Errors returned by this package; callers branch on them with errors.Is.
var (
	// ErrFormat reports bytes that are not a well-formed pack or header.
	ErrFormat = errors.New("malformed pack")
	// ErrUnknownKey reports a pack sealed with a key the key ring lacks.
	ErrUnknownKey = errors.New("pack sealed with a key this key ring lacks (added by a key rotation after this key file was revoked, or from another repository)")
	// ErrFull is returned by Writer.Add when the blob would not fit: the
	// pack would exceed 4 GiB of blob data or MaxHeaderSize of header.
	ErrFull = errors.New("pack full")
)

// BlobType says what a blob holds.
type BlobType uint8

// The blob types. Their values are stored in pack headers and index files;
// do not renumber.
const (
	DataBlob BlobType = 1 // a chunk of file content
	TreeBlob BlobType = 2 // a serialized directory listing
)

// String returns "data" or "tree".
func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("BlobType(%d)", uint8(t))
}

// Valid reports whether t is DataBlob or TreeBlob.
func (t BlobType) Valid() bool { return t == DataBlob || t == TreeBlob }

// Blob describes one sealed blob inside a pack.
type Blob struct {
	Type BlobType
	// ID is the SHA-256 of the blob's plaintext (before compression).
	ID backend.ID
	// Offset is where the sealed blob starts in the pack.
	Offset uint32
	// Length is the sealed length: nonce + ciphertext + tag.
	Length uint32
	// RawLength is the uncompressed plaintext length if the stored
	// plaintext is zstd-compressed, else 0.
	RawLength uint32
	// KeyID names the key that sealed the blob: the one the pack header
	// names, shared by every blob of the pack.
	KeyID crypt.KeyID
}

// Compressed reports whether the stored plaintext is zstd-compressed.
func (b Blob) Compressed() bool { return b.RawLength != 0 }

// PlaintextLength is the length of the blob's plaintext: RawLength if the
// blob is compressed, else Length minus the sealing overhead.
func (b Blob) PlaintextLength() uint32 {
	if b.RawLength != 0 {
		return b.RawLength
	}
	if b.Length < crypt.Overhead {
		return 0
	}
	return b.Length - crypt.Overhead
}

// String describes the blob for logs and errors.
func (b Blob) String() string {
	return fmt.Sprintf("%s blob %s at %d+%d", b.Type, b.ID.Str(), b.Offset, b.Length)
}

// blobAD is the associated data of a sealed blob: type(1) || ID(32).
func blobAD(t BlobType, id backend.ID) [1 + backend.IDSize]byte {
	var ad [1 + backend.IDSize]byte
	ad[0] = byte(t)
	copy(ad[1:], id[:])
	return ad
}

// SealBlob seals a blob's stored plaintext (compressed or raw) with k,
// binding its type and ID as associated data, and appends
// nonce || ciphertext || tag to dst. The result is len(plaintext) +
// crypt.Overhead bytes longer than dst. id must be the SHA-256 of the
// uncompressed plaintext; SealBlob does not check it.
func SealBlob(k *crypt.Key, dst []byte, t BlobType, id backend.ID, plaintext []byte) []byte {
	ad := blobAD(t, id)
	return k.Seal(dst, plaintext, ad[:])
}

// OpenBlob authenticates and decrypts a sealed blob described by b with the
// ring's key b.KeyID, and appends the stored plaintext (still compressed if
// b.RawLength != 0) to dst. sealed must be exactly b.Length bytes. The
// caller decompresses and checks the plaintext's hash against b.ID.
func OpenBlob(ring *crypt.KeyRing, dst []byte, b Blob, sealed []byte) ([]byte, error) {
	return openBlob(ring.Lookup, dst, b, sealed)
}

func openBlob(lookup keyLookup, dst []byte, b Blob, sealed []byte) ([]byte, error) {
	if len(sealed) != int(b.Length) {
		return nil, fmt.Errorf("open %s: %w: got %d sealed bytes", b, ErrFormat, len(sealed))
	}
	k, ok := lookup(b.KeyID)
	if !ok {
		return nil, fmt.Errorf("open %s: %w: key %s", b, ErrUnknownKey, b.KeyID)
	}
	ad := blobAD(b.Type, b.ID)
	plain, err := k.Open(dst, sealed, ad[:])
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", b, err)
	}
	return plain, nil
}
