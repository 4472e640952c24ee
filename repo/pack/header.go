package pack

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cairn-backup/cairn/crypt"
)

const (
	// headerVersion is the format version, stored both before the sealed
	// header and as the first byte of its plaintext.
	headerVersion = 1

	// headerADPrefix starts the header's associated data, which continues
	// with the version byte and the KeyID.
	headerADPrefix = "cairn-pack-header"

	// sealedPrefixSize is version(1) || KeyID(8), in clear before the
	// header's nonce.
	sealedPrefixSize = 1 + 8

	// plainFixedSize is the header plaintext before the entries:
	// version(1) || wrapped-key length(2) || blob count(4), with an empty
	// wrapped key.
	plainFixedSize = 1 + 2 + 4

	// entrySize is one header entry: type(1) || length(4) || raw
	// length(4) || ID(32).
	entrySize = 1 + 4 + 4 + 32

	// minSealedHeader is the smallest sealed header: one entry, no padding.
	minSealedHeader = sealedPrefixSize + crypt.Overhead + plainFixedSize + entrySize

	// trailerSize is the header length field that ends every pack.
	trailerSize = 4

	// MaxHeaderSize caps the sealed header's length (the trailer's value).
	// Readers reject anything larger before allocating for it. 16 MiB lists
	// about 409,000 blobs, far more than any pack of sane size holds.
	MaxHeaderSize = 16 << 20

	// maxBlobs is the most entries a header of MaxHeaderSize can list.
	maxBlobs = (MaxHeaderSize - sealedPrefixSize - crypt.Overhead - plainFixedSize) / entrySize

	// maxPadding is the largest number of zero bytes the Writer pads a
	// header's plaintext with; the amount is uniform on [0, maxPadding].
	//
	// Why: the header length is in clear at the end of every pack, and
	// without padding it gives the blob count exactly; together with the
	// pack size it gives the mean chunk size of each pack, a signal towards
	// the secret chunker polynomial. Uniform padding over 4096 bytes makes
	// every count within about 100 of the true one equally plausible. Data
	// packs, the ones whose chunk boundaries depend on the polynomial, hold
	// chunks of at least 512 KiB, so a 16 MiB data pack lists at most ~32
	// of them: one header length fits every plausible count. Padmé-style
	// rounding was rejected because at these sizes (a few hundred bytes) it
	// rounds to less than one entry. The cost is 2 KiB on average per pack
	// (about 0.01% of a 16 MiB pack), and a typical header still fits in
	// the single tail read of ReadHeader.
	maxPadding = 4096

	// tailRead is how much of a pack's end ReadHeader fetches first: the
	// trailer and, for any header up to ~1,500 entries, the whole header,
	// so a remote backend needs a single round trip.
	tailRead = 64 << 10
)

// crypt.KeyID must stay 8 bytes: sealedPrefixSize and the format assume it.
var _ [sealedPrefixSize - 1]byte = crypt.KeyID{}

// headerAD returns the associated data of a sealed header.
func headerAD(version byte, keyID crypt.KeyID) []byte {
	ad := make([]byte, 0, len(headerADPrefix)+1+len(keyID))
	ad = append(ad, headerADPrefix...)
	ad = append(ad, version)
	return append(ad, keyID[:]...)
}

// plainHeaderSize is the length of a header plaintext listing n blobs with
// pad bytes of padding.
func plainHeaderSize(n, pad int) int { return plainFixedSize + n*entrySize + pad }

// sealedHeaderSize is the length of the sealed header for a plaintext of
// plainLen bytes.
func sealedHeaderSize(plainLen int) int { return sealedPrefixSize + crypt.Overhead + plainLen }

// appendPlainHeader appends the header plaintext listing blobs (in pack
// order) followed by pad zero bytes.
func appendPlainHeader(dst []byte, blobs []Blob, pad int) []byte {
	dst = append(dst, headerVersion)
	dst = binary.LittleEndian.AppendUint16(dst, 0) // no wrapped key
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(blobs)))
	for _, b := range blobs {
		dst = append(dst, byte(b.Type))
		dst = binary.LittleEndian.AppendUint32(dst, b.Length)
		dst = binary.LittleEndian.AppendUint32(dst, b.RawLength)
		dst = append(dst, b.ID[:]...)
	}
	for range pad {
		dst = append(dst, 0)
	}
	return dst
}

