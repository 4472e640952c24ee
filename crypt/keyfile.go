package crypt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// KeyFileInfo describes a key file: its format version, who made it and
// when, and how its wrapping key is derived from the password.
type KeyFileInfo struct {
	// Version is the key file's format: 1 keeps Created, Hostname and
	// Username in plain text, 2 (what cairn writes) seals them with the
	// key ring, so only the password reveals them.
	Version  int
	Created  time.Time // when the key file was made (stored in UTC)
	Hostname string    // host that made it
	Username string    // user that made it
	KDF      KDFParams // how the password becomes the wrapping key
}

// Sealed reports whether the metadata (Created, Hostname, Username) is
// unknown: a version 2 key file read without its password.
func (i KeyFileInfo) Sealed() bool { return i.Version >= 2 && i.Created.IsZero() }

// Key file limits.
const (
	// maxKeyFileSize caps a key file; a larger one is refused before it is
	// parsed. The largest ring (maxRingKeys keys) needs about 56 KiB.
	maxKeyFileSize = 64 << 10

	// maxNameSize caps Hostname and Username, in bytes.
	maxNameSize = 255

	// keyFileVersion is what NewKeyFile writes; keyFileV1 is still read.
	keyFileVersion = 2
	keyFileV1      = 1

	// maxMetaSize caps the sealed metadata of a version 2 key file: three
	// strings of at most 255 bytes, each after its length byte.
	maxMetaSize = 3 * (1 + maxNameSize)

	// keyFileKind is the kind byte a key ring is sealed with in a key file.
	keyFileKind = 'K'
)

// keyFileJSON is the key file's JSON form for reading, either version;
// docs/design.md specifies it.
type keyFileJSON struct {
	Version  int     `json:"version"`
	Created  string  `json:"created"`
	Hostname string  `json:"hostname"`
	Username string  `json:"username"`
	KDF      kdfJSON `json:"kdf"`
	Data     string  `json:"data"`
}

// keyFileV2JSON is what version 2 writes: no metadata in plain text.
type keyFileV2JSON struct {
	Version int     `json:"version"`
	KDF     kdfJSON `json:"kdf"`
	Data    string  `json:"data"`
}

type kdfJSON struct {
	Algorithm string `json:"algorithm"`
	Time      uint32 `json:"time,omitempty"`
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
	N         int    `json:"n,omitempty"`
	R         int    `json:"r,omitempty"`
	P         int    `json:"p,omitempty"`
	Salt      string `json:"salt"`
}

// The exact member sets a key file must have: every one present, no other.
var (
	keyFileMembers = map[int][]string{
		keyFileV1:      {"version", "created", "hostname", "username", "kdf", "data"},
		keyFileVersion: {"version", "kdf", "data"},
	}
	kdfMembers = map[string][]string{
		Argon2id: {"algorithm", "time", "memory_kib", "threads", "salt"},
		Scrypt:   {"algorithm", "n", "r", "p", "salt"},
	}
)

// NewKeyFile wraps ring with a key derived from password with p and returns
// the bytes of a version 2 key file, whose metadata is sealed with the
// ring. info supplies Created (which must be set), Hostname and Username;
// info.Version and info.KDF are ignored. Hostname and Username must be
// valid UTF-8 without control characters, at most 255 bytes each. p must
// pass Validate and CheckCost.
func NewKeyFile(ring *KeyRing, password []byte, p KDFParams, info KeyFileInfo) ([]byte, error) {
	data, _, err := NewKeyFileWrap(ring, password, p, info)
	return data, err
}

// NewKeyFileWrap is NewKeyFile that also returns the key derived from the
// password, as OpenKeyFileWrap does.
func NewKeyFileWrap(ring *KeyRing, password []byte, p KDFParams, info KeyFileInfo) ([]byte, *Key, error) {
	data, k, err := newKeyFile(ring, password, p, info)
	if err != nil {
		return nil, nil, fmt.Errorf("new key file: %w", err)
	}
	return data, k, nil
}

func newKeyFile(ring *KeyRing, password []byte, p KDFParams, info KeyFileInfo) ([]byte, *Key, error) {
	if err := checkMeta(info); err != nil {
		return nil, nil, err
	}
	k, err := DeriveKey(password, p)
	if err != nil {
		return nil, nil, err
	}
	info.KDF = p
	info.Version = keyFileVersion
	plain := marshalKeyPayload(ring, info)
	out, err := encodeKeyFile(info, sealFile(k, keyFileKind, plain))
	clear(plain)
	if err != nil {
		return nil, nil, err
	}
	// Check that what we wrote parses as it must.
	if _, _, err := parseKeyFile(out); err != nil {
		return nil, nil, fmt.Errorf("internal error: written file does not parse: %w", err)
	}
	return out, k, nil
}

