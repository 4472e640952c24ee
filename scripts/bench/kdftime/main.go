// Command kdftime measures on this machine how long each tool's password
// key derivation takes, so the benchmark report can separate it from the
// fixed cost of a command:
//
//	kdftime cairn               cairn's default (argon2id, crypt.DefaultKDFParams)
//	kdftime scrypt N r p        restic (its key files store N, r and p)
//	kdftime pbkdf2 ITERATIONS   borg 1.2 (PBKDF2-HMAC-SHA256)
//
// It prints the median of five derivations in seconds. restic derives with
// the same Go scrypt package; borg uses OpenSSL's PBKDF2, which may be a
// little faster than Go's.
package main

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/crypto/scrypt"

	"github.com/cairn-backup/cairn/crypt"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	password := []byte("benchmark password")
	salt := make([]byte, 32)
	var derive func() error
	switch os.Args[1] {
	case "cairn":
		p, err := crypt.DefaultKDFParams()
		if err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stderr, "kdftime: cairn: %s t=%d m=%d KiB p=%d\n", p.Algorithm, p.Time, p.MemoryKiB, p.Threads)
		derive = func() error { _, err := crypt.DeriveKey(password, p); return err }
	case "scrypt":
		if len(os.Args) != 5 {
			usage()
		}
		n, r, p := atoi(os.Args[2]), atoi(os.Args[3]), atoi(os.Args[4])
		derive = func() error { _, err := scrypt.Key(password, salt, n, r, p, 64); return err }
	case "pbkdf2":
		if len(os.Args) != 3 {
			usage()
		}
		iter := atoi(os.Args[2])
		derive = func() error { _, err := pbkdf2.Key(sha256.New, string(password), salt, iter, 32); return err }
	default:
		usage()
	}
	var times []time.Duration
	for range 5 {
		start := time.Now()
		if err := derive(); err != nil {
			fail(err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	fmt.Printf("%.3f\n", times[len(times)/2].Seconds())
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		fail(fmt.Errorf("bad number %q", s))
	}
	return n
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kdftime cairn | scrypt N r p | pbkdf2 ITERATIONS")
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "kdftime: %v\n", err)
	os.Exit(1)
}
