package crypt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

// vectorReceipt is the receipt of the vector in docs/peer-protocol.md:
// signed by the identity whose seed is 32 bytes of 0x01, for the client
// whose peer ID is 32 bytes of 0x02.
func vectorReceipt() (*Identity, *Receipt) {
	id := newIdentityFromSeed(bytes.Repeat([]byte{1}, 32))
	var client PeerID
	copy(client[:], bytes.Repeat([]byte{2}, 32))
	var h1, h2 [32]byte
	h1[0], h2[0] = 0xaa, 0xbb
	return id, &Receipt{Client: client, Repo: "laptop", Time: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC),
		Files: 42, Bytes: 1 << 20, MaxSeq: 7, Heads: []ReceiptHead{{Seq: 6, ID: h2}, {Seq: 7, ID: h1}}}
}

// receiptVector is the hex of vectorReceipt, signed.
const receiptVector = "434149524e524350018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c0202020202020202020202020202020202020202020202020202020202020202066c6170746f7018ef1e377c350000000000000000002a00000000001000000000000000000007020000000000000007aa000000000000000000000000000000000000000000000000000000000000000000000000000006bb000000000000000000000000000000000000000000000000000000000000007efe37d9c5b2b9b083cf55e36f5aa370f7551f65ff3c75ee6955d87346a556f566bcd609e060dc2e2349cf8bcac64dfd0c051e71534f2ba101e3386c775fa300"

func TestReceiptVector(t *testing.T) {
	id, r := vectorReceipt()
	b, err := id.SignReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != receiptVector {
		t.Fatalf("receipt vector changed:\n%s", got)
	}
	back, err := DecodeReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.SignerID() != id.PeerID() || back.Repo != "laptop" || back.Files != 42 || back.MaxSeq != 7 ||
		len(back.Heads) != 2 || back.Heads[0].Seq != 7 || !back.Time.Equal(r.Time) {
		t.Fatalf("decoded %+v", back)
	}
}

func TestReceiptRefused(t *testing.T) {
	id, r := vectorReceipt()
	good, err := id.SignReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrFormat},
		{"truncated", good[:len(good)-1], ErrFormat},
		{"trailing byte", append(bytes.Clone(good), 0), ErrFormat},
		{"magic", flip(0), ErrFormat},
		{"version", flip(8), ErrFormat},
		{"files changed", flip(len(good) - 64 - 81 - 20), ErrBadSignature},
		{"signature", flip(len(good) - 1), ErrBadSignature},
		{"server key", flip(9), ErrBadSignature},
	}
	for _, c := range cases {
		if _, err := DecodeReceipt(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Heads out of order, or more than MaxReceiptHeads, are refused on
	// decoding even when signed.
	r.Heads = []ReceiptHead{{Seq: 7}, {Seq: 7}}
	b := r.appendUnsigned(nil)
	b = append(b, id.Sign(receiptSignedMessage(b))...)
	if _, err := DecodeReceipt(b); !errors.Is(err, ErrFormat) {
		t.Errorf("repeated head: %v", err)
	}
	// Signing keeps the newest MaxReceiptHeads.
	r.Heads = nil
	r.MaxSeq = 100
	for s := range uint64(20) {
		r.Heads = append(r.Heads, ReceiptHead{Seq: s + 1})
	}
	b, err = id.SignReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeReceipt(b)
	if err != nil || len(back.Heads) != MaxReceiptHeads || back.Heads[0].Seq != 20 {
		t.Fatalf("many heads: %+v %v", back, err)
	}
}

func FuzzDecodeReceipt(f *testing.F) {
	id, r := vectorReceipt()
	good, _ := id.SignReceipt(r)
	f.Add(good)
	f.Add(good[:len(good)-64])
	f.Add([]byte(receiptMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, err := DecodeReceipt(data)
		if err != nil {
			if rc != nil || !errors.Is(err, ErrFormat) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("result %v, error %v", rc, err)
			}
			return
		}
		// Canonical: the unsigned part re-encodes to the input.
		if again := rc.appendUnsigned(nil); !bytes.Equal(again, data[:len(data)-64]) {
			t.Fatalf("re-encoding differs")
		}
	})
}
