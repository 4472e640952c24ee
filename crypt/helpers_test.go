package crypt

import (
	"encoding/hex"
	"errors"
	"testing"
)

// wantErr fails the test unless err wraps target.
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want one wrapping %v", err, target)
	}
}

// mustKey returns the key with the given ID byte and key byte repeated.
func mustKey(t testing.TB, idByte, rawByte byte) *Key {
	t.Helper()
	var id KeyID
	for i := range id {
		id[i] = idByte
	}
	raw := make([]byte, KeySize)
	for i := range raw {
		raw[i] = rawByte
	}
	k, err := NewKeyFromBytes(id, raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ringOf returns a ring of the given keys with the last one current.
func ringOf(keys ...*Key) *KeyRing {
	return &KeyRing{keys: keys, current: len(keys) - 1}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
