package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// testKey returns a fixed key (ID c0a1... and key bytes 0..31) and a lookup
// that knows only it.
func testKey(t testing.TB) (*crypt.Key, keyLookup) {
	t.Helper()
	raw := make([]byte, crypt.KeySize)
	for i := range raw {
		raw[i] = byte(i)
	}
	k, err := crypt.NewKeyFromBytes(crypt.KeyID{0xc0, 0xa1, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70}, raw)
	if err != nil {
		t.Fatal(err)
	}
	return k, singleKey(k)
}

func singleKey(k *crypt.Key) keyLookup {
	return func(id crypt.KeyID) (*crypt.Key, bool) { return k, id == k.ID() }
}

// sliceReader serves readAt from data and counts the calls.
func sliceReader(data []byte, calls *int) func(off int64, n int) ([]byte, error) {
	return func(off int64, n int) ([]byte, error) {
		if calls != nil {
			*calls++
		}
		if off < 0 || n < 0 || off+int64(n) > int64(len(data)) {
			return nil, fmt.Errorf("read %d+%d beyond %d bytes", off, n, len(data))
		}
		return bytes.Clone(data[off : off+int64(n)]), nil
	}
}

type testBlob struct {
	t     BlobType
	id    backend.ID
	plain []byte
	raw   uint32
}

// makeBlobs returns n blobs of random content and sizes up to maxLen.
func makeBlobs(rng *mrand.Rand, n, maxLen int) []testBlob {
	out := make([]testBlob, n)
	for i := range out {
		plain := make([]byte, rng.IntN(maxLen+1))
		for j := range plain {
			plain[j] = byte(rng.Uint32())
		}
		tb := testBlob{t: DataBlob, plain: plain, id: backend.Hash(plain)}
		if rng.IntN(3) == 0 {
			tb.t = TreeBlob
		}
		if rng.IntN(2) == 0 {
			// Pretend the stored plaintext is compressed: the pack layer
			// only records the raw length.
			tb.raw = uint32(len(plain)) + 1 + uint32(rng.IntN(1000))
		}
		out[i] = tb
	}
	return out
}

func writePack(t testing.TB, k *crypt.Key, blobs []testBlob) ([]byte, []Blob) {
	t.Helper()
	w := NewWriter(k)
	for _, b := range blobs {
		if err := w.Add(b.t, b.id, SealBlob(k, nil, b.t, b.id, b.plain), b.raw); err != nil {
			t.Fatal(err)
		}
	}
	data, got, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	return data, got
}

func TestRoundTrip(t *testing.T) {
	seed := mrand.Uint64()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 1))
	k, lookup := testKey(t)
	for _, n := range []int{1, 2, 7, 60} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			in := makeBlobs(rng, n, 3000)
			data, blobs := writePack(t, k, in)
			var calls int
			got, keyID, err := readHeader(lookup, int64(len(data)), sliceReader(data, &calls))
			if err != nil {
				t.Fatal(err)
			}
			if calls != 1 {
				t.Errorf("small header took %d reads, want 1", calls)
			}
			if keyID != k.ID() {
				t.Errorf("key ID %s, want %s", keyID, k.ID())
			}
			if len(got) != len(blobs) {
				t.Fatalf("read %d blobs, Finalize returned %d", len(got), len(blobs))
			}
			for i := range got {
				if got[i] != blobs[i] {
					t.Errorf("blob %d: read %v, Finalize returned %v", i, got[i], blobs[i])
				}
			}
			byID := make(map[backend.ID]testBlob)
			for _, b := range in {
				byID[b.id] = b
			}
			var end uint32
			for _, b := range got {
				want, ok := byID[b.ID]
				if !ok {
					t.Fatalf("unknown blob %v", b)
				}
				delete(byID, b.ID)
				if b.Offset != end {
					t.Errorf("%v starts at %d, previous ends at %d", b, b.Offset, end)
				}
				end = b.Offset + b.Length
				if b.Type != want.t || b.RawLength != want.raw || b.KeyID != k.ID() {
					t.Errorf("%v: type %s raw %d key %s, want %s %d %s", b, b.Type, b.RawLength, b.KeyID, want.t, want.raw, k.ID())
				}
				if want.raw == 0 && b.PlaintextLength() != uint32(len(want.plain)) {
					t.Errorf("%v: plaintext length %d, want %d", b, b.PlaintextLength(), len(want.plain))
				}
				plain, err := openBlob(lookup, nil, b, data[b.Offset:b.Offset+b.Length])
				if err != nil {
					t.Fatalf("open %v: %v", b, err)
				}
				if !bytes.Equal(plain, want.plain) {
					t.Errorf("%v: plaintext differs", b)
				}
			}
			if len(byID) != 0 {
				t.Errorf("%d blobs missing from the pack", len(byID))
			}
		})
	}
}

