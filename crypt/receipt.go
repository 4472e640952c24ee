package crypt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Receipt is what a friend's peer server signs, with its peer key, about
// a repository it holds for a client: the newest log heads it holds and
// their sequence numbers, how many files and bytes, and when (by its
// clock). An owner keeps receipts and compares a copy's log with them: a
// copy that serves less than its server signed for was rolled back or
// frozen. docs/peer-protocol.md specifies the encoding.
type Receipt struct {
	// Server is the signing server's ed25519 public key; its peer ID is
	// PeerIDFromKey(Server).
	Server ed25519.PublicKey
	// Client is the peer ID of the client whose repository it is.
	Client PeerID
	// Repo is the repository's name at the server (1 to 255 bytes).
	Repo string
	// Time is when the server signed, by its clock.
	Time time.Time
	// Files and Bytes count the repository's files (lock files aside)
	// and their sizes.
	Files, Bytes int64
	// MaxSeq is the largest sequence number among the log entries held.
	MaxSeq uint64
	// Heads are the log entries held that no held entry names as a
	// parent, by sequence number descending, then ID ascending; at most
	// MaxReceiptHeads (those with the largest sequence numbers).
	Heads []ReceiptHead
}

// ReceiptHead is one log head a receipt names.
type ReceiptHead struct {
	Seq uint64
	ID  [32]byte
}

// MaxReceiptHeads is the most heads a receipt names.
const MaxReceiptHeads = 16

const (
	receiptMagic      = "CAIRNRCP"
	receiptVersion    = 1
	receiptSigContext = "cairn-receipt-v1\x00"
	// receiptFixedSize: magic(8) version(1) server(32) client(32)
	// namelen(1) time(8) files(8) bytes(8) maxseq(8) nheads(1)
	// signature(64).
	receiptFixedSize = len(receiptMagic) + 1 + 32 + 32 + 1 + 8 + 8 + 8 + 8 + 1 + ed25519.SignatureSize
	// MaxReceiptSize is the longest encoded receipt.
	MaxReceiptSize = receiptFixedSize + 255 + MaxReceiptHeads*40
)

// SignerID is the peer ID of the server that signed the receipt.
func (r *Receipt) SignerID() PeerID { return PeerIDFromKey(r.Server) }

