package peer

import (
	"testing"

	"github.com/cairn-backup/cairn/crypt"
)

// FuzzPeerFromCerts feeds the certificate a peer presents in the TLS
// handshake to the check that turns it into a peer ID: no panic, and a
// peer ID only for a certificate that holds an ed25519 key, the ID of
// that key.
func FuzzPeerFromCerts(f *testing.F) {
	id, err := crypt.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	cert, err := certificate(id)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cert.Certificate[0])
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		got, err := peerFromCerts([][]byte{der})
		if err != nil {
			if got != (crypt.PeerID{}) {
				t.Fatal("peer ID returned with an error")
			}
			return
		}
		if string(der) == string(cert.Certificate[0]) && got != id.PeerID() {
			t.Fatalf("the identity's own certificate gives peer %s, want %s", got, id.PeerID())
		}
	})
}

// FuzzParseLocation: a peer:// location parses to one that prints as its
// canonical text and parses back the same, or is refused.
func FuzzParseLocation(f *testing.F) {
	id, err := crypt.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("peer://" + id.PeerID().String() + "@example.org:7890/laptop")
	f.Add("peer://" + id.PeerID().String() + "@[::1]:1/a.b_c-d")
	f.Add("peer://x@y:1/../..")
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s)
		if err != nil {
			return
		}
		if err := ValidName(loc.Name); err != nil {
			t.Fatalf("%q: accepted repository name %q: %v", s, loc.Name, err)
		}
		again, err := ParseLocation(loc.String())
		if err != nil || again != loc {
			t.Fatalf("%q parses to %+v, whose text %q parses to %+v (%v)", s, loc, loc.String(), again, err)
		}
	})
}

// FuzzParseAllow: an --allow value parses to a peer ID and a valid mode,
// or is refused.
func FuzzParseAllow(f *testing.F) {
	id, err := crypt.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(id.PeerID().String())
	f.Add(id.PeerID().String() + ":read-write")
	f.Add(id.PeerID().String() + ":append-only:x")
	f.Fuzz(func(t *testing.T, s string) {
		_, mode, err := ParseAllow(s)
		if err == nil && !mode.valid() {
			t.Fatalf("%q: accepted mode %d", s, mode)
		}
	})
}