// TestShuffle checks that the pack order is not the order of Add.
func TestShuffle(t *testing.T) {
	k, _ := testKey(t)
	in := makeBlobs(mrand.New(mrand.NewPCG(1, 2)), 40, 10)
	for i := range in {
		in[i].raw = 0
	}
	_, blobs := writePack(t, k, in)
	same := 0
	for i, b := range blobs {
		if b.ID == in[i].id {
			same++
		}
	}
	// A uniform permutation of 40 fixes one element on average; 10 or
	// more happens with probability below 1e-6.
	if same >= 10 {
		t.Errorf("%d of 40 blobs kept their position: not shuffled", same)
	}
}

// TestPadding checks that the padding is zero, varies, and spans its range.
func TestPadding(t *testing.T) {
	k, lookup := testKey(t)
	in := makeBlobs(mrand.New(mrand.NewPCG(3, 4)), 3, 100)
	lo, hi := maxPadding, 0
	for range 200 {
		data, _ := writePack(t, k, in)
		hlen := int(binary.LittleEndian.Uint32(data[len(data)-trailerSize:]))
		sealed := data[len(data)-trailerSize-hlen : len(data)-trailerSize]
		plain, err := mustKey(t, lookup, sealed).Open(nil, sealed[sealedPrefixSize:], headerAD(headerVersion, k.ID()))
		if err != nil {
			t.Fatal(err)
		}
		_, pad, err := parsePlainHeader(plain)
		if err != nil {
			t.Fatal(err)
		}
		if pad > maxPadding {
			t.Fatalf("padding %d exceeds %d", pad, maxPadding)
		}
		lo, hi = min(lo, pad), max(hi, pad)
	}
	// 200 uniform draws on [0, 4096] all miss [0, 512) or all miss
	// (3584, 4096] with probability about 5e-12.
	if lo >= 512 || hi <= maxPadding-512 {
		t.Errorf("padding ranged over [%d, %d] in 200 packs: not uniform on [0, %d]", lo, hi, maxPadding)
	}
}

func mustKey(t *testing.T, lookup keyLookup, sealed []byte) *crypt.Key {
	t.Helper()
	var id crypt.KeyID
	copy(id[:], sealed[1:sealedPrefixSize])
	k, ok := lookup(id)
	if !ok {
		t.Fatalf("no key %s", id)
	}
	return k
}

func TestLargeHeaderTwoReads(t *testing.T) {
	k, lookup := testKey(t)
	// 2000 empty blobs: a header of ~82 KiB, beyond the first 64 KiB read.
	w := NewWriter(k)
	for i := range 2000 {
		id := backend.Hash([]byte(fmt.Sprint(i)))
		if err := w.Add(DataBlob, id, SealBlob(k, nil, DataBlob, id, nil), 0); err != nil {
			t.Fatal(err)
		}
	}
	data, blobs, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	got, _, err := readHeader(lookup, int64(len(data)), sliceReader(data, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("%d reads, want 2", calls)
	}
	if len(got) != len(blobs) {
		t.Errorf("read %d blobs, want %d", len(got), len(blobs))
	}
}

func TestReadHeaderRing(t *testing.T) {
	ring, err := crypt.NewKeyRing()
	if err != nil {
		t.Fatal(err)
	}
	old := ring.Current()
	in := makeBlobs(mrand.New(mrand.NewPCG(5, 6)), 4, 200)
	data, _ := writePack(t, old, in)
	rotated, err := ring.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	// A pack sealed before the rotation still opens with the rotated ring.
	blobs, keyID, err := ReadHeader(rotated, int64(len(data)), sliceReader(data, nil))
	if err != nil {
		t.Fatal(err)
	}
	if keyID != old.ID() || rotated.Current().ID() == old.ID() {
		t.Fatalf("header key %s, old key %s, current %s", keyID, old.ID(), rotated.Current().ID())
	}
	for _, b := range blobs {
		if _, err := OpenBlob(rotated, nil, b, data[b.Offset:b.Offset+b.Length]); err != nil {
			t.Errorf("open %v: %v", b, err)
		}
	}
	hlen := binary.LittleEndian.Uint32(data[len(data)-trailerSize:])
	if _, _, err := DecodeHeader(rotated, data[len(data)-trailerSize-int(hlen):len(data)-trailerSize]); err != nil {
		t.Errorf("DecodeHeader: %v", err)
	}
	// A ring without the key says so.
	other, err := crypt.NewKeyRing()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadHeader(other, int64(len(data)), sliceReader(data, nil)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("foreign ring: %v, want ErrUnknownKey", err)
	}
	if _, err := OpenBlob(other, nil, blobs[0], data[blobs[0].Offset:blobs[0].Offset+blobs[0].Length]); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("foreign ring: %v, want ErrUnknownKey", err)
	}
}

