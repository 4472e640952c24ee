package crypt

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseIdentity: an identity file is parsed exactly as marshal writes
// it or refused with ErrFormat, never half-read.
func FuzzParseIdentity(f *testing.F) {
	f.Add(readVector(f, "identity"))
	f.Add(vectorIdentity().marshal())
	f.Add([]byte(identityHeader + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := parseIdentity(data)
		if err != nil {
			if id != nil {
				t.Fatal("identity returned with an error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if !bytes.Equal(id.marshal(), data) {
			t.Fatalf("accepted a file that is not the canonical form of what it holds:\n%q", data)
		}
	})
}

// FuzzUnmarshalRing: the key ring inside a key file parses to a ring that
// marshals back to the same bytes, or is refused with ErrFormat.
func FuzzUnmarshalRing(f *testing.F) {
	f.Add(vectorRing(f).marshal())
	f.Add(ringOf(mustKey(f, 1, 2), mustKey(f, 3, 4)).marshal())
	f.Add([]byte{ringVersion, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := unmarshalRing(data)
		if err != nil {
			if r != nil {
				t.Fatal("ring returned with an error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if !bytes.Equal(r.marshal(), data) {
			t.Fatal("ring does not marshal back to its bytes")
		}
	})
}

// FuzzKeyPayload: the sealed payload of a version 2 key file (ring, then
// metadata) parses to values that marshal back to the same bytes, or is
// refused with ErrFormat and nothing else.
func FuzzKeyPayload(f *testing.F) {
	info := KeyFileInfo{Created: vectorCreated, Hostname: "vector-host", Username: "vector-user"}
	f.Add(marshalKeyPayload(vectorRing(f), info))
	f.Add(marshalKeyPayload(ringOf(mustKey(f, 1, 2)), KeyFileInfo{Created: vectorCreated}))
	f.Add([]byte{ringVersion, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, info, err := unmarshalKeyPayload(data, KeyFileInfo{Version: keyFileVersion})
		if err != nil {
			if r != nil || !info.Created.IsZero() || info.Hostname != "" || info.Username != "" {
				t.Fatal("partial result with an error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if !bytes.Equal(marshalKeyPayload(r, info), data) {
			t.Fatal("payload does not marshal back to its bytes")
		}
	})
}
