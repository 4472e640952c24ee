package peer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

var _ backend.Auditor = (*Backend)(nil)

// ErrServerTooOld: the server does not know a request this client sent
// (it answered "unknown op"); it runs an older cairn.
var ErrServerTooOld = errors.New("the peer server is too old")

// ScrubReport is what a server's scrub found in this repository, or what
// a verify found (Verify).
type ScrubReport struct {
	// LastPass is when the scrub's last full pass over the repository
	// ended (zero: none yet); for a verify, when the verify ended.
	LastPass time.Time
	// Files and Bytes were checked in that pass or verify.
	Files, Bytes int64
	// Damaged is how many files the scrub has found damaged in total;
	// for a verify, in this run.
	Damaged int64
	// Quarantined is how many damaged files the server keeps moved
	// aside, absent from the repository until a good copy is put;
	// Files lists up to 1024 of them.
	Quarantined int64
	Moved       []Quarantined
}

// Quarantined is a file the server moved aside as damaged.
type Quarantined struct {
	Handle backend.Handle
	Found  time.Time
}

func (r scrubReport) public() ScrubReport {
	out := ScrubReport{Files: r.Files, Bytes: r.Bytes, Damaged: r.Damaged, Quarantined: r.Quarantined}
	if r.LastPass > 0 {
		out.LastPass = time.Unix(r.LastPass, 0)
	}
	for _, e := range r.Entries {
		out.Moved = append(out.Moved, Quarantined{Handle: backend.Handle{Type: e.Type, Name: e.Name}, Found: time.Unix(e.Found, 0)})
	}
	return out
}

// Find returns the peer backend in be or below its wrappers (Unwrap).
func Find(be backend.Backend) (*Backend, bool) {
	for range 32 {
		switch v := be.(type) {
		case *Backend:
			return v, true
		case backend.Wrapper:
			be = v.Unwrap()
		default:
			return nil, false
		}
	}
	return nil, false
}

// tooOld turns a server's refusal of an op it does not know into
// ErrServerTooOld naming what was asked.
func tooOld(err error, what string) error {
	var se *serverError
	if errors.As(err, &se) && se.code == codeBadRequest && strings.Contains(se.msg, "unknown op") {
		return backend.Permanent(fmt.Errorf("%w for %s (it runs an older cairn)", ErrServerTooOld, what))
	}
	return err
}

// ScrubReport asks the server for its scrub's report on this repository.
func (b *Backend) ScrubReport(ctx context.Context) (ScrubReport, error) {
	var rep scrubReport
	err := b.request(ctx, "scrub report", func(st *timedStream) error {
		if err := writeFrame(st, request{Op: opScrubReport}.encode()); err != nil {
			return err
		}
		if _, err := readResponse(st); err != nil {
			return err
		}
		p, err := readFrame(st, maxScrubFrame)
		if err != nil {
			return noEOF(err)
		}
		rep, err = decodeScrubReport(p)
		return err
	})
	if err != nil {
		return ScrubReport{}, tooOld(err, "scrub reports")
	}
	return rep.public(), nil
}

// Verify asks the server to re-hash a sample of this repository's files
// now (sample in (0, 1]; 1: all of them) at rate bytes per second (0:
// the server's; it never goes faster than its own bound). Damaged files
// are moved aside as the scrub does; the report lists every file moved
// aside. progress, if not nil, is called on this goroutine every few
// seconds with what has been checked so far.
func (b *Backend) Verify(ctx context.Context, sample float64, rate int64, progress func(files, bytes int64)) (ScrubReport, error) {
	parts := int64(math.Ceil(sample * ppm))
	if sample <= 0 || parts > ppm || rate < 0 {
		return ScrubReport{}, fmt.Errorf("verify: sample %g out of range (0, 1] or negative rate", sample)
	}
	var rep scrubReport
	err := b.request(ctx, "verify", func(st *timedStream) error {
		if err := writeFrame(st, request{Op: opVerify, Offset: parts, Length: rate}.encode()); err != nil {
			return err
		}
		if _, err := readResponse(st); err != nil {
			return err
		}
		for {
			p, err := readFrame(st, maxScrubFrame)
			if err != nil {
				return noEOF(err)
			}
			if messageType(p) == msgVerifyProgress {
				vp, err := decodeVerifyProgress(p)
				if err != nil {
					return err
				}
				if progress != nil {
					progress(vp.Files, vp.Bytes)
				}
				continue
			}
			rep, err = decodeScrubReport(p)
			return err
		}
	})
	if err != nil {
		return ScrubReport{}, tooOld(err, "verify")
	}
	return rep.public(), nil
}

// Audit implements backend.Auditor: the server answers each challenge
// from its copy of the file.
func (b *Backend) Audit(ctx context.Context, cs []backend.AuditChallenge) ([]backend.AuditAnswer, error) {
	if len(cs) == 0 || len(cs) > backend.MaxAuditChallenges {
		return nil, fmt.Errorf("audit: %d challenges, want 1..%d", len(cs), backend.MaxAuditChallenges)
	}
	for _, c := range cs {
		if !scrubbable(c.Handle.Type) || c.Handle.Valid() != nil || c.Length < 1 || c.Length > backend.MaxAuditLength || c.Offset < 0 {
			return nil, fmt.Errorf("audit: invalid challenge for %s", c.Handle)
		}
	}
	var answers []backend.AuditAnswer
	err := b.request(ctx, "audit", func(st *timedStream) error {
		if err := writeFrame(st, request{Op: opAudit}.encode()); err != nil {
			return err
		}
		if err := writeFrame(st, auditChallenges{Challenges: cs}.encode()); err != nil {
			return err
		}
		if _, err := readResponse(st); err != nil {
			return err
		}
		p, err := readFrame(st, maxAuditFrame)
		if err != nil {
			return noEOF(err)
		}
		aa, err := decodeAuditAnswers(p)
		if err != nil {
			return err
		}
		if len(aa.Answers) != len(cs) {
			return malformed("audit answers", "%d answers to %d challenges", len(aa.Answers), len(cs))
		}
		answers = aa.Answers
		return nil
	})
	if err != nil {
		return nil, tooOld(err, "audits")
	}
	return answers, nil
}
