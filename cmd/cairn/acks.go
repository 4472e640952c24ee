package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// Receipts and mirror records (repo.Ack): mirror keeps one per
// destination; every command that reads the log compares the copy it
// reads with them (checkAcks).

// peerBackend is the peer client below be's wrappers, or nil.
func peerBackend(be backend.Backend) *peer.Backend {
	pb, _ := peer.Find(be)
	return pb
}

// ackSelf tells whether an acknowledgement is about the copy at loc: a
// receipt signed by the peer loc pins, or a mirror record of loc.
func ackSelf(loc string) func(repo.Ack) bool {
	var pinned *peer.Location
	if name, _, err := parseLocation(loc); err == nil && name == "peer" {
		if pl, err := peer.ParseLocation(loc); err == nil {
			pinned = &pl
		}
	}
	at := seenLocation(loc)
	return func(a repo.Ack) bool {
		if a.Signed {
			return pinned != nil && a.Signer == pinned.Peer && a.Repo == pinned.Name
		}
		return a.Location == at
	}
}

// compareAcks compares the log l of the copy at loc, opened as r, with
// every acknowledgement known there and on this device.
func compareAcks(ctx context.Context, r *repo.Repository, l *snapshot.Log, loc string) ([]repo.AckFinding, error) {
	acks, err := r.KnownAcks(ctx, r.Backend())
	if err != nil {
		return nil, err
	}
	if len(acks) == 0 {
		return nil, nil
	}
	cl := repo.CopyLog{}
	if c := l.Chain(); c != nil {
		cl = repo.CopyLogFrom(c)
	}
	// A log file present but damaged is check's finding, not a rollback.
	cl.Named = map[[32]byte]bool{}
	err = r.Backend().List(ctx, backend.LogFile, func(fi backend.FileInfo) error {
		if id, err := backend.ParseID(fi.Name); err == nil {
			cl.Named[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list log: %w", err)
	}
	return repo.CompareAcks(cl, acks, ackSelf(loc)), nil
}

// checkAcks runs compareAcks once per session, prints each finding as a
// warning and keeps the errors for withRepo, which makes them the
// command's result if nothing else failed.
func checkAcks(ctx context.Context, s *session, l *snapshot.Log) {
	if s.acksChecked {
		return
	}
	s.acksChecked = true
	findings, err := compareAcks(ctx, s.repo, l, s.g.Repo)
	if err != nil {
		s.p.Warnf("receipts: %v", err)
		return
	}
	var bad []repo.AckFinding
	for _, f := range findings {
		s.p.Warnf("receipts: %s", f)
		if f.Error() {
			bad = append(bad, f)
		}
	}
	if len(bad) > 0 {
		s.ackErr = &repo.AckError{Findings: bad}
	}
}

// ackKeeper opens the source of a mirror with its password, if one is
// given without asking (--password-file, --password-command,
// $CAIRN_PASSWORD), to keep receipts and mirror records in it. It
// returns nil, nil when no password is given that way.
func (e *appEnv) ackKeeper(ctx context.Context, g globalOptions, p *printer, src backend.Backend) (*repo.Repository, error) {
	if g.PasswordFile == "" && g.PasswordCommand == "" && e.getenv(envPassword) == "" {
		return nil, nil
	}
	pw, err := e.password(ctx, g)
	if err != nil {
		return nil, err
	}
	defer zero(pw)
	return repo.Open(ctx, src, pw, e.repoOptions(g, p))
}

// keepAck asks a peer destination for its signed receipt, or describes
// any other destination in a mirror record, keeps it in the source (and
// this device's state) through keeper, and puts at the destination every
// meta record this run kept so far (*sent, which it extends), so that its
// copy carries them; later destinations of the run get this one, earlier
// ones at their next mirror. Without keeper it only checks and prints a
// receipt. A receipt that does not verify is an error; a source or
// destination that refuses the record is a warning.
func keepAck(ctx context.Context, p *printer, keeper *repo.Repository, src, dst backend.Backend, dest string, now func() time.Time, sent *[]backend.Handle) error {
	var a repo.Ack
	if pb := peerBackend(dst); pb != nil {
		_, signed, err := pb.Receipt(ctx)
		if errors.Is(err, peer.ErrReceiptUnsupported) {
			p.Warnf("%s: %v: no receipt kept", redactLocation(dest), err)
			return nil
		}
		if err != nil {
			return err
		}
		pl, err := peer.ParseLocation(dest)
		if err != nil {
			return err
		}
		if a, err = repo.AckFromMeta(repo.ReceiptKind(pl.Peer, pl.Name), signed); err != nil {
			return err
		}
		p.Printf("%s: receipt signed by peer %s: %d files, %s, log seq %d", redactLocation(dest), a.Signer.Short(), a.Files,
			formatBytes(uint64(a.Bytes)), a.MaxSeq)
	} else {
		if keeper == nil {
			return nil
		}
		var err error
		if a, err = repo.NewMirrorRecord(ctx, dst, seenLocation(dest), now()); err != nil {
			return err
		}
	}
	if keeper == nil {
		p.Warnf("%s: receipt not kept: no password given without asking (--password-file, --password-command or $%s)", redactLocation(dest), envPassword)
		return nil
	}
	rec, err := keeper.SaveAck(ctx, a)
	if err != nil {
		p.Warnf("%s: receipt not kept: %v", redactLocation(dest), err)
		return nil
	}
	*sent = append(*sent, backend.Handle{Type: backend.MetaFile, Name: rec.ID.String()})
	for _, h := range *sent {
		if err := copyMeta(ctx, src, dst, h); err != nil {
			p.Warnf("%s: receipts not copied there: %v", redactLocation(dest), err)
			break
		}
	}
	return nil
}

// copyMeta puts the source's meta record h at dst, unless dst has it. A
// destination older than meta records is left alone (mirror warned).
func copyMeta(ctx context.Context, src, dst backend.Backend, h backend.Handle) error {
	if _, err := dst.Stat(ctx, h); err == nil {
		return nil
	} else if errors.Is(err, backend.ErrInvalidName) {
		return nil
	}
	return src.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		data, err := io.ReadAll(io.LimitReader(rd, repo.MaxMetaPayload*2))
		if err != nil {
			return err
		}
		return dst.Put(ctx, h, backend.NewByteReader(data))
	})
}

// checkDestAcks compares what the mirror destination dst holds with what
// it acknowledged before (its receipts or mirror records, there and on
// this device): a destination that serves less was rolled back or froze,
// and the mirror about to heal it must not pass silently. It prints the
// findings and returns them as a *repo.AckError (nil when there are
// none, or without keeper).
func checkDestAcks(ctx context.Context, p *printer, keeper *repo.Repository, dst backend.Backend, dest string) error {
	if keeper == nil {
		return nil
	}
	acks, err := keeper.KnownAcks(ctx, dst)
	if err != nil {
		return err
	}
	self := ackSelf(dest)
	var own []repo.Ack
	for _, a := range acks {
		if self(a) {
			own = append(own, a)
		}
	}
	if len(own) == 0 {
		return nil
	}
	st, err := repo.ReadCopy(ctx, dst)
	if err != nil {
		return err
	}
	var bad []repo.AckFinding
	for _, f := range repo.CompareAcks(st.Log, own, self) {
		p.Warnf("%s: receipts: %s", redactLocation(dest), f)
		bad = append(bad, f)
	}
	if len(bad) == 0 {
		return nil
	}
	return &repo.AckError{Findings: bad}
}
