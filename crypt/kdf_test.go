package crypt

import (
	"bytes"
	"math"
	"runtime"
	"testing"
	"time"
)

func salt(n int) []byte { return bytes.Repeat([]byte{0x5a}, n) }

func argon(time, memKiB uint32, threads uint8) KDFParams {
	return KDFParams{Algorithm: Argon2id, Time: time, MemoryKiB: memKiB, Threads: threads, Salt: salt(32)}
}

func scryptParams(n, r, p int) KDFParams {
	return KDFParams{Algorithm: Scrypt, N: n, R: r, P: p, Salt: salt(32)}
}

func TestValidate(t *testing.T) {
	with := func(p KDFParams, f func(*KDFParams)) KDFParams { f(&p); return p }
	good := map[string]KDFParams{
		"fast":             FastKDFParamsForTests(),
		"default-like":     argon(3, 128<<10, 2),
		"argon min":        argon(1, 8, 1),
		"argon max":        argon(64, 4<<20, 64),
		"argon 64 lanes":   argon(1, 512, 64),
		"salt 16":          with(argon(1, 64, 1), func(p *KDFParams) { p.Salt = salt(16) }),
		"salt 64":          with(argon(1, 64, 1), func(p *KDFParams) { p.Salt = salt(64) }),
		"scrypt min":       scryptParams(1<<10, 1, 1),
		"scrypt common":    scryptParams(1<<15, 8, 1),
		"scrypt max N":     scryptParams(1<<22, 8, 64),
		"scrypt max r p":   scryptParams(1<<10, 64, 64),
		"scrypt 4 GiB":     scryptParams(1<<21, 16, 1), // 128·2^21·16 = 4 GiB exactly
		"scrypt 4 GiB alt": scryptParams(1<<22, 8, 1),
	}
	for name, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]KDFParams{
		"zero":                {},
		"unknown algorithm":   with(argon(1, 64, 1), func(p *KDFParams) { p.Algorithm = "pbkdf2" }),
		"algorithm case":      with(argon(1, 64, 1), func(p *KDFParams) { p.Algorithm = "Argon2id" }),
		"argon2i":             with(argon(1, 64, 1), func(p *KDFParams) { p.Algorithm = "argon2i" }),
		"no salt":             with(argon(1, 64, 1), func(p *KDFParams) { p.Salt = nil }),
		"salt 15":             with(argon(1, 64, 1), func(p *KDFParams) { p.Salt = salt(15) }),
		"salt 65":             with(argon(1, 64, 1), func(p *KDFParams) { p.Salt = salt(65) }),
		"argon time 0":        argon(0, 64, 1),
		"argon time 65":       argon(65, 64, 1),
		"argon time max":      argon(math.MaxUint32, 64, 1),
		"argon threads 0":     argon(1, 64, 0),
		"argon threads 65":    argon(1, 1024, 65),
		"argon threads 255":   argon(1, 4096, 255),
		"argon memory 0":      argon(1, 0, 1),
		"argon memory < 8/l":  argon(1, 15, 2),
		"argon memory 4GiB+1": argon(1, 4<<20+1, 1),
		"argon memory max":    argon(1, math.MaxUint32, 1),
		"argon with N":        with(argon(1, 64, 1), func(p *KDFParams) { p.N = 1024 }),
		"argon with R":        with(argon(1, 64, 1), func(p *KDFParams) { p.R = 8 }),
		"argon with P":        with(argon(1, 64, 1), func(p *KDFParams) { p.P = 1 }),
		"scrypt N 0":          scryptParams(0, 8, 1),
		"scrypt N 2^9":        scryptParams(1<<9, 8, 1),
		"scrypt N 2^23":       scryptParams(1<<23, 1, 1),
		"scrypt N not pow2":   scryptParams(1<<15+1, 8, 1),
		"scrypt N negative":   scryptParams(-1<<15, 8, 1),
		"scrypt N max int":    scryptParams(math.MaxInt, 8, 1),
		"scrypt r 0":          scryptParams(1<<15, 0, 1),
		"scrypt p 0":          scryptParams(1<<15, 8, 0),
		"scrypt r 65":         scryptParams(1<<10, 65, 1),
		"scrypt p 65":         scryptParams(1<<10, 8, 65),
		"scrypt r negative":   scryptParams(1<<10, -8, -1),
		"scrypt rp huge":      scryptParams(1<<10, 1<<15, 1<<15),
		"scrypt > 4 GiB":      scryptParams(1<<22, 16, 1),
		"scrypt with time":    with(scryptParams(1<<10, 8, 1), func(p *KDFParams) { p.Time = 1 }),
		"scrypt with memory":  with(scryptParams(1<<10, 8, 1), func(p *KDFParams) { p.MemoryKiB = 64 }),
		"scrypt with threads": with(scryptParams(1<<10, 8, 1), func(p *KDFParams) { p.Threads = 1 }),
	}
	for name, p := range bad {
		err := p.Validate()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		wantErr(t, err, ErrFormat)
	}
}

func TestDeriveKeyRejectsCostlyParamsBeforeAllocating(t *testing.T) {
	for _, p := range []KDFParams{
		argon(1, math.MaxUint32, 1),
		argon(math.MaxUint32, 1<<20, 4),
		scryptParams(1<<30, 8, 1),
		scryptParams(1<<22, 64, 64),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		k, err := DeriveKey([]byte("pw"), p)
		runtime.ReadMemStats(&after)
		if k != nil {
			t.Fatalf("%+v: derived a key", p)
		}
		wantErr(t, err, ErrFormat)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("%+v: allocated %d bytes before refusing", p, grew)
		}
	}
}

