package crypt

import (
	"crypto/rand"
	"fmt"
	"runtime"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/scrypt"
)

// KDF algorithm names, as stored in key files.
const (
	Argon2id = "argon2id"
	Scrypt   = "scrypt"
)

// KDFParams says how a wrapping key is derived from a password. They are
// stored in key files, which anyone with write access to the repository
// (a friend's server included) can edit, so Validate caps every cost before
// a derivation allocates anything.
type KDFParams struct {
	Algorithm string // Argon2id or Scrypt

	// Argon2id only; zero for scrypt.
	Time      uint32 // passes over memory, 1..64
	MemoryKiB uint32 // memory in KiB, 8×Threads..4 GiB
	Threads   uint8  // lanes, 1..64

	// Scrypt only; zero for argon2id.
	N, R, P int // N a power of two 2^10..2^22; R, P 1..64; 128·N·R ≤ 4 GiB

	Salt []byte // 16..64 bytes
}

// Caps on KDF parameters. A key file asking for more is refused unread.
const (
	minSaltSize = 16
	maxSaltSize = 64

	// maxKDFMemory caps the memory of either algorithm: 4 GiB is far above
	// any sane setting and still something a desktop can survive.
	maxKDFMemory    = 4 << 30
	maxArgonTime    = 64
	maxArgonThreads = 64

	minScryptLogN = 10
	maxScryptLogN = 22
	maxScryptRP   = 64
)

// Cost limits. Validate's caps above say what a well-formed key file may
// hold; these say what cairn will spend on one derivation. Anyone who can
// write to a repository (a friend's server, an append-only client) can add
// key files, and every command tries the password on them, so a key file
// asking for more than this is skipped unread (CheckCost) instead of making
// every command slow or running the machine out of memory.
const (
	// MaxKDFMemoryKiB caps the memory one derivation fills: 256 MiB, what
	// a 2-core VPS with 1 GiB of memory can spare next to the command
	// itself. The default asks for 32 MiB.
	MaxKDFMemoryKiB = 256 << 10

	// MaxKDFWorkKiB caps Cost: 1 GiB written in all (argon2id 256 MiB ×
	// 4 passes, 32 MiB × 32 passes; scrypt N=2^18, r=8, p=2). The default
	// costs 192 MiB (32 MiB × 6 passes), about 0.2 s on a 2-core machine,
	// so the costliest key file allowed takes about five times as long.
	MaxKDFWorkKiB = 1 << 20
)

// Cost is the work one derivation with p takes, in KiB of memory written
// summed over passes: argon2id fills MemoryKiB once per pass (Time passes);
// scrypt fills 128·N·r bytes and reads them back once, p times over. Open
// tries key files cheapest first by it. p must have passed Validate.
func (p KDFParams) Cost() uint64 {
	switch p.Algorithm {
	case Argon2id:
		return uint64(p.MemoryKiB) * uint64(p.Time)
	case Scrypt:
		return 2 * 128 * uint64(p.N) * uint64(p.R) * uint64(p.P) / 1024
	}
	return 0
}

// memoryKiB is the memory one derivation with p fills.
func (p KDFParams) memoryKiB() uint64 {
	if p.Algorithm == Scrypt {
		return 128 * uint64(p.N) * uint64(p.R) / 1024
	}
	return uint64(p.MemoryKiB)
}

// CheckCost checks valid parameters against the cost limits
// (MaxKDFMemoryKiB, MaxKDFWorkKiB). Errors wrap ErrKDFCost. DeriveKey never
// runs parameters that fail it, and the parameters cairn writes always
// pass it.
func (p KDFParams) CheckCost() error {
	if m := p.memoryKiB(); m > MaxKDFMemoryKiB {
		return fmt.Errorf("kdf params: %w: %s needs %d MiB of memory, more than %d MiB", ErrKDFCost, p.Algorithm, m>>10, MaxKDFMemoryKiB>>10)
	}
	if c := p.Cost(); c > MaxKDFWorkKiB {
		return fmt.Errorf("kdf params: %w: %s writes %d MiB in all, more than %d MiB", ErrKDFCost, p.Algorithm, c>>10, MaxKDFWorkKiB>>10)
	}
	return nil
}

// Default argon2id parameters: 32 MiB and t=6, with 2 lanes because the
// machines we size for have 2 cores. An attacker pays 32 MiB per guess,
// what restic's scrypt takes as it calibrates itself on such a machine
// (N=2^15, r=8), and the work per guess (memory times passes) is that of
// RFC 9106's second recommended option (t=3, 64 MiB). Memory is the
// parameter that matters to users here: in a fresh process most of a
// derivation's time is faulting its memory in, and those pages set the
// floor of every command's peak RSS (64 MiB put a trivial command at
// 78 MiB against restic's 53). Repositories keep the parameters their key
// files were written with.
const (
	defaultArgonTime    = 6
	defaultArgonMemory  = 32 << 10 // KiB
	defaultArgonThreads = 2
	defaultSaltSize     = 32
)

// DefaultKDFParams returns argon2id parameters for production use with a
// fresh random 32-byte salt.
func DefaultKDFParams() (KDFParams, error) {
	salt := make([]byte, defaultSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return KDFParams{}, fmt.Errorf("kdf salt: %w", err)
	}
	return KDFParams{
		Algorithm: Argon2id,
		Time:      defaultArgonTime,
		MemoryKiB: defaultArgonMemory,
		Threads:   defaultArgonThreads,
		Salt:      salt,
	}, nil
}

