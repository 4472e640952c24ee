package peer

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/crypt"
)

// Mode is what a client may do on a server.
type Mode uint8

// The modes; their numbers appear in the server hello.
const (
	// ModeAppendOnly lets a client add files but not delete or replace
	// them, except that lock files may be deleted (they hold no history).
	// It is the default: a friend's server then keeps the client's old
	// snapshots even if the client's machine is compromised or its owner
	// prunes by mistake.
	ModeAppendOnly Mode = 1
	// ModeReadWrite also lets a client delete and replace files.
	ModeReadWrite Mode = 2
)

func (m Mode) valid() bool { return m == ModeAppendOnly || m == ModeReadWrite }

// String is the mode as --allow spells it.
func (m Mode) String() string {
	switch m {
	case ModeAppendOnly:
		return "append-only"
	case ModeReadWrite:
		return "read-write"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ErrLocation: a peer location or --allow value does not parse.
var ErrLocation = errors.New("invalid peer location")

// ParseAllow parses a server's --allow value "PEERID[:append-only|:read-write]".
// Without a mode the client is append-only, the safe default for a
// friend's server.
func ParseAllow(s string) (crypt.PeerID, Mode, error) {
	idText, modeText, hasMode := strings.Cut(s, ":")
	id, err := crypt.ParsePeerID(idText)
	if err != nil {
		return crypt.PeerID{}, 0, fmt.Errorf("allow %q: %w", shorten(s), err)
	}
	mode := ModeAppendOnly
	if hasMode {
		switch modeText {
		case "append-only":
		case "read-write":
			mode = ModeReadWrite
		default:
			return crypt.PeerID{}, 0, fmt.Errorf("allow %q: %w: mode must be append-only or read-write", shorten(s), ErrLocation)
		}
	}
	return id, mode, nil
}

// Scheme is the location prefix of a peer repository.
const Scheme = "peer://"

// Location names a repository on a peer server:
// peer://PEERID@host:port/NAME.
type Location struct {
	// Peer is the server's pinned peer ID: a server presenting another
	// key is refused.
	Peer crypt.PeerID
	// Addr is host:port.
	Addr string
	// Name is the repository's name within this device's folder on the
	// server, so one device can keep several repositories on one server.
	Name string
}

// String returns the canonical location text.
func (l Location) String() string {
	return Scheme + l.Peer.String() + "@" + l.Addr + "/" + l.Name
}

// ParseLocation parses "peer://PEERID@host:port/NAME". The port is
// required; an IPv6 host is written in brackets. NAME must be a valid
// repository name (see ValidName).
func ParseLocation(s string) (Location, error) {
	fail := func(format string, args ...any) (Location, error) {
		return Location{}, fmt.Errorf("parse %q: %w: %s", shorten(s), ErrLocation, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return fail("must start with %s", Scheme)
	}
	authority, name, ok := strings.Cut(rest, "/")
	if !ok {
		return fail("missing /NAME after host:port")
	}
	idText, addr, ok := strings.Cut(authority, "@")
	if !ok {
		return fail("missing PEERID@ before host:port")
	}
	id, err := crypt.ParsePeerID(idText)
	if err != nil {
		return Location{}, fmt.Errorf("parse %q: %w", shorten(s), err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fail("%q is not host:port", addr)
	}
	if host == "" {
		return fail("missing host")
	}
	if strings.ContainsAny(host, "@/?#% \t") {
		return fail("bad host %q", host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || strconv.FormatUint(p, 10) != port {
		return fail("bad port %q", port)
	}
	if err := ValidName(name); err != nil {
		return Location{}, fmt.Errorf("parse %q: %w", shorten(s), err)
	}
	return Location{Peer: id, Addr: net.JoinHostPort(host, port), Name: name}, nil
}

// maxNameLen bounds a repository name.
const maxNameLen = 64

// ValidName checks a repository name: 1 to 64 characters of a-z, 0-9, '.',
// '_' and '-', starting with a letter or digit. Lower case only, so two
// names never share a folder on a case-insensitive file system; no '/',
// so a name is always one folder inside the client's.
func ValidName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("%w: repository name must be 1 to %d characters", ErrLocation, maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("%w: repository name %q: only a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
				ErrLocation, shorten(name))
		}
	}
	return nil
}

func shorten(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
