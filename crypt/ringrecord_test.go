package crypt

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// vectorNextRing is vectorRing rotated: a third key, 03…/33…, current.
func vectorNextRing(t testing.TB) *KeyRing {
	return ringOf(mustKey(t, 0x01, 0x11), mustKey(t, 0x02, 0x22), mustKey(t, 0x03, 0x33))
}

// vectorKeyFileID is the key file a mode 'p' vector is sealed for, and
// vectorWrap the key its password derives (any key will do: how a
// password becomes a key is pinned by the key file vectors).
var vectorKeyFileID = [32]byte{0xaa, 0xbb, 0xcc}

func vectorWrap(t testing.TB) *Key { return mustKey(t, 0, 0x44) }

func TestRingRecordVectors(t *testing.T) {
	byRing, byFile := vectorPath("ring-record-r.bin"), vectorPath("ring-record-p.bin")
	if *update {
		if err := os.WriteFile(byRing, SealRingForRing(vectorRing(t), vectorNextRing(t)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(byFile, SealRingForKeyFile(vectorWrap(t), vectorKeyFileID, vectorNextRing(t)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := ParseRingRecord(readVector(t, "ring-record-r.bin"))
	if err != nil || rec.Mode != RingByRing || rec.KeyID != mustKey(t, 0x02, 0).ID() {
		t.Fatalf("mode r vector: %+v, %v", rec, err)
	}
	next, err := rec.OpenWithRing(vectorRing(t))
	if err != nil || !bytes.Equal(next.marshal(), vectorNextRing(t).marshal()) {
		t.Fatalf("mode r vector opens to %v, %v", next, err)
	}
	rec, err = ParseRingRecord(readVector(t, "ring-record-p.bin"))
	if err != nil || rec.Mode != RingByKeyFile || rec.KeyFile != vectorKeyFileID {
		t.Fatalf("mode p vector: %+v, %v", rec, err)
	}
	next, err = rec.OpenWithKeyFile(vectorWrap(t))
	if err != nil || !bytes.Equal(next.marshal(), vectorNextRing(t).marshal()) {
		t.Fatalf("mode p vector opens to %v, %v", next, err)
	}
}

func TestRingRecordRefusals(t *testing.T) {
	old := vectorRing(t)
	next, err := old.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	if !next.Extends(old) || old.Extends(next) || next.Len() != 3 {
		t.Fatalf("Extends/Len wrong for %v and %v", old, next)
	}
	data := SealRingForRing(old, next)
	rec, err := ParseRingRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	// A holder of another ring (a revoked key file's, say) lacks the key.
	other := ringOf(mustKey(t, 0x09, 0x99))
	if _, err := rec.OpenWithRing(other); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("another ring: %v, want ErrUnknownKey", err)
	}
	if _, err := rec.OpenWithKeyFile(vectorWrap(t)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("mode r opened as mode p: %v, want ErrUnknownKey", err)
	}
	// A password's key opens only its own record.
	pdata := SealRingForKeyFile(vectorWrap(t), vectorKeyFileID, next)
	prec, err := ParseRingRecord(pdata)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prec.OpenWithKeyFile(mustKey(t, 0, 0x45)); !errors.Is(err, ErrAuth) {
		t.Errorf("another password's key: %v, want ErrAuth", err)
	}
	// The header is authenticated: naming another key file fails.
	bad := bytes.Clone(pdata)
	bad[len(ringRecordMagic)+9] ^= 1
	if rec, err := ParseRingRecord(bad); err != nil {
		t.Fatal(err)
	} else if _, err := rec.OpenWithKeyFile(vectorWrap(t)); !errors.Is(err, ErrAuth) {
		t.Errorf("altered key file reference: %v, want ErrAuth", err)
	}
	for name, b := range map[string][]byte{
		"key file":  []byte(`{"version": 2}`),
		"short":     data[:40],
		"bad mode":  append(append([]byte(ringRecordMagic), 'x'), data[len(ringRecordMagic)+1:]...),
		"huge":      append(bytes.Clone(data), make([]byte, MaxRingRecordSize)...),
		"mixed ref": append(append([]byte(ringRecordMagic), RingByKeyFile), data[len(ringRecordMagic)+1:]...),
	} {
		if _, err := ParseRingRecord(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

// FuzzRingRecord: a ring record is refused with ErrFormat or parsed
// whole; opening it never panics and yields a ring or an error.
func FuzzRingRecord(f *testing.F) {
	f.Add(SealRingForRing(vectorRing(f), vectorNextRing(f)))
	f.Add(SealRingForKeyFile(vectorWrap(f), vectorKeyFileID, vectorNextRing(f)))
	f.Add([]byte(ringRecordMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ParseRingRecord(data)
		if err != nil {
			if rec != nil || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v with record %v", err, rec)
			}
			return
		}
		var ring *KeyRing
		if rec.Mode == RingByRing {
			ring, err = rec.OpenWithRing(vectorRing(t))
		} else {
			ring, err = rec.OpenWithKeyFile(vectorWrap(t))
		}
		if (ring == nil) == (err == nil) {
			t.Fatalf("ring %v with error %v", ring, err)
		}
	})
}
