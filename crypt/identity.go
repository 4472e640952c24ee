package crypt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Identity is a device's ed25519 signing key. It signs snapshot-log entries
// and will authenticate the device to peers. It is safe for concurrent use;
// its text forms show only the peer ID.
type Identity struct {
	pub ed25519.PublicKey
	id  PeerID
	// The private key sits two pointers away, as in Key, so that printing
	// an Identity value through reflection shows addresses only.
	s *identitySecret
}

type identitySecret struct {
	priv *ed25519.PrivateKey
}

// IdentityFileName is the name of the identity file inside the directory
// given to LoadOrCreateIdentity.
const IdentityFileName = "identity"

// Identity file format: three lines, see docs/design.md.
const (
	identityHeader     = "cairn identity v1"
	identitySeedPrefix = "seed: "
	identityPeerPrefix = "peer: "
	maxIdentityFile    = 4 << 10 // far above the ~120 bytes a valid file has
)

// NewIdentity returns a fresh random identity.
func NewIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new identity: %w", err)
	}
	return identityFromKey(priv), nil
}

// newIdentityFromSeed returns the identity of a 32-byte ed25519 seed.
func newIdentityFromSeed(seed []byte) *Identity {
	return identityFromKey(ed25519.NewKeyFromSeed(seed))
}

func identityFromKey(priv ed25519.PrivateKey) *Identity {
	pub := priv.Public().(ed25519.PublicKey)
	return &Identity{pub: pub, id: PeerIDFromKey(pub), s: &identitySecret{priv: &priv}}
}

// LoadOrCreateIdentity loads the identity stored in dir/identity, creating
// dir (mode 0700) and a fresh identity file (mode 0600) on first use. The
// file appears atomically: it is written under a temporary name and linked
// into place only if no identity exists yet, so two processes starting at
// once end up with the same identity. A file that exists but does not parse
// is an error wrapping ErrFormat; it is never replaced.
func LoadOrCreateIdentity(dir string) (*Identity, error) {
	path := filepath.Join(dir, IdentityFileName)
	id, err := loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create identity: %w", err)
	}
	id, err = NewIdentity()
	if err != nil {
		return nil, err
	}
	won, err := createExclusive(dir, path, id.marshal())
	if err != nil {
		return nil, fmt.Errorf("create identity %s: %w", path, err)
	}
	if !won {
		// Another process created the file first: use its identity.
		return loadIdentity(path)
	}
	return id, nil
}

// loadIdentity reads and parses an identity file. A missing file is an
// error wrapping fs.ErrNotExist.
func loadIdentity(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", path, err)
	}
	id, err := parseIdentity(data)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", path, err)
	}
	return id, nil
}

// marshal returns the identity file's bytes:
//
//	cairn identity v1
//	seed: <standard base64 of the 32-byte ed25519 seed>
//	peer: <peer ID text form>
func (i *Identity) marshal() []byte {
	return []byte(identityHeader + "\n" +
		identitySeedPrefix + base64.StdEncoding.EncodeToString(i.s.priv.Seed()) + "\n" +
		identityPeerPrefix + i.id.String() + "\n")
}

// parseIdentity parses what marshal writes, and only exactly that. The peer
// line is redundant, so a damaged seed is caught rather than silently
// becoming another identity. Errors wrap ErrFormat and never quote the seed.
func parseIdentity(data []byte) (*Identity, error) {
	if len(data) > maxIdentityFile {
		return nil, fmt.Errorf("%w: identity file larger than %d bytes", ErrFormat, maxIdentityFile)
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return nil, fmt.Errorf("%w: identity file must be three lines", ErrFormat)
	}
	if lines[0] != identityHeader {
		return nil, fmt.Errorf("%w: identity file does not start with %q", ErrFormat, identityHeader)
	}
	seedText, ok := strings.CutPrefix(lines[1], identitySeedPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: identity file has no seed line", ErrFormat)
	}
	seed, err := decodeBase64(seedText)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: identity seed is not %d bytes of base64", ErrFormat, ed25519.SeedSize)
	}
	peerText, ok := strings.CutPrefix(lines[2], identityPeerPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: identity file has no peer line", ErrFormat)
	}
	peer, err := ParsePeerID(peerText)
	if err != nil {
		return nil, err
	}
	id := newIdentityFromSeed(seed)
	clear(seed)
	if id.id != peer {
		return nil, fmt.Errorf("%w: identity seed does not belong to peer %s (damaged file)", ErrFormat, peer.Short())
	}
	if !bytes.Equal(id.marshal(), data) {
		return nil, fmt.Errorf("%w: identity file is not in canonical form", ErrFormat)
	}
	return id, nil
}

// createExclusive makes path hold data, atomically, unless path exists. It
// writes a temporary file in dir, syncs it, and hard-links it to path, which
// fails if path exists; won reports whether our file is the one at path.
// Where hard links are not supported it falls back to rename after checking
// that path is absent.
func createExclusive(dir, path string, data []byte) (won bool, err error) {
	tmp, err := os.CreateTemp(dir, ".identity-*.tmp") // mode 0600
	if err != nil {
		return false, err
	}
	tmpName := tmp.Name()
	defer func() {
		// The temporary name goes away in every case: after a link the file
		// lives on at path; after a rename tmpName no longer exists.
		if rmErr := os.Remove(tmpName); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = rmErr
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	switch err := os.Link(tmpName, path); {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return false, nil
	default:
		if _, statErr := os.Lstat(path); statErr == nil {
			return false, nil
		} else if !errors.Is(statErr, fs.ErrNotExist) {
			return false, statErr
		}
		if err := os.Rename(tmpName, path); err != nil {
			return false, err
		}
	}
	return true, syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// Public returns the identity's public key.
func (i *Identity) Public() ed25519.PublicKey { return bytes.Clone(i.pub) }

// PeerID returns the identity's peer ID.
func (i *Identity) PeerID() PeerID { return i.id }

// Sign returns the ed25519 signature of msg.
func (i *Identity) Sign(msg []byte) []byte { return ed25519.Sign(*i.s.priv, msg) }

// PrivateKey returns a copy of the private key, for building TLS
// certificates. It must not be logged or stored elsewhere.
func (i *Identity) PrivateKey() ed25519.PrivateKey { return bytes.Clone(*i.s.priv) }

// String returns the peer ID; the private key is never printed.
func (i *Identity) String() string {
	if i == nil {
		return "crypt.Identity(nil)"
	}
	return i.id.String()
}

// GoString prints the peer ID only.
func (i *Identity) GoString() string {
	if i == nil {
		return "crypt.Identity(nil)"
	}
	return "crypt.Identity{peer=" + i.id.String() + "}"
}

// Format prints String for %v and %s and GoString for %#v; every verb
// prints one of them, so none reaches the private key.
func (i *Identity) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(i.GoString()))
		return
	}
	_, _ = f.Write([]byte(i.String()))
}