func TestOpenBlobRejects(t *testing.T) {
	k, lookup := testKey(t)
	plain := []byte("tree contents")
	id := backend.Hash(plain)
	sealed := SealBlob(k, nil, TreeBlob, id, plain)
	b := Blob{Type: TreeBlob, ID: id, Length: uint32(len(sealed)), KeyID: k.ID()}
	if got, err := openBlob(lookup, []byte("x"), b, sealed); err != nil || string(got) != "xtree contents" {
		t.Fatalf("open: %q, %v", got, err)
	}
	asData := b
	asData.Type = DataBlob
	otherID := b
	otherID.ID[0] ^= 1
	for name, tc := range map[string]struct {
		b      Blob
		sealed []byte
		want   error
	}{
		"other type":   {asData, sealed, crypt.ErrAuth},
		"other id":     {otherID, sealed, crypt.ErrAuth},
		"flipped byte": {b, flip(sealed, 30), crypt.ErrAuth},
		"short":        {b, sealed[:len(sealed)-1], ErrFormat},
	} {
		if _, err := openBlob(lookup, nil, tc.b, tc.sealed); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func TestWriterErrors(t *testing.T) {
	k, lookup := testKey(t)
	w := NewWriter(k)
	id := backend.Hash(nil)
	sealed := SealBlob(k, nil, DataBlob, id, nil)
	if _, _, err := w.Finalize(); err == nil {
		t.Error("finalized an empty pack")
	}
	w.Reset()
	if err := w.Add(BlobType(3), id, sealed, 0); err == nil {
		t.Error("added blob type 3")
	}
	if err := w.Add(DataBlob, id, sealed[:crypt.Overhead-1], 0); err == nil {
		t.Error("added a blob shorter than the overhead")
	}
	if w.Count() != 0 || w.Size() != 0 {
		t.Fatalf("failed adds changed the writer: %d blobs, %d bytes", w.Count(), w.Size())
	}
	if err := w.Add(DataBlob, id, sealed, 0); err != nil {
		t.Fatal(err)
	}
	if w.Count() != 1 || w.Size() != len(sealed) {
		t.Errorf("count %d size %d, want 1 %d", w.Count(), w.Size(), len(sealed))
	}
	first, _, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	first = bytes.Clone(first)
	if err := w.Add(DataBlob, id, sealed, 0); err == nil {
		t.Error("added to a finalized writer")
	}
	if _, _, err := w.Finalize(); err == nil {
		t.Error("finalized twice")
	}
	// After Reset the Writer makes a fresh, independent pack.
	w.Reset()
	plain := []byte("second")
	id2 := backend.Hash(plain)
	if err := w.Add(TreeBlob, id2, SealBlob(k, nil, TreeBlob, id2, plain), 0); err != nil {
		t.Fatal(err)
	}
	second, blobs, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 1 || blobs[0].ID != id2 || blobs[0].Offset != 0 {
		t.Fatalf("second pack lists %v", blobs)
	}
	for _, data := range [][]byte{first, second} {
		if _, _, err := readHeader(lookup, int64(len(data)), sliceReader(data, nil)); err != nil {
			t.Error(err)
		}
	}
}

// sealPlain builds a pack whose header is the given plaintext, sealed
// properly, preceded by dataLen bytes of blob data.
func sealPlain(k *crypt.Key, dataLen int, plain []byte) []byte {
	out := make([]byte, dataLen, dataLen+len(plain)+100)
	keyID := k.ID()
	h := len(out)
	out = append(out, headerVersion)
	out = append(out, keyID[:]...)
	out = k.Seal(out, plain, headerAD(headerVersion, keyID))
	return binary.LittleEndian.AppendUint32(out, uint32(len(out)-h))
}

func entry(t BlobType, length, raw uint32, id byte) []byte {
	e := []byte{byte(t)}
	e = binary.LittleEndian.AppendUint32(e, length)
	e = binary.LittleEndian.AppendUint32(e, raw)
	return append(e, bytes.Repeat([]byte{id}, 32)...)
}

func plainHeader(version byte, wrapped uint16, count uint32, rest ...[]byte) []byte {
	p := []byte{version}
	p = binary.LittleEndian.AppendUint16(p, wrapped)
	p = binary.LittleEndian.AppendUint32(p, count)
	for _, r := range rest {
		p = append(p, r...)
	}
	return p
}

// TestHostileHeaders seals malformed plaintexts with the right key, so they
// pass the AEAD and reach the parser and the layout checks.
func TestHostileHeaders(t *testing.T) {
	k, lookup := testKey(t)
	good := plainHeader(1, 0, 2, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2), make([]byte, 10))
	if _, _, err := readHeader(lookup, int64(len(sealPlain(k, 150, good))), sliceReader(sealPlain(k, 150, good), nil)); err != nil {
		t.Fatalf("well-formed header rejected: %v", err)
	}
	for _, tc := range []struct {
		name    string
		dataLen int
		plain   []byte
	}{
		{"non-zero padding", 150, plainHeader(1, 0, 2, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2), []byte{0, 0, 1})},
		{"version 2", 150, plainHeader(2, 0, 2, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2))},
		{"wrapped key", 150, plainHeader(1, 2, 2, []byte{9, 9}, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2))},
		{"no blobs", 0, plainHeader(1, 0, 0, make([]byte, 41))},
		{"count beyond entries", 150, plainHeader(1, 0, 3, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2), make([]byte, 40))},
		{"huge count", 150, plainHeader(1, 0, math.MaxUint32, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2))},
		{"blob type 0", 150, plainHeader(1, 0, 2, entry(0, 100, 0, 1), entry(TreeBlob, 50, 900, 2))},
		{"blob type 3", 150, plainHeader(1, 0, 2, entry(3, 100, 0, 1), entry(TreeBlob, 50, 900, 2))},
		{"blob shorter than overhead", 139, plainHeader(1, 0, 2, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 39, 0, 2))},
		{"blobs overrun the header", 149, plainHeader(1, 0, 2, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2))},
		{"gap before the header", 151, plainHeader(1, 0, 2, entry(DataBlob, 100, 0, 1), entry(TreeBlob, 50, 900, 2))},
		{"blobs beyond 4 GiB", 150, plainHeader(1, 0, 2, entry(DataBlob, math.MaxUint32-10, 0, 1), entry(TreeBlob, 50, 900, 2))},
		{"short plaintext", 0, []byte{1, 0, 0, 1}},
	} {
		data := sealPlain(k, tc.dataLen, tc.plain)
		_, _, err := readHeader(lookup, int64(len(data)), sliceReader(data, nil))
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", tc.name, err)
		}
	}
}

