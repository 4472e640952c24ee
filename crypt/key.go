package crypt

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the length of a data key in bytes.
const KeySize = chacha20poly1305.KeySize

// NonceSize is the length of the random nonce that starts every sealed
// message.
const NonceSize = chacha20poly1305.NonceSizeX

// TagSize is the length of the Poly1305 authentication tag.
const TagSize = chacha20poly1305.Overhead

// Overhead is how many bytes Seal adds to a plaintext: the nonce before the
// ciphertext and the tag after it.
const Overhead = NonceSize + TagSize

// KeyID names a key inside a key ring. It is random, not derived from the
// key, so it reveals nothing about the key.
type KeyID [8]byte

// String returns the key ID as 16 lowercase hex digits.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// Key is a 256-bit XChaCha20-Poly1305 key with its ID. A Key is safe for
// concurrent use. Its text forms never show the key bytes.
type Key struct {
	id KeyID
	// The key bytes sit two pointers away so that printing a Key value
	// (which has no String method) through reflection, with any verb,
	// shows addresses, never the bytes: fmt expands only the outermost
	// pointer it is handed, and prints nested pointers as addresses.
	s *keySecret
}

type keySecret struct {
	raw  *[KeySize]byte
	aead cipher.AEAD
}

// NewKey returns a fresh random key with a fresh random ID.
func NewKey() (*Key, error) {
	var id KeyID
	var raw [KeySize]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	return newKey(id, raw[:])
}

// NewKeyFromBytes returns the key with the given ID and key bytes; raw must
// be KeySize (32) bytes long. The key copies raw.
func NewKeyFromBytes(id KeyID, raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("new key %s: %w: key is %d bytes, want %d", id, ErrFormat, len(raw), KeySize)
	}
	return newKey(id, raw)
}

func newKey(id KeyID, raw []byte) (*Key, error) {
	s := &keySecret{raw: new([KeySize]byte)}
	copy(s.raw[:], raw)
	aead, err := chacha20poly1305.NewX(s.raw[:])
	if err != nil {
		// NewX fails only for a wrong key length, which the callers rule out.
		return nil, fmt.Errorf("new key %s: %w", id, err)
	}
	s.aead = aead
	return &Key{id: id, s: s}, nil
}

// ID returns the key's ID.
func (k *Key) ID() KeyID { return k.id }

// Seal encrypts and authenticates plaintext with the associated data ad,
// appends nonce || ciphertext || tag to dst and returns the result, which is
// len(plaintext)+Overhead bytes longer than dst. The nonce is random, so
// sealing the same plaintext twice gives different bytes. dst must not
// overlap plaintext.
func (k *Key) Seal(dst, plaintext, ad []byte) []byte {
	ret, out := grow(dst, len(plaintext)+Overhead)
	nonce := out[:NonceSize]
	// crypto/rand.Read never returns an error (it aborts the program if
	// the operating system cannot supply randomness).
	_, _ = rand.Read(nonce)
	k.s.aead.Seal(out[NonceSize:NonceSize], nonce, plaintext, ad)
	return ret
}

// Open authenticates and decrypts sealed (nonce || ciphertext || tag, as
// written by Seal) with the associated data ad, appends the plaintext to dst
// and returns the result. Any failure, a short input included, is ErrAuth;
// nothing is appended then. dst must not overlap sealed.
func (k *Key) Open(dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("open: %w: %d bytes is shorter than the %d-byte overhead", ErrAuth, len(sealed), Overhead)
	}
	out, err := k.s.aead.Open(dst, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("open with key %s: %w", k.id, ErrAuth)
	}
	return out, nil
}

// grow extends b by n bytes, reallocating if needed, and returns the whole
// slice and the n new bytes.
func grow(b []byte, n int) (whole, tail []byte) {
	if total := len(b) + n; cap(b) >= total {
		whole = b[:total]
	} else {
		whole = make([]byte, total)
		copy(whole, b)
	}
	return whole, whole[len(b):]
}

// String prints the key ID only; the key bytes are redacted.
func (k *Key) String() string {
	if k == nil {
		return "crypt.Key(nil)"
	}
	return "crypt.Key{id=" + k.id.String() + ", redacted}"
}

// GoString is String, so %#v does not print the key bytes either.
func (k *Key) GoString() string { return k.String() }

// Format prints String for every verb, so no formatting verb can reach the
// key bytes.
func (k *Key) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(k.String())) }
