package pack

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const (
	vectorPack   = "testdata/v1.pack"
	vectorListed = "testdata/v1.pack.txt"
)

// vectorBlobs are the blobs of the committed pack vector.
var vectorBlobs = []testBlob{
	{t: DataBlob, plain: []byte("cairn data blob one")},
	{t: TreeBlob, plain: []byte(`{"nodes":[]}`)},
	{t: DataBlob, plain: nil},
	// A blob recorded as compressed: the pack layer stores the raw length
	// and never looks inside the stored plaintext.
	{t: DataBlob, plain: []byte("stored plaintext of a compressed blob"), raw: 4096},
}

// describe lists a decoded pack, one blob a line, with its stored plaintext.
func describe(t *testing.T, data []byte, lookup keyLookup) string {
	t.Helper()
	blobs, keyID, err := readHeader(lookup, int64(len(data)), sliceReader(data, nil))
	if err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint32(data[len(data)-trailerSize:])
	var sb strings.Builder
	fmt.Fprintf(&sb, "size %d header %d key %s\n", len(data), hlen, keyID)
	for _, b := range blobs {
		plain, err := openBlob(lookup, nil, b, data[b.Offset:b.Offset+b.Length])
		if err != nil {
			t.Fatalf("open %v: %v", b, err)
		}
		fmt.Fprintf(&sb, "%s %s offset %d length %d raw %d plaintext %q\n", b.Type, b.ID, b.Offset, b.Length, b.RawLength, plain)
	}
	return sb.String()
}

// TestVector decodes the committed pack written by an earlier cairn: the
// format must stay readable. The Writer's order, padding and nonces are
// random, so the vector is decode-only; -update writes a fresh one.
func TestVector(t *testing.T) {
	k, lookup := testKey(t)
	if *update {
		in := append([]testBlob(nil), vectorBlobs...)
		for i := range in {
			in[i].id = backend.Hash(in[i].plain)
		}
		data, _ := writePack(t, k, in)
		if err := os.MkdirAll(filepath.Dir(vectorPack), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorPack, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorListed, []byte(describe(t, data, lookup)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(vectorPack)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(vectorListed)
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(t, data, lookup); got != string(want) {
		t.Errorf("decoded vector differs:\n got:\n%s\nwant:\n%s", got, want)
	}
	// Every blob's ID is the hash of its plaintext, as the format requires.
	blobs, _, err := readHeader(lookup, int64(len(data)), sliceReader(data, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != len(vectorBlobs) {
		t.Fatalf("vector holds %d blobs, want %d", len(blobs), len(vectorBlobs))
	}
	for _, b := range blobs {
		plain, err := openBlob(lookup, nil, b, data[b.Offset:b.Offset+b.Length])
		if err != nil {
			t.Fatal(err)
		}
		if backend.Hash(plain) != b.ID {
			t.Errorf("%v: ID is not the hash of its plaintext", b)
		}
		found := false
		for _, vb := range vectorBlobs {
			found = found || (bytes.Equal(vb.plain, plain) && vb.t == b.Type && vb.raw == b.RawLength)
		}
		if !found {
			t.Errorf("%v is not one of the vector's blobs", b)
		}
	}
}
