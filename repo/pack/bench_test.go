package pack

import (
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// BenchmarkPackFinalize assembles a 16 MiB pack of 16 sealed 1 MiB blobs:
// Add (copy), Finalize (shuffle, header, seal, self-check), Reset.
func BenchmarkPackFinalize(b *testing.B) {
	k, _ := testKey(b)
	const n, size = 16, 1 << 20
	type sealedBlob struct {
		id     backend.ID
		sealed []byte
	}
	blobs := make([]sealedBlob, n)
	for i := range blobs {
		plain := make([]byte, size)
		plain[0] = byte(i)
		id := backend.Hash(plain)
		blobs[i] = sealedBlob{id, SealBlob(k, nil, DataBlob, id, plain)}
	}
	w := NewWriter(k)
	b.SetBytes(n * size)
	b.ReportAllocs()
	for b.Loop() {
		w.Reset()
		for _, sb := range blobs {
			if err := w.Add(DataBlob, sb.id, sb.sealed, 0); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := w.Finalize(); err != nil {
			b.Fatal(err)
		}
	}
}
