package crypt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Entry is the keyless envelope of a snapshot-log entry: what a party
// without the repository password (a peer, `check` before unlocking) can
// verify. Its encoding is specified in docs/design.md, "Log envelope".
type Entry struct {
	// Seq is 1 for an entry without parents and greater than 1 for one with
	// parents (both checked here); it must be the largest Seq of its parents
	// plus one, which only whoever holds the parents can check.
	Seq uint64
	// Time is when the entry was written, in Unix nanoseconds (UTC).
	Time int64
	// Op says what the entry does; opaque here (the snapshot package
	// defines 'a' add, 'f' forget, 'c' checkpoint).
	Op byte
	// Parents are the entry IDs (EntryID) of the entries this one follows:
	// at most 16, sorted in increasing byte order, no duplicates.
	Parents [][32]byte
	// Device is the ed25519 public key of the signing device; EncodeEntry
	// fills it in.
	Device ed25519.PublicKey
	// Body is the sealed body, opaque here; at most 16 MiB.
	Body []byte
}

// MaxEntryParents is the most parents an entry may name. Merging more
// heads than that takes more than one entry.
const MaxEntryParents = 16

// MaxEntryBodySize is the largest sealed body an entry may carry (16 MiB).
const MaxEntryBodySize = 16 << 20

// Log envelope layout.
const (
	entryMagic      = "CAIRNLOG"
	entryVersion    = 1
	entrySigContext = "cairn-log-v1\x00"

	// entryFixedSize is everything but the parents and the body:
	// magic(8) version(1) op(1) seq(8) time(8) nparents(1) device(32)
	// bodylen(4) signature(64).
	entryFixedSize = len(entryMagic) + 1 + 1 + 8 + 8 + 1 + ed25519.PublicKeySize + 4 + ed25519.SignatureSize
)

// EntryID returns the ID of an encoded entry: the SHA-256 of its bytes,
// which is also its file name in the repository's log/ folder.
func EntryID(data []byte) [32]byte { return sha256.Sum256(data) }

// EncodeEntry sets e.Device to the identity's public key, signs e and returns
// the encoded entry. e.Device must be empty or already this identity's key.
// An entry that breaks the rules DecodeEntry checks is refused with an error
// wrapping ErrFormat.
func (i *Identity) EncodeEntry(e *Entry) ([]byte, error) {
	if len(e.Device) != 0 && !bytes.Equal(e.Device, i.pub) {
		return nil, errors.New("encode log entry: entry names another device's key")
	}
	e.Device = bytes.Clone(i.pub)
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("encode log entry: %w", err)
	}
	b := e.appendUnsigned(make([]byte, 0, entryFixedSize+len(e.Parents)*32+len(e.Body)))
	return append(b, i.Sign(entrySignedMessage(b))...), nil
}

// DecodeEntry parses an encoded entry and verifies it: the layout must be
// exact (no trailing bytes), the rules of Entry must hold, re-encoding must
// give the same bytes, and the signature must verify with the device key
// the entry names. Errors: ErrFormat for malformed bytes, ErrBadSignature
// for a well-formed entry whose signature does not verify. The returned
// entry does not alias data.
func DecodeEntry(data []byte) (*Entry, error) {
	e, sig, err := parseEntry(data)
	if err != nil {
		return nil, fmt.Errorf("decode log entry: %w", err)
	}
	unsigned := data[:len(data)-ed25519.SignatureSize]
	if !ed25519.Verify(e.Device, entrySignedMessage(unsigned), sig) {
		return nil, fmt.Errorf("decode log entry from device %s: %w", PeerIDFromKey(e.Device).Short(), ErrBadSignature)
	}
	return e, nil
}