// sameKey reports whether two keys have the same bytes.
func sameKey(a, b *Key) bool { return *a.s.raw == *b.s.raw }

func TestDeriveKey(t *testing.T) {
	for _, p := range []KDFParams{FastKDFParamsForTests(), scryptParams(1<<10, 8, 1)} {
		k1, err := DeriveKey([]byte("password"), p)
		if err != nil {
			t.Fatal(err)
		}
		if k1.ID() != (KeyID{}) {
			t.Errorf("%s: derived key has ID %s, want zeros", p.Algorithm, k1.ID())
		}
		k2, err := DeriveKey([]byte("password"), p)
		if err != nil {
			t.Fatal(err)
		}
		if !sameKey(k1, k2) {
			t.Errorf("%s: derivation is not deterministic", p.Algorithm)
		}
		k3, err := DeriveKey([]byte("passwore"), p)
		if err != nil {
			t.Fatal(err)
		}
		if sameKey(k1, k3) {
			t.Errorf("%s: two passwords give one key", p.Algorithm)
		}
		q := p
		q.Salt = bytes.Repeat([]byte{0x33}, 32)
		k4, err := DeriveKey([]byte("password"), q)
		if err != nil {
			t.Fatal(err)
		}
		if sameKey(k1, k4) {
			t.Errorf("%s: two salts give one key", p.Algorithm)
		}
	}
	// Pin both algorithms' output, so a library change that alters
	// derivation is caught before it locks users out.
	for _, c := range []struct {
		p    KDFParams
		want string
	}{
		{argon(1, 64, 1), pinnedArgonKey},
		{scryptParams(1<<10, 8, 1), pinnedScryptKey},
	} {
		k, err := DeriveKey([]byte("vector-password"), c.p)
		if err != nil {
			t.Fatal(err)
		}
		if got := hexOf(k.s.raw[:]); got != c.want {
			t.Errorf("%s derives %s, want %s", c.p.Algorithm, got, c.want)
		}
	}
}

// The scrypt value agrees with Python's hashlib.scrypt.
const (
	pinnedArgonKey  = "93bc7f5b0fc43fbdd51f126cc605beb76309abfb267aafb88a109478a73fb42a"
	pinnedScryptKey = "1374a9a821c27b9ff90cc950cef71354b80c6e1b10a96137500de538cbb5b6ac"
)

func TestDefaultKDFParams(t *testing.T) {
	p1, err := DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	if err := p1.Validate(); err != nil {
		t.Fatal(err)
	}
	if p1.Algorithm != Argon2id || len(p1.Salt) != 32 || bytes.Equal(p1.Salt, p2.Salt) {
		t.Fatalf("default params %+v: want argon2id with a fresh 32-byte salt", p1)
	}
	if f1, f2 := FastKDFParamsForTests(), FastKDFParamsForTests(); bytes.Equal(f1.Salt, f2.Salt) {
		t.Error("FastKDFParamsForTests reuses its salt")
	}
	if testing.Short() {
		return
	}
	start := time.Now()
	if _, err := DeriveKey([]byte("password"), p1); err != nil {
		t.Fatal(err)
	}
	t.Logf("default argon2id derivation took %v", time.Since(start))
}

// TestCheckCost pins the cost limits: within them (the default among
// them) derives; beyond them (the 1 GiB argon2id of issue 11's flood,
// which the format caps accept) is refused with ErrKDFCost before anything
// is allocated.
func TestCheckCost(t *testing.T) {
	def, err := DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]KDFParams{
		"default":         def,
		"fast":            FastKDFParamsForTests(),
		"max memory":      argon(4, MaxKDFMemoryKiB, 2),
		"max passes":      argon(32, 32<<10, 2),
		"scrypt restic":   scryptParams(1<<15, 8, 1),
		"scrypt max":      scryptParams(1<<18, 8, 2),
		"old 128 MiB t=3": argon(3, 128<<10, 2),
	} {
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := p.CheckCost(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if c := def.Cost(); c != 192<<10 {
		t.Errorf("default cost %d KiB, want 192 MiB", c)
	}
	for name, p := range map[string]KDFParams{
		"1 GiB t=2":           argon(2, 1<<20, 2),
		"257 MiB":             argon(1, MaxKDFMemoryKiB+1024, 2),
		"256 MiB t=5":         argon(5, MaxKDFMemoryKiB, 2),
		"32 MiB t=33":         argon(33, 32<<10, 2),
		"scrypt 512 MiB":      scryptParams(1<<19, 8, 1),
		"scrypt 256 MiB p=3":  scryptParams(1<<18, 8, 3),
		"scrypt r=64 N=2^16":  scryptParams(1<<16, 64, 1),
		"argon 4 GiB t=64 64": argon(64, 4<<20, 64),
	} {
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: the format caps should accept it: %v", name, err)
		}
		wantErr(t, p.CheckCost(), ErrKDFCost)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		k, err := DeriveKey([]byte("pw"), p)
		runtime.ReadMemStats(&after)
		if k != nil {
			t.Fatalf("%s: derived a key", name)
		}
		wantErr(t, err, ErrKDFCost)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("%s: allocated %d bytes before refusing", name, grew)
		}
	}
	if c := scryptParams(1<<15, 8, 1).Cost(); c != 64<<10 {
		t.Errorf("scrypt N=2^15 r=8 p=1 costs %d KiB, want 64 MiB", c)
	}
}
