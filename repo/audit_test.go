package repo

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
)

// storeAuditor answers audits from a backend's bytes, as a peer server
// does from its disk; lie makes it answer with a digest of other bytes.
type storeAuditor struct {
	be  backend.Backend
	lie bool
}

func (s storeAuditor) Audit(ctx context.Context, cs []backend.AuditChallenge) ([]backend.AuditAnswer, error) {
	out := make([]backend.AuditAnswer, len(cs))
	for i, c := range cs {
		data := make([]byte, c.Length)
		err := s.be.Get(ctx, c.Handle, c.Length, c.Offset, func(rd io.Reader) error {
			_, err := io.ReadFull(rd, data)
			return err
		})
		switch {
		case backend.IsNotExist(err):
			out[i].Status = backend.AuditMissing
		case err != nil:
			out[i].Status = backend.AuditShort
		case s.lie:
			out[i].Digest = backend.AuditDigest([32]byte{}, data)
		default:
			out[i].Digest = backend.AuditDigest(c.Nonce, data)
		}
	}
	return out, nil
}

// packStore is a backend holding n packs of random bytes.
func packStore(t *testing.T, n int, rnd *rand.Rand) (*mem.Backend, []backend.Handle) {
	be := mem.New()
	var hs []backend.Handle
	for i := range n {
		b := make([]byte, 1000+rnd.IntN(3000))
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		b[0] = byte(i)
		h := backend.Handle{Type: backend.PackFile, Name: backend.Hash(b).String()}
		if err := be.Put(t.Context(), h, backend.NewByteReader(b)); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return be, hs
}

// clone copies every pack of be into a new backend.
func clone(t *testing.T, be *mem.Backend) *mem.Backend {
	out := mem.New()
	err := be.List(t.Context(), backend.PackFile, func(fi backend.FileInfo) error {
		h := backend.Handle{Type: backend.PackFile, Name: fi.Name}
		return be.Get(t.Context(), h, 0, 0, func(rd io.Reader) error {
			b, err := io.ReadAll(rd)
			if err != nil {
				return err
			}
			return out.Put(t.Context(), h, backend.NewByteReader(b))
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// binom is C(n, k) as a float.
func binom(n, k int) float64 {
	if k < 0 || k > n {
		return 0
	}
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x + 1)); return v }
	return math.Exp(lg(n) - lg(k) - lg(n-k))
}

// TestAuditDetectionRate deletes L of N packs from a copy and runs many
// audits of S packs with a seeded sampler: the share that finds a loss
// must match 1 - C(N-L, S)/C(N, S), the rate docs/peers.md states.
func TestAuditDetectionRate(t *testing.T) {
	seed := uint64(20261208)
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 1))
	const n, trials = 60, 1500
	src, hs := packStore(t, n, rnd)
	for _, c := range []struct {
		lost   int
		sample float64
	}{{1, 0.05}, {3, 0.10}, {6, 0.05}, {12, 0.10}} {
		dst := clone(t, src)
		for _, i := range rnd.Perm(n)[:c.lost] {
			if err := dst.Delete(t.Context(), hs[i]); err != nil {
				t.Fatal(err)
			}
		}
		s := int(math.Ceil(c.sample * n))
		want := 1 - binom(n-c.lost, s)/binom(n, s)
		found := 0
		for range trials {
			res, err := Audit(t.Context(), src, storeAuditor{be: dst}, AuditOptions{Sample: c.sample, Rand: rnd, RangeLength: 100})
			if err != nil {
				t.Fatal(err)
			}
			if res.Audited != s || res.Packs != n {
				t.Fatalf("audited %d of %d packs, want %d of %d", res.Audited, res.Packs, s, n)
			}
			if len(res.Failed) > 0 {
				found++
			}
		}
		got := float64(found) / trials
		// Four standard deviations of the share of trials.
		tol := 4 * math.Sqrt(want*(1-want)/trials)
		t.Logf("L=%d of N=%d, S=%d: detected %.3f, formula %.3f (tolerance %.3f)", c.lost, n, s, got, want, tol)
		if math.Abs(got-want) > tol {
			t.Errorf("L=%d S=%d: detected in %.3f of audits, the formula says %.3f", c.lost, s, got, want)
		}
	}
}

// TestAuditVerdicts: an intact copy passes every pack; a copy answering
// with digests of the wrong nonce (it cannot have computed them fresh)
// fails every pack; a cut pack is named.
func TestAuditVerdicts(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	src, hs := packStore(t, 20, rnd)
	dst := clone(t, src)
	res, err := Audit(t.Context(), src, storeAuditor{be: dst}, AuditOptions{Sample: 1})
	if err != nil || len(res.Failed) != 0 || res.Audited != 20 {
		t.Fatalf("intact copy: %+v, %v", res, err)
	}
	res, err = Audit(t.Context(), src, storeAuditor{be: dst, lie: true}, AuditOptions{Sample: 1})
	if err != nil || len(res.Failed) != 20 {
		t.Fatalf("lying copy: %d failures, %v; want 20", len(res.Failed), err)
	}
	if err := dst.Delete(t.Context(), hs[3]); err != nil {
		t.Fatal(err)
	}
	res, err = Audit(t.Context(), src, storeAuditor{be: dst}, AuditOptions{Sample: 1})
	if err != nil || len(res.Failed) != 1 || res.Failed[0].Handle != hs[3] || res.Failed[0].Reason != "missing" {
		t.Fatalf("copy missing %v: %+v, %v", hs[3], res, err)
	}
	for _, bad := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := Audit(t.Context(), src, storeAuditor{be: dst}, AuditOptions{Sample: bad}); err == nil {
			t.Errorf("sample %v accepted", bad)
		}
	}
}
