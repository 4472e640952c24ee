package crypt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func testIdentity(b byte) *Identity { return newIdentityFromSeed(bytes.Repeat([]byte{b}, 32)) }

func parents(n int) [][32]byte {
	ps := make([][32]byte, n)
	for i := range ps {
		ps[i] = sha256.Sum256([]byte{byte(i)})
	}
	slices.SortFunc(ps, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return ps
}

func sameEntry(a, b *Entry) bool {
	return a.Seq == b.Seq && a.Time == b.Time && a.Op == b.Op && slices.Equal(a.Parents, b.Parents) &&
		bytes.Equal(a.Device, b.Device) && bytes.Equal(a.Body, b.Body)
}

func TestEntryRoundTrip(t *testing.T) {
	id := testIdentity(1)
	for _, e := range []*Entry{
		{Seq: 1, Time: 1, Op: 'a', Body: []byte("body")},
		{Seq: 1, Time: -5, Op: 0},
		{Seq: 2, Time: 1 << 62, Op: 'f', Parents: parents(1), Body: bytes.Repeat([]byte{9}, 1000)},
		{Seq: 1<<64 - 1, Time: 0, Op: 'c', Parents: parents(MaxEntryParents)},
		{Seq: 7, Op: 'a', Parents: parents(3), Device: id.Public()},
	} {
		data, err := id.EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.Device, id.Public()) {
			t.Fatal("EncodeEntry did not fill Device")
		}
		if want := entryFixedSize + 32*len(e.Parents) + len(e.Body); len(data) != want {
			t.Fatalf("entry is %d bytes, want %d", len(data), want)
		}
		got, err := DecodeEntry(data)
		if err != nil {
			t.Fatal(err)
		}
		if !sameEntry(got, e) {
			t.Fatalf("round trip: %+v -> %+v", e, got)
		}
		// The decoded entry does not alias the input.
		clear(data)
		if !sameEntry(got, e) {
			t.Fatal("decoded entry aliases its input")
		}
	}
}

func TestEntryMaxBody(t *testing.T) {
	id := testIdentity(1)
	e := &Entry{Seq: 1, Body: make([]byte, MaxEntryBodySize)}
	data, err := id.EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeEntry(data); err != nil {
		t.Fatal(err)
	}
	e.Body = append(e.Body, 0)
	_, err = id.EncodeEntry(e)
	wantErr(t, err, ErrFormat)
}

