package repo

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// FuzzLockSightings: the sightings file is local state, but it is parsed
// on every lock: whatever it holds, parsing must not panic, and what
// parses encodes to a file that parses to the same sightings.
func FuzzLockSightings(f *testing.F) {
	good, _ := json.Marshal(lockSightings{Locks: map[backend.ID]lockSighting{
		backend.Hash([]byte("a")): {Wall: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), Boot: "0b9c1f5e-8a1d-4c1e-9a63-0d1c5b0e7f21", Up: 123 * time.Second},
		backend.Hash([]byte("b")): {Wall: time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC)},
	}})
	f.Add(good)
	f.Add([]byte(`{"locks":{}}`))
	f.Add([]byte(`{"locks":{"zz":{}}}`))
	f.Add([]byte(`{"locks":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeLockSightings(b)
		if err != nil {
			if m != nil {
				t.Fatal("an error with a result")
			}
			return
		}
		enc, err := json.Marshal(lockSightings{Locks: m})
		if err != nil {
			return // a time outside what RFC 3339 can write: never saved
		}
		m2, err := decodeLockSightings(enc)
		if err != nil {
			t.Fatalf("re-encoded sightings do not parse: %v\n%s", err, enc)
		}
		enc2, _ := json.Marshal(lockSightings{Locks: m2})
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the sightings:\n%s\n%s", enc, enc2)
		}
	})
}
