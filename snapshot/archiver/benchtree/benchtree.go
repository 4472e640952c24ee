// Package benchtree generates the deterministic file trees that cairn's
// benchmarks back up: the same seed and scale always give the same bytes.
// The Go benchmarks of snapshot/archiver and snapshot/restorer import it
// (from _test.go files) to back up a small version of the trees that
// scripts/bench/gen, its command-line front end for scripts/bench/run.sh,
// writes for the comparison with restic and borg. It lives beside the
// lowest code that uses it, so no benchmark imports from scripts/; it is
// test infrastructure and no product package imports it (scripts/layers
// checks both).
//
// The trees:
//
//   - Mixed: large incompressible files, logs and text, 1.6 GB at scale 1:
//     random/ holds 4 files of 200 MB, logs/ 10 files of 50 MB of access-log
//     lines (zstd fastest shrinks them about 6x), text/ 300 MB of prose-like
//     text in files of 4 KB to 200 KB spread over nested folders (about 3x).
//   - Small: count files of 1 to 8 KiB in folders of 100 (100,000 at scale
//     1): seven in ten hold text, the rest random bytes.
//
// Every file's content is unique, so nothing deduplicates across files.
package benchtree

import (
	"bufio"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Stats says what a generator wrote.
type Stats struct {
	Files int
	Bytes int64
}

// The mixed tree's parts at scale 1, in bytes (decimal, as the issue and
// the report state sizes).
const (
	mixedRandomFiles = 4
	mixedRandomSize  = 200_000_000
	mixedLogFiles    = 10
	mixedLogSize     = 50_000_000
	mixedTextTotal   = 300_000_000
)

// SmallFiles is the small-file tree's file count at scale 1.
const SmallFiles = 100_000

// Mixed writes the mixed tree into dir (created if needed) with every size
// multiplied by scale (0 < scale <= 1 is typical; at least one byte per
// file). The same seed and scale give the same tree.
func Mixed(dir string, scale float64, seed uint64) (Stats, error) {
	if scale <= 0 {
		return Stats{}, fmt.Errorf("benchtree: scale %v must be positive", scale)
	}
	var st Stats
	sized := func(n int64) int64 { return max(1, int64(float64(n)*scale)) }
	for i := range mixedRandomFiles {
		p := filepath.Join(dir, "random", fmt.Sprintf("blob-%02d.bin", i))
		if err := writeFile(p, sized(mixedRandomSize), func(w *bufio.Writer, n int64) error {
			return randomContent(w, n, seed, uint64(i))
		}); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += sized(mixedRandomSize)
	}
	for i := range mixedLogFiles {
		p := filepath.Join(dir, "logs", fmt.Sprintf("access-%02d.log", i))
		if err := writeFile(p, sized(mixedLogSize), func(w *bufio.Writer, n int64) error {
			return logContent(w, n, seed, uint64(100+i))
		}); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += sized(mixedLogSize)
	}
	rnd := mrand.New(mrand.NewPCG(seed, 7))
	left := sized(mixedTextTotal)
	for i := 0; left > 0; i++ {
		n := min(left, int64(4_000+rnd.IntN(196_000)))
		p := filepath.Join(dir, "text", fmt.Sprintf("part-%02d", i/400), fmt.Sprintf("ch-%02d", i/40%10), fmt.Sprintf("doc-%05d.txt", i))
		if err := writeFile(p, n, func(w *bufio.Writer, n int64) error {
			return textContent(w, n, seed, uint64(1000+i))
		}); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += n
		left -= n
	}
	return st, nil
}

// Small writes count files of 1 to 8 KiB into dir, 100 to a folder.
func Small(dir string, count int, seed uint64) (Stats, error) {
	var st Stats
	rnd := mrand.New(mrand.NewPCG(seed, 11))
	for i := range count {
		n := int64(1024 + rnd.IntN(7*1024+1))
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/10_000), fmt.Sprintf("d%02d", i/100%100), fmt.Sprintf("f%05d", i))
		text := rnd.IntN(10) < 7
		if err := writeFile(p, n, func(w *bufio.Writer, n int64) error {
			if text {
				return textContent(w, n, seed, uint64(1_000_000+i))
			}
			return randomContent(w, n, seed, uint64(1_000_000+i))
		}); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += n
	}
	return st, nil
}

func writeFile(p string, n int64, fill func(w *bufio.Writer, n int64) error) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, int(min(n+16, 1<<20)))
	err = fill(w, n)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// randomContent writes n incompressible bytes from a per-file stream.