func TestEncodeEntryRejects(t *testing.T) {
	id := testIdentity(1)
	dup := parents(3)
	dup[1] = dup[0]
	unsorted := parents(3)
	unsorted[0], unsorted[2] = unsorted[2], unsorted[0]
	for name, e := range map[string]*Entry{
		"seq 0":               {Seq: 0},
		"seq 1 with parents":  {Seq: 1, Parents: parents(1)},
		"seq 2 no parents":    {Seq: 2},
		"too many parents":    {Seq: 2, Parents: parents(MaxEntryParents + 1)},
		"duplicate parents":   {Seq: 2, Parents: dup},
		"unsorted parents":    {Seq: 2, Parents: unsorted},
		"device of other key": {Seq: 1, Device: testIdentity(2).Public()},
		"short device":        {Seq: 1, Device: id.Public()[:31]},
	} {
		if _, err := id.EncodeEntry(e); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// encodeRaw encodes e as EncodeEntry would but skips the checks, signing
// with id (Device is left as given).
func encodeRaw(id *Identity, e *Entry) []byte {
	b := e.appendUnsigned(nil)
	return append(b, id.Sign(entrySignedMessage(b))...)
}

func TestDecodeEntryRejectsRuleBreakers(t *testing.T) {
	// Correctly signed entries that break a rule are ErrFormat.
	id := testIdentity(1)
	dup := parents(2)
	dup[1] = dup[0]
	for name, e := range map[string]*Entry{
		"seq 0":              {Seq: 0},
		"seq 1 with parents": {Seq: 1, Parents: parents(2)},
		"seq 3 no parents":   {Seq: 3},
		"duplicate parents":  {Seq: 2, Parents: dup},
		"unsorted parents":   {Seq: 2, Parents: [][32]byte{{2}, {1}}},
	} {
		e.Device = id.Public()
		if _, err := DecodeEntry(encodeRaw(id, e)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func TestDecodeEntryTamper(t *testing.T) {
	id := testIdentity(1)
	e := &Entry{Seq: 3, Time: 1700000000000000000, Op: 'a', Parents: parents(2), Body: []byte("sealed body bytes")}
	data, err := id.EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	parentsAt := entryFixedSize - ed25519.PublicKeySize - 4 - ed25519.SignatureSize
	deviceAt := parentsAt + 2*32
	bodyAt := deviceAt + ed25519.PublicKeySize + 4
	sigAt := len(data) - ed25519.SignatureSize
	for i := range data {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(data)
			bad[i] ^= bit
			got, err := DecodeEntry(bad)
			if got != nil {
				t.Fatalf("byte %d bit %#x: decoded", i, bit)
			}
			switch {
			case i < len(entryMagic)+1: // magic, version
				wantErr(t, err, ErrFormat)
			case i == parentsAt-1: // parent count
				wantErr(t, err, ErrFormat)
			case i >= deviceAt+ed25519.PublicKeySize && i < bodyAt: // body length
				wantErr(t, err, ErrFormat)
			case i >= bodyAt && i < sigAt: // body
				wantErr(t, err, ErrBadSignature)
			case i >= sigAt: // signature
				wantErr(t, err, ErrBadSignature)
			default: // op, seq, time, parents (may fall out of order), device key
				if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrFormat) {
					t.Fatalf("byte %d: got %v", i, err)
				}
			}
		}
	}
	for n := range len(data) {
		_, err := DecodeEntry(data[:n])
		wantErr(t, err, ErrFormat)
	}
	_, err = DecodeEntry(append(bytes.Clone(data), 0))
	wantErr(t, err, ErrFormat)
}

func TestDecodeEntryForgery(t *testing.T) {
	alice, mallory := testIdentity(1), testIdentity(2)
	e := &Entry{Seq: 1, Op: 'a', Device: alice.Public(), Body: []byte("x")}
	// Signed by another key than the one it names.
	_, err := DecodeEntry(encodeRaw(mallory, e))
	wantErr(t, err, ErrBadSignature)
	// Signed without the context string.
	b := e.appendUnsigned(nil)
	_, err = DecodeEntry(append(b, alice.Sign(b)...))
	wantErr(t, err, ErrBadSignature)
	// A valid entry with its device key swapped for another.
	data, err := alice.EncodeEntry(&Entry{Seq: 1, Op: 'a'})
	if err != nil {
		t.Fatal(err)
	}
	deviceAt := entryFixedSize - ed25519.PublicKeySize - 4 - ed25519.SignatureSize
	copy(data[deviceAt:], mallory.Public())
	_, err = DecodeEntry(data)
	wantErr(t, err, ErrBadSignature)
}

func TestDecodeEntryHostileLengths(t *testing.T) {
	id := testIdentity(1)
	data, err := id.EncodeEntry(&Entry{Seq: 2, Parents: parents(1), Body: []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	nAt := entryFixedSize - ed25519.PublicKeySize - 4 - ed25519.SignatureSize - 1
	for _, n := range []byte{0, 2, 17, 255} {
		bad := bytes.Clone(data)
		bad[nAt] = n
		_, err := DecodeEntry(bad)
		wantErr(t, err, ErrFormat)
	}
	lenAt := nAt + 1 + 32 + ed25519.PublicKeySize
	for _, n := range []uint32{0, 2, MaxEntryBodySize, MaxEntryBodySize + 1, 1<<32 - 1} {
		bad := bytes.Clone(data)
		binary.LittleEndian.PutUint32(bad[lenAt:], n)
		_, err := DecodeEntry(bad)
		wantErr(t, err, ErrFormat)
	}
}

func TestEntryID(t *testing.T) {
	data := []byte("entry bytes")
	if EntryID(data) != sha256.Sum256(data) {
		t.Fatal("EntryID is not SHA-256")
	}
}
