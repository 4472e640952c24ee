package backend

import (
	"context"
	"crypto/sha256"
)

// An audit proves that a store still holds files without downloading
// them: the owner, who holds its own copy, sends challenges (a file, a
// byte range and a fresh random nonce) and the store answers each with
// AuditDigest of the nonce and the bytes it holds there. A store that no
// longer holds the bytes cannot compute the digest, and a fresh nonce
// keeps it from answering with digests it computed earlier.

// MaxAuditLength bounds the byte range of one challenge.
const MaxAuditLength = 64 << 10

// MaxAuditChallenges bounds the challenges of one Audit call.
const MaxAuditChallenges = 256

// AuditChallenge asks for the digest of Length bytes of the file Handle
// from Offset, keyed by Nonce.
type AuditChallenge struct {
	Handle Handle
	Offset int64
	// Length is 1..MaxAuditLength.
	Length int
	Nonce  [32]byte
}

// AuditStatus is a store's answer to one challenge.
type AuditStatus uint8

// The statuses of an AuditAnswer.
const (
	// AuditOK: Digest is the store's digest of the range.
	AuditOK AuditStatus = 0
	// AuditMissing: the store does not hold the file.
	AuditMissing AuditStatus = 1
	// AuditShort: the file ends before the range does.
	AuditShort AuditStatus = 2
)

func (s AuditStatus) String() string {
	switch s {
	case AuditOK:
		return "ok"
	case AuditMissing:
		return "missing"
	case AuditShort:
		return "shorter than the range"
	}
	return "unknown status"
}

// Valid says whether s is one of the statuses above.
func (s AuditStatus) Valid() bool { return s <= AuditShort }

// AuditAnswer answers one AuditChallenge; Digest is zero unless Status
// is AuditOK.
type AuditAnswer struct {
	Status AuditStatus
	Digest [32]byte
}

// AuditDigest is SHA-256(nonce || data): only a party holding data can
// compute it for a nonce it has not seen before.
func AuditDigest(nonce [32]byte, data []byte) [32]byte {
	h := sha256.New()
	h.Write(nonce[:])
	h.Write(data)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Auditor is the optional interface of a backend whose store answers
// audits (a peer server). Audit takes 1..MaxAuditChallenges challenges
// and returns one answer per challenge, in order.
type Auditor interface {
	Audit(ctx context.Context, cs []AuditChallenge) ([]AuditAnswer, error)
}
