package crypt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"runtime"
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

// newV1KeyFile writes a key file in format version 1, as cairn did before
// it sealed the metadata: ring sealed alone, metadata in plain text.
func newV1KeyFile(t testing.TB, r *KeyRing, password string, p KDFParams, info KeyFileInfo) []byte {
	t.Helper()
	k, err := DeriveKey([]byte(password), p)
	if err != nil {
		t.Fatal(err)
	}
	info.Version, info.KDF = keyFileV1, p
	data, err := encodeKeyFile(info, sealFile(k, keyFileKind, r.marshal()))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sameInfo(a, b KeyFileInfo) bool {
	return a.Version == b.Version && a.Created.Equal(b.Created) && a.Created.Location() == time.UTC && a.Hostname == b.Hostname &&
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
		want.KDF, want.Version = c.p, keyFileVersion
		info, err := ParseKeyFileInfo(data)
		if err != nil {
			t.Fatal(err)
		}
		// Without the password only the version and KDF show.
		if !sameInfo(info, KeyFileInfo{Version: keyFileVersion, KDF: c.p}) || !info.Sealed() {
			t.Errorf("ParseKeyFileInfo = %+v, want the KDF only", info)
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
		for _, secret := range []string{want.Hostname, want.Username, "2025"} {
			if strings.Contains(string(data), secret) {
				t.Errorf("key file shows %q in plain text:\n%s", secret, data)
			}
		}
	}
}

// TestKeyFileV1StillOpens: a version 1 key file, with its metadata in
// plain text, keeps opening and listing as it did.
func TestKeyFileV1StillOpens(t *testing.T) {
	r := ringOf(mustKey(t, 1, 1), mustKey(t, 2, 2))
	p := FastKDFParamsForTests()
	data := newV1KeyFile(t, r, "pw", p, testInfo())
	want := testInfo()
	want.Version, want.KDF = keyFileV1, p
	info, err := ParseKeyFileInfo(data)
	if err != nil || !sameInfo(info, want) || info.Sealed() {
		t.Fatalf("ParseKeyFileInfo = %+v, %v; want %+v", info, err, want)
	}
	ring, info, err := OpenKeyFile(data, []byte("pw"))
	if err != nil || !sameInfo(info, want) || !sameRing(ring, r) {
		t.Fatalf("OpenKeyFile = %v, %+v, %v", ring, info, err)
	}
	if _, _, err := OpenKeyFile(data, []byte("other")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestKeyFileCostlyParams: a key file asking for more than the cost
// limits parses (so it can be listed) but is never derived.
func TestKeyFileCostlyParams(t *testing.T) {
	data := newTestKeyFile(t, ringOf(mustKey(t, 1, 1)), FastKDFParamsForTests())
	bad := []byte(strings.Replace(string(data), `"memory_kib": 64`, `"memory_kib": 1048576`, 1))
	info, err := ParseKeyFileInfo(bad)
	if err != nil || info.KDF.MemoryKiB != 1<<20 {
		t.Fatalf("ParseKeyFileInfo: %+v, %v", info, err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ring, _, err := OpenKeyFile(bad, []byte("secret password"))
	runtime.ReadMemStats(&after)
	if ring != nil {
		t.Fatal("opened")
	}
	wantErr(t, err, ErrKDFCost)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("allocated %d bytes before refusing", grew)
	}
	if _, err := NewKeyFile(ringOf(mustKey(t, 1, 1)), []byte("pw"), argon(2, 1<<20, 2), testInfo()); !errors.Is(err, ErrKDFCost) {
		t.Errorf("NewKeyFile with costly params: %v", err)
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
	_, got, err := OpenKeyFile(data, pw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hostname != info.Hostname || got.Username != info.Username || !got.Created.Equal(testCreated) {
		t.Errorf("got %+v", got)
	}
	if strings.Contains(string(data), "höst") {
		t.Errorf("hostname in plain text in %s", data)
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

// TestParseKeyFileRejects edits a version 1 key file, which has every
// member a version 2 file has and more; TestParseKeyFileV2Rejects covers
// what is particular to version 2.
func TestParseKeyFileRejects(t *testing.T) {
	p := FastKDFParamsForTests()
	data := newV1KeyFile(t, ringOf(mustKey(t, 1, 1)), "secret password", p, testInfo())
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
		{"version 2 with version 1 members", replace(`"version": 1`, `"version": 2`)},
		{"version 3", replace(`"version": 1`, `"version": 3`)},
		{"version 0", replace(`"version": 1`, `"version": 0`)},
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

func TestParseKeyFileV2Rejects(t *testing.T) {
	data := newTestKeyFile(t, ringOf(mustKey(t, 1, 1)), FastKDFParamsForTests())
	s := string(data)
	for _, v := range []keyFileVariant{
		{"version 1 with version 2 members", replace(`"version": 2`, `"version": 1`)},
		{"plain hostname", replace(`"version": 2,`, `"version": 2, "hostname": "h",`)},
		{"plain username", replace(`"version": 2,`, `"version": 2, "username": "u",`)},
		{"plain created", replace(`"version": 2,`, `"version": 2, "created": "2025-01-02T03:04:05Z",`)},
		{"unknown member", replace(`"version": 2,`, `"version": 2, "extra": 1,`)},
		{"duplicate version", replace(`"version": 2,`, `"version": 2, "version": 2,`)},
		{"missing data", func(s string) string {
			return s[:strings.Index(s, `,
  "data"`)] + "\n}\n"
		}},
	} {
		bad := []byte(v.edit(s))
		if _, err := ParseKeyFileInfo(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: ParseKeyFileInfo gave %v, want ErrFormat", v.name, err)
		}
		if _, _, err := OpenKeyFile(bad, []byte("secret password")); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: OpenKeyFile gave %v, want ErrFormat", v.name, err)
		}
	}
}

// TestKeyPayload: the sealed payload of a version 2 key file parses only
// in its canonical form.
func TestKeyPayload(t *testing.T) {
	r := ringOf(mustKey(t, 1, 1), mustKey(t, 2, 2))
	good := marshalKeyPayload(r, testInfo())
	ring, info, err := unmarshalKeyPayload(good, KeyFileInfo{Version: keyFileVersion})
	if err != nil || !sameRing(ring, r) || !sameInfo(info, KeyFileInfo{Version: keyFileVersion, Created: testCreated, Hostname: "host.example", Username: "alice"}) {
		t.Fatalf("round trip: %v %+v %v", ring, info, err)
	}
	n := ringHeaderSize + 2*ringEntrySize
	for name, b := range map[string][]byte{
		"empty":            nil,
		"ring only":        good[:n],
		"truncated":        good[:len(good)-1],
		"trailing byte":    append(bytes.Clone(good), 0),
		"long length byte": append(append(bytes.Clone(good[:n]), 200), good[n+1:]...),
		"bad created":      append(append(bytes.Clone(good[:n]), 3), "now\x00\x00"...),
		"control in name":  append(append(bytes.Clone(good[:len(good)-6]), 5), "al\x1bce"...),
		"ring count zero":  append([]byte{ringVersion, 0, 0, 0, 0}, good[n:]...),
	} {
		if ring, _, err := unmarshalKeyPayload(b, KeyFileInfo{Version: keyFileVersion}); ring != nil || !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
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
	info.KDF, info.Version = p, keyFileV1
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
	// In version 2, a ring without metadata, or a payload that does not
	// parse, is ErrFormat.
	info.Version = keyFileVersion
	for _, plain := range [][]byte{ringOf(mustKey(t, 1, 1)).marshal(), {1, 0, 0, 0, 0}} {
		data, err = encodeKeyFile(info, sealFile(k, keyFileKind, plain))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = OpenKeyFile(data, []byte("pw"))
		wantErr(t, err, ErrFormat)
	}
}