// checkMeta checks the metadata a key file records.
func checkMeta(info KeyFileInfo) error {
	if info.Created.IsZero() {
		return errors.New("creation time is not set")
	}
	if y := info.Created.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("creation year %d is outside 1..9999", y)
	}
	if err := checkName("hostname", info.Hostname); err != nil {
		return err
	}
	return checkName("username", info.Username)
}

// marshalKeyPayload is the plaintext sealed in a version 2 key file: the
// serialized ring, then the creation time (RFC 3339 in UTC), the hostname
// and the username, each after a byte giving its length. info must pass
// checkMeta.
func marshalKeyPayload(ring *KeyRing, info KeyFileInfo) []byte {
	b := ring.marshal()
	for _, s := range []string{info.Created.UTC().Format(time.RFC3339Nano), info.Hostname, info.Username} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

// unmarshalKeyPayload parses what marshalKeyPayload writes into the ring
// and info's Created, Hostname and Username. Errors wrap ErrFormat.
func unmarshalKeyPayload(b []byte, info KeyFileInfo) (*KeyRing, KeyFileInfo, error) {
	if len(b) < ringHeaderSize {
		return nil, KeyFileInfo{}, fmt.Errorf("key file payload: %w: %d bytes is too short", ErrFormat, len(b))
	}
	n := ringHeaderSize + int(binary.LittleEndian.Uint16(b[1:]))*ringEntrySize
	if len(b) < n {
		return nil, KeyFileInfo{}, fmt.Errorf("key file payload: %w: %d bytes, shorter than its ring", ErrFormat, len(b))
	}
	ring, err := unmarshalRing(b[:n])
	if err != nil {
		return nil, KeyFileInfo{}, fmt.Errorf("key file payload: %w", err)
	}
	var fields [3]string
	rest := b[n:]
	for i := range fields {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return nil, KeyFileInfo{}, fmt.Errorf("key file payload: %w: metadata is truncated", ErrFormat)
		}
		fields[i] = string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
	}
	if len(rest) != 0 {
		return nil, KeyFileInfo{}, fmt.Errorf("key file payload: %w: %d bytes after the metadata", ErrFormat, len(rest))
	}
	created, err := parseCreated(fields[0])
	if err != nil {
		return nil, KeyFileInfo{}, fmt.Errorf("key file payload: %w: %w", ErrFormat, err)
	}
	info.Created, info.Hostname, info.Username = created, fields[1], fields[2]
	if err := checkMeta(info); err != nil {
		return nil, KeyFileInfo{}, fmt.Errorf("key file payload: %w: %w", ErrFormat, err)
	}
	return ring, info, nil
}

// parseCreated parses a creation time, which must be in the canonical form
// time.RFC3339Nano gives in UTC.
func parseCreated(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("created: %w", err)
	}
	if t.UTC().Format(time.RFC3339Nano) != s {
		return time.Time{}, fmt.Errorf("created %q is not in canonical RFC 3339 UTC form", shorten(s))
	}
	return t.UTC(), nil
}

