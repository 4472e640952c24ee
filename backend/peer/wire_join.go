package peer

import (
	"encoding/binary"
	"fmt"
)

// The join exchange (pairing by invitation code). It runs on its own TLS
// application protocol, so a server that does not pair refuses it in the
// handshake, and a device the server does not know yet may use it: one
// joinRequest from the client, one joinResult from the server, then the
// connection closes. docs/peer-protocol.md specifies it. Its message types
// are 0x40 and 0x41 (0x3x is taken by receipts, scrub reports and audits;
// the exchange runs on its own ALPN anyway, so no message of the main
// protocol can be mistaken for one of it).

// joinALPN is the application protocol of the join exchange.
const joinALPN = "cairn-join/1"

// Message types of the join exchange.
const (
	msgJoinRequest byte = 0x40
	msgJoinResult  byte = 0x41
)

// maxJoinFrame bounds both join messages: the longest valid one is
// 1+8+16+2+64 bytes (request) or 1+1+1+8+2+maxMessage (result).
const maxJoinFrame = 2048

// joinRequest asks to be made a friend of the server.
type joinRequest struct {
	ID     InviteID
	Secret [inviteSecretSize]byte
	// Name is the device's label for the server's peers file (may be
	// empty): at most maxFriendName bytes of printable UTF-8.
	Name string
}

func (r joinRequest) encode() []byte {
	b := []byte{msgJoinRequest}
	b = append(b, r.ID[:]...)
	b = append(b, r.Secret[:]...)
	return appendText(b, r.Name)
}

func decodeJoinRequest(p []byte) (joinRequest, error) {
	return decode("join request", msgJoinRequest, p, func(d *decoder, r *joinRequest) {
		copy(r.ID[:], d.take(inviteIDSize))
		copy(r.Secret[:], d.take(inviteSecretSize))
		r.Name = d.text()
		if d.err == nil && len(r.Name) > maxFriendName {
			d.fail("name of %d bytes, limit %d", len(r.Name), maxFriendName)
		}
	})
}

// joinStatus is the outcome of a join.
type joinStatus uint8

const (
	joinOK         joinStatus = 0
	joinUnknown    joinStatus = 1 // no such invitation
	joinWrong      joinStatus = 2 // the secret does not match
	joinUsed       joinStatus = 3 // the invitation was used already
	joinExpired    joinStatus = 4
	joinRevoked    joinStatus = 5 // revoked after too many wrong secrets
	joinTooMany    joinStatus = 6 // too many failed joins lately; try later
	joinAlready    joinStatus = 7 // the device is a friend already
	joinInternal   joinStatus = 8 // the server's storage failed
	joinBadRequest joinStatus = 9
	maxJoinStatus             = joinBadRequest
)

func (s joinStatus) String() string {
	switch s {
	case joinOK:
		return "ok"
	case joinUnknown:
		return "unknown invitation"
	case joinWrong:
		return "wrong secret"
	case joinUsed:
		return "already used"
	case joinExpired:
		return "expired"
	case joinRevoked:
		return "revoked"
	case joinTooMany:
		return "too many attempts"
	case joinAlready:
		return "already a friend"
	case joinInternal:
		return "internal error"
	case joinBadRequest:
		return "bad request"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

// joinResult answers a joinRequest.
type joinResult struct {
	Status joinStatus
	// Mode and Quota are what the device was granted (Quota 0: none);
	// zero unless Status is joinOK.
	Mode    Mode
	Quota   int64
	Message string
}

func (r joinResult) encode() []byte {
	b := []byte{msgJoinResult, byte(r.Status), byte(r.Mode)}
	b = binary.BigEndian.AppendUint64(b, uint64(r.Quota))
	return appendText(b, r.Message)
}

func decodeJoinResult(p []byte) (joinResult, error) {
	return decode("join result", msgJoinResult, p, func(d *decoder, r *joinResult) {
		r.Status = joinStatus(d.u8())
		r.Mode = Mode(d.u8())
		r.Quota = d.int63("quota")
		r.Message = d.text()
		if d.err == nil {
			switch {
			case r.Status > maxJoinStatus:
				d.fail("unknown status %d", r.Status)
			case r.Status == joinOK && !r.Mode.valid():
				d.fail("unknown mode %d", r.Mode)
			case r.Status != joinOK && (r.Mode != 0 || r.Quota != 0):
				d.fail("refusal with a grant")
			}
		}
	})
}