// parseEntry parses the layout and checks the rules and the canonical form,
// but not the signature.
func parseEntry(data []byte) (*Entry, []byte, error) {
	if len(data) < entryFixedSize {
		return nil, nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte minimum", ErrFormat, len(data), entryFixedSize)
	}
	if string(data[:len(entryMagic)]) != entryMagic {
		return nil, nil, fmt.Errorf("%w: no %s magic", ErrFormat, entryMagic)
	}
	p := data[len(entryMagic):]
	if p[0] != entryVersion {
		return nil, nil, fmt.Errorf("%w: unknown version %d", ErrFormat, p[0])
	}
	e := &Entry{Op: p[1]}
	e.Seq = binary.LittleEndian.Uint64(p[2:])
	e.Time = int64(binary.LittleEndian.Uint64(p[10:]))
	nparents := int(p[18])
	p = p[19:]
	if nparents > MaxEntryParents {
		return nil, nil, fmt.Errorf("%w: %d parents, at most %d allowed", ErrFormat, nparents, MaxEntryParents)
	}
	// The fixed part is present; check the parents fit before reading them.
	rest := len(p) - (ed25519.PublicKeySize + 4 + ed25519.SignatureSize)
	if nparents*32 > rest {
		return nil, nil, fmt.Errorf("%w: truncated in the parent list", ErrFormat)
	}
	if nparents > 0 {
		e.Parents = make([][32]byte, nparents)
		for j := range e.Parents {
			copy(e.Parents[j][:], p)
			p = p[32:]
		}
	}
	e.Device = bytes.Clone(p[:ed25519.PublicKeySize])
	p = p[ed25519.PublicKeySize:]
	bodyLen := uint64(binary.LittleEndian.Uint32(p))
	p = p[4:]
	if bodyLen > MaxEntryBodySize {
		return nil, nil, fmt.Errorf("%w: body of %d bytes, at most %d allowed", ErrFormat, bodyLen, MaxEntryBodySize)
	}
	if uint64(len(p)) != bodyLen+ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%w: body length %d does not match the %d bytes that follow", ErrFormat, bodyLen, len(p)-ed25519.SignatureSize)
	}
	if bodyLen > 0 {
		e.Body = bytes.Clone(p[:bodyLen])
	}
	sig := p[bodyLen:]
	if err := e.check(); err != nil {
		return nil, nil, err
	}
	// The layout has one encoding per entry, so this holds by construction;
	// checking it keeps it true if the layout grows.
	if !bytes.Equal(e.appendUnsigned(nil), data[:len(data)-ed25519.SignatureSize]) {
		return nil, nil, fmt.Errorf("%w: entry is not in canonical form", ErrFormat)
	}
	return e, sig, nil
}

// check enforces the envelope rules. Errors wrap ErrFormat.
func (e *Entry) check() error {
	if e.Seq == 0 {
		return fmt.Errorf("%w: sequence number 0", ErrFormat)
	}
	if (e.Seq == 1) != (len(e.Parents) == 0) {
		return fmt.Errorf("%w: sequence number %d with %d parents (1 exactly when there are none)", ErrFormat, e.Seq, len(e.Parents))
	}
	if len(e.Parents) > MaxEntryParents {
		return fmt.Errorf("%w: %d parents, at most %d allowed", ErrFormat, len(e.Parents), MaxEntryParents)
	}
	for j := 1; j < len(e.Parents); j++ {
		if bytes.Compare(e.Parents[j-1][:], e.Parents[j][:]) >= 0 {
			return fmt.Errorf("%w: parents are not sorted or repeat", ErrFormat)
		}
	}
	if len(e.Device) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: device key is %d bytes, want %d", ErrFormat, len(e.Device), ed25519.PublicKeySize)
	}
	if len(e.Body) > MaxEntryBodySize {
		return fmt.Errorf("%w: body of %d bytes, at most %d allowed", ErrFormat, len(e.Body), MaxEntryBodySize)
	}
	return nil
}

// appendUnsigned appends everything before the signature: magic(8) ||
// version(1) || op(1) || seq(8) || time(8) || nparents(1) || parents(32
// each) || device(32) || bodylen(4) || body. e must have passed check.
func (e *Entry) appendUnsigned(b []byte) []byte {
	b = append(b, entryMagic...)
	b = append(b, entryVersion, e.Op)
	b = binary.LittleEndian.AppendUint64(b, e.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Time))
	b = append(b, byte(len(e.Parents)))
	for _, p := range e.Parents {
		b = append(b, p[:]...)
	}
	b = append(b, e.Device...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Body)))
	return append(b, e.Body...)
}

// entrySignedMessage is what the signature covers: a context string that
// keeps these signatures from being valid for anything else the device
// signs, followed by the unsigned encoding.
func entrySignedMessage(unsigned []byte) []byte {
	msg := make([]byte, 0, len(entrySigContext)+len(unsigned))
	msg = append(msg, entrySigContext...)
	return append(msg, unsigned...)
}
