package pack

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// Writer assembles one pack in memory from blobs the caller has sealed with
// the Writer's key (SealBlob). It is not safe for concurrent use.
//
// Add copies each sealed blob in arrival order; Finalize places them in a
// random order, appends the padded, sealed header and the trailer, and
// checks the header it wrote by decoding it again.
type Writer struct {
	key *crypt.Key
	// buf holds the sealed blobs in the order added; blobs[i].Offset
	// indexes into it until Finalize.
	buf   []byte
	blobs []Blob
	// out holds the sealed header and trailer after Finalize, whole the
	// finished pack after Finalize (not FinalizeParts).
	out       []byte
	whole     []byte
	finalized bool
}

// NewWriter returns an empty Writer whose blobs must be sealed with key.
func NewWriter(key *crypt.Key) *Writer {
	return &Writer{key: key}
}

// Add appends a blob sealed with the Writer's key (as SealBlob returns it);
// rawLength is the uncompressed plaintext length if the sealed plaintext is
// compressed, else 0. Add copies sealed. It returns an error wrapping ErrFull
// if the pack cannot take the blob, and refuses a finalized Writer.
func (w *Writer) Add(t BlobType, id backend.ID, sealed []byte, rawLength uint32) error {
	if w.finalized {
		return errors.New("pack: add to a finalized writer")
	}
	if !t.Valid() {
		return fmt.Errorf("pack: add blob %s: invalid type %s", id.Str(), t)
	}
	if len(sealed) < crypt.Overhead {
		return fmt.Errorf("pack: add blob %s: %d sealed bytes is shorter than the sealing overhead", id.Str(), len(sealed))
	}
	if len(w.blobs) >= maxBlobs {
		return fmt.Errorf("pack: add blob %s: %w: %d blobs", id.Str(), ErrFull, len(w.blobs))
	}
	if uint64(len(w.buf))+uint64(len(sealed)) > math.MaxUint32 {
		return fmt.Errorf("pack: add blob %s: %w: %d bytes", id.Str(), ErrFull, len(w.buf))
	}
	w.blobs = append(w.blobs, Blob{
		Type:      t,
		ID:        id,
		Offset:    uint32(len(w.buf)),
		Length:    uint32(len(sealed)),
		RawLength: rawLength,
		KeyID:     w.key.ID(),
	})
	w.buf = append(w.buf, sealed...)
	return nil
}

// Grow makes room for n more bytes of sealed blobs, so that a caller who
// knows the pack's target size spares Add the copies of a growing buffer.
func (w *Writer) Grow(n int) { w.buf = slices.Grow(w.buf, n) }

// Count returns the number of blobs added.
func (w *Writer) Count() int { return len(w.blobs) }

// Size returns the number of blob bytes added, not counting the header.
func (w *Writer) Size() int { return len(w.buf) }

// Finalize writes the pack: the blobs in a random order, then the sealed
// header padded with a random number of zero bytes, then the trailer. It
// decodes the header it wrote and compares it with what it meant to write
// before returning. blobs lists the blobs in pack order with their offsets
// and KeyID. data belongs to the Writer: it stays valid until Reset, so the
// caller must be done with it (uploaded it) before reusing the Writer.
// Finalize refuses an empty or already finalized Writer.
func (w *Writer) Finalize() (data []byte, blobs []Blob, err error) {
	parts, blobs, err := w.FinalizeParts()
	if err != nil {
		return nil, nil, err
	}
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	out := w.whole[:0]
	if cap(out) < total {
		out = make([]byte, 0, total)
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	w.whole = out
	return out, blobs, nil
}

// FinalizeParts is Finalize without assembling the pack in one buffer:
// the pack is the concatenation of parts (the blobs in their random
// order, then header and trailer), which point into the Writer's buffers
// and stay valid until Reset. A caller that hashes and uploads the pack
// part by part so holds one copy of it instead of two.
func (w *Writer) FinalizeParts() (parts [][]byte, blobs []Blob, err error) {
	if w.finalized {
		return nil, nil, errors.New("pack: finalize called twice")
	}
	if len(w.blobs) == 0 {
		return nil, nil, errors.New("pack: finalize an empty pack")
	}
	w.finalized = true

	// The shuffle and the padding length come from ChaCha8 seeded by the
	// system CSPRNG: unpredictable to the storage, and one read of 32
	// bytes rather than one per draw. crypto/rand.Read never fails.
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	rng := mrand.New(mrand.NewChaCha8(seed))

	n := len(w.blobs)
	fixed := sealedHeaderSize(plainHeaderSize(n, 0))
	pad := min(rng.IntN(maxPadding+1), MaxHeaderSize-fixed) // Add keeps fixed <= MaxHeaderSize
	plainLen := plainHeaderSize(n, pad)

	parts = make([][]byte, 0, n+1)
	blobs = make([]Blob, n)
	var off uint32
	for i, j := range rng.Perm(n) {
		b := w.blobs[j]
		parts = append(parts, w.buf[b.Offset:b.Offset+b.Length])
		b.Offset = off
		off += b.Length
		blobs[i] = b
	}

	plain := appendPlainHeader(make([]byte, 0, plainLen), blobs, pad)
	keyID := w.key.ID()
	hdr := w.out[:0]
	hdr = append(hdr, headerVersion)
	hdr = append(hdr, keyID[:]...)
	hdr = w.key.Seal(hdr, plain, headerAD(headerVersion, keyID))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(hdr)))
	w.out = hdr

	if err := w.verify(hdr, int64(off), blobs); err != nil {
		return nil, nil, fmt.Errorf("pack: bug: the header just written does not decode to what was meant: %w", err)
	}
	return append(parts, hdr), blobs, nil
}

// verify decodes the header and trailer Finalize wrote after dataLen
// bytes of blobs and compares them with want.
func (w *Writer) verify(hdr []byte, dataLen int64, want []Blob) error {
	hlen := binary.LittleEndian.Uint32(hdr[len(hdr)-trailerSize:])
	if int(hlen) != len(hdr)-trailerSize {
		return fmt.Errorf("trailer says %d header bytes, wrote %d", hlen, len(hdr)-trailerSize)
	}
	lookup := func(id crypt.KeyID) (*crypt.Key, bool) { return w.key, id == w.key.ID() }
	got, keyID, err := decodeHeader(lookup, hdr[:len(hdr)-trailerSize])
	if err != nil {
		return err
	}
	if keyID != w.key.ID() {
		return fmt.Errorf("header names key %s, sealed with %s", keyID, w.key.ID())
	}
	if len(got) != len(want) {
		return fmt.Errorf("header lists %d blobs, wrote %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("entry %d decodes as %v, wrote %v", i, got[i], want[i])
		}
	}
	if dataLength(got) != dataLen {
		return fmt.Errorf("header lists %d bytes of blobs, wrote %d", dataLength(got), dataLen)
	}
	return nil
}

// Reset empties the Writer for the next pack, keeping its buffers. The data
// returned by an earlier Finalize becomes invalid.
func (w *Writer) Reset() {
	w.buf = w.buf[:0]
	w.blobs = w.blobs[:0]
	w.out = w.out[:0]
	w.whole = w.whole[:0]
	w.finalized = false
}
