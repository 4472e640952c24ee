package index

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// ErrFormat reports bytes that are not a well-formed index file plaintext.
var ErrFormat = errors.New("malformed index")

const (
	magic   = "CIDX"
	version = 1

	idSize    = backend.IDSize
	keyIDSize = len(crypt.KeyID{})

	// Smallest encodings, used to cap counts against the remaining input
	// before allocating: a pack is ID || KeyID || count(>= 1 byte); a blob
	// is type || offset || length || raw length (>= 1 byte each) || ID.
	minPackSize = idSize + keyIDSize + 1
	minBlobSize = 1 + 1 + 1 + 1 + idSize
)

// File is the content of one index file: the packs it describes and the
// index files it replaces (so a reader that sees both can drop the old).
type File struct {
	Supersedes []backend.ID
	Packs      []Pack
}

// Pack lists the blobs of one pack file. Every blob of a pack carries the
// pack's KeyID.
type Pack struct {
	ID    backend.ID
	Blobs []pack.Blob
}

// Encode serializes f in canonical form: superseded IDs sorted and
// deduplicated; packs sorted by ID, with the blob lists of repeated pack IDs
// merged and packs without blobs left out; each pack's blobs sorted by
// offset, exact duplicates dropped. f itself is not modified.
//
// f must be consistent, as Decode and Index.ToFiles return it: valid blob
// types, each blob at least crypt.Overhead long and ending by 4 GiB, the
// blobs of a pack not overlapping and sharing one KeyID. Encode panics
// otherwise, since such a File can only come from a bug in our code.
func Encode(f *File) []byte {
	sup := slices.Clone(f.Supersedes)
	slices.SortFunc(sup, func(a, b backend.ID) int { return bytes.Compare(a[:], b[:]) })
	sup = slices.Compact(sup)

	packs := canonicalPacks(f.Packs)

	n := len(magic) + 1 + binary.MaxVarintLen64*2 + len(sup)*idSize
	for _, p := range packs {
		n += minPackSize + binary.MaxVarintLen64 + len(p.Blobs)*(1+3*binary.MaxVarintLen32+idSize)
	}
	b := make([]byte, 0, n)
	b = append(b, magic...)
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(sup)))
	for _, id := range sup {
		b = append(b, id[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(packs)))
	for _, p := range packs {
		keyID := p.Blobs[0].KeyID
		b = append(b, p.ID[:]...)
		b = append(b, keyID[:]...)
		b = binary.AppendUvarint(b, uint64(len(p.Blobs)))
		for _, bl := range p.Blobs {
			b = append(b, byte(bl.Type))
			b = binary.AppendUvarint(b, uint64(bl.Offset))
			b = binary.AppendUvarint(b, uint64(bl.Length))
			b = binary.AppendUvarint(b, uint64(bl.RawLength))
			b = append(b, bl.ID[:]...)
		}
	}
	return b
}

// cmpBlobInPack orders the blobs of one pack: by offset, then by the other
// fields so that sorting is deterministic even for (invalid) equal offsets.
func cmpBlobInPack(a, b pack.Blob) int {
	if c := cmp.Compare(a.Offset, b.Offset); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Length, b.Length); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	if c := cmp.Compare(a.RawLength, b.RawLength); c != 0 {
		return c
	}
	if c := bytes.Compare(a.ID[:], b.ID[:]); c != 0 {
		return c
	}
	return bytes.Compare(a.KeyID[:], b.KeyID[:])
}

// canonicalPacks returns the packs in canonical order, merged, sorted and
// checked; it panics on an inconsistent input (see Encode).
func canonicalPacks(in []Pack) []Pack {
	sorted := slices.Clone(in)
	slices.SortStableFunc(sorted, func(a, b Pack) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	var out []Pack
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].ID == sorted[i].ID {
			j++
		}
		var blobs []pack.Blob
		for _, p := range sorted[i:j] {
			blobs = append(blobs, p.Blobs...)
		}
		slices.SortFunc(blobs, cmpBlobInPack)
		blobs = slices.Compact(blobs)
		if len(blobs) > 0 {
			if err := checkPackBlobs(blobs); err != nil {
				panic(fmt.Sprintf("index: bug: Encode of an inconsistent pack %s: %v", sorted[i].ID, err))
			}
			out = append(out, Pack{ID: sorted[i].ID, Blobs: blobs})
		}
		i = j
	}
	return out
}

