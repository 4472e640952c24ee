package peer

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// sampleInvite is the invitation of the vectors: fixed bytes, so its code
// is pinned in testdata/invite-code.txt.
func sampleInvite() Invite {
	inv := Invite{Addr: "friend.example.org:7484"}
	for i := range inv.ID {
		inv.ID[i] = byte(i + 1)
	}
	for i := range inv.Secret {
		inv.Secret[i] = byte(0xa0 + i)
	}
	inv.Server = crypt.PeerID(backend.Hash([]byte("cairn server")))
	return inv
}

func joinVectors() []vector {
	dec := func(f func([]byte) (any, error)) func([]byte) (any, error) { return f }
	inv := sampleInvite()
	req := joinRequest{ID: inv.ID, Secret: inv.Secret, Name: "alice laptop"}
	ok := joinResult{Status: joinOK, Mode: ModeAppendOnly, Quota: 500 << 30}
	used := joinResult{Status: joinUsed, Message: "invitation 0102030405060708 was used already (at 2026-12-08T01:00:00Z); ask for a new one"}
	return []vector{
		{"join-request", req.encode, dec(func(p []byte) (any, error) { return decodeJoinRequest(p) }), req},
		{"join-result-ok", ok.encode, dec(func(p []byte) (any, error) { return decodeJoinResult(p) }), ok},
		{"join-result-used", used.encode, dec(func(p []byte) (any, error) { return decodeJoinResult(p) }), used},
	}
}

// TestJoinVectors pins the join messages as TestVectors pins the others.
func TestJoinVectors(t *testing.T) {
	checkVectors(t, joinVectors(), maxJoinFrame)
}

func TestDecodeJoinRejects(t *testing.T) {
	reqErr := func(p []byte) error { _, err := decodeJoinRequest(p); return err }
	resErr := func(p []byte) error { _, err := decodeJoinResult(p); return err }
	long := joinRequest{Name: strings.Repeat("a", maxFriendName+1)}.encode()
	for _, c := range []struct {
		name   string
		decode func([]byte) error
		in     []byte
	}{
		{"request: empty", reqErr, []byte{}},
		{"request: wrong type", reqErr, joinResult{}.encode()},
		{"request: cut", reqErr, joinRequest{}.encode()[:10]},
		{"request: trailing", reqErr, append(joinRequest{}.encode(), 0)},
		{"request: long name", reqErr, long},
		{"request: control in name", reqErr, joinRequest{Name: "a\x1b[2J"}.encode()},
		{"result: unknown status", resErr, joinResult{Status: 99}.encode()},
		{"result: ok without mode", resErr, joinResult{Status: joinOK}.encode()},
		{"result: refusal with grant", resErr, joinResult{Status: joinWrong, Mode: ModeReadWrite}.encode()},
		{"result: quota out of range", resErr, append(append([]byte{msgJoinResult, 0, 1}, 0xff, 0, 0, 0, 0, 0, 0, 0), 0, 0)},
	} {
		if err := c.decode(c.in); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: got %v, want ErrProtocol", c.name, err)
		}
	}
}

func FuzzJoinRequest(f *testing.F) {
	fuzzDecoder(f, decodeJoinRequest, joinRequest.encode)
}

func FuzzJoinResult(f *testing.F) {
	fuzzDecoder(f, decodeJoinResult, joinResult.encode)
}
