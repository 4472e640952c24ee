package crypt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"fmt"
)

// A sealed identity is a device identity wrapped under a password, for a
// recovery kit: a blank machine with the kit and the repository password
// gets back the identity its friends' servers allow. The key is derived
// with the KDF of key files (capped by Validate and CheckCost) and the
// seed sealed with the file AEAD, kind 'D', the peer ID as well so a
// damaged or swapped seal is caught. The binary form, base64 (standard,
// unpadded) in text:
//
//	"CSI1" | kdf | salt length (1) | salt | sealed(seed || peer ID)
//
// kdf is 1 (argon2id) then time, memory KiB (u32 each) and threads (u8),
// or 2 (scrypt) then log2 N, r and p (u8 each).

const (
	sealedIdentityMagic = "CSI1"
	sealedIdentityKind  = 'D'
	maxSealedIdentity   = 512
)

var sealedIdentityEncoding = base64.RawStdEncoding

// SealIdentity returns id sealed under password with the KDF parameters
// p (which must pass Validate and CheckCost), as base64 text.
func SealIdentity(id *Identity, password []byte, p KDFParams) (string, error) {
	k, err := DeriveKey(password, p)
	if err != nil {
		return "", fmt.Errorf("seal identity: %w", err)
	}
	b := []byte(sealedIdentityMagic)
	switch p.Algorithm {
	case Argon2id:
		b = append(b, 1)
		b = binary.BigEndian.AppendUint32(b, p.Time)
		b = binary.BigEndian.AppendUint32(b, p.MemoryKiB)
		b = append(b, p.Threads)
	case Scrypt:
		logN := 0
		for 1<<logN < p.N {
			logN++
		}
		b = append(b, 2, byte(logN), byte(p.R), byte(p.P))
	default:
		return "", fmt.Errorf("seal identity: unknown KDF %q", p.Algorithm)
	}
	b = append(b, byte(len(p.Salt)))
	b = append(b, p.Salt...)
	seed := id.s.priv.Seed()
	plain := append(seed, id.id[:]...)
	b = append(b, sealFile(k, sealedIdentityKind, plain)...)
	clear(plain)
	return sealedIdentityEncoding.EncodeToString(b), nil
}

// OpenSealedIdentity opens what SealIdentity returned. A wrong password
// gives an error wrapping ErrWrongPassword; malformed text, ErrFormat; KDF
// parameters over the caps, ErrKDFCost.
func OpenSealedIdentity(text string, password []byte) (*Identity, error) {
	p, sealed, err := parseSealedIdentity(text)
	if err != nil {
		return nil, err
	}
	k, err := DeriveKey(password, p)
	if err != nil {
		return nil, fmt.Errorf("open sealed identity: %w", err)
	}
	plain, err := openFile(k, sealedIdentityKind, sealed)
	if err != nil {
		return nil, fmt.Errorf("open sealed identity: %w", ErrWrongPassword)
	}
	defer clear(plain)
	if len(plain) != ed25519.SeedSize+len(PeerID{}) {
		return nil, fmt.Errorf("%w: sealed identity of %d bytes", ErrFormat, len(plain))
	}
	id := newIdentityFromSeed(plain[:ed25519.SeedSize])
	if !bytes.Equal(id.id[:], plain[ed25519.SeedSize:]) {
		return nil, fmt.Errorf("%w: sealed identity does not match its peer ID", ErrFormat)
	}
	return id, nil
}

// parseSealedIdentity checks the form and returns the KDF parameters and
// the sealed bytes; it derives nothing.
func parseSealedIdentity(text string) (KDFParams, []byte, error) {
	fail := func(what string) (KDFParams, []byte, error) {
		return KDFParams{}, nil, fmt.Errorf("%w: sealed identity: %s", ErrFormat, what)
	}
	if len(text) > maxSealedIdentity {
		return fail("too long")
	}
	b, err := sealedIdentityEncoding.DecodeString(text)
	if err != nil || sealedIdentityEncoding.EncodeToString(b) != text {
		return fail("not base64")
	}
	rest, ok := bytes.CutPrefix(b, []byte(sealedIdentityMagic))
	if !ok || len(rest) < 1 {
		return fail("unknown format")
	}
	var p KDFParams
	switch rest[0] {
	case 1:
		if len(rest) < 10 {
			return fail("truncated")
		}
		p = KDFParams{Algorithm: Argon2id, Time: binary.BigEndian.Uint32(rest[1:]), MemoryKiB: binary.BigEndian.Uint32(rest[5:]), Threads: rest[9]}
		rest = rest[10:]
	case 2:
		if len(rest) < 4 || rest[1] > 30 {
			return fail("truncated or bad scrypt parameters")
		}
		p = KDFParams{Algorithm: Scrypt, N: 1 << rest[1], R: int(rest[2]), P: int(rest[3])}
		rest = rest[4:]
	default:
		return fail("unknown KDF")
	}
	if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
		return fail("truncated salt")
	}
	p.Salt = bytes.Clone(rest[1 : 1+int(rest[0])])
	sealed := rest[1+int(rest[0]):]
	if err := p.Validate(); err != nil {
		return KDFParams{}, nil, fmt.Errorf("%w: sealed identity: %v", ErrFormat, err)
	}
	if len(sealed) != FileOverhead+ed25519.SeedSize+len(PeerID{}) {
		return fail("wrong length")
	}
	return p, sealed, nil
}
