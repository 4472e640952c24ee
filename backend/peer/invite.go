package peer

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/crypt"
)

// An invitation lets one device pair with a server without its owner
// learning the device's peer ID first: `cairn peer invite` on the server
// writes a pending invitation (see invitefile.go) and prints its code;
// `cairn peer join CODE` on the device connects, pins the server's peer ID
// from the code and proves it knows the code's secret (see join.go).
// docs/peer-protocol.md specifies the code and the exchange.

// ErrInvite: an invitation code does not parse (mistyped, cut short, or
// not a code at all).
var ErrInvite = errors.New("invalid invitation code")

// invitePrefix starts every code; the 1 is the code format's version.
const invitePrefix = "CAIRN1"

// Sizes of an invitation's parts.
const (
	inviteIDSize     = 8
	inviteSecretSize = 16 // 128 bits: guessing is out of reach even without the attempt bound
	inviteSumSize    = 4
	// maxInviteAddr bounds the address: a DNS name (253) plus ":65535".
	maxInviteAddr = 253 + 6
	// maxInviteCode bounds the text a parser looks at.
	maxInviteCode = 512
)

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// InviteID names a pending invitation on the server.
type InviteID [inviteIDSize]byte

// String is the hex form, the invitation's file name on the server.
func (id InviteID) String() string { return hex.EncodeToString(id[:]) }

// Invite is what an invitation code holds.
type Invite struct {
	// Addr is the server's host:port.
	Addr string
	// Server is the server's peer ID: the joining device pins it.
	Server crypt.PeerID
	// ID names the pending invitation on the server.
	ID InviteID
	// Secret proves the joining device holds the code.
	Secret [inviteSecretSize]byte
}

// Code returns the copy-pasteable code: "CAIRN1" and the unpadded
// upper-case base32 (RFC 4648) of ID, Secret, Server, a length byte and
// Addr, then the first 4 bytes of SHA-256("CAIRN1" || those bytes). It
// holds the secret: print it for the user, never log it.
func (i Invite) Code() string {
	return invitePrefix + inviteEncoding.EncodeToString(i.payload())
}

func (i Invite) payload() []byte {
	if len(i.Addr) == 0 || len(i.Addr) > maxInviteAddr {
		panic("peer: internal error: invitation address must be 1..259 bytes") // callers validate it
	}
	b := make([]byte, 0, inviteIDSize+inviteSecretSize+len(i.Server)+1+len(i.Addr)+inviteSumSize)
	b = append(b, i.ID[:]...)
	b = append(b, i.Secret[:]...)
	b = append(b, i.Server[:]...)
	b = append(b, byte(len(i.Addr)))
	b = append(b, i.Addr...)
	sum := inviteSum(b)
	return append(b, sum[:]...)
}

func inviteSum(b []byte) [inviteSumSize]byte {
	h := sha256.New()
	h.Write([]byte(invitePrefix))
	h.Write(b)
	var s [inviteSumSize]byte
	copy(s[:], h.Sum(nil))
	return s
}

// String keeps the secret out of logs and error messages.
func (i Invite) String() string {
	return fmt.Sprintf("invitation %s from %s at %s", i.ID, i.Server.Short(), i.Addr)
}

// GoString keeps the secret out of %#v.
func (i Invite) GoString() string { return i.String() }

// Format keeps the secret out of every verb.
func (i Invite) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(i.String())) }

// ParseInvite parses a code as Code writes it; surrounding white space is
// ignored (codes are pasted). Every failure wraps ErrInvite; a mistyped
// code fails its checksum.
func ParseInvite(s string) (Invite, error) {
	fail := func(format string, args ...any) (Invite, error) {
		return Invite{}, fmt.Errorf("%w: %s", ErrInvite, fmt.Sprintf(format, args...))
	}
	s = strings.TrimSpace(s)
	if len(s) > maxInviteCode {
		return fail("%d characters, longer than any code", len(s))
	}
	body, ok := strings.CutPrefix(s, invitePrefix)
	if !ok {
		return fail("a code starts with %s (was it copied whole?)", invitePrefix)
	}
	b, err := inviteEncoding.DecodeString(body)
	if err != nil || inviteEncoding.EncodeToString(b) != body {
		return fail("not base32 (A-Z, 2-7): was it copied whole?")
	}
	fixed := inviteIDSize + inviteSecretSize + len(crypt.PeerID{}) + 1
	if len(b) < fixed+1+inviteSumSize {
		return fail("too short: was it copied whole?")
	}
	sum := inviteSum(b[:len(b)-inviteSumSize])
	if subtle.ConstantTimeCompare(sum[:], b[len(b)-inviteSumSize:]) != 1 {
		return fail("checksum mismatch: a character was changed or lost")
	}
	var inv Invite
	n := copy(inv.ID[:], b)
	n += copy(inv.Secret[:], b[n:])
	n += copy(inv.Server[:], b[n:])
	addrLen := int(b[n])
	n++
	if n+addrLen+inviteSumSize != len(b) {
		return fail("address length %d does not match the code's length", addrLen)
	}
	inv.Addr = string(b[n : n+addrLen])
	if err := validInviteAddr(inv.Addr); err != nil {
		return fail("%v", err)
	}
	if !bytes.Equal(inv.payload(), b) {
		return fail("not in canonical form")
	}
	return inv, nil
}

// validInviteAddr checks a server address for an invitation: host:port as
// a location takes it.
func validInviteAddr(addr string) error {
	if len(addr) == 0 || len(addr) > maxInviteAddr {
		return fmt.Errorf("address must be 1 to %d bytes", maxInviteAddr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || !printable(host) || strings.ContainsAny(host, "@/?#% \t") {
		return fmt.Errorf("address %q is not host:port", sanitize(addr))
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || strconv.FormatUint(p, 10) != port {
		return fmt.Errorf("address %q: bad port", sanitize(addr))
	}
	if net.JoinHostPort(host, port) != addr {
		return fmt.Errorf("address %q is not in canonical form", sanitize(addr))
	}
	return nil
}

// Location returns where the joined device's repository NAME lives.
func (i Invite) Location(name string) Location {
	return Location{Peer: i.Server, Addr: i.Addr, Name: name}
}
