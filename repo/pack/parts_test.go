package pack

import (
	"bytes"
	mrand "math/rand/v2"
	"testing"
)

// TestFinalizePartsIsFinalize: the parts concatenate to a pack whose header
// lists the returned blobs, each part is one blob's sealed bytes in pack
// order (then the header), and a reused Writer makes a valid second pack.
func TestFinalizePartsIsFinalize(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(7, 8))
	k, lookup := testKey(t)
	w := NewWriter(k)
	for round := range 2 {
		in := makeBlobs(rng, 20+round, 5000)
		sealed := map[[32]byte][]byte{}
		for _, b := range in {
			s := SealBlob(k, nil, b.t, b.id, b.plain)
			sealed[b.id] = s
			if err := w.Add(b.t, b.id, s, b.raw); err != nil {
				t.Fatal(err)
			}
		}
		parts, blobs, err := w.FinalizeParts()
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != len(blobs)+1 {
			t.Fatalf("%d parts for %d blobs", len(parts), len(blobs))
		}
		data := bytes.Join(parts, nil)
		got, _, err := readHeader(lookup, int64(len(data)), sliceReader(data, new(int)))
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range got {
			if b != blobs[i] {
				t.Fatalf("blob %d: header %v, returned %v", i, b, blobs[i])
			}
			if !bytes.Equal(parts[i], sealed[b.ID]) || !bytes.Equal(data[b.Offset:b.Offset+b.Length], parts[i]) {
				t.Fatalf("blob %d: part is not its sealed bytes at its offset", i)
			}
		}
		if _, _, err := w.FinalizeParts(); err == nil {
			t.Fatal("second FinalizeParts accepted")
		}
		w.Reset()
	}
}
