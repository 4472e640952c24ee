package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"
)

// FuzzDecodeHeader feeds the header plaintext parser (what DecodeHeader
// parses after the AEAD): it must not panic, must return nothing on error,
// and on success the blobs and padding must re-encode to the input.
func FuzzDecodeHeader(f *testing.F) {
	f.Add(plainHeader(1, 0, 2, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2), make([]byte, 10)))
	f.Add(plainHeader(1, 0, 1, entry(DataBlob, 40, 0, 7)))
	f.Add(plainHeader(1, 0, 1, entry(TreeBlob, math.MaxUint32, 0, 7)))
	f.Add(plainHeader(1, 0, 2, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2), []byte{0, 1}))
	f.Add(plainHeader(1, 3, 1, []byte{1, 2, 3}, entry(DataBlob, 40, 0, 7)))
	f.Add([]byte{1, 0, 0})
	// The plaintext of the committed vector's header.
	if data, err := os.ReadFile(vectorPack); err == nil && len(data) > trailerSize {
		hlen := int(binary.LittleEndian.Uint32(data[len(data)-trailerSize:]))
		if hlen <= len(data)-trailerSize && hlen >= minSealedHeader {
			sealed := data[len(data)-trailerSize-hlen : len(data)-trailerSize]
			k, _ := testKey(f)
			if plain, err := k.Open(nil, sealed[sealedPrefixSize:], headerAD(sealed[0], k.ID())); err == nil {
				f.Add(plain)
			}
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		blobs, pad, err := parsePlainHeader(p)
		if err != nil {
			if !errors.Is(err, ErrFormat) || blobs != nil || pad != 0 {
				t.Fatalf("error %v with %d blobs, pad %d", err, len(blobs), pad)
			}
			return
		}
		var end uint64
		for _, b := range blobs {
			if uint64(b.Offset) != end || b.Length < 40 || !b.Type.Valid() {
				t.Fatalf("accepted %v after %d bytes", b, end)
			}
			end += uint64(b.Length)
		}
		if end > math.MaxUint32 {
			t.Fatalf("accepted %d bytes of blobs", end)
		}
		if re := appendPlainHeader(nil, blobs, pad); !bytes.Equal(re, p) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, p)
		}
	})
}