// parsePlainHeader parses a decrypted header plaintext. It returns the
// blobs with offsets computed from the cumulative lengths and KeyID unset,
// and the number of padding bytes. Every error wraps ErrFormat.
func parsePlainHeader(p []byte) (blobs []Blob, pad int, err error) {
	if len(p) < plainFixedSize {
		return nil, 0, fmt.Errorf("%w: header plaintext of %d bytes is too short", ErrFormat, len(p))
	}
	if p[0] != headerVersion {
		return nil, 0, fmt.Errorf("%w: header plaintext version %d, want %d", ErrFormat, p[0], headerVersion)
	}
	if wk := binary.LittleEndian.Uint16(p[1:]); wk != 0 {
		// Room for per-pack data keys sealed to a repository public key;
		// version 1 writers never set it, so a reader of version 1 cannot
		// open such a pack's blobs.
		return nil, 0, fmt.Errorf("%w: header holds a %d-byte wrapped key, unsupported in version %d", ErrFormat, wk, headerVersion)
	}
	count := binary.LittleEndian.Uint32(p[3:])
	rest := p[plainFixedSize:]
	if count == 0 {
		return nil, 0, fmt.Errorf("%w: header lists no blobs", ErrFormat)
	}
	if uint64(count) > uint64(len(rest)/entrySize) {
		return nil, 0, fmt.Errorf("%w: header claims %d blobs in %d bytes", ErrFormat, count, len(rest))
	}
	blobs = make([]Blob, count)
	var off uint64
	for i := range blobs {
		e := rest[i*entrySize : (i+1)*entrySize]
		b := &blobs[i]
		b.Type = BlobType(e[0])
		if !b.Type.Valid() {
			return nil, 0, fmt.Errorf("%w: entry %d has blob type %d", ErrFormat, i, e[0])
		}
		b.Length = binary.LittleEndian.Uint32(e[1:])
		b.RawLength = binary.LittleEndian.Uint32(e[5:])
		copy(b.ID[:], e[9:])
		if b.Length < crypt.Overhead {
			return nil, 0, fmt.Errorf("%w: entry %d is %d bytes, shorter than the sealing overhead", ErrFormat, i, b.Length)
		}
		b.Offset = uint32(off) // off <= MaxUint32, checked below for the previous entry
		off += uint64(b.Length)
		if off > math.MaxUint32 {
			return nil, 0, fmt.Errorf("%w: blobs end beyond 4 GiB at entry %d", ErrFormat, i)
		}
	}
	padding := rest[int(count)*entrySize:]
	for i, c := range padding {
		if c != 0 {
			return nil, 0, fmt.Errorf("%w: non-zero padding byte at %d", ErrFormat, i)
		}
	}
	return blobs, len(padding), nil
}

// dataLength is the number of pack bytes the blobs cover.
func dataLength(blobs []Blob) int64 {
	var n int64
	for _, b := range blobs {
		n += int64(b.Length)
	}
	return n
}

// DecodeHeader opens a sealed header (the bytes before the trailer) with the
// ring's key that the header names, and returns the blobs it lists in pack
// order, each with its offset and KeyID, and that KeyID. Malformed input
// wraps ErrFormat, a failed authentication crypt.ErrAuth, a key the ring
// lacks ErrUnknownKey.
func DecodeHeader(ring *crypt.KeyRing, sealedHeader []byte) ([]Blob, crypt.KeyID, error) {
	return decodeHeader(ring.Lookup, sealedHeader)
}

// keyLookup finds a key by ID, as crypt.KeyRing.Lookup does. The exported
// functions take a key ring; tests and the Writer's self-check use a lookup
// over a single key.
type keyLookup func(crypt.KeyID) (*crypt.Key, bool)