// checkPackBlobs checks blobs sorted by offset: valid types, sane lengths,
// no overlap, one key.
func checkPackBlobs(blobs []pack.Blob) error {
	var end uint64
	for i, b := range blobs {
		if !b.Type.Valid() {
			return fmt.Errorf("%v: invalid type", b)
		}
		if b.Length < crypt.Overhead {
			return fmt.Errorf("%v: shorter than the sealing overhead", b)
		}
		if uint64(b.Offset)+uint64(b.Length) > math.MaxUint32 {
			return fmt.Errorf("%v: ends beyond 4 GiB", b)
		}
		if i > 0 && uint64(b.Offset) < end {
			return fmt.Errorf("%v overlaps the blob before it", b)
		}
		if b.KeyID != blobs[0].KeyID {
			return fmt.Errorf("%v: key %s differs from the pack's %s", b, b.KeyID, blobs[0].KeyID)
		}
		end = uint64(b.Offset) + uint64(b.Length)
	}
	return nil
}

// decoder reads the index format, failing with ErrFormat.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("index: %w: at byte %d: %s", ErrFormat, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) rest() int { return len(d.b) - d.off }

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if d.rest() < n {
		d.fail("need %d bytes, %d left", n, d.rest())
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

// uvarint reads a canonical (shortest-form) uvarint no larger than max.
func (d *decoder) uvarint(what string, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		d.fail("%s: truncated varint", what)
		return 0
	case n < 0:
		d.fail("%s: varint overflows 64 bits", what)
		return 0
	case n > 1 && d.b[d.off+n-1] == 0:
		d.fail("%s: non-canonical varint", what)
		return 0
	case v > max:
		d.fail("%s: %d exceeds %d", what, v, max)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) id() (id backend.ID) {
	copy(id[:], d.bytes(idSize))
	return id
}

// Decode parses an index file plaintext. It accepts only the canonical form
// Encode writes, so Encode(Decode(b)) == b: shortest varints, superseded IDs
// and pack IDs strictly ascending, each pack with at least one blob, a
// pack's blobs strictly ascending by offset and not overlapping, no trailing
// bytes. Counts are checked against the remaining input before anything is
// allocated for them. Every error wraps ErrFormat.
func Decode(b []byte) (*File, error) {
	d := &decoder{b: b}
	if string(d.bytes(len(magic))) != magic {
		d.fail("not an index (bad magic)")
		return nil, d.err
	}
	if v := d.bytes(1); d.err == nil && v[0] != version {
		d.fail("version %d, want %d", v[0], version)
	}
	f := &File{}
	nsup := d.uvarint("superseded count", uint64(d.rest()/idSize))
	if d.err == nil && nsup > 0 {
		f.Supersedes = make([]backend.ID, nsup)
		for i := range f.Supersedes {
			f.Supersedes[i] = d.id()
			if i > 0 && d.err == nil && !f.Supersedes[i-1].Less(f.Supersedes[i]) {
				d.fail("superseded IDs not strictly ascending")
			}
		}
	}
	npacks := d.uvarint("pack count", uint64(d.rest()/minPackSize))
	if d.err == nil && npacks > 0 {
		f.Packs = make([]Pack, npacks)
		for i := range f.Packs {
			if d.err != nil {
				break
			}
			d.pack(&f.Packs[i])
			if i > 0 && d.err == nil && !f.Packs[i-1].ID.Less(f.Packs[i].ID) {
				d.fail("pack IDs not strictly ascending")
			}
		}
	}
	if d.err == nil && d.rest() != 0 {
		d.fail("%d trailing bytes", d.rest())
	}
	if d.err != nil {
		return nil, d.err
	}
	return f, nil
}

func (d *decoder) pack(p *Pack) {
	p.ID = d.id()
	var keyID crypt.KeyID
	copy(keyID[:], d.bytes(keyIDSize))
	n := d.uvarint("blob count", uint64(d.rest()/minBlobSize))
	if d.err != nil {
		return
	}
	if n == 0 {
		d.fail("pack %s lists no blobs", p.ID.Str())
		return
	}
	p.Blobs = make([]pack.Blob, n)
	var end uint64
	for i := range p.Blobs {
		b := &p.Blobs[i]
		t := d.bytes(1)
		if d.err != nil {
			return
		}
		b.Type = pack.BlobType(t[0])
		if !b.Type.Valid() {
			d.fail("blob type %d", t[0])
			return
		}
		b.Offset = uint32(d.uvarint("offset", math.MaxUint32))
		b.Length = uint32(d.uvarint("length", math.MaxUint32))
		b.RawLength = uint32(d.uvarint("raw length", math.MaxUint32))
		b.ID = d.id()
		b.KeyID = keyID
		if d.err != nil {
			return
		}
		switch {
		case b.Length < crypt.Overhead:
			d.fail("%v is shorter than the sealing overhead", *b)
		case uint64(b.Offset)+uint64(b.Length) > math.MaxUint32:
			d.fail("%v ends beyond 4 GiB", *b)
		case i > 0 && uint64(b.Offset) < end:
			d.fail("%v is not after the end (%d) of the blob before it", *b, end)
		}
		end = uint64(b.Offset) + uint64(b.Length)
	}
}
