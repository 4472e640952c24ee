package peer

import (
	"encoding/binary"
	"math"

	"github.com/cairn-backup/cairn/backend"
)

// The messages of scrub reports, verification and audits (op codes
// 32..47); docs/peer-protocol.md specifies them and
// testdata/messages/scrub-*.hex and audit-*.hex pin them.

const (
	// opScrubReport asks for the scrub's state of the repository and the
	// files it moved aside; answered by a scrubReport frame.
	opScrubReport op = 32
	// opVerify asks the server to re-hash files now: Offset is the
	// sample in parts per million (1..1000000), Length the rate in bytes
	// per second (0: the server's). Answered by verifyProgress frames
	// and a final scrubReport frame.
	opVerify op = 33
	// opAudit is followed by an auditChallenges frame; answered by an
	// auditAnswers frame.
	opAudit op = 34
)

const (
	msgScrubReport     byte = 0x30
	msgVerifyProgress  byte = 0x31
	msgAuditChallenges byte = 0x32
	msgAuditAnswers    byte = 0x33
)

const (
	// maxScrubEntries is the most quarantined files one report lists.
	maxScrubEntries = 1024
	// maxScrubFrame bounds a scrubReport frame: 43 bytes plus up to
	// maxScrubEntries entries of at most 1+1+64+8 bytes.
	maxScrubFrame = 128 << 10
	// maxAuditFrame bounds both audit frames: up to 256 challenges of at
	// most 1+1+64+8+4+32 bytes.
	maxAuditFrame = 32 << 10
	// ppm is the whole of a verify's sample, in parts per million.
	ppm = 1_000_000
)

// checkScrubRequest checks the fields of a request for the ops above.
func checkScrubRequest(d *decoder, r *request) {
	if r.Type != 0 || r.Name != "" {
		d.fail("op %d with a file type or name", r.Op)
		return
	}
	switch r.Op {
	case opScrubReport, opAudit:
		if r.Offset != 0 || r.Length != 0 {
			d.fail("op %d with offset or length", r.Op)
		}
	case opVerify:
		if r.Offset < 1 || r.Offset > ppm {
			d.fail("verify sample %d out of range 1..%d", r.Offset, ppm)
		}
	}
}

// scrubEntry is one file the scrub moved aside.
type scrubEntry struct {
	Type backend.FileType
	Name string
	// Found is when it was moved aside, in Unix seconds.
	Found int64
}

// scrubReport is the state of the scrub of one repository, or the result
// of a verify.
type scrubReport struct {
	// LastPass is when the last full pass over the repository ended
	// (Unix seconds; 0: none yet); for a verify, when it ended.
	LastPass int64
	// Files and Bytes were checked in that pass (or verify).
	Files, Bytes int64
	// Damaged is how many files the scrub found damaged in total; for a
	// verify, in this run.
	Damaged int64
	// Quarantined is how many files are moved aside now; Entries lists
	// up to maxScrubEntries of them.
	Quarantined int64
	Entries     []scrubEntry
}

func (s scrubReport) encode() []byte {
	if len(s.Entries) > maxScrubEntries {
		panic("peer: internal error: scrub report with too many entries")
	}
	b := []byte{msgScrubReport}
	for _, v := range []int64{s.LastPass, s.Files, s.Bytes, s.Damaged, s.Quarantined} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Entries)))
	for _, e := range s.Entries {
		b = append(b, byte(e.Type), byte(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Found))
	}
	return b
}

func decodeScrubReport(p []byte) (scrubReport, error) {
	return decode("scrub report", msgScrubReport, p, func(d *decoder, s *scrubReport) {
		s.LastPass = d.int63("last pass")
		s.Files = d.int63("files")
		s.Bytes = d.int63("bytes")
		s.Damaged = d.int63("damaged")
		s.Quarantined = d.int63("quarantined")
		n := int(d.u16())
		if d.err == nil && (n > maxScrubEntries || int64(n) > s.Quarantined) {
			d.fail("%d entries for %d quarantined files", n, s.Quarantined)
		}
		if d.err != nil {
			return
		}
		// Each entry takes at least 11 bytes: cap the allocation by
		// what the payload can hold.
		s.Entries = make([]scrubEntry, 0, min(n, len(d.b)/11))
		for i := 0; i < n && d.err == nil; i++ {
			e := scrubEntry{Type: backend.FileType(d.u8())}
			e.Name = string(d.take(int(d.u8())))
			e.Found = d.int63("found")
			if d.err == nil && !scrubbable(e.Type) {
				d.fail("entry %d has file type %d", i, e.Type)
			}
			if d.err == nil && (backend.Handle{Type: e.Type, Name: e.Name}).Valid() != nil {
				d.fail("entry %d has an invalid name", i)
			}
			s.Entries = append(s.Entries, e)
		}
	})
}