// SortReceiptHeads puts heads in a receipt's order: sequence number
// descending, then ID ascending.
func SortReceiptHeads(heads []ReceiptHead) {
	slices.SortFunc(heads, func(a, b ReceiptHead) int {
		if a.Seq != b.Seq {
			if a.Seq > b.Seq {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
}

// SignReceipt sets r.Server to the identity's key, orders r.Heads (keeping
// the MaxReceiptHeads newest), and returns the signed encoding.
func (i *Identity) SignReceipt(r *Receipt) ([]byte, error) {
	r.Server = bytes.Clone(i.pub)
	SortReceiptHeads(r.Heads)
	if len(r.Heads) > MaxReceiptHeads {
		r.Heads = r.Heads[:MaxReceiptHeads]
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("sign receipt: %w", err)
	}
	b := r.appendUnsigned(make([]byte, 0, MaxReceiptSize))
	return append(b, i.Sign(receiptSignedMessage(b))...), nil
}

func (r *Receipt) check() error {
	switch {
	case len(r.Server) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: server key of %d bytes", ErrFormat, len(r.Server))
	case len(r.Repo) == 0 || len(r.Repo) > 255:
		return fmt.Errorf("%w: repository name of %d bytes", ErrFormat, len(r.Repo))
	case r.Time.UnixNano() < 0:
		return fmt.Errorf("%w: time before 1970", ErrFormat)
	case r.Files < 0 || r.Bytes < 0:
		return fmt.Errorf("%w: negative count", ErrFormat)
	case len(r.Heads) > MaxReceiptHeads:
		return fmt.Errorf("%w: %d heads", ErrFormat, len(r.Heads))
	}
	for k, h := range r.Heads {
		if h.Seq == 0 || h.Seq > r.MaxSeq {
			return fmt.Errorf("%w: head seq %d outside 1..%d", ErrFormat, h.Seq, r.MaxSeq)
		}
		if k > 0 {
			p := r.Heads[k-1]
			if p.Seq < h.Seq || p.Seq == h.Seq && bytes.Compare(p.ID[:], h.ID[:]) >= 0 {
				return fmt.Errorf("%w: heads out of order", ErrFormat)
			}
		}
	}
	if (len(r.Heads) == 0) != (r.MaxSeq == 0) {
		return fmt.Errorf("%w: max seq %d with %d heads", ErrFormat, r.MaxSeq, len(r.Heads))
	}
	return nil
}

func (r *Receipt) appendUnsigned(b []byte) []byte {
	b = append(b, receiptMagic...)
	b = append(b, receiptVersion)
	b = append(b, r.Server...)
	b = append(b, r.Client[:]...)
	b = append(b, byte(len(r.Repo)))
	b = append(b, r.Repo...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Files))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Bytes))
	b = binary.BigEndian.AppendUint64(b, r.MaxSeq)
	b = append(b, byte(len(r.Heads)))
	for _, h := range r.Heads {
		b = binary.BigEndian.AppendUint64(b, h.Seq)
		b = append(b, h.ID[:]...)
	}
	return b
}

func receiptSignedMessage(unsigned []byte) []byte {
	return append([]byte(receiptSigContext), unsigned...)
}

// DecodeReceipt parses a signed receipt and verifies its signature with
// the server key it names: the layout must be exact and canonical (no
// trailing bytes, heads in order). Errors wrap ErrFormat for malformed
// bytes and ErrBadSignature for a signature that does not verify. Whether
// the signer is the friend the caller expects is the caller's check
// (SignerID). The result does not alias data.
func DecodeReceipt(data []byte) (*Receipt, error) {
	if len(data) < receiptFixedSize || len(data) > MaxReceiptSize {
		return nil, fmt.Errorf("decode receipt: %w: %d bytes", ErrFormat, len(data))
	}
	if string(data[:len(receiptMagic)]) != receiptMagic {
		return nil, fmt.Errorf("decode receipt: %w: no %s magic", ErrFormat, receiptMagic)
	}
	p := data[len(receiptMagic):]
	if p[0] != receiptVersion {
		return nil, fmt.Errorf("decode receipt: %w: unknown version %d", ErrFormat, p[0])
	}
	r := &Receipt{Server: bytes.Clone(p[1:33])}
	copy(r.Client[:], p[33:65])
	n := int(p[65])
	p = p[66:]
	if len(p) < n+8*4+1+ed25519.SignatureSize {
		return nil, fmt.Errorf("decode receipt: %w: truncated", ErrFormat)
	}
	r.Repo = string(p[:n])
	p = p[n:]
	t := binary.BigEndian.Uint64(p)
	if t > math.MaxInt64 {
		return nil, fmt.Errorf("decode receipt: %w: time out of range", ErrFormat)
	}
	r.Time = time.Unix(0, int64(t)).UTC()
	files, size := binary.BigEndian.Uint64(p[8:]), binary.BigEndian.Uint64(p[16:])
	if files > math.MaxInt64 || size > math.MaxInt64 {
		return nil, fmt.Errorf("decode receipt: %w: count out of range", ErrFormat)
	}
	r.Files, r.Bytes = int64(files), int64(size)
	r.MaxSeq = binary.BigEndian.Uint64(p[24:])
	nh := int(p[32])
	p = p[33:]
	if nh > MaxReceiptHeads || len(p) != nh*40+ed25519.SignatureSize {
		return nil, fmt.Errorf("decode receipt: %w: %d heads in %d bytes", ErrFormat, nh, len(p))
	}
	for range nh {
		var h ReceiptHead
		h.Seq = binary.BigEndian.Uint64(p)
		copy(h.ID[:], p[8:40])
		r.Heads = append(r.Heads, h)
		p = p[40:]
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("decode receipt: %w", err)
	}
	unsigned := data[:len(data)-ed25519.SignatureSize]
	if !ed25519.Verify(r.Server, receiptSignedMessage(unsigned), p) {
		return nil, fmt.Errorf("decode receipt from %s: %w", r.SignerID().Short(), ErrBadSignature)
	}
	return r, nil
}
