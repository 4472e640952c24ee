// Command gen writes the benchmark trees of scripts/bench/run.sh:
//
//	go run ./scripts/bench/gen -kind mixed|small -dir DIR [-scale S] [-seed N]
//
// The same kind, scale and seed always give the same bytes (see package
// benchtree). It refuses a DIR that exists, so a half-written tree from an
// interrupted run is never mistaken for a finished one: run.sh generates
// into a temporary name and renames it.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cairn-backup/cairn/scripts/bench/benchtree"
)

func main() {
	kind := flag.String("kind", "", "tree to write: mixed or small")
	dir := flag.String("dir", "", "folder to create")
	scale := flag.Float64("scale", 1, "multiply sizes (mixed) or the file count (small) by this")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
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
