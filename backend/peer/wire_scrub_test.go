package peer

import (
	"errors"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

func scrubVectors() []vector {
	dec := func(f func([]byte) (any, error)) func([]byte) (any, error) { return f }
	reqReport := request{Op: opScrubReport}
	reqVerify := request{Op: opVerify, Offset: 50_000, Length: 10_000_000}
	reqAudit := request{Op: opAudit}
	rep := scrubReport{LastPass: 1796256000, Files: 1200, Bytes: 19 << 30, Damaged: 1, Quarantined: 1,
		Entries: []scrubEntry{{Type: backend.PackFile, Name: sampleID, Found: 1796250000}}}
	vp := verifyProgress{Files: 12, Bytes: 200 << 20}
	var nonce [32]byte
	copy(nonce[:], "a fresh random nonce, 32 bytes..")
	ac := auditChallenges{Challenges: []backend.AuditChallenge{{Handle: backend.Handle{Type: backend.PackFile, Name: sampleID}, Offset: 4096, Length: 65536, Nonce: nonce}}}
	aa := auditAnswers{Answers: []backend.AuditAnswer{{Status: backend.AuditOK, Digest: backend.AuditDigest(nonce, []byte("cairn"))}, {Status: backend.AuditMissing}}}
	return []vector{
		{"request-scrub-report", reqReport.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), reqReport},
		{"request-verify", reqVerify.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), reqVerify},
		{"request-audit", reqAudit.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), reqAudit},
		{"scrub-report", rep.encode, dec(func(p []byte) (any, error) { return decodeScrubReport(p) }), rep},
		{"verify-progress", vp.encode, dec(func(p []byte) (any, error) { return decodeVerifyProgress(p) }), vp},
		{"audit-challenges", ac.encode, dec(func(p []byte) (any, error) { return decodeAuditChallenges(p) }), ac},
		{"audit-answers", aa.encode, dec(func(p []byte) (any, error) { return decodeAuditAnswers(p) }), aa},
	}
}

// TestScrubVectors pins the scrub, verify and audit messages as
// TestVectors does the others.
func TestScrubVectors(t *testing.T) {
	checkVectors(t, scrubVectors(), maxScrubFrame)
}

func TestScrubDecodeRejects(t *testing.T) {
	withTrailing := func(b []byte) []byte { return append(b, 0) }
	pack := backend.Handle{Type: backend.PackFile, Name: sampleID}
	good := backend.AuditChallenge{Handle: pack, Length: 10}
	challenges := func(cs ...backend.AuditChallenge) []byte {
		b := []byte{msgAuditChallenges, 0, byte(len(cs))}
		for _, c := range cs {
			one := auditChallenges{Challenges: []backend.AuditChallenge{c}}.encode()
			b = append(b, one[3:]...)
		}
		return b
	}
	for _, c := range []struct {
		name   string
		decode func([]byte) error
		in     []byte
	}{
		{"request: verify without sample", requestErr, request{Op: opVerify}.encode()},
		{"request: verify over the whole", requestErr, request{Op: opVerify, Offset: ppm + 1}.encode()},
		{"request: report with a name", requestErr, request{Op: opScrubReport, Type: 1, Name: "config"}.encode()},
		{"request: audit with a length", requestErr, request{Op: opAudit, Length: 3}.encode()},
		{"request: op 47", requestErr, request{Op: 47}.encode()},
		{"report: more entries than quarantined", scrubReportErr, scrubReport{Entries: []scrubEntry{{Type: backend.PackFile, Name: sampleID}}}.encode()},
		{"report: config entry", scrubReportErr, scrubReport{Quarantined: 1, Entries: []scrubEntry{{Type: backend.ConfigFile, Name: "config"}}}.encode()},
		{"report: bad name", scrubReportErr, scrubReport{Quarantined: 1, Entries: []scrubEntry{{Type: backend.PackFile, Name: "../x"}}}.encode()},
		{"report: negative", scrubReportErr, scrubReport{Files: -1}.encode()},
		{"report: trailing", scrubReportErr, withTrailing(scrubReport{}.encode())},
		{"report: count beyond payload", scrubReportErr, append(scrubReport{Quarantined: 9}.encode()[:41], 0xff, 0xff)},
		{"progress: short", verifyProgressErr, verifyProgress{}.encode()[:9]},
		{"challenges: none", auditChallengesErr, []byte{msgAuditChallenges, 0, 0}},
		{"challenges: too many", auditChallengesErr, []byte{msgAuditChallenges, 1, 1}},
		{"challenges: zero length", auditChallengesErr, challenges(backend.AuditChallenge{Handle: pack})},
		{"challenges: long range", auditChallengesErr, challenges(backend.AuditChallenge{Handle: pack, Length: backend.MaxAuditLength + 1})},
		{"challenges: config", auditChallengesErr, challenges(backend.AuditChallenge{Handle: backend.Handle{Type: backend.ConfigFile, Name: "config"}, Length: 1})},
		{"challenges: escaping name", auditChallengesErr, challenges(backend.AuditChallenge{Handle: backend.Handle{Type: backend.PackFile, Name: "../../x"}, Length: 1})},
		{"challenges: overflow", auditChallengesErr, challenges(backend.AuditChallenge{Handle: pack, Offset: 1<<63 - 5, Length: 10})},
		{"challenges: trailing", auditChallengesErr, withTrailing(challenges(good))},
		{"answers: none", auditAnswersErr, []byte{msgAuditAnswers, 0, 0}},
		{"answers: unknown status", auditAnswersErr, auditAnswers{Answers: []backend.AuditAnswer{{Status: 3}}}.encode()},
		{"answers: digest with missing", auditAnswersErr, auditAnswers{Answers: []backend.AuditAnswer{{Status: backend.AuditMissing, Digest: [32]byte{1}}}}.encode()},
		{"answers: cut", auditAnswersErr, auditAnswers{Answers: []backend.AuditAnswer{{}}}.encode()[:20]},
	} {
		err := c.decode(c.in)
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: got %v, want an error wrapping ErrProtocol", c.name, err)
		}
	}
	if _, err := decodeAuditChallenges(challenges(good)); err != nil {
		t.Errorf("a good challenge built by the table's helper: %v", err)
	}
}

func scrubReportErr(p []byte) error     { _, err := decodeScrubReport(p); return err }
func verifyProgressErr(p []byte) error  { _, err := decodeVerifyProgress(p); return err }
func auditChallengesErr(p []byte) error { _, err := decodeAuditChallenges(p); return err }
func auditAnswersErr(p []byte) error    { _, err := decodeAuditAnswers(p); return err }

func FuzzScrubReport(f *testing.F) {
	fuzzDecoder(f, decodeScrubReport, scrubReport.encode)
}

func FuzzVerifyProgress(f *testing.F) {
	fuzzDecoder(f, decodeVerifyProgress, verifyProgress.encode)
}

func FuzzAuditChallenges(f *testing.F) {
	fuzzDecoder(f, decodeAuditChallenges, auditChallenges.encode)
}

func FuzzAuditAnswers(f *testing.F) {
	fuzzDecoder(f, decodeAuditAnswers, auditAnswers.encode)
}
