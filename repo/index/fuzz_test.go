package index

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzDecodeIndex: Decode must not panic, must return no File on error, and
// must accept only the canonical form, so a decoded File re-encodes to the
// input byte for byte.
func FuzzDecodeIndex(f *testing.F) {
	if b, err := os.ReadFile(vectorFile); err == nil {
		f.Add(b)
	}
	f.Add(Encode(&File{}))
	f.Add(raw(1, id(5), 1, id(6), keyA, 2, blob(1, 0, 100, 0, id(1)), blob(2, 100, 40, 7, id(2))))
	f.Add(raw(0, 2, id(6), keyA, 1, blob(1, 0, 40, 0, id(1)), id(7), keyB, 1, blob(2, 0, 40, 0, id(1))))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) || file != nil {
				t.Fatalf("error %v with file %v", err, file)
			}
			return
		}
		if re := Encode(file); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b)
		}
		// What decodes also loads into an index and comes back out whole.
		x := New()
		x.AddFile(file)
		n := 0
		for _, p := range file.Packs {
			n += len(p.Blobs)
		}
		if x.Len() != n {
			t.Fatalf("index holds %d entries, file %d", x.Len(), n)
		}
	})
}
