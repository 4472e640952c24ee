package crypt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var testCreated = time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)

func testInfo() KeyFileInfo {
	return KeyFileInfo{Created: testCreated, Hostname: "host.example", Username: "alice"}
}

func newTestKeyFile(t *testing.T, r *KeyRing, p KDFParams) []byte {
	t.Helper()
	data, err := NewKeyFile(r, []byte("secret password"), p, testInfo())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sameInfo(a, b KeyFileInfo) bool {
	return a.Created.Equal(b.Created) && a.Created.Location() == time.UTC && a.Hostname == b.Hostname &&
		a.Username == b.Username && a.KDF.Algorithm == b.KDF.Algorithm && a.KDF.Time == b.KDF.Time &&
		a.KDF.MemoryKiB == b.KDF.MemoryKiB && a.KDF.Threads == b.KDF.Threads && a.KDF.N == b.KDF.N &&
		a.KDF.R == b.KDF.R && a.KDF.P == b.KDF.P && bytes.Equal(a.KDF.Salt, b.KDF.Salt)
}

func TestKeyFileRoundTrip(t *testing.T) {
	r1, err := NewKeyRing()
	if err != nil {
		t.Fatal(err)
	}
	r3, err := r1.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	r3, err = r3.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	r3.current = 1 // a current key that is not the last one
	for _, c := range []struct {
		ring *KeyRing
		p    KDFParams
	}{
		{r1, FastKDFParamsForTests()},
		{r3, FastKDFParamsForTests()},
		{r1, scryptParams(1<<10, 8, 1)},
		{fullRing(t), FastKDFParamsForTests()},
	} {
		data := newTestKeyFile(t, c.ring, c.p)
		want := testInfo()
		want.KDF = c.p
		info, err := ParseKeyFileInfo(data)
		if err != nil {
			t.Fatal(err)
		}
		if !sameInfo(info, want) {
			t.Errorf("ParseKeyFileInfo = %+v, want %+v", info, want)
		}
		ring, info, err := OpenKeyFile(data, []byte("secret password"))
		if err != nil {
			t.Fatal(err)
		}
		if !sameInfo(info, want) {
			t.Errorf("OpenKeyFile info = %+v, want %+v", info, want)
		}
		if !sameRing(ring, c.ring) {
			t.Errorf("ring changed: %v -> %v", c.ring, ring)
		}
		if strings.Contains(string(data), "secret password") {
			t.Error("key file holds the password")
		}
	}
}

func TestKeyFileWrongPassword(t *testing.T) {
	data := newTestKeyFile(t, ringOf(mustKey(t, 1, 1)), FastKDFParamsForTests())
	for _, pw := range []string{"", "secret passwore", "Secret password", "secret password "} {
		ring, _, err := OpenKeyFile(data, []byte(pw))
		if ring != nil {
			t.Fatalf("%q opened the key file", pw)
		}
		wantErr(t, err, ErrWrongPassword)
	}
}

func TestNewKeyFileRejects(t *testing.T) {
	r := ringOf(mustKey(t, 1, 1))
	pw := []byte("pw")
	with := func(f func(*KeyFileInfo)) KeyFileInfo { i := testInfo(); f(&i); return i }
	for name, info := range map[string]KeyFileInfo{
		"zero time":        with(func(i *KeyFileInfo) { i.Created = time.Time{} }),
		"year 10000":       with(func(i *KeyFileInfo) { i.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"control hostname": with(func(i *KeyFileInfo) { i.Hostname = "host\x1b[31m" }),
		"newline username": with(func(i *KeyFileInfo) { i.Username = "a\nb" }),
		"long hostname":    with(func(i *KeyFileInfo) { i.Hostname = strings.Repeat("h", 256) }),
		"bad utf-8":        with(func(i *KeyFileInfo) { i.Username = "\xff" }),
	} {
		if _, err := NewKeyFile(r, pw, FastKDFParamsForTests(), info); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	_, err := NewKeyFile(r, pw, argon(1, 0, 1), testInfo())
	wantErr(t, err, ErrFormat)
	// info.KDF is ignored in favour of p.
	info := testInfo()
	info.KDF = argon(0, 0, 0)
	if _, err := NewKeyFile(r, pw, FastKDFParamsForTests(), info); err != nil {
		t.Errorf("info.KDF was not ignored: %v", err)
	}
	// Non-ASCII names and a non-UTC time are fine.
	info = testInfo()
	info.Hostname, info.Username = "höst-<&>", "ユーザー"
	info.Created = testCreated.In(time.FixedZone("x", 3600))
	data, err := NewKeyFile(r, pw, FastKDFParamsForTests(), info)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKeyFileInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hostname != info.Hostname || got.Username != info.Username || !got.Created.Equal(testCreated) {
		t.Errorf("got %+v", got)
	}
	if !strings.Contains(string(data), `"höst-<&>"`) {
		t.Errorf("hostname is escaped in %s", data)
	}
}

// keyFileVariant edits a key file's text.
type keyFileVariant struct {
	name string
	edit func(s string) string
}

func replace(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic("test bug: " + old + " not found")
		}
		return strings.Replace(s, old, new, 1)
	}
}

func TestParseKeyFileRejects(t *testing.T) {
	p := FastKDFParamsForTests()
	data := newTestKeyFile(t, ringOf(mustKey(t, 1, 1)), p)
	s := string(data)
	var kf keyFileJSON
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}
	sealed, _ := base64.StdEncoding.DecodeString(kf.Data)
	dataWith := func(f func(b []byte) []byte) func(string) string {
		b := f(bytes.Clone(sealed))
		return replace(kf.Data, base64.StdEncoding.EncodeToString(b))
	}
	saltB64 := base64.StdEncoding.EncodeToString(p.Salt)

	for _, v := range []keyFileVariant{
		{"empty", func(string) string { return "" }},
		{"null", func(string) string { return "null" }},
		{"array", func(string) string { return "[]" }},
		{"not json", func(string) string { return "version: 1" }},
		{"trailing object", func(s string) string { return s + "{}" }},
		{"trailing garbage", func(s string) string { return s + "x" }},
		{"truncated", func(s string) string { return s[:len(s)/2] }},
		{"over 64 KiB", func(s string) string { return s + strings.Repeat(" ", maxKeyFileSize) }},
		{"bad utf-8", replace(`"alice"`, "\"al\xffice\"")},
		{"unknown member", replace(`"version": 1,`, `"version": 1, "extra": 1,`)},
		{"duplicate member", replace(`"version": 1,`, `"version": 1, "version": 1,`)},
		{"duplicate hostname", replace(`"username": "alice",`, `"username": "alice", "hostname": "evil",`)},
		{"duplicate for missing", replace(`"username": "alice",`, `"hostname": "evil",`)},
		{"case variant member", replace(`"hostname"`, `"Hostname"`)},
		{"missing member", replace(`"username": "alice",`, ``)},
		{"null member", replace(`"username": "alice"`, `"username": null`)},
		{"bool member", replace(`"username": "alice"`, `"username": true`)},
		{"array member", replace(`"username": "alice"`, `"username": ["alice"]`)},
		{"object member", replace(`"username": "alice"`, `"username": {}`)},
		{"number as string", replace(`"version": 1`, `"version": "1"`)},
		{"version 2", replace(`"version": 1`, `"version": 2`)},
		{"version 1.0", replace(`"version": 1`, `"version": 1.0`)},
		{"control char name", replace(`"alice"`, `"al\u001bice"`)},
		{"created not UTC", replace(`2025-01-02T03:04:05.123456789Z`, `2025-01-02T04:04:05.123456789+01:00`)},
		{"created trailing zero", replace(`05.123456789Z`, `05.1234567890Z`)},
		{"created bad", replace(`2025-01-02T03:04:05.123456789Z`, `yesterday`)},
		{"kdf not object", replace(`"kdf": {`, `"kdf": 1, "x": {`)},
		{"kdf unknown member", replace(`"algorithm": "argon2id",`, `"algorithm": "argon2id", "extra": 1,`)},
		{"kdf duplicate member", replace(`"algorithm": "argon2id",`, `"algorithm": "argon2id", "time": 1,`)},
		{"kdf missing member", replace(`"threads": 1,`, ``)},
		{"kdf scrypt member", replace(`"threads": 1,`, `"threads": 1, "n": 1024,`)},
		{"kdf zero scrypt member", replace(`"threads": 1,`, `"threads": 1, "n": 0,`)},
		{"kdf unknown algorithm", replace(`"argon2id"`, `"argon2d"`)},
		{"kdf as scrypt", replace(`"argon2id"`, `"scrypt"`)},
		{"kdf huge memory", replace(`"memory_kib": 64`, `"memory_kib": 4294967295`)},
		{"kdf threads overflow", replace(`"threads": 1`, `"threads": 256`)},
		{"kdf negative time", replace(`"time": 1`, `"time": -1`)},
		{"kdf short salt", replace(saltB64, base64.StdEncoding.EncodeToString(p.Salt[:15]))},
		{"salt unpadded", replace(saltB64, strings.TrimRight(saltB64, "="))},
		{"salt newline", replace(saltB64, saltB64[:8]+`\n`+saltB64[8:])},
		{"salt url alphabet", replace(saltB64, base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 16)))},
		{"data not base64", replace(kf.Data, "!!!!")},
		{"data empty", replace(kf.Data, "")},
		{"data short", dataWith(func(b []byte) []byte { return b[:FileOverhead-1] })},
		{"data version", dataWith(func(b []byte) []byte { b[0] = 2; return b })},
		{"data key ID", dataWith(func(b []byte) []byte { b[1] = 1; return b })},
		{"data too long", dataWith(func(b []byte) []byte {
			return append(b, make([]byte, ringEntrySize*maxRingKeys)...)
		})},
	} {
		bad := []byte(v.edit(s))
		if _, err := ParseKeyFileInfo(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: ParseKeyFileInfo gave %v, want ErrFormat", v.name, err)
		}
		start := time.Now()
		if _, _, err := OpenKeyFile(bad, []byte("secret password")); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: OpenKeyFile gave %v, want ErrFormat", v.name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: OpenKeyFile took %v: it derived before refusing", v.name, d)
		}
	}

	// Whitespace is not significant.
	compact := new(bytes.Buffer)
	if err := json.Compact(compact, data); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenKeyFile(compact.Bytes(), []byte("secret password")); err != nil {
		t.Errorf("compact key file: %v", err)
	}
}

