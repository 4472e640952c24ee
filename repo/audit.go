package repo

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/cairn-backup/cairn/backend"
)

// AuditOptions configures Audit. The zero value audits DefaultAuditSample
// of the packs.
type AuditOptions struct {
	// Sample is the share of the source's packs audited, in (0, 1]; at
	// least one pack is. 0 means DefaultAuditSample.
	Sample float64
	// RangeLength is the bytes of each pack challenged (fewer for a
	// smaller pack); 0 means backend.MaxAuditLength.
	RangeLength int
	// Rand picks the packs and their ranges; nil: a generator seeded
	// from crypto/rand. Nonces always come from crypto/rand.
	Rand *rand.Rand
}

// DefaultAuditSample is the share of packs an audit challenges by
// default: 5%.
const DefaultAuditSample = 0.05

// AuditFailure is a pack the destination failed to prove it holds.
type AuditFailure struct {
	Handle backend.Handle
	// Reason says how: missing, shorter than the range, or a wrong digest.
	Reason string
}

// AuditResult is what an audit did and found.
type AuditResult struct {
	// Packs is how many packs the source holds; Audited how many of them
	// were challenged, Bytes how many bytes the challenges covered.
	Packs, Audited int
	Bytes          int64
	Failed         []AuditFailure
}

// Audit challenges dst to prove it holds a random sample of src's packs
// without downloading them: for each sampled pack, a random byte range
// and a fresh nonce, answered with backend.AuditDigest of the bytes dst
// holds there, compared with the digest of src's own bytes. Packs are
// chosen uniformly without replacement, so when dst lost L of N packs an
// audit of S finds a loss with probability 1 - C(N-L, S)/C(N, S)
// (docs/peers.md). Memory is bounded by the sample, not the repository.
func Audit(ctx context.Context, src backend.Backend, dst backend.Auditor, opts AuditOptions) (AuditResult, error) {
	if opts.Sample == 0 {
		opts.Sample = DefaultAuditSample
	}
	if !(opts.Sample > 0 && opts.Sample <= 1) {
		return AuditResult{}, fmt.Errorf("audit: sample %g is not within (0, 100%%]", opts.Sample)
	}
	if opts.RangeLength <= 0 || opts.RangeLength > backend.MaxAuditLength {
		opts.RangeLength = backend.MaxAuditLength
	}
	rnd := opts.Rand
	if rnd == nil {
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails (crypto/rand panics rather than return an error)
		rnd = rand.New(rand.NewChaCha8(seed))
	}
	var res AuditResult
	picked, err := samplePacks(ctx, src, opts.Sample, rnd, &res.Packs)
	if err != nil {
		return res, err
	}
	for len(picked) > 0 {
		n := min(len(picked), backend.MaxAuditChallenges)
		if err := auditBatch(ctx, src, dst, picked[:n], opts.RangeLength, rnd, &res); err != nil {
			return res, err
		}
		picked = picked[n:]
	}
	return res, nil
}

// samplePacks picks ceil(sample × N) of src's N packs uniformly at
// random (Knuth's selection sampling, over a second listing), setting
// *total to N.
func samplePacks(ctx context.Context, src backend.Backend, sample float64, rnd *rand.Rand, total *int) ([]backend.FileInfo, error) {
	n := 0
	if err := src.List(ctx, backend.PackFile, func(backend.FileInfo) error { n++; return nil }); err != nil {
		return nil, fmt.Errorf("audit: list packs: %w", err)
	}
	*total = n
	want := min(n, max(1, int(math.Ceil(sample*float64(n)-1e-9))))
	if n == 0 {
		return nil, nil
	}
	picked := make([]backend.FileInfo, 0, want)
	seen := 0
	err := src.List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		left := n - seen
		seen++
		if len(picked) < want && (left <= 0 || rnd.IntN(max(left, 1)) < want-len(picked)) {
			picked = append(picked, fi)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: list packs: %w", err)
	}
	return picked, nil
}

// auditBatch challenges dst with one range of each pack in picked.
func auditBatch(ctx context.Context, src backend.Backend, dst backend.Auditor, picked []backend.FileInfo, rangeLen int, rnd *rand.Rand, res *AuditResult) error {
	cs := make([]backend.AuditChallenge, 0, len(picked))
	want := make([][32]byte, 0, len(picked))
	buf := make([]byte, rangeLen)
	for _, fi := range picked {
		if fi.Size == 0 {
			continue // nothing to prove; a pack is never empty
		}
		c := backend.AuditChallenge{Handle: backend.Handle{Type: backend.PackFile, Name: fi.Name}, Length: int(min(int64(rangeLen), fi.Size))}
		c.Offset = rnd.Int64N(fi.Size - int64(c.Length) + 1)
		_, _ = crand.Read(c.Nonce[:]) // never fails, see above
		data := buf[:c.Length]
		err := src.Get(ctx, c.Handle, c.Length, c.Offset, func(rd io.Reader) error {
			_, err := io.ReadFull(rd, data)
			return err
		})
		if err != nil {
			return fmt.Errorf("audit: read the source's %s: %w", c.Handle, err)
		}
		cs = append(cs, c)
		want = append(want, backend.AuditDigest(c.Nonce, data))
		res.Audited++
		res.Bytes += int64(c.Length)
	}
	if len(cs) == 0 {
		return nil
	}
	answers, err := dst.Audit(ctx, cs)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if len(answers) != len(cs) {
		return fmt.Errorf("audit: %d answers to %d challenges", len(answers), len(cs))
	}
	for i, a := range answers {
		switch {
		case a.Status != backend.AuditOK:
			res.Failed = append(res.Failed, AuditFailure{Handle: cs[i].Handle, Reason: a.Status.String()})
		case a.Digest != want[i]:
			res.Failed = append(res.Failed, AuditFailure{Handle: cs[i].Handle,
				Reason: fmt.Sprintf("wrong digest for bytes %d..%d", cs[i].Offset, cs[i].Offset+int64(cs[i].Length))})
		}
	}
	return nil
}