// encodeKeyFile returns the JSON form of a key file of info.Version:
// two-space indented, members in the documented order, no HTML escaping, a
// final newline.
func encodeKeyFile(info KeyFileInfo, sealed []byte) ([]byte, error) {
	p := info.KDF
	kdf := kdfJSON{
		Algorithm: p.Algorithm,
		Time:      p.Time,
		MemoryKiB: p.MemoryKiB,
		Threads:   p.Threads,
		N:         p.N,
		R:         p.R,
		P:         p.P,
		Salt:      base64.StdEncoding.EncodeToString(p.Salt),
	}
	data := base64.StdEncoding.EncodeToString(sealed)
	var kf any
	switch info.Version {
	case keyFileV1:
		kf = keyFileJSON{
			Version:  keyFileV1,
			Created:  info.Created.UTC().Format(time.RFC3339Nano),
			Hostname: info.Hostname,
			Username: info.Username,
			KDF:      kdf,
			Data:     data,
		}
	case keyFileVersion:
		kf = keyFileV2JSON{Version: keyFileVersion, KDF: kdf, Data: data}
	default:
		return nil, fmt.Errorf("internal error: no key file version %d", info.Version)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(kf); err != nil {
		return nil, err
	}
	if buf.Len() > maxKeyFileSize {
		return nil, fmt.Errorf("%d bytes, more than the %d-byte limit", buf.Len(), maxKeyFileSize)
	}
	return buf.Bytes(), nil
}

// OpenKeyFile parses a key file, derives the wrapping key from password and
// unwraps the key ring, and for a version 2 file the metadata sealed with
// it. The KDF parameters are validated and checked against the cost limits
// before anything is derived. Errors: ErrFormat for a malformed file,
// ErrKDFCost for parameters beyond the cost limits, ErrWrongPassword when
// the ring does not authenticate under the derived key.
func OpenKeyFile(data, password []byte) (*KeyRing, KeyFileInfo, error) {
	ring, info, _, err := OpenKeyFileWrap(data, password)
	return ring, info, err
}

// OpenKeyFileWrap is OpenKeyFile that also returns the key derived from
// the password, which opens the ring records sealed for this key file
// (SealRingForKeyFile). The caller must not store or print it.
func OpenKeyFileWrap(data, password []byte) (*KeyRing, KeyFileInfo, *Key, error) {
	info, sealed, err := parseKeyFile(data)
	if err != nil {
		return nil, KeyFileInfo{}, nil, err
	}
	k, err := DeriveKey(password, info.KDF)
	if err != nil {
		return nil, KeyFileInfo{}, nil, fmt.Errorf("open key file: %w", err)
	}
	plain, err := openFile(k, keyFileKind, sealed)
	if errors.Is(err, ErrAuth) {
		return nil, KeyFileInfo{}, nil, fmt.Errorf("open key file: %w", ErrWrongPassword)
	}
	if err != nil {
		return nil, KeyFileInfo{}, nil, fmt.Errorf("open key file: %w", err)
	}
	defer clear(plain)
	var ring *KeyRing
	if info.Version == keyFileV1 {
		ring, err = unmarshalRing(plain)
	} else {
		ring, info, err = unmarshalKeyPayload(plain, info)
	}
	if err != nil {
		return nil, KeyFileInfo{}, nil, fmt.Errorf("open key file: %w", err)
	}
	return ring, info, k, nil
}

// ParseKeyFileInfo parses a key file without a password and returns what
// it shows without one: its version and KDF parameters, and for a version
// 1 file its metadata. It checks everything OpenKeyFile checks before
// deriving except the cost limits, so that a costly file can be listed.
// Errors wrap ErrFormat.
func ParseKeyFileInfo(data []byte) (KeyFileInfo, error) {
	info, _, err := parseKeyFile(data)
	return info, err
}

// parseKeyFile parses and checks a key file and returns its metadata and
// the sealed key ring. Errors wrap ErrFormat.
func parseKeyFile(data []byte) (KeyFileInfo, []byte, error) {
	info, sealed, err := parseKeyFileJSON(data)
	if errors.Is(err, ErrFormat) {
		return KeyFileInfo{}, nil, fmt.Errorf("parse key file: %w", err)
	}
	if err != nil {
		return KeyFileInfo{}, nil, fmt.Errorf("parse key file: %w: %w", ErrFormat, err)
	}
	return info, sealed, nil
}

func parseKeyFileJSON(data []byte) (KeyFileInfo, []byte, error) {
	if len(data) > maxKeyFileSize {
		return KeyFileInfo{}, nil, fmt.Errorf("%d bytes, more than the %d-byte limit", len(data), maxKeyFileSize)
	}
	if !utf8.Valid(data) {
		return KeyFileInfo{}, nil, errors.New("not valid UTF-8")
	}
	top, kdf, err := jsonMembers(data)
	if err != nil {
		return KeyFileInfo{}, nil, err
	}
	var kf keyFileJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return KeyFileInfo{}, nil, err
	}
	members, ok := keyFileMembers[kf.Version]
	if !ok {
		return KeyFileInfo{}, nil, fmt.Errorf("unknown version %d", kf.Version)
	}
	if err := sameMembers("key file", top, members); err != nil {
		return KeyFileInfo{}, nil, err
	}
	want, ok := kdfMembers[kf.KDF.Algorithm]
	if !ok {
		return KeyFileInfo{}, nil, fmt.Errorf("unknown kdf algorithm %q", shorten(kf.KDF.Algorithm))
	}
	if err := sameMembers("kdf", kdf, want); err != nil {
		return KeyFileInfo{}, nil, err
	}

	info := KeyFileInfo{Version: kf.Version}
	if kf.Version == keyFileV1 {
		if info.Created, err = parseCreated(kf.Created); err != nil {
			return KeyFileInfo{}, nil, err
		}
		if err := checkName("hostname", kf.Hostname); err != nil {
			return KeyFileInfo{}, nil, err
		}
		if err := checkName("username", kf.Username); err != nil {
			return KeyFileInfo{}, nil, err
		}
		info.Hostname, info.Username = kf.Hostname, kf.Username
	}

	salt, err := decodeBase64(kf.KDF.Salt)
	if err != nil {
		return KeyFileInfo{}, nil, fmt.Errorf("kdf salt: %w", err)
	}
	info.KDF = KDFParams{
		Algorithm: kf.KDF.Algorithm,
		Time:      kf.KDF.Time,
		MemoryKiB: kf.KDF.MemoryKiB,
		Threads:   kf.KDF.Threads,
		N:         kf.KDF.N,
		R:         kf.KDF.R,
		P:         kf.KDF.P,
		Salt:      salt,
	}
	if err := info.KDF.Validate(); err != nil {
		return KeyFileInfo{}, nil, err
	}

	sealed, err := decodeBase64(kf.Data)
	if err != nil {
		return KeyFileInfo{}, nil, fmt.Errorf("data: %w", err)
	}
	id, err := fileKeyID(sealed)
	if err != nil {
		return KeyFileInfo{}, nil, fmt.Errorf("data: %w", err)
	}
	if id != (KeyID{}) {
		return KeyFileInfo{}, nil, fmt.Errorf("data names key %s, want the all-zero ID of a password-derived key", id)
	}
	maxSealed := FileOverhead + ringHeaderSize + maxRingKeys*ringEntrySize
	if kf.Version != keyFileV1 {
		maxSealed += maxMetaSize
	}
	if len(sealed) > maxSealed {
		return KeyFileInfo{}, nil, fmt.Errorf("data is %d bytes, more than the %d a key ring can take", len(sealed), maxSealed)
	}
	return info, sealed, nil
}