// TestTampering flips every byte of the header and trailer, truncates and
// extends the pack, and forges header lengths: each must fail cleanly.
func TestTampering(t *testing.T) {
	k, lookup := testKey(t)
	in := makeBlobs(mrand.New(mrand.NewPCG(7, 8)), 3, 50)
	data, _ := writePack(t, k, in)
	hlen := int(binary.LittleEndian.Uint32(data[len(data)-trailerSize:]))
	hstart := len(data) - trailerSize - hlen
	read := func(d []byte) error {
		_, _, err := readHeader(lookup, int64(len(d)), sliceReader(d, nil))
		return err
	}
	for i := hstart; i < len(data); i++ {
		err := read(flip(data, i))
		switch {
		case i >= 1+hstart && i < hstart+sealedPrefixSize:
			if !errors.Is(err, ErrUnknownKey) {
				t.Errorf("flipped key ID byte %d: %v", i, err)
			}
		case i >= len(data)-trailerSize:
			if !errors.Is(err, ErrFormat) {
				t.Errorf("flipped trailer byte %d: %v", i, err)
			}
		case i == hstart:
			if !errors.Is(err, ErrFormat) {
				t.Errorf("flipped version byte: %v", err)
			}
		default:
			if !errors.Is(err, crypt.ErrAuth) {
				t.Errorf("flipped header byte %d: %v, want ErrAuth", i, err)
			}
		}
	}
	for n := range len(data) {
		if err := read(data[:n]); err == nil {
			t.Errorf("truncated to %d bytes: accepted", n)
		}
		if err := read(data[n:]); err == nil && n > 0 {
			t.Errorf("first %d bytes cut: accepted", n)
		}
	}
	if err := read(append(bytes.Clone(data), 0)); err == nil {
		t.Error("extended pack accepted")
	}
	for _, forged := range []uint32{0, minSealedHeader - 1, uint32(len(data) - trailerSize + 1), MaxHeaderSize + 1, math.MaxUint32} {
		d := bytes.Clone(data)
		binary.LittleEndian.PutUint32(d[len(d)-trailerSize:], forged)
		if err := read(d); !errors.Is(err, ErrFormat) {
			t.Errorf("header length %d: %v, want ErrFormat", forged, err)
		}
	}
	// A huge claimed header in a huge claimed pack is refused before any
	// allocation for it: the read callback is called once, for the tail.
	d := bytes.Clone(data[len(data)-trailerSize:])
	binary.LittleEndian.PutUint32(d, MaxHeaderSize+1)
	calls := 0
	_, _, err := readHeader(lookup, 1<<40, func(off int64, n int) ([]byte, error) {
		calls++
		if n > tailRead {
			t.Fatalf("read of %d bytes", n)
		}
		b := make([]byte, n)
		copy(b[n-trailerSize:], d)
		return b, nil
	})
	if !errors.Is(err, ErrFormat) || calls != 1 {
		t.Errorf("huge header: %v after %d reads", err, calls)
	}
	// A reader that returns fewer bytes than asked is an error too.
	_, _, err = readHeader(lookup, int64(len(data)), func(off int64, n int) ([]byte, error) {
		return data[off : off+int64(n)-1], nil
	})
	if !errors.Is(err, ErrFormat) {
		t.Errorf("short read: %v", err)
	}
	readErr := errors.New("backend down")
	_, _, err = readHeader(lookup, int64(len(data)), func(int64, int) ([]byte, error) { return nil, readErr })
	if !errors.Is(err, readErr) {
		t.Errorf("read error: %v", err)
	}
}

