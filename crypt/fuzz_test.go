package crypt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func FuzzParseKeyFileInfo(f *testing.F) {
	seed := readVector(f, "keyfile.json")
	f.Add(seed)
	f.Add(readVector(f, "keyfile-v2.json"))
	f.Add([]byte(strings.Replace(string(seed), `"time": 1`, `"time": 1, "time": 2`, 1)))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, sealed, err := parseKeyFile(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			if sealed != nil || info.Hostname != "" || info.KDF.Salt != nil {
				t.Fatal("partial result with an error")
			}
			return
		}
		if err := info.KDF.Validate(); err != nil {
			t.Fatalf("accepted invalid params: %v", err)
		}
		// Encoding the parsed values again gives a file that parses to the
		// same values.
		again, err := encodeKeyFile(info, sealed)
		if err != nil {
			t.Fatal(err)
		}
		info2, sealed2, err := parseKeyFile(again)
		if err != nil {
			t.Fatalf("re-encoded key file does not parse: %v\n%s", err, again)
		}
		if !sameInfo(info, info2) || !bytes.Equal(sealed, sealed2) {
			t.Fatal("re-encoding changed the key file")
		}
		if info3, err := ParseKeyFileInfo(data); err != nil || !sameInfo(info, info3) {
			t.Fatal("ParseKeyFileInfo disagrees with parseKeyFile")
		}
	})
}

func FuzzOpenKeyFile(f *testing.F) {
	f.Add(readVector(f, "keyfile.json"))
	f.Add(readVector(f, "keyfile-v2.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Keep the fuzzer from spending its time on legitimately costly
		// derivations; the caps themselves are tested in TestValidate.
		if info, err := ParseKeyFileInfo(data); err == nil {
			p := info.KDF
			if uint64(p.Time)*uint64(p.MemoryKiB) > 1024 || p.N > 1<<10 || p.R > 8 || p.P > 1 {
				t.Skip("costly KDF parameters")
			}
		}
		ring, _, err := OpenKeyFile(data, []byte(vectorPassword))
		if err != nil {
			if ring != nil {
				t.Fatal("ring returned with an error")
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrWrongPassword) && !errors.Is(err, ErrKDFCost) {
				t.Fatalf("error %v wraps none of ErrFormat, ErrWrongPassword, ErrKDFCost", err)
			}
			return
		}
		if !sameRing(ring, vectorRing(t)) {
			t.Fatal("opened a key file to a ring nobody sealed")
		}
	})
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(readVector(f, "log-entry.bin"))
	first, err := testIdentity(1).EncodeEntry(&Entry{Seq: 1, Op: 'c'})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(first)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			if e != nil {
				t.Fatal("entry returned with an error")
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v wraps neither ErrFormat nor ErrBadSignature", err)
			}
			return
		}
		if err := e.check(); err != nil {
			t.Fatalf("decoded an entry that breaks the rules: %v", err)
		}
		again := append(e.appendUnsigned(nil), data[len(data)-64:]...)
		if !bytes.Equal(again, data) {
			t.Fatal("re-encoding the entry gives other bytes")
		}
	})
}

func FuzzOpenFile(f *testing.F) {
	vector := readVector(f, "sealed-file.bin")
	old := readVector(f, "sealed-file-oldkey.bin")
	f.Add(vector)
	f.Add(old)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, err := vectorRing(t).OpenFile(vectorKind, data)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrAuth) {
				t.Fatalf("error %v wraps no sentinel of OpenFile", err)
			}
			return
		}
		// Nobody can forge a sealed file: only the vectors open.
		if !bytes.Equal(data, vector) && !bytes.Equal(data, old) {
			t.Fatalf("opened a file nobody sealed: %x", data)
		}
	})
}

func FuzzParsePeerID(f *testing.F) {
	f.Add(vectorPeerID)
	f.Add(strings.ToLower(strings.ReplaceAll(vectorPeerID, "-", "")))
	f.Add(PeerID{}.String())
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeerID(s)
		if err != nil {
			if p != (PeerID{}) {
				t.Fatal("ID returned with an error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		text := p.String()
		upper := strings.ToUpper(s)
		if upper != text && upper != strings.ReplaceAll(text, "-", "") {
			t.Fatalf("%q parsed, but prints as %q", s, text)
		}
		if q, err := ParsePeerID(text); err != nil || q != p {
			t.Fatalf("String form %q does not parse back: %v", text, err)
		}
	})
}
