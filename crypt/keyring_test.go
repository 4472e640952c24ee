package crypt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestSealFileRoundTrip(t *testing.T) {
	r, err := NewKeyRing()
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("config"), 1000)} {
		sealed := r.SealFile('c', pt)
		if len(sealed) != len(pt)+FileOverhead {
			t.Fatalf("sealed %d bytes, want %d", len(sealed), len(pt)+FileOverhead)
		}
		if sealed[0] != 1 {
			t.Errorf("version byte %d, want 1", sealed[0])
		}
		if id := r.Current().ID(); !bytes.Equal(sealed[1:9], id[:]) {
			t.Errorf("key ID in header %x, want %s", sealed[1:9], id)
		}
		got, err := r.OpenFile('c', sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("OpenFile = %q, want %q", got, pt)
		}
	}
}

func TestOpenFileRejects(t *testing.T) {
	k := mustKey(t, 1, 1)
	r := ringOf(k)
	sealed := r.SealFile('i', []byte("an index file"))

	t.Run("wrong kind", func(t *testing.T) {
		_, err := r.OpenFile('c', sealed)
		wantErr(t, err, ErrAuth)
	})
	t.Run("wrong key", func(t *testing.T) {
		// Same key ID, other key bytes: the ring finds a key, which fails.
		_, err := ringOf(mustKey(t, 1, 2)).OpenFile('i', sealed)
		wantErr(t, err, ErrAuth)
	})
	t.Run("unknown key", func(t *testing.T) {
		_, err := ringOf(mustKey(t, 2, 1)).OpenFile('i', sealed)
		wantErr(t, err, ErrUnknownKey)
	})
	t.Run("short", func(t *testing.T) {
		for n := 0; n < FileOverhead; n++ {
			_, err := r.OpenFile('i', sealed[:n])
			wantErr(t, err, ErrFormat)
		}
	})
	t.Run("trailing byte", func(t *testing.T) {
		_, err := r.OpenFile('i', append(bytes.Clone(sealed), 0))
		wantErr(t, err, ErrAuth)
	})
	t.Run("truncated", func(t *testing.T) {
		_, err := r.OpenFile('i', sealed[:len(sealed)-1])
		wantErr(t, err, ErrAuth)
	})
	t.Run("every byte flipped", func(t *testing.T) {
		for i := range sealed {
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x10
			pt, err := r.OpenFile('i', bad)
			if pt != nil {
				t.Fatalf("byte %d: got plaintext", i)
			}
			switch {
			case i == 0:
				wantErr(t, err, ErrFormat) // version
			case i < fileHeaderSize:
				wantErr(t, err, ErrUnknownKey) // key ID
			default:
				wantErr(t, err, ErrAuth) // nonce, ciphertext, tag
			}
		}
	})
	t.Run("key ID is authenticated", func(t *testing.T) {
		// A ring holding the same key bytes under another ID must not open
		// a file whose header was rewritten to name that ID.
		other := mustKey(t, 9, 1)
		bad := bytes.Clone(sealed)
		copy(bad[1:9], other.id[:])
		_, err := ringOf(k, other).OpenFile('i', bad)
		wantErr(t, err, ErrAuth)
	})
}

func TestRotated(t *testing.T) {
	r1, err := NewKeyRing()
	if err != nil {
		t.Fatal(err)
	}
	old := r1.SealFile('c', []byte("old"))
	r2, err := r1.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	if r2.Current().ID() == r1.Current().ID() {
		t.Fatal("rotation kept the current key")
	}
	if len(r1.keys) != 1 || len(r2.keys) != 2 {
		t.Fatalf("rings hold %d and %d keys, want 1 and 2", len(r1.keys), len(r2.keys))
	}
	if got, err := r2.OpenFile('c', old); err != nil || string(got) != "old" {
		t.Fatalf("rotated ring opens old file: %q, %v", got, err)
	}
	newer := r2.SealFile('c', []byte("new"))
	if !bytes.Equal(newer[1:9], r2.Current().id[:]) {
		t.Error("rotated ring does not seal with its new key")
	}
	_, err = r1.OpenFile('c', newer)
	wantErr(t, err, ErrUnknownKey)
	if k, ok := r2.Lookup(r1.Current().ID()); !ok || k != r1.Current() {
		t.Error("rotated ring lost the old key")
	}
}

func TestRotatedCap(t *testing.T) {
	r := fullRing(t)
	if _, err := r.Rotated(); err == nil {
		t.Fatal("rotated a full ring")
	}
}

// fullRing returns a ring holding maxRingKeys keys.
func fullRing(t testing.TB) *KeyRing {
	t.Helper()
	keys := make([]*Key, maxRingKeys)
	for i := range keys {
		var id KeyID
		binary.LittleEndian.PutUint64(id[:], uint64(i)+1)
		k, err := NewKeyFromBytes(id, bytes.Repeat([]byte{byte(i)}, KeySize))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	return &KeyRing{keys: keys, current: maxRingKeys / 2}
}

func TestRingMarshalRoundTrip(t *testing.T) {
	for _, r := range []*KeyRing{
		ringOf(mustKey(t, 1, 1)),
		{keys: []*Key{mustKey(t, 1, 1), mustKey(t, 2, 2), mustKey(t, 3, 3)}, current: 1},
		fullRing(t),
	} {
		b := r.marshal()
		got, err := unmarshalRing(b)
		if err != nil {
			t.Fatal(err)
		}
		if !sameRing(got, r) {
			t.Fatalf("ring changed in a round trip: %v -> %v", r, got)
		}
	}
}

func sameRing(a, b *KeyRing) bool {
	if len(a.keys) != len(b.keys) || a.current != b.current {
		return false
	}
	for i := range a.keys {
		if a.keys[i].id != b.keys[i].id || *a.keys[i].s.raw != *b.keys[i].s.raw {
			return false
		}
	}
	return true
}

func TestUnmarshalRingRejects(t *testing.T) {
	good := (&KeyRing{keys: []*Key{mustKey(t, 1, 1), mustKey(t, 2, 2)}, current: 1}).marshal()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":         nil,
		"header only":   good[:ringHeaderSize],
		"version 0":     mod(func(b []byte) []byte { b[0] = 0; return b }),
		"version 2":     mod(func(b []byte) []byte { b[0] = 2; return b }),
		"zero keys":     {1, 0, 0, 0, 0},
		"too many keys": binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16([]byte{1}, maxRingKeys+1), 0),
		"current out":   mod(func(b []byte) []byte { b[3] = 2; return b }),
		"current high":  mod(func(b []byte) []byte { b[4] = 1; return b }),
		"count high":    mod(func(b []byte) []byte { b[1] = 3; return b }),
		"count low":     mod(func(b []byte) []byte { b[1] = 1; return b }),
		"truncated":     good[:len(good)-1],
		"trailing":      append(bytes.Clone(good), 0),
		"duplicate ID": mod(func(b []byte) []byte {
			copy(b[ringHeaderSize+ringEntrySize:], b[ringHeaderSize:ringHeaderSize+8])
			return b
		}),
	} {
		if _, err := unmarshalRing(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func TestKeyRingString(t *testing.T) {
	r := &KeyRing{keys: []*Key{mustKey(t, 1, 0x77), mustKey(t, 2, 0x77)}, current: 1}
	want := "crypt.KeyRing{0101010101010101, 0202020202020202*, redacted}"
	if got := r.String(); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	for _, text := range formats(r) {
		if strings.Contains(text, "7777") || strings.Contains(text, "119 119") {
			t.Errorf("%q shows key bytes", text)
		}
	}
}