// FastKDFParamsForTests returns argon2id parameters that derive in well under
// a millisecond (one pass over 64 KiB), with a fresh random salt. They give
// no protection against password guessing: use them in tests only, never for
// a real repository. Validate accepts them so tests in other packages can
// create and open repositories cheaply.
func FastKDFParamsForTests() KDFParams {
	salt := make([]byte, minSaltSize)
	// crypto/rand.Read never returns an error (it aborts the program if
	// the operating system cannot supply randomness).
	_, _ = rand.Read(salt)
	return KDFParams{Algorithm: Argon2id, Time: 1, MemoryKiB: 64, Threads: 1, Salt: salt}
}

// Validate checks p against the caps, so that a derivation never costs more
// than they allow, and rejects unknown algorithms and parameters that do not
// belong to the algorithm. Errors wrap ErrFormat.
func (p KDFParams) Validate() error {
	if len(p.Salt) < minSaltSize || len(p.Salt) > maxSaltSize {
		return fmt.Errorf("kdf params: %w: salt is %d bytes, want %d..%d", ErrFormat, len(p.Salt), minSaltSize, maxSaltSize)
	}
	switch p.Algorithm {
	case Argon2id:
		if p.N != 0 || p.R != 0 || p.P != 0 {
			return fmt.Errorf("kdf params: %w: argon2id with scrypt parameters set", ErrFormat)
		}
		if p.Time < 1 || p.Time > maxArgonTime {
			return fmt.Errorf("kdf params: %w: argon2id time %d, want 1..%d", ErrFormat, p.Time, maxArgonTime)
		}
		if p.Threads < 1 || p.Threads > maxArgonThreads {
			return fmt.Errorf("kdf params: %w: argon2id threads %d, want 1..%d", ErrFormat, p.Threads, maxArgonThreads)
		}
		// argon2 needs 8 KiB per lane; below that the library would
		// silently raise the memory, so a stored value would not mean what
		// it says.
		if uint64(p.MemoryKiB) < 8*uint64(p.Threads) || uint64(p.MemoryKiB)*1024 > maxKDFMemory {
			return fmt.Errorf("kdf params: %w: argon2id memory %d KiB, want %d..%d", ErrFormat, p.MemoryKiB, 8*uint64(p.Threads), maxKDFMemory/1024)
		}
	case Scrypt:
		if p.Time != 0 || p.MemoryKiB != 0 || p.Threads != 0 {
			return fmt.Errorf("kdf params: %w: scrypt with argon2id parameters set", ErrFormat)
		}
		if p.N < 1<<minScryptLogN || p.N > 1<<maxScryptLogN || p.N&(p.N-1) != 0 {
			return fmt.Errorf("kdf params: %w: scrypt N %d, want a power of two 2^%d..2^%d", ErrFormat, p.N, minScryptLogN, maxScryptLogN)
		}
		if p.R < 1 || p.R > maxScryptRP || p.P < 1 || p.P > maxScryptRP {
			return fmt.Errorf("kdf params: %w: scrypt r=%d p=%d, want 1..%d each", ErrFormat, p.R, p.P, maxScryptRP)
		}
		// With r, p <= 64 these hold by arithmetic; they are checked so the
		// caps stay true if the limits above ever change.
		if uint64(p.R)*uint64(p.P) >= 1<<30 {
			return fmt.Errorf("kdf params: %w: scrypt r*p = %d, want < 2^30", ErrFormat, uint64(p.R)*uint64(p.P))
		}
		if mem := 128 * uint64(p.N) * uint64(p.R); mem > maxKDFMemory {
			return fmt.Errorf("kdf params: %w: scrypt needs %d MiB (128·N·r), more than %d MiB", ErrFormat, mem>>20, maxKDFMemory>>20)
		}
	default:
		return fmt.Errorf("kdf params: %w: unknown algorithm %q", ErrFormat, shorten(p.Algorithm))
	}
	return nil
}

// DeriveKey derives a 32-byte key from password with p, after validating p
// and checking it against the cost limits (errors wrap ErrFormat or
// ErrKDFCost). The key's ID is all zeros: a derived key wraps a key ring
// and is never part of one.
func DeriveKey(password []byte, p KDFParams) (*Key, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	if err := p.CheckCost(); err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	var raw []byte
	switch p.Algorithm {
	case Argon2id:
		raw = argon2.IDKey(password, p.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
	case Scrypt:
		var err error
		raw, err = scrypt.Key(password, p.Salt, p.N, p.R, p.P, KeySize)
		if err != nil {
			return nil, fmt.Errorf("derive key: scrypt: %w", err)
		}
	default:
		panic("crypt: internal error: Validate accepted algorithm " + p.Algorithm)
	}
	k, err := newKey(KeyID{}, raw)
	clear(raw)
	// The derivation's memory (tens of MiB) is garbage now. Collect it at
	// once: otherwise the heap goal stays sized for it, the command's own
	// allocations pile up on top of it before the next collection, and the
	// process's peak RSS is the sum of both instead of the larger one.
	if p.MemoryKiB >= 1<<10 || p.N*p.R >= 8<<10 {
		runtime.GC()
	}
	return k, err
}

// shorten cuts s to a length fit for an error message.
func shorten(s string) string {
	const maxLen = 40
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}