func TestBlobTypeString(t *testing.T) {
	for bt, want := range map[BlobType]string{DataBlob: "data", TreeBlob: "tree", 0: "BlobType(0)", 7: "BlobType(7)"} {
		if got := bt.String(); got != want {
			t.Errorf("%d: %q, want %q", uint8(bt), got, want)
		}
	}
}

// TestFull fills a pack to the most blobs a header can list: the next Add
// is ErrFull, and the padded header still fits MaxHeaderSize.
func TestFull(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds a 16 MiB header: slow under -short and -race")
	}
	k, lookup := testKey(t)
	sealed := SealBlob(k, nil, DataBlob, backend.ID{}, nil)
	w := NewWriter(k)
	var id backend.ID
	for i := range maxBlobs {
		binary.LittleEndian.PutUint32(id[:], uint32(i))
		if err := w.Add(DataBlob, id, sealed, 0); err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	if err := w.Add(DataBlob, id, sealed, 0); !errors.Is(err, ErrFull) {
		t.Fatalf("blob %d: %v, want ErrFull", maxBlobs, err)
	}
	data, _, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	if hlen := binary.LittleEndian.Uint32(data[len(data)-trailerSize:]); hlen > MaxHeaderSize {
		t.Fatalf("header of %d bytes", hlen)
	}
	blobs, _, err := readHeader(lookup, int64(len(data)), sliceReader(data, nil))
	if err != nil || len(blobs) != maxBlobs {
		t.Fatalf("%d blobs, %v", len(blobs), err)
	}
}