func decodeHeader(lookup keyLookup, sealed []byte) ([]Blob, crypt.KeyID, error) {
	var keyID crypt.KeyID
	if len(sealed) < minSealedHeader {
		return nil, keyID, fmt.Errorf("pack header: %w: %d bytes is too short", ErrFormat, len(sealed))
	}
	if len(sealed) > MaxHeaderSize {
		return nil, keyID, fmt.Errorf("pack header: %w: %d bytes exceeds the %d-byte cap", ErrFormat, len(sealed), MaxHeaderSize)
	}
	version := sealed[0]
	if version != headerVersion {
		return nil, keyID, fmt.Errorf("pack header: %w: version %d, want %d", ErrFormat, version, headerVersion)
	}
	copy(keyID[:], sealed[1:sealedPrefixSize])
	k, ok := lookup(keyID)
	if !ok {
		return nil, keyID, fmt.Errorf("pack header: %w: key %s", ErrUnknownKey, keyID)
	}
	plain, err := k.Open(nil, sealed[sealedPrefixSize:], headerAD(version, keyID))
	if err != nil {
		return nil, keyID, fmt.Errorf("pack header: %w", err)
	}
	blobs, _, err := parsePlainHeader(plain)
	if err != nil {
		return nil, keyID, fmt.Errorf("pack header: %w", err)
	}
	for i := range blobs {
		blobs[i].KeyID = keyID
	}
	return blobs, keyID, nil
}

// ReadHeader reads, opens and parses the header of a pack of size bytes.
// readAt must return exactly n bytes read at offset off, or an error, which
// ReadHeader returns wrapped. ReadHeader first reads the last 64 KiB (or the
// whole pack if smaller), so a header of up to ~1,500 entries costs one
// call; a larger header costs a second. It checks that the blobs exactly
// fill the pack before the header. Errors are as for DecodeHeader.
func ReadHeader(ring *crypt.KeyRing, size int64, readAt func(off int64, n int) ([]byte, error)) ([]Blob, crypt.KeyID, error) {
	return readHeader(ring.Lookup, size, readAt)
}

func readHeader(lookup keyLookup, size int64, readAt func(off int64, n int) ([]byte, error)) ([]Blob, crypt.KeyID, error) {
	var keyID crypt.KeyID
	if size < minSealedHeader+trailerSize {
		return nil, keyID, fmt.Errorf("pack: %w: %d bytes is too short", ErrFormat, size)
	}
	tail := min(size, tailRead)
	buf, err := readAt(size-tail, int(tail))
	if err != nil {
		return nil, keyID, fmt.Errorf("pack: read tail: %w", err)
	}
	if int64(len(buf)) != tail {
		return nil, keyID, fmt.Errorf("pack: %w: tail read returned %d bytes, want %d", ErrFormat, len(buf), tail)
	}
	hlen := int64(binary.LittleEndian.Uint32(buf[tail-trailerSize:]))
	switch {
	case hlen < minSealedHeader:
		return nil, keyID, fmt.Errorf("pack: %w: header length %d is too short", ErrFormat, hlen)
	case hlen > MaxHeaderSize:
		return nil, keyID, fmt.Errorf("pack: %w: header length %d exceeds the %d-byte cap", ErrFormat, hlen, MaxHeaderSize)
	case hlen > size-trailerSize:
		return nil, keyID, fmt.Errorf("pack: %w: header length %d exceeds the %d-byte pack", ErrFormat, hlen, size)
	}
	var sealed []byte
	if hlen+trailerSize <= tail {
		sealed = buf[tail-trailerSize-hlen : tail-trailerSize]
	} else {
		sealed, err = readAt(size-trailerSize-hlen, int(hlen))
		if err != nil {
			return nil, keyID, fmt.Errorf("pack: read header: %w", err)
		}
		if int64(len(sealed)) != hlen {
			return nil, keyID, fmt.Errorf("pack: %w: header read returned %d bytes, want %d", ErrFormat, len(sealed), hlen)
		}
	}
	blobs, keyID, err := decodeHeader(lookup, sealed)
	if err != nil {
		return nil, keyID, err
	}
	if got, want := dataLength(blobs), size-trailerSize-hlen; got != want {
		return nil, keyID, fmt.Errorf("pack: %w: header lists %d bytes of blobs, the pack holds %d before its header", ErrFormat, got, want)
	}
	return blobs, keyID, nil
}
