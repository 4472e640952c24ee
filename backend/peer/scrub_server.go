package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// scrubLoop runs the scrub until ctx ends: a pass over every allowed
// client's repositories at ScrubRate, then a wait until ScrubInterval has
// passed since the pass began. It is started once, by the first Serve,
// which waits for it.
func (s *Server) scrubLoop(ctx context.Context) {
	for ctx.Err() == nil {
		began := time.Now()
		pace := newPacer(s.cfg.ScrubRate)
		checked := false
		for id, p := range *s.friends.Load() {
			c := s.store.client(id, p)
			names, err := c.repoNames()
			if err != nil {
				s.cfg.Logf("peer server: peer %s: scrub: %v", id.Short(), err)
				continue
			}
			for _, name := range names {
				if ctx.Err() != nil {
					return
				}
				checked = s.scrubRepo(ctx, c, name, pace) || checked
			}
		}
		wait := time.Until(began.Add(s.cfg.ScrubInterval))
		if !checked {
			// Nothing stored yet: no spinning, however short the interval.
			wait = max(wait, min(scrubIdle, s.cfg.ScrubInterval))
		}
		if sleepCtx(ctx, wait) != nil {
			return
		}
	}
}

// scrubRepo runs one pass over the repository name of c and books it in
// the scrub state; it says whether it checked a file.
func (s *Server) scrubRepo(ctx context.Context, c *clientStore, name string, pace *pacer) bool {
	r := c.repo(name)
	defer c.release(r)
	run := &scrubRun{pace: pace, sample: ppm}
	err := run.repo(ctx, r, s.cfg.Logf)
	if ctx.Err() != nil {
		return run.files > 0
	}
	if err != nil {
		s.cfg.Logf("peer server: peer %s: scrub: repository %q: %v", c.id.Short(), name, err)
		return run.files > 0
	}
	c.scrubMu.Lock()
	st := r.loadState()
	st.LastPass, st.Files, st.Bytes = time.Now().Unix(), run.files, run.bytes
	err = r.saveState(st)
	c.scrubMu.Unlock()
	if err != nil {
		s.cfg.Logf("peer server: peer %s: scrub: repository %q: save the scrub state: %v", c.id.Short(), name, err)
	}
	s.cfg.Logf("peer server: peer %s: scrub: repository %q: %d files (%s) checked, %d damaged",
		c.id.Short(), name, run.files, formatBytes(run.bytes), run.damaged)
	return run.files > 0
}

// verifyRate is the rate of a verify the client asked for at asked bytes
// per second (0: the server's): never above the server's scrub rate, or
// DefaultScrubRate when its scrub is off.
func (s *Server) verifyRate(asked int64) int64 {
	limit := s.cfg.ScrubRate
	if limit == 0 {
		limit = DefaultScrubRate
	}
	if asked <= 0 || asked > limit {
		return limit
	}
	return max(asked, MinScrubRate)
}

// serveScrubOp answers the ops of wire_scrub.go. Each answers a response
// first (an error ends the stream there), then its frames.
func (s *Server) serveScrubOp(ctx context.Context, st *timedStream, repo *repoStore, who string, req request) {
	switch req.Op {
	case opScrubReport:
		rep, err := repo.report()
		if err != nil {
			s.reply(st, who, err, "scrub report")
			return
		}
		if writeFrame(st, response{Status: codeOK}.encode()) == nil {
			_ = writeFrame(st, rep.encode()) // a failed write means the client left
		}
	case opVerify:
		s.serveVerify(ctx, st, repo, who, req)
	case opAudit:
		s.serveAudit(ctx, st, repo, who)
	}
}

// errVerifyBusy refuses a second verify of one client while one runs.
var errVerifyBusy = errors.New("a verify of this device's files is under way on the server; try again when it ends")

