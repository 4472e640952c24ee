package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// Signed receipts (docs/peer-protocol.md, "Receipts"): the client asks,
// the server answers with what it holds of the repository, signed with its
// peer key. Ops 16 to 31 and message type 0x34 belong to this part (0x30
// to 0x33 are the scrub's and audits', 0x40 and 0x41 pairing's).

// opReceipt asks for a signed receipt of the repository.
const opReceipt op = 16

// msgReceipt carries a signed receipt (crypt.DecodeReceipt's encoding)
// after a receipt request's response.
const msgReceipt byte = 0x34

// maxReceiptFrame bounds a receipt frame: the type byte and the longest
// receipt.
const maxReceiptFrame = 1 + crypt.MaxReceiptSize

// ErrReceiptUnsupported means the server is older than receipts: it
// answers the request as an unknown op.
var ErrReceiptUnsupported = errors.New("the server is too old for receipts (it does not know the request)")

// checkReceiptRequest checks the fields of a receipt request: no type,
// offset, length or name.
func checkReceiptRequest(d *decoder, r *request) {
	if r.Type != 0 || r.Offset != 0 || r.Length != 0 || r.Name != "" {
		d.fail("receipt with a type, offset, length or name")
	}
}

func encodeReceiptFrame(signed []byte) []byte {
	return append([]byte{msgReceipt}, signed...)
}

// decodeReceiptFrame parses a receipt frame and verifies the receipt's
// signature. Errors wrap ErrProtocol.
func decodeReceiptFrame(p []byte) (*crypt.Receipt, []byte, error) {
	if len(p) == 0 || p[0] != msgReceipt {
		return nil, nil, malformed("receipt", "not a receipt frame")
	}
	r, err := crypt.DecodeReceipt(p[1:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return r, slices.Clone(p[1:]), nil
}

// serveReceipt answers a receipt request.
func (s *Server) serveReceipt(ctx context.Context, st *timedStream, repo *repoStore, who string) {
	r, err := repo.receipt(ctx)
	if err != nil {
		s.reply(st, who, err, "receipt")
		return
	}
	now := time.Now
	if s.cfg.Now != nil {
		now = s.cfg.Now
	}
	r.Time = now()
	signed, err := s.cfg.Identity.SignReceipt(r)
	if err != nil {
		s.reply(st, who, err, "receipt")
		return
	}
	if err := writeFrame(st, response{Status: codeOK, Size: int64(len(signed))}.encode()); err != nil {
		return // the client left
	}
	_ = writeFrame(st, encodeReceiptFrame(signed)) // see above
	s.cfg.Logf("peer server: %s: signed a receipt: %d files, %s, log seq %d", who, r.Files, formatBytes(r.Bytes), r.MaxSeq)
}

// maxReceiptEntry caps a log file the server reads for a receipt: the
// largest envelope (crypt.MaxEntryBodySize) and some.
const maxReceiptEntry = crypt.MaxEntryBodySize + 64<<10

// receipt counts the repository's files and finds its log heads. A log
// file that does not decode as a signed envelope does not count as an
// entry (nor as a head). The server holds one envelope at a time.
func (r *repoStore) receipt(ctx context.Context) (*crypt.Receipt, error) {
	rc := &crypt.Receipt{Client: r.c.id, Repo: r.name}
	var logs []string
	for _, t := range backend.AllTypes {
		if t == backend.LockFile {
			continue
		}
		if t == backend.ConfigFile {
			fi, err := r.be.Stat(ctx, backend.Handle{Type: t, Name: backend.ConfigName})
			if err == nil {
				rc.Files++
				rc.Bytes += fi.Size
			} else if !backend.IsNotExist(err) {
				return nil, err
			}
			continue
		}
		err := r.be.List(ctx, t, func(fi backend.FileInfo) error {
			rc.Files++
			rc.Bytes += fi.Size
			if t == backend.LogFile && fi.Size <= maxReceiptEntry {
				logs = append(logs, fi.Name)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	seqs := make(map[[32]byte]uint64, len(logs))
	named := make(map[[32]byte]bool)
	for _, name := range logs {
		e, id, err := r.readEntry(ctx, name)
		if err != nil {
			if backend.IsNotExist(err) || errors.Is(err, crypt.ErrFormat) || errors.Is(err, crypt.ErrBadSignature) {
				continue // deleted meanwhile, or not an entry
			}
			return nil, err
		}
		seqs[id] = e.Seq
		for _, p := range e.Parents {
			named[p] = true
		}
	}
	for id, seq := range seqs {
		rc.MaxSeq = max(rc.MaxSeq, seq)
		if !named[id] {
			rc.Heads = append(rc.Heads, crypt.ReceiptHead{Seq: seq, ID: id})
		}
	}
	return rc, nil
}

// readEntry reads and decodes the log entry named name. A file whose
// content does not hash to its name is not an entry (crypt.ErrFormat).
func (r *repoStore) readEntry(ctx context.Context, name string) (*crypt.Entry, [32]byte, error) {
	h := backend.Handle{Type: backend.LogFile, Name: name}
	var data []byte
	err := r.be.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(io.LimitReader(rd, maxReceiptEntry+1))
		return err
	})
	if err != nil {
		return nil, [32]byte{}, err
	}
	id := crypt.EntryID(data)
	if len(data) > maxReceiptEntry || backend.ID(id).String() != name {
		return nil, id, fmt.Errorf("%w: log/%s does not match its name", crypt.ErrFormat, name)
	}
	e, err := crypt.DecodeEntry(data)
	return e, id, err
}

// Receipt asks the server for a signed receipt of what it holds of the
// repository and checks it: the signature, the signer (the pinned peer
// ID), this device as the client and the repository's name. It returns
// the receipt and its signed encoding. A server older than receipts
// gives an error wrapping ErrReceiptUnsupported.
func (b *Backend) Receipt(ctx context.Context) (*crypt.Receipt, []byte, error) {
	var rc *crypt.Receipt
	var signed []byte
	err := b.request(ctx, "receipt", func(st *timedStream) error {
		if err := writeFrame(st, request{Op: opReceipt}.encode()); err != nil {
			return err
		}
		if _, err := readResponse(st); err != nil {
			var se *serverError
			if errors.As(err, &se) && se.code == codeBadRequest && strings.Contains(se.msg, "unknown op") {
				return fmt.Errorf("%w: %s", ErrReceiptUnsupported, se.msg)
			}
			return err
		}
		p, err := readFrame(st, maxReceiptFrame)
		if err != nil {
			return noEOF(err)
		}
		rc, signed, err = decodeReceiptFrame(p)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	switch {
	case rc.SignerID() != b.loc.Peer:
		return nil, nil, fmt.Errorf("receipt: %w: signed by %s, not by the pinned peer %s", ErrProtocol, rc.SignerID().Short(), b.loc.Peer.Short())
	case rc.Client != b.self:
		return nil, nil, fmt.Errorf("receipt: %w: made out to %s, not to this device", ErrProtocol, rc.Client.Short())
	case rc.Repo != b.loc.Name:
		return nil, nil, fmt.Errorf("receipt: %w: for repository %q, not %q", ErrProtocol, rc.Repo, b.loc.Name)
	}
	return rc, signed, nil
}