func randomContent(w *bufio.Writer, n int64, seed, file uint64) error {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
		key[8+i] = byte(file >> (8 * i))
	}
	src := mrand.NewChaCha8(key)
	buf := make([]byte, 64<<10)
	for n > 0 {
		m := min(n, int64(len(buf)))
		_, _ = src.Read(buf[:m]) // ChaCha8.Read never fails
		if _, err := w.Write(buf[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

// vocabulary is a fixed list of made-up words, so text compresses like
// prose: a few words very often (Zipf), many rarely.
var vocabulary = func() []string {
	rnd := mrand.New(mrand.NewPCG(42, 42))
	cons := "bcdfghjklmnprstvwz"
	vows := "aeiouy"
	words := make([]string, 8000)
	for i := range words {
		var b []byte
		for range 1 + rnd.IntN(4) {
			b = append(b, cons[rnd.IntN(len(cons))], vows[rnd.IntN(len(vows))])
			if rnd.IntN(3) == 0 {
				b = append(b, cons[rnd.IntN(len(cons))])
			}
		}
		words[i] = string(b)
	}
	return words
}()

// textContent writes n bytes of sentences and paragraphs of Zipf-chosen
// words.
func textContent(w *bufio.Writer, n int64, seed, file uint64) error {
	rnd := mrand.New(mrand.NewPCG(seed, file))
	zipf := mrand.NewZipf(rnd, 1.1, 2, uint64(len(vocabulary)-1))
	var written int64
	line := make([]byte, 0, 256)
	for written < n {
		line = line[:0]
		words := 6 + rnd.IntN(20)
		for i := range words {
			word := vocabulary[zipf.Uint64()]
			if i == 0 {
				line = append(line, word[0]-'a'+'A')
				line = append(line, word[1:]...)
			} else {
				line = append(line, ' ')
				line = append(line, word...)
			}
			if i < words-1 && rnd.IntN(12) == 0 {
				line = append(line, ',')
			}
		}
		line = append(line, ". "...)
		if rnd.IntN(6) == 0 {
			line = append(line, "\n\n"...)
		}
		m := min(int64(len(line)), n-written)
		if _, err := w.Write(line[:m]); err != nil {
			return err
		}
		written += m
	}
	return nil
}

var (
	logMethods = []string{"GET", "GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"}
	logPaths   = []string{"/", "/index.html", "/api/v1/items/", "/api/v1/users/", "/static/js/app.", "/static/css/site.", "/images/photo-", "/search?q=", "/login", "/feed.xml"}
	logStatus  = []int{200, 200, 200, 200, 200, 200, 304, 301, 404, 500}
	logAgents  = []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
		"curl/8.5.0", "Go-http-client/2.0", "Googlebot/2.1 (+http://www.google.com/bot.html)",
	}
)

// logContent writes n bytes of web server access-log lines with advancing
// timestamps.
func logContent(w *bufio.Writer, n int64, seed, file uint64) error {
	rnd := mrand.New(mrand.NewPCG(seed, file))
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(file) * 24 * time.Hour)
	var written int64
	line := make([]byte, 0, 512)
	for written < n {
		t = t.Add(time.Duration(rnd.IntN(200)) * time.Millisecond)
		line = line[:0]
		line = append(line, "10."...)
		line = strconv.AppendInt(line, int64(rnd.IntN(4)), 10)
		line = append(line, '.')
		line = strconv.AppendInt(line, int64(rnd.IntN(256)), 10)
		line = append(line, '.')
		line = strconv.AppendInt(line, int64(rnd.IntN(256)), 10)
		line = append(line, " - - ["...)
		line = t.AppendFormat(line, "02/Jan/2006:15:04:05.000 -0700")
		line = append(line, "] \""...)
		line = append(line, logMethods[rnd.IntN(len(logMethods))]...)
		line = append(line, ' ')
		line = append(line, logPaths[rnd.IntN(len(logPaths))]...)
		line = strconv.AppendInt(line, int64(rnd.IntN(100_000)), 10)
		line = append(line, " HTTP/1.1\" "...)
		line = strconv.AppendInt(line, int64(logStatus[rnd.IntN(len(logStatus))]), 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(rnd.IntN(60_000)), 10)
		line = append(line, " \"-\" \""...)
		line = append(line, logAgents[rnd.IntN(len(logAgents))]...)
		line = append(line, "\" rt="...)
		line = strconv.AppendFloat(line, rnd.Float64()*0.5, 'f', 3, 64)
		line = append(line, '\n')
		m := min(int64(len(line)), n-written)
		if _, err := w.Write(line[:m]); err != nil {
			return err
		}
		written += m
	}
	return nil
}
