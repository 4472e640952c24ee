package crypt

import (
	"errors"
	"strings"
	"testing"
)

func TestSealIdentity(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []KDFParams{FastKDFParamsForTests(), {Algorithm: Scrypt, N: 1 << 10, R: 8, P: 1, Salt: make([]byte, 16)}} {
		text, err := SealIdentity(id, []byte("pw"), p)
		if err != nil {
			t.Fatal(err)
		}
		seed := sealedIdentityEncoding.EncodeToString(id.s.priv.Seed())
		if strings.Contains(text, seed[:20]) || strings.Contains(text, id.PeerID().String()[:20]) {
			t.Fatal("sealed text shows the seed or peer ID")
		}
		back, err := OpenSealedIdentity(text, []byte("pw"))
		if err != nil || back.PeerID() != id.PeerID() {
			t.Fatalf("%s: open: %v", p.Algorithm, err)
		}
		if _, err := OpenSealedIdentity(text, []byte("wrong")); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("wrong password: %v", err)
		}
		b := []byte(text)
		b[len(b)-5] ^= 1
		if _, err := OpenSealedIdentity(string(b), []byte("pw")); err == nil {
			t.Fatal("damaged seal opened")
		}
	}
	// Costs over the caps are refused before any derivation.
	huge := FastKDFParamsForTests()
	text, _ := SealIdentity(id, []byte("pw"), huge)
	raw, _ := sealedIdentityEncoding.DecodeString(text)
	raw[9] = 0xff // argon2id memory's top byte
	if _, err := OpenSealedIdentity(sealedIdentityEncoding.EncodeToString(raw), []byte("pw")); !errors.Is(err, ErrKDFCost) && !errors.Is(err, ErrFormat) {
		t.Fatalf("costly parameters: %v", err)
	}
}

// FuzzSealedIdentity: the parser never panics and fails with ErrFormat.
func FuzzSealedIdentity(f *testing.F) {
	id, _ := NewIdentity()
	text, _ := SealIdentity(id, []byte("pw"), FastKDFParamsForTests())
	f.Add(text)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if _, _, err := parseSealedIdentity(s); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error not wrapping ErrFormat: %v", err)
		}
	})
}
