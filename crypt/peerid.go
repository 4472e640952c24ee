package crypt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
)

// PeerID identifies a device: the SHA-256 of its ed25519 public key.
//
// Its text form (String) is 56 characters of the RFC 4648 base32 alphabet in
// eight groups of seven separated by '-', for example
// "MFRGGZD-FMZTGNB-...". The 32 bytes make 52 base32 characters (the last
// carries one bit; its other four bits are zero), which are cut into four
// blocks of 13; each block is followed by one check character, so that any
// single mistyped character and any two swapped characters within a block
// are caught, as is a whole block moved to another place. docs/design.md
// gives the check-character arithmetic.
type PeerID [sha256.Size]byte

// PeerIDFromKey returns the peer ID of an ed25519 public key.
func PeerIDFromKey(pub ed25519.PublicKey) PeerID { return sha256.Sum256(pub) }

// Peer ID text layout.
const (
	peerIDDataChars  = 52 // base32 characters for 32 bytes, unpadded
	peerIDBlocks     = 4
	peerIDBlockChars = peerIDDataChars / peerIDBlocks // 13
	peerIDChars      = peerIDDataChars + peerIDBlocks // 56
	peerIDGroupChars = 7
	peerIDGroups     = peerIDChars / peerIDGroupChars     // 8
	peerIDTextLen    = peerIDChars + peerIDGroups - 1     // 63, with dashes
	peerIDAlphabet   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" // RFC 4648
	gf32Poly         = 0x25                               // x^5 + x^2 + 1, primitive over GF(2)
)

var peerIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// String returns the text form: 8 groups of 7 upper-case base32 characters
// separated by '-', with check characters.
func (p PeerID) String() string {
	data := peerIDEncoding.EncodeToString(p[:])
	var b strings.Builder
	b.Grow(peerIDTextLen)
	n := 0 // characters written, dashes excluded
	put := func(c byte) {
		if n > 0 && n%peerIDGroupChars == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(c)
		n++
	}
	for k := range peerIDBlocks {
		block := data[k*peerIDBlockChars : (k+1)*peerIDBlockChars]
		for i := range len(block) {
			put(block[i])
		}
		put(peerIDAlphabet[peerIDCheck(k, block)])
	}
	return b.String()
}

// Short returns the first group of the text form, enough to tell devices
// apart in logs.
func (p PeerID) Short() string { return p.String()[:peerIDGroupChars] }

// MarshalText returns the text form, for config files.
func (p PeerID) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses the text form with ParsePeerID.
func (p *PeerID) UnmarshalText(b []byte) error {
	v, err := ParsePeerID(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePeerID parses the text form written by String. Upper and lower case
// are accepted, and the dashes may be left out (all of them, not some).
// A wrong length, a character outside the alphabet, a wrong check character
// or non-zero unused bits are ErrFormat.
func ParsePeerID(s string) (PeerID, error) {
	var p PeerID
	chars, err := normalizePeerID(s)
	if err != nil {
		return p, err
	}
	var data [peerIDDataChars]byte
	for k := range peerIDBlocks {
		block := chars[k*(peerIDBlockChars+1) : (k+1)*(peerIDBlockChars+1)]
		if peerIDCheck(k, string(block[:peerIDBlockChars])) != peerIDValue(block[peerIDBlockChars]) {
			return p, fmt.Errorf("parse peer ID: %w: check character of block %d is wrong (a typo?)", ErrFormat, k+1)
		}
		copy(data[k*peerIDBlockChars:], block[:peerIDBlockChars])
	}
	n, err := peerIDEncoding.Decode(p[:], data[:])
	if err != nil || n != len(p) {
		return PeerID{}, fmt.Errorf("parse peer ID: %w: bad base32", ErrFormat)
	}
	// The last character holds one bit of data; the decoder ignores the
	// other four, so insist they are zero to keep one text per ID.
	if peerIDEncoding.EncodeToString(p[:]) != string(data[:]) {
		return PeerID{}, fmt.Errorf("parse peer ID: %w: unused bits are not zero", ErrFormat)
	}
	return p, nil
}

// normalizePeerID checks length, dashes and alphabet, and returns the 56
// characters in upper case.
func normalizePeerID(s string) ([]byte, error) {
	out := make([]byte, 0, peerIDChars)
	switch len(s) {
	case peerIDChars:
	case peerIDTextLen:
		for i := peerIDGroupChars; i < len(s); i += peerIDGroupChars + 1 {
			if s[i] != '-' {
				return nil, fmt.Errorf("parse peer ID: %w: want '-' after every %d characters", ErrFormat, peerIDGroupChars)
			}
		}
	default:
		return nil, fmt.Errorf("parse peer ID: %w: %d characters, want %d (or %d without dashes)", ErrFormat, len(s), peerIDTextLen, peerIDChars)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if len(s) == peerIDTextLen && i%(peerIDGroupChars+1) == peerIDGroupChars {
			continue // a dash, checked above
		}
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if peerIDValue(c) < 0 {
			return nil, fmt.Errorf("parse peer ID: %w: %q is not a base32 character", ErrFormat, s[i])
		}
		out = append(out, c)
	}
	return out, nil
}

// peerIDValue returns the 5-bit value of an upper-case base32 character,
// or -1.
func peerIDValue(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= '2' && c <= '7':
		return int(c-'2') + 26
	}
	return -1
}

// peerIDCheck returns the check value of block k (0-based) of 13 data
// characters: in GF(32) = GF(2)[x]/(x^5+x^2+1) with α = x,
//
//	check = (k+1) + Σ_{i=0}^{12} α^(13-i) · v_i
//
// where v_i is the value of character i and + is XOR. Equivalently the 14
// characters of a block, check last, weighted α^13 … α^1, α^0, sum to k+1.
// Every weight is a distinct non-zero power of α (α has order 31), so a
// single changed character or two swapped characters change the sum.
func peerIDCheck(k int, block string) int {
	sum := byte(k + 1)
	w := byte(1)
	for i := len(block) - 1; i >= 0; i-- {
		w = gf32Mul(w, 2)
		sum ^= gf32Mul(w, byte(peerIDValue(block[i])))
	}
	return int(sum)
}

// gf32Mul multiplies in GF(32) modulo x^5 + x^2 + 1.
func gf32Mul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		b >>= 1
		a <<= 1
		if a&0x20 != 0 {
			a ^= gf32Poly
		}
	}
	return p
}
