package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"os"
	"reflect"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const vectorFile = "testdata/v1.index"

func id(b byte) backend.ID { return backend.ID{b, 0xa0, 0x0b, 31: b} }

var (
	keyA = crypt.KeyID{0xc0, 0xa1, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70}
	keyB = crypt.KeyID{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7}
)

// vector is the File of the committed vector, in canonical form.
func vector() *File {
	return &File{
		Supersedes: []backend.ID{id(0x10), id(0x11)},
		Packs: []Pack{
			{ID: id(0x20), Blobs: []pack.Blob{
				{Type: pack.DataBlob, ID: id(0x01), Offset: 0, Length: 1000, KeyID: keyA},
				{Type: pack.TreeBlob, ID: id(0x02), Offset: 1000, Length: 140, RawLength: 300, KeyID: keyA},
				{Type: pack.DataBlob, ID: id(0x03), Offset: 1140, Length: math.MaxUint32 - 1140, RawLength: math.MaxUint32, KeyID: keyA},
			}},
			{ID: id(0x21), Blobs: []pack.Blob{
				{Type: pack.TreeBlob, ID: id(0x01), Offset: 40, Length: 40, KeyID: keyB},
			}},
		},
	}
}

// TestVector pins the byte format: Encode of the vector File gives the
// committed bytes, and Decode of those gives the File back.
func TestVector(t *testing.T) {
	enc := Encode(vector())
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorFile, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, want) {
		t.Errorf("Encode differs from %s:\n got %x\nwant %x", vectorFile, enc, want)
	}
	f, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, vector()) {
		t.Errorf("Decode(%s) = %+v, want %+v", vectorFile, f, vector())
	}
}