// verifyProgress tells the client a verify is under way.
type verifyProgress struct {
	Files, Bytes int64
}

func (v verifyProgress) encode() []byte {
	b := []byte{msgVerifyProgress}
	b = binary.BigEndian.AppendUint64(b, uint64(v.Files))
	return binary.BigEndian.AppendUint64(b, uint64(v.Bytes))
}

func decodeVerifyProgress(p []byte) (verifyProgress, error) {
	return decode("verify progress", msgVerifyProgress, p, func(d *decoder, v *verifyProgress) {
		v.Files = d.int63("files")
		v.Bytes = d.int63("bytes")
	})
}

// auditChallenges carries the challenges of one audit.
type auditChallenges struct {
	Challenges []backend.AuditChallenge
}

func (a auditChallenges) encode() []byte {
	if len(a.Challenges) == 0 || len(a.Challenges) > backend.MaxAuditChallenges {
		panic("peer: internal error: audit must hold 1..MaxAuditChallenges challenges")
	}
	b := []byte{msgAuditChallenges}
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Challenges)))
	for _, c := range a.Challenges {
		b = append(b, byte(c.Handle.Type), byte(len(c.Handle.Name)))
		b = append(b, c.Handle.Name...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.Offset))
		b = binary.BigEndian.AppendUint32(b, uint32(c.Length))
		b = append(b, c.Nonce[:]...)
	}
	return b
}

func decodeAuditChallenges(p []byte) (auditChallenges, error) {
	return decode("audit challenges", msgAuditChallenges, p, func(d *decoder, a *auditChallenges) {
		n := int(d.u16())
		if d.err == nil && (n == 0 || n > backend.MaxAuditChallenges) {
			d.fail("%d challenges, want 1..%d", n, backend.MaxAuditChallenges)
		}
		if d.err != nil {
			return
		}
		a.Challenges = make([]backend.AuditChallenge, 0, min(n, len(d.b)/46))
		for i := 0; i < n && d.err == nil; i++ {
			var c backend.AuditChallenge
			c.Handle.Type = backend.FileType(d.u8())
			c.Handle.Name = string(d.take(int(d.u8())))
			c.Offset = d.int63("offset")
			l := d.u32()
			copy(c.Nonce[:], d.take(32))
			if d.err != nil {
				break
			}
			if l == 0 || l > backend.MaxAuditLength {
				d.fail("challenge %d: length %d out of range 1..%d", i, l, backend.MaxAuditLength)
			}
			c.Length = int(l)
			if d.err == nil && (!scrubbable(c.Handle.Type) || c.Handle.Valid() != nil) {
				d.fail("challenge %d: invalid file", i)
			}
			if d.err == nil && c.Offset > math.MaxInt64-int64(c.Length) {
				d.fail("challenge %d: range overflows", i)
			}
			a.Challenges = append(a.Challenges, c)
		}
	})
}

// auditAnswers answers an auditChallenges frame, one answer per
// challenge in order.
type auditAnswers struct {
	Answers []backend.AuditAnswer
}

func (a auditAnswers) encode() []byte {
	if len(a.Answers) == 0 || len(a.Answers) > backend.MaxAuditChallenges {
		panic("peer: internal error: audit answers must hold 1..MaxAuditChallenges answers")
	}
	b := []byte{msgAuditAnswers}
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Answers)))
	for _, an := range a.Answers {
		b = append(b, byte(an.Status))
		b = append(b, an.Digest[:]...)
	}
	return b
}

func decodeAuditAnswers(p []byte) (auditAnswers, error) {
	return decode("audit answers", msgAuditAnswers, p, func(d *decoder, a *auditAnswers) {
		n := int(d.u16())
		if d.err == nil && (n == 0 || n > backend.MaxAuditChallenges) {
			d.fail("%d answers, want 1..%d", n, backend.MaxAuditChallenges)
		}
		if d.err != nil {
			return
		}
		a.Answers = make([]backend.AuditAnswer, 0, min(n, len(d.b)/33))
		for i := 0; i < n && d.err == nil; i++ {
			var an backend.AuditAnswer
			an.Status = backend.AuditStatus(d.u8())
			copy(an.Digest[:], d.take(32))
			if d.err == nil && !an.Status.Valid() {
				d.fail("answer %d: unknown status %d", i, an.Status)
			}
			if d.err == nil && an.Status != backend.AuditOK && an.Digest != ([32]byte{}) {
				d.fail("answer %d: a digest with status %s", i, an.Status)
			}
			a.Answers = append(a.Answers, an)
		}
	})
}

// scrubbable says whether files of type t are named by the hash of their
// content, so a scrub or an audit can check them: all but the config and
// lock files (which come and go and hold no history).
func scrubbable(t backend.FileType) bool {
	return t.Valid() && t != backend.ConfigFile && t != backend.LockFile
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}
