package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A recovery kit is what a blank machine needs, besides the password, to
// find and open the repository: its ID, the saved destinations (a peer
// location pins the friend's server by peer ID) and, optionally, the
// device identity sealed under the password (crypt.SealIdentity), which
// friends' servers allow. It is text; lines starting with '#' are
// instructions for people and ignored. The rest, in this order:
//
//	cairn-recovery-kit 1
//	repository <64 hex digits>
//	destination <NAME> <LOCATION>     (any number, in the order to try)
//	identity <sealed identity>        (at most one)
//	check <8 hex digits>
//
// check is the first 4 bytes of SHA-256 over the lines before it, each
// ended by "\n", so a kit typed in from paper with a mistake is refused.

// ErrKit: a recovery kit does not parse.
var ErrKit = errors.New("invalid recovery kit")

const (
	kitHeader = "cairn-recovery-kit 1"
	// maxKit bounds the text a parser looks at: 64 destinations of 1 KiB
	// and the instructions fit many times over.
	maxKit = 256 << 10
)

// Kit is a parsed recovery kit.
type Kit struct {
	// RepoID is the repository's ID (Config.ID).
	RepoID string
	// Destinations are the places the repository is kept, in the order to
	// try them.
	Destinations []Destination
	// Identity is the sealed device identity, "" if the kit has none.
	Identity string
}

// Body returns the kit's machine-readable lines (what the QR code holds),
// check line included.
func (k Kit) Body() (string, error) {
	if err := k.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(kitHeader + "\n")
	b.WriteString("repository " + k.RepoID + "\n")
	for _, d := range k.Destinations {
		b.WriteString("destination " + d.Name + " " + d.Location + "\n")
	}
	if k.Identity != "" {
		b.WriteString("identity " + k.Identity + "\n")
	}
	sum := sha256.Sum256([]byte(b.String()))
	b.WriteString("check " + hex.EncodeToString(sum[:4]) + "\n")
	return b.String(), nil
}

func (k Kit) validate() error {
	if len(k.RepoID) != 64 || strings.Trim(k.RepoID, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: repository ID %q is not 64 hex digits", ErrKit, k.RepoID)
	}
	if err := checkDestinations(k.Destinations); err != nil {
		return fmt.Errorf("%w: %v", ErrKit, err)
	}
	for _, d := range k.Destinations {
		if strings.ContainsAny(d.Location, "\n\r") {
			return fmt.Errorf("%w: destination %s: location with a line break", ErrKit, d.Name)
		}
	}
	if strings.ContainsAny(k.Identity, " \t\r\n") {
		return fmt.Errorf("%w: identity with white space", ErrKit)
	}
	return nil
}

// ParseKit parses a kit's text (instructions included). Every failure
// wraps ErrKit.
func ParseKit(text string) (Kit, error) {
	fail := func(format string, args ...any) (Kit, error) {
		return Kit{}, fmt.Errorf("%w: %s", ErrKit, fmt.Sprintf(format, args...))
	}
	if len(text) > maxKit {
		return fail("larger than %d bytes", maxKit)
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) < 3 || lines[0] != kitHeader {
		return fail("it does not start with %q (is this a cairn recovery kit?)", kitHeader)
	}
	var k Kit
	id, ok := strings.CutPrefix(lines[1], "repository ")
	if !ok {
		return fail("line 2 must name the repository")
	}
	k.RepoID = id
	for _, l := range lines[2 : len(lines)-1] {
		key, rest, _ := strings.Cut(l, " ")
		switch {
		case key == "destination" && k.Identity == "":
			name, loc, ok := strings.Cut(rest, " ")
			if !ok {
				return fail("destination line without a location")
			}
			k.Destinations = append(k.Destinations, Destination{Name: name, Location: loc})
		case key == "identity" && k.Identity == "":
			if rest == "" {
				return fail("empty identity line")
			}
			k.Identity = rest
		default:
			return fail("unexpected line starting %q", shortKitText(l))
		}
	}
	if k.Destinations == nil {
		k.Destinations = []Destination{}
	}
	body, err := k.Body()
	if err != nil {
		return Kit{}, err
	}
	want := strings.Join(lines, "\n") + "\n"
	if body != want {
		if strings.HasPrefix(lines[len(lines)-1], "check ") {
			return fail("check mismatch: a line was changed, lost or mistyped")
		}
		return fail("the last line must be the check line")
	}
	return k, nil
}

func shortKitText(s string) string {
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}