func TestEncodeCanonicalizes(t *testing.T) {
	b1 := pack.Blob{Type: pack.DataBlob, ID: id(1), Offset: 100, Length: 50, KeyID: keyA}
	b2 := pack.Blob{Type: pack.TreeBlob, ID: id(2), Offset: 0, Length: 100, KeyID: keyA}
	b3 := pack.Blob{Type: pack.DataBlob, ID: id(3), Offset: 0, Length: 40, KeyID: keyB}
	in := &File{
		Supersedes: []backend.ID{id(9), id(8), id(9)},
		Packs: []Pack{
			{ID: id(0x30), Blobs: []pack.Blob{b1}},
			{ID: id(0x31), Blobs: []pack.Blob{b3}},
			{ID: id(0x32)},
			{ID: id(0x30), Blobs: []pack.Blob{b2, b1}},
		},
	}
	orig := &File{Supersedes: append([]backend.ID(nil), in.Supersedes...), Packs: append([]Pack(nil), in.Packs...)}
	got, err := Decode(Encode(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Supersedes: []backend.ID{id(8), id(9)},
		Packs: []Pack{
			{ID: id(0x30), Blobs: []pack.Blob{b2, b1}},
			{ID: id(0x31), Blobs: []pack.Blob{b3}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Error("Encode modified its input")
	}
	if empty, err := Decode(Encode(&File{})); err != nil || len(empty.Packs) != 0 || len(empty.Supersedes) != 0 {
		t.Errorf("empty file: %+v, %v", empty, err)
	}
}

func TestEncodePanicsOnInconsistentPack(t *testing.T) {
	for name, blobs := range map[string][]pack.Blob{
		"overlap":   {{Type: pack.DataBlob, ID: id(1), Offset: 0, Length: 100}, {Type: pack.DataBlob, ID: id(2), Offset: 99, Length: 100}},
		"two keys":  {{Type: pack.DataBlob, ID: id(1), Offset: 0, Length: 100, KeyID: keyA}, {Type: pack.DataBlob, ID: id(2), Offset: 100, Length: 100, KeyID: keyB}},
		"bad type":  {{Type: 3, ID: id(1), Offset: 0, Length: 100}},
		"too short": {{Type: pack.DataBlob, ID: id(1), Offset: 0, Length: 39}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Encode did not panic", name)
				}
			}()
			Encode(&File{Packs: []Pack{{ID: id(1), Blobs: blobs}}})
		}()
	}
}

// raw builds index bytes by hand; each argument is appended: a byte slice
// as is, a uint64 as a uvarint.
func raw(parts ...any) []byte {
	b := []byte(magic)
	b = append(b, version)
	for _, p := range parts {
		switch v := p.(type) {
		case []byte:
			b = append(b, v...)
		case backend.ID:
			b = append(b, v[:]...)
		case crypt.KeyID:
			b = append(b, v[:]...)
		case int:
			b = binary.AppendUvarint(b, uint64(v))
		case uint64:
			b = binary.AppendUvarint(b, v)
		default:
			panic("raw: bad part")
		}
	}
	return b
}

// blob encodes one blob entry.
func blob(t byte, off, length, rawLen uint64, bid backend.ID) []byte {
	b := []byte{t}
	b = binary.AppendUvarint(b, off)
	b = binary.AppendUvarint(b, length)
	b = binary.AppendUvarint(b, rawLen)
	return append(b, bid[:]...)
}

func TestDecodeRejects(t *testing.T) {
	good := raw(1, id(5), 1, id(6), keyA, 2, blob(1, 0, 100, 0, id(1)), blob(2, 100, 40, 7, id(2)))
	if _, err := Decode(good); err != nil {
		t.Fatalf("well-formed index rejected: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":                   nil,
		"bad magic":               append([]byte("CIDY"), good[4:]...),
		"version 2":               append([]byte("CIDX\x02"), good[5:]...),
		"trailing byte":           append(bytes.Clone(good), 0),
		"non-canonical count":     append(raw(), 0x80, 0x00, 0),
		"varint overflow":         append(raw(), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"huge superseded count":   raw(uint64(math.MaxUint64)),
		"superseded beyond input": raw(3, id(1), id(2), 0),
		"superseded unsorted":     raw(2, id(2), id(1), 0),
		"superseded duplicate":    raw(2, id(1), id(1), 0),
		"huge pack count":         raw(0, 1<<40),
		"packs unsorted":          raw(0, 2, id(7), keyA, 1, blob(1, 0, 40, 0, id(1)), id(6), keyA, 1, blob(1, 0, 40, 0, id(1))),
		"pack duplicate":          raw(0, 2, id(6), keyA, 1, blob(1, 0, 40, 0, id(1)), id(6), keyA, 1, blob(1, 0, 40, 0, id(2))),
		"pack without blobs":      raw(0, 1, id(6), keyA, 0),
		"huge blob count":         raw(0, 1, id(6), keyA, 1<<30, blob(1, 0, 40, 0, id(1))),
		"blob type 0":             raw(0, 1, id(6), keyA, 1, blob(0, 0, 40, 0, id(1))),
		"blob type 3":             raw(0, 1, id(6), keyA, 1, blob(3, 0, 40, 0, id(1))),
		"blob too short":          raw(0, 1, id(6), keyA, 1, blob(1, 0, 39, 0, id(1))),
		"offset beyond 32 bits":   raw(0, 1, id(6), keyA, 1, blob(1, 1<<32, 40, 0, id(1))),
		"raw length beyond 32":    raw(0, 1, id(6), keyA, 1, blob(1, 0, 40, 1<<32, id(1))),
		"blob ends beyond 4 GiB":  raw(0, 1, id(6), keyA, 1, blob(1, math.MaxUint32-39, 40, 0, id(1))),
		"blobs overlap":           raw(0, 1, id(6), keyA, 2, blob(1, 0, 100, 0, id(1)), blob(1, 99, 40, 0, id(2))),
		"blobs unsorted":          raw(0, 1, id(6), keyA, 2, blob(1, 100, 40, 0, id(1)), blob(1, 0, 100, 0, id(2))),
		"blobs at one offset":     raw(0, 1, id(6), keyA, 2, blob(1, 0, 40, 0, id(1)), blob(2, 0, 40, 0, id(1))),
		"non-canonical offset":    raw(0, 1, id(6), keyA, 1, []byte{1, 0x80, 0x00, 40, 0}, id(1)),
	} {
		f, err := Decode(b)
		if !errors.Is(err, ErrFormat) || f != nil {
			t.Errorf("%s: %v, %v; want ErrFormat and no file", name, f, err)
		}
	}
	for n := range len(good) {
		if _, err := Decode(good[:n]); !errors.Is(err, ErrFormat) {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
}
