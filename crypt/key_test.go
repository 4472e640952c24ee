package crypt

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ad := []byte("associated")
	for _, n := range []int{0, 1, 63, 64, 65, 4096, 100000} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		prefix := []byte("prefix")
		sealed := k.Seal(bytes.Clone(prefix), pt, ad)
		if len(sealed) != len(prefix)+n+Overhead {
			t.Fatalf("n=%d: sealed %d bytes, want %d", n, len(sealed), len(prefix)+n+Overhead)
		}
		if !bytes.HasPrefix(sealed, prefix) {
			t.Fatalf("n=%d: Seal did not keep dst", n)
		}
		if n > 16 && bytes.Contains(sealed, pt[:16]) {
			t.Fatalf("n=%d: plaintext visible in sealed bytes", n)
		}
		got, err := k.Open([]byte("x"), sealed[len(prefix):], ad)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !bytes.Equal(got, append([]byte("x"), pt...)) {
			t.Fatalf("n=%d: Open returned wrong plaintext", n)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	k := mustKey(t, 1, 2)
	a := k.Seal(nil, []byte("same"), nil)
	b := k.Seal(nil, []byte("same"), nil)
	if bytes.Equal(a[:NonceSize], b[:NonceSize]) || bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext share a nonce")
	}
}

func TestSealWithSpareCapacity(t *testing.T) {
	k := mustKey(t, 1, 2)
	dst := make([]byte, 3, 1000)
	sealed := k.Seal(dst, []byte("hello"), nil)
	if &sealed[0] != &dst[:1][0] {
		t.Error("Seal reallocated although dst had room")
	}
	if got, err := k.Open(nil, sealed[3:], nil); err != nil || string(got) != "hello" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpenRejects(t *testing.T) {
	k := mustKey(t, 1, 2)
	other := mustKey(t, 1, 3) // same ID, other key bytes
	ad := []byte("ad")
	sealed := k.Seal(nil, []byte("some plaintext"), ad)

	if _, err := other.Open(nil, sealed, ad); err == nil {
		t.Error("opened with the wrong key")
	} else {
		wantErr(t, err, ErrAuth)
	}
	_, err := k.Open(nil, sealed, []byte("other ad"))
	wantErr(t, err, ErrAuth)
	_, err = k.Open(nil, sealed, nil)
	wantErr(t, err, ErrAuth)
	for n := 0; n < len(sealed); n++ {
		_, err := k.Open(nil, sealed[:n], ad)
		wantErr(t, err, ErrAuth)
	}
	_, err = k.Open(nil, append(bytes.Clone(sealed), 0), ad)
	wantErr(t, err, ErrAuth)
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sealed)
			bad[i] ^= bit
			if out, err := k.Open([]byte("keep"), bad, ad); err == nil {
				t.Fatalf("flipping bit %#x of byte %d was not detected", bit, i)
			} else if out != nil {
				t.Fatalf("Open returned %q with an error", out)
			} else {
				wantErr(t, err, ErrAuth)
			}
		}
	}
}

func TestNewKeyFromBytes(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		_, err := NewKeyFromBytes(KeyID{}, make([]byte, n))
		wantErr(t, err, ErrFormat)
	}
	raw := bytes.Repeat([]byte{7}, KeySize)
	k, err := NewKeyFromBytes(KeyID{1, 2, 3, 4, 5, 6, 7, 8}, raw)
	if err != nil {
		t.Fatal(err)
	}
	raw[0] = 8 // the key must have copied raw
	if k.s.raw[0] != 7 {
		t.Error("NewKeyFromBytes kept a reference to raw")
	}
	if got := k.ID().String(); got != "0102030405060708" {
		t.Errorf("ID().String() = %q", got)
	}
}

func TestNewKeyIsRandom(t *testing.T) {
	a, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() || a.s.raw == b.s.raw {
		t.Fatal("two new keys are equal")
	}
}

// secretForms returns the ways a secret could leak into text.
func secretForms(secret []byte) []string {
	return []string{
		hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
		base64.StdEncoding.EncodeToString(secret)[:20],
		fmt.Sprint(secret[:8])[1:20], // decimal bytes as fmt prints a slice
		string(secret[:8]),
	}
}

// formats prints v with many verbs.
func formats(v any) []string {
	var out []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		out = append(out, fmt.Sprintf(f, v))
	}
	return out
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	k := mustKey(t, 0xab, 0x5c)
	want := "crypt.Key{id=abababababababab, redacted}"
	if k.String() != want || k.GoString() != want || fmt.Sprint(k) != want {
		t.Errorf("String = %q, want %q", k.String(), want)
	}
	texts := append(formats(k), formats(*k)...)
	texts = append(texts, formats([]*Key{k})...)
	texts = append(texts, formats(struct{ K Key }{*k})...)
	texts = append(texts, formats(struct{ k Key }{*k})...)
	texts = append(texts, formats(struct{ k *Key }{k})...)
	texts = append(texts, formats(*ringOf(k))...)
	texts = append(texts, formats(ringOf(k))...)
	for _, text := range texts {
		for _, secret := range secretForms(k.s.raw[:]) {
			if strings.Contains(text, secret) {
				t.Errorf("%q shows the key bytes", text)
			}
		}
	}
	var nilKey *Key
	if got := fmt.Sprint(nilKey); got != "crypt.Key(nil)" {
		t.Errorf("nil key prints %q", got)
	}
}

func benchmarkKey(b *testing.B) (*Key, []byte) {
	k, err := NewKey()
	if err != nil {
		b.Fatal(err)
	}
	return k, make([]byte, 1<<20)
}

func BenchmarkSeal1MiB(b *testing.B) {
	k, pt := benchmarkKey(b)
	dst := make([]byte, 0, len(pt)+Overhead)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		k.Seal(dst[:0], pt, nil)
	}
}

func BenchmarkOpen1MiB(b *testing.B) {
	k, pt := benchmarkKey(b)
	sealed := k.Seal(nil, pt, nil)
	dst := make([]byte, 0, len(pt))
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, err := k.Open(dst[:0], sealed, nil); err != nil {
			b.Fatal(err)
		}
	}
}