func TestKeyFileTamperedData(t *testing.T) {
	data := newTestKeyFile(t, ringOf(mustKey(t, 1, 1)), FastKDFParamsForTests())
	var kf keyFileJSON
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}
	sealed, _ := base64.StdEncoding.DecodeString(kf.Data)
	for i := fileHeaderSize; i < len(sealed); i++ {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		bad := strings.Replace(string(data), kf.Data, base64.StdEncoding.EncodeToString(b), 1)
		_, _, err := OpenKeyFile([]byte(bad), []byte("secret password"))
		wantErr(t, err, ErrWrongPassword)
	}
	// Changing the parameters changes the derived key.
	bad := strings.Replace(string(data), `"time": 1`, `"time": 2`, 1)
	_, _, err := OpenKeyFile([]byte(bad), []byte("secret password"))
	wantErr(t, err, ErrWrongPassword)
}

func TestKeyFileRingPayloadChecked(t *testing.T) {
	// A ring payload that authenticates but does not parse is ErrFormat.
	p := FastKDFParamsForTests()
	k, err := DeriveKey([]byte("pw"), p)
	if err != nil {
		t.Fatal(err)
	}
	info := testInfo()
	info.KDF = p
	data, err := encodeKeyFile(info, sealFile(k, keyFileKind, []byte{1, 0, 0, 0, 0}))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = OpenKeyFile(data, []byte("pw"))
	wantErr(t, err, ErrFormat)
	// A ring sealed as another kind of file does not open.
	data, err = encodeKeyFile(info, sealFile(k, 'c', ringOf(mustKey(t, 1, 1)).marshal()))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = OpenKeyFile(data, []byte("pw"))
	wantErr(t, err, ErrWrongPassword)
}