// jsonMembers walks a JSON document that must be one object whose member
// "kdf" is an object and whose other members, and all of kdf's members, are
// scalars. It returns both objects' member names and rejects duplicates and
// trailing data. encoding/json alone would take the last of two duplicate
// members and match names case-insensitively; this walk rules both out.
func jsonMembers(data []byte) (top, kdf []string, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, err
	}
	for dec.More() {
		name, err := memberName(dec, top)
		if err != nil {
			return nil, nil, err
		}
		top = append(top, name)
		if name != "kdf" {
			if err := expectScalar(dec, name); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err := expectDelim(dec, '{'); err != nil {
			return nil, nil, fmt.Errorf("kdf: %w", err)
		}
		for dec.More() {
			name, err := memberName(dec, kdf)
			if err != nil {
				return nil, nil, fmt.Errorf("kdf: %w", err)
			}
			kdf = append(kdf, name)
			if err := expectScalar(dec, name); err != nil {
				return nil, nil, fmt.Errorf("kdf: %w", err)
			}
		}
		if err := expectDelim(dec, '}'); err != nil {
			return nil, nil, fmt.Errorf("kdf: %w", err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("trailing data after the key file object")
	}
	return top, kdf, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("found %v where %q belongs", tok, want)
	}
	return nil
}

func memberName(dec *json.Decoder, seen []string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	name, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("found %v where a member name belongs", tok)
	}
	for _, s := range seen {
		if s == name {
			return "", fmt.Errorf("member %q appears twice", shorten(name))
		}
	}
	return name, nil
}

func expectScalar(dec *json.Decoder, name string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok.(type) {
	case string, json.Number:
		return nil
	}
	return fmt.Errorf("member %q is not a string or number", shorten(name))
}

// sameMembers checks that got holds exactly the names in want.
func sameMembers(what string, got, want []string) error {
	for _, g := range got {
		found := false
		for _, w := range want {
			found = found || g == w
		}
		if !found {
			return fmt.Errorf("%s has unknown member %q", what, shorten(g))
		}
	}
	if len(got) != len(want) { // got has no duplicates and no strangers
		return fmt.Errorf("%s has %d members, want %s", what, len(got), strings.Join(want, ", "))
	}
	return nil
}

// decodeBase64 decodes padded standard base64 and accepts only the
// canonical encoding, so each value has exactly one text form.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	// The decoder skips CR and LF even in strict mode.
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("base64 is not in canonical form")
	}
	return b, nil
}

// checkName checks a hostname or username for a key file: valid UTF-8, no
// control characters (they would reach a terminal in `key list`), at most
// maxNameSize bytes.
func checkName(what, s string) error {
	if len(s) > maxNameSize {
		return fmt.Errorf("%s is %d bytes, more than %d", what, len(s), maxNameSize)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s %q holds a control character", what, shorten(s))
		}
	}
	return nil
}