func (s *Server) serveVerify(ctx context.Context, st *timedStream, repo *repoStore, who string, req request) {
	c := repo.c
	c.mu.Lock()
	busy := c.verifying
	c.verifying = true
	c.mu.Unlock()
	if busy {
		s.cfg.Logf("peer server: %s: verify: refused: %v", who, errVerifyBusy)
		_ = writeFrame(st, response{Status: codeBusy, Message: errVerifyBusy.Error()}.encode()) // the stream ends next
		return
	}
	defer func() {
		c.mu.Lock()
		c.verifying = false
		c.mu.Unlock()
	}()
	if writeFrame(st, response{Status: codeOK}.encode()) != nil {
		return
	}
	done := watchHangup(st)
	defer done()
	rate := s.verifyRate(req.Length)
	s.cfg.Logf("peer server: %s: verify of repository %q: %d%% of the files at %s/s", who, repo.name, req.Offset*100/ppm, formatBytes(rate))
	last := time.Now()
	run := &scrubRun{pace: newPacer(rate), sample: req.Offset, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		tick: func(files, bytes int64) error {
			if st.aborted.Load() {
				return errAborted
			}
			if time.Since(last) < verifyProgressEvery {
				return nil
			}
			last = time.Now()
			return writeFrame(st, verifyProgress{Files: files, Bytes: bytes}.encode())
		}}
	if err := run.repo(ctx, repo, s.cfg.Logf); err != nil {
		if !errors.Is(err, errAborted) && !isConnError(err) && ctx.Err() == nil {
			s.cfg.Logf("peer server: %s: verify: %v", who, err)
		}
		st.abort() // the client sees the stream end without a report
		return
	}
	rep, err := repo.report()
	if err != nil {
		s.cfg.Logf("peer server: %s: verify: %v", who, err)
		st.abort()
		return
	}
	rep.LastPass, rep.Files, rep.Bytes, rep.Damaged = time.Now().Unix(), run.files, run.bytes, run.damaged
	s.cfg.Logf("peer server: %s: verify of repository %q: %d files (%s) checked, %d damaged",
		who, repo.name, run.files, formatBytes(run.bytes), run.damaged)
	_ = writeFrame(st, rep.encode()) // a failed write means the client left
}

// serveAudit reads the client's challenges and answers each from the
// repository's files, reading at the verify rate.
func (s *Server) serveAudit(ctx context.Context, st *timedStream, repo *repoStore, who string) {
	p, err := readFrame(st, maxAuditFrame)
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			s.reply(st, who, err, "audit")
		}
		return
	}
	ac, err := decodeAuditChallenges(p)
	if err != nil {
		s.reply(st, who, err, "audit")
		return
	}
	pace := newPacer(s.verifyRate(0))
	answers := make([]backend.AuditAnswer, len(ac.Challenges))
	buf := make([]byte, backend.MaxAuditLength)
	for i, c := range ac.Challenges {
		a, err := repo.auditOne(ctx, c, buf)
		if err != nil {
			s.reply(st, who, err, "audit "+c.Handle.String())
			return
		}
		answers[i] = a
		if err := pace.wait(ctx, c.Length); err != nil {
			return
		}
	}
	if writeFrame(st, response{Status: codeOK}.encode()) == nil {
		_ = writeFrame(st, auditAnswers{Answers: answers}.encode()) // a failed write means the client left
	}
}

// auditOne answers one challenge; buf holds MaxAuditLength bytes.
func (r *repoStore) auditOne(ctx context.Context, c backend.AuditChallenge, buf []byte) (backend.AuditAnswer, error) {
	var a backend.AuditAnswer
	data := buf[:c.Length]
	err := r.be.Get(ctx, c.Handle, c.Length, c.Offset, func(rd io.Reader) error {
		n, err := io.ReadFull(rd, data)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			a.Status = backend.AuditShort
			return nil
		}
		if err != nil {
			return err
		}
		a.Digest = backend.AuditDigest(c.Nonce, data[:n])
		return nil
	})
	switch {
	case backend.IsNotExist(err):
		return backend.AuditAnswer{Status: backend.AuditMissing}, nil
	case err != nil:
		return a, fmt.Errorf("audit %s: %w", c.Handle, err)
	}
	return a, nil
}
