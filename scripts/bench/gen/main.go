// Command gen writes the benchmark trees of scripts/bench/run.sh:
//
//	go run ./scripts/bench/gen -kind mixed|small -dir DIR [-scale S] [-seed N]
//	go run ./scripts/bench/gen -kind packs -dir REPO -count N [-seed N]
//
// The kind packs adds N files of 1 KiB of random bytes to the data/
// folder of a copy of a repository, each named by its SHA-256 as packs
// are: a repository with that many more packs, for timing a mirror with
// nothing new (the files are not valid packs; a mirror only lists and
// hashes them). REPO must exist for this kind.
//
// The same kind, scale and seed always give the same bytes (see package
// benchtree). It refuses a DIR that exists, so a half-written tree from an
// interrupted run is never mistaken for a finished one: run.sh generates
// into a temporary name and renames it.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-backup/cairn/snapshot/archiver/benchtree"
)

func main() {
	kind := flag.String("kind", "", "tree to write: mixed or small")
	dir := flag.String("dir", "", "folder to create")
	scale := flag.Float64("scale", 1, "multiply sizes (mixed) or the file count (small) by this")
	seed := flag.Uint64("seed", 1, "random seed")
	count := flag.Int("count", 10_000, "files to add (kind packs)")
	flag.Parse()
	if *kind == "packs" {
		if err := addPacks(*dir, *count, *seed); err != nil {
			fmt.Fprintf(os.Stderr, "gen: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if *dir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: gen -kind mixed|small -dir DIR [-scale S] [-seed N]")
		os.Exit(2)
	}
	if _, err := os.Lstat(*dir); err == nil {
		fmt.Fprintf(os.Stderr, "gen: %s already exists\n", *dir)
		os.Exit(1)
	}
	start := time.Now()
	var st benchtree.Stats
	var err error
	switch *kind {
	case "mixed":
		st, err = benchtree.Mixed(*dir, *scale, *seed)
	case "small":
		st, err = benchtree.Small(*dir, max(1, int(float64(benchtree.SmallFiles)**scale)), *seed)
	default:
		fmt.Fprintf(os.Stderr, "gen: unknown kind %q (want mixed or small)\n", *kind)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("gen: %s: %d files, %d bytes in %.1fs\n", *dir, st.Files, st.Bytes, time.Since(start).Seconds())
}

// addPacks writes count random 1 KiB files named by their SHA-256 into
// repo/data/<first two hex digits>/.
func addPacks(repo string, count int, seed uint64) error {
	if _, err := os.Stat(filepath.Join(repo, "data")); err != nil {
		return fmt.Errorf("%s is not a repository: %w", repo, err)
	}
	var key [32]byte
	key[0], key[1] = byte(seed), 0xbe
	src := mrand.NewChaCha8(key)
	buf := make([]byte, 1024)
	for range count {
		_, _ = src.Read(buf) // ChaCha8.Read never fails
		sum := sha256.Sum256(buf)
		name := hex.EncodeToString(sum[:])
		dir := filepath.Join(repo, "data", name[:2])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o444); err != nil {
			return err
		}
	}
	return nil
}
