package peer

import (
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/crypt"
)

// TestSuite runs the conformance suite against the client over a real
// loopback TCP connection to a read-write server, each test in a
// repository of its own.
func TestSuite(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	backendtest.RunTests(t, func(t *testing.T) backend.Backend {
		be, err := Create(t.Context(), ts.loc(""), client)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		return be
	})
}
