// Command report turns scripts/bench/run.sh's raw CSV into the markdown
// tables of docs/performance.md: per tree, per phase, the median over the
// rounds of wall time, CPU time and peak RSS for each tool, the ratio
// cairn/restic and the target for it. It replaces the text between
// the "<!-- bench:begin -->" and "<!-- bench:end -->" lines of the document
// (appending them if missing) and leaves the rest, the hand-written
// analysis, alone.
//
//	report -csv docs/performance.csv -meta meta.txt -gobench gobench.txt -doc docs/performance.md
package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

func main() {
	csvPath := flag.String("csv", "", "raw results")
	metaPath := flag.String("meta", "", "key=value lines about the run")
	goBench := flag.String("gobench", "", "go test -bench output (optional)")
	docPath := flag.String("doc", "", "markdown document to update")
	flag.Parse()
	if *csvPath == "" || *docPath == "" {
		fmt.Fprintln(os.Stderr, "usage: report -csv FILE -doc FILE [-meta FILE] [-gobench FILE]")
		os.Exit(2)
	}
	if err := run(*csvPath, *metaPath, *goBench, *docPath); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
}

func run(csvPath, metaPath, goBench, docPath string) error {
	rows, err := readCSV(csvPath)
	if err != nil {
		return err
	}
	meta := map[string]string{}
	if metaPath != "" {
		if meta, err = readMeta(metaPath); err != nil {
			return err
		}
	}
	var gb []byte
	if goBench != "" {
		gb, _ = os.ReadFile(goBench) // optional: a missing file means none were run
	}
	var out strings.Builder
	writeReport(&out, rows, meta, string(gb))
	return replaceSection(docPath, out.String())
}

// row is one CSV line; absent numbers are NaN-free zeros with ok flags.
type row struct {
	round               int
	tree, tool, phase   string
	wall, user, sys     float64
	rss                 float64 // KiB
	dataBytes, repoSize float64
	hasWall, hasRepo    bool
	exit                int
}

func readCSV(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 11
	var rows []row
	for i := 0; ; i++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if i == 0 {
			continue // header
		}
		num := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
		round, _ := strconv.Atoi(rec[0])
		exit, _ := strconv.Atoi(rec[10])
		rows = append(rows, row{
			round: round, tree: rec[1], tool: rec[2], phase: rec[3],
			wall: num(rec[4]), user: num(rec[5]), sys: num(rec[6]), rss: num(rec[7]),
			dataBytes: num(rec[8]), repoSize: num(rec[9]),
			hasWall: rec[4] != "", hasRepo: rec[9] != "", exit: exit,
		})
	}
}

func readMeta(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m, sc.Err()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stat is the medians of one (tree, tool, phase).
type stat struct {
	n              int
	wall, cpu, rss float64
	repo, data     float64
	failed         int
}

func collect(rows []row) map[[3]string]*stat {
	type acc struct {
		wall, cpu, rss, repo, data []float64
		failed                     int
	}
	accs := map[[3]string]*acc{}
	for _, r := range rows {
		k := [3]string{r.tree, r.tool, r.phase}
		a := accs[k]
		if a == nil {
			a = &acc{}
			accs[k] = a
		}
		if r.exit != 0 {
			a.failed++
		}
		if r.hasWall {
			a.wall = append(a.wall, r.wall)
			a.cpu = append(a.cpu, r.user+r.sys)
			a.rss = append(a.rss, r.rss)
		}
		if r.hasRepo {
			a.repo = append(a.repo, r.repoSize)
		}
		a.data = append(a.data, r.dataBytes)
	}
	out := map[[3]string]*stat{}
	for k, a := range accs {
		out[k] = &stat{
			n: max(len(a.wall), len(a.repo)), wall: median(a.wall), cpu: median(a.cpu),
			rss: median(a.rss), repo: median(a.repo), data: median(a.data), failed: a.failed,
		}
	}
	return out
}

// phase describes one row group of a tree's table.
type phase struct {
	key, title string
	throughput bool // show MB/s of the tree's bytes
	// target is the goal for cairn/restic of wall time (0: none).
	target float64
}

var phases = []phase{
	{"init", "init", false, 0},
	{"backup", "initial backup", true, 0.5},
	{"backup-unchanged", "unchanged backup", true, 0},
	{"snapshots", "`snapshots` (fixed cost)", false, 0},
	{"restore", "restore", true, 0.5},
	{"check-read-data", "check, reading all data", true, 1 / 1.5},
	{"mirror-full", "full mirror", true, 1},
	{"mirror-unchanged", "mirror, nothing new", false, 0},
	{"mirror-unchanged-many", "mirror, nothing new, 10,000 more packs", false, 0},
}

// baseline is the tool cairn is compared with: restic, or rsync for the
// mirror.
var baseline = "restic"

func writeReport(w *strings.Builder, rows []row, meta map[string]string, goBench string) {
	st := collect(rows)
	var trees, tools []string
	for _, r := range rows {
		if !slices.Contains(trees, r.tree) {
			trees = append(trees, r.tree)
		}
		if !slices.Contains(tools, r.tool) {
			tools = append(tools, r.tool)
		}
	}
	slices.SortStableFunc(tools, func(a, b string) int { return toolRank(a) - toolRank(b) })

	fmt.Fprintf(w, "Generated by `make bench` (scripts/bench/run.sh) on %s.\n\n", meta["date"])
	fmt.Fprintf(w, "- Machine: %s cores, %s, %s RAM, kernel %s\n", meta["nproc"], meta["cpu"], meta["memory"], meta["kernel"])
	fmt.Fprintf(w, "- Load average (1, 5, 15 min) at start: %s; at end: %s\n", meta["load_start"], meta["load_end"])
	fmt.Fprintf(w, "- Tools: %s; %s; %s (compression %s); %s\n", meta["cairn"], meta["restic"], meta["borg"], meta["borg_compression"], meta["go"])
	fmt.Fprintf(w, "- SCALE=%s, %s rounds; every figure is the median over the rounds\n", meta["scale"], meta["runs"])
	for _, t := range trees {
		if v, ok := meta["tree_"+t]; ok {
			f := strings.Fields(v)
			if len(f) == 2 {
				b, _ := strconv.ParseFloat(f[0], 64)
				fmt.Fprintf(w, "- Tree %s: %s in %s files\n", t, gb(b), f[1])
			}
		}
	}
	w.WriteString("\n")

	for _, t := range trees {
		var treeTools []string
		for _, tool := range tools {
			for k := range st {
				if k[0] == t && k[1] == tool && !slices.Contains(treeTools, tool) {
					treeTools = append(treeTools, tool)
				}
			}
		}
		baseline = "restic"
		if !slices.Contains(treeTools, "restic") && slices.Contains(treeTools, "rsync") {
			baseline = "rsync"
		}
		tools := treeTools
		if t == "mirror" {
			fmt.Fprintf(w, "### Mirror of the mixed tree's repository (%s; the last rows: %s packs)\n\n", meta["mirror"], meta["mirror_many"])
		} else {
			fmt.Fprintf(w, "### Tree: %s\n\n", t)
		}
		w.WriteString("| phase | measure |")
		for _, tool := range tools {
			fmt.Fprintf(w, " %s |", tool)
		}
		fmt.Fprintf(w, " cairn/%s | target |\n|---|---|", baseline)
		for range tools {
			w.WriteString("---:|")
		}
		w.WriteString("---:|---|\n")
		for _, ph := range phases {
			writePhase(w, st, t, tools, ph)
		}
		if t != "mirror" {
			writeSize(w, st, t, tools)
			writeKDF(w, st, t, tools)
		}
		w.WriteString("\n")
	}
	failures := 0
	for _, s := range st {
		failures += s.failed
	}
	if failures > 0 {
		fmt.Fprintf(w, "**%d command(s) exited non-zero or restored wrong content**: see the CSV's exit column and the logs under BENCH_DIR/log.\n\n", failures)
	}
	if goBench != "" {
		writeGoBench(w, goBench)
	}
}

func toolRank(t string) int {
	switch t {
	case "cairn":
		return 0
	case "restic":
		return 1
	case "borg":
		return 2
	case "rsync":
		return 3
	}
	return 4
}

func writePhase(w *strings.Builder, st map[[3]string]*stat, tree string, tools []string, ph phase) {
	get := func(tool string) *stat { return st[[3]string{tree, tool, ph.key}] }
	if get("cairn") == nil && get(baseline) == nil {
		return
	}
	line := func(measure string, val func(s *stat) string, num func(s *stat) float64, target string) {
		fmt.Fprintf(w, "| %s | %s |", ph.title, measure)
		for _, tool := range tools {
			s := get(tool)
			if s == nil || s.n == 0 {
				w.WriteString(" – |")
				continue
			}
			mark := ""
			if s.failed > 0 {
				mark = " (!)"
			}
			fmt.Fprintf(w, " %s%s |", val(s), mark)
		}
		c, r := get("cairn"), get(baseline)
		ratio := "–"
		if c != nil && r != nil && num(r) > 0 {
			ratio = fmt.Sprintf("%.2f", num(c)/num(r))
		}
		fmt.Fprintf(w, " %s | %s |\n", ratio, target)
	}
	wallTarget := ""
	if ph.target > 0 {
		wallTarget = verdict(st, tree, ph.key, ph.target, func(s *stat) float64 { return s.wall })
	}
	if ph.key == "backup-unchanged" && tree == "small" {
		wallTarget = verdict(st, tree, ph.key, 1.0/3, func(s *stat) float64 { return s.wall })
	}
	if ph.key == "snapshots" {
		wallTarget = "≤ 0.3 s + KDF: " + fixedCostVerdict(st, tree)
	}
	if ph.key == "mirror-unchanged-many" {
		if c := st[[3]string{tree, "cairn", ph.key}]; c != nil {
			if c.wall < 1 {
				wallTarget = "< 1 s: met"
			} else {
				wallTarget = "< 1 s: **missed**"
			}
		}
	}
	line("wall", func(s *stat) string {
		if ph.throughput && s.wall > 0 {
			return fmt.Sprintf("%.2f s (%.0f MB/s)", s.wall, s.data/s.wall/1e6)
		}
		return fmt.Sprintf("%.2f s", s.wall)
	}, func(s *stat) float64 { return s.wall }, wallTarget)
	line("CPU", func(s *stat) string { return fmt.Sprintf("%.2f s", s.cpu) }, func(s *stat) float64 { return s.cpu }, "")
	rssTarget := ""
	if baseline == "restic" {
		rssTarget = verdict(st, tree, ph.key, 1, func(s *stat) float64 { return s.rss })
	}
	line("peak RSS", func(s *stat) string { return fmt.Sprintf("%.0f MiB", s.rss/1024) }, func(s *stat) float64 { return s.rss }, rssTarget)
}

// verdict compares cairn/restic of a measure with the largest allowed
// ratio.
func verdict(st map[[3]string]*stat, tree, key string, limit float64, f func(*stat) float64) string {
	c, r := st[[3]string{tree, "cairn", key}], st[[3]string{tree, baseline, key}]
	if c == nil || r == nil || f(r) == 0 {
		return ""
	}
	got := f(c) / f(r)
	if got <= limit {
		return fmt.Sprintf("≤ %.2f: met", limit)
	}
	return fmt.Sprintf("≤ %.2f: **missed**", limit)
}

func fixedCostVerdict(st map[[3]string]*stat, tree string) string {
	c := st[[3]string{tree, "cairn", "snapshots"}]
	var kdf float64
	for k, s := range st {
		if k[1] == "cairn" && k[2] == "kdf" {
			kdf = s.wall
		}
	}
	if c == nil {
		return ""
	}
	if c.wall <= 0.3+kdf {
		return fmt.Sprintf("met (%.2f s beyond the KDF)", c.wall-kdf)
	}
	return fmt.Sprintf("**missed** (%.2f s beyond the KDF)", c.wall-kdf)
}

func writeSize(w *strings.Builder, st map[[3]string]*stat, tree string, tools []string) {
	fmt.Fprintf(w, "| repository size | after both backups |")
	for _, tool := range tools {
		s := st[[3]string{tree, tool, "repo-size"}]
		if s == nil {
			w.WriteString(" – |")
			continue
		}
		fmt.Fprintf(w, " %s |", gb(s.repo))
	}
	c, r := st[[3]string{tree, "cairn", "repo-size"}], st[[3]string{tree, "restic", "repo-size"}]
	if c != nil && r != nil && r.repo > 0 {
		fmt.Fprintf(w, " %.3f | %s |\n", c.repo/r.repo, verdict(st, tree, "repo-size", 1.02, func(s *stat) float64 { return s.repo }))
		return
	}
	w.WriteString(" – | |\n")
}

func writeKDF(w *strings.Builder, st map[[3]string]*stat, tree string, tools []string) {
	any := false
	for _, tool := range tools {
		if st[[3]string{tree, tool, "kdf"}] != nil {
			any = true
		}
	}
	if !any {
		return
	}
	w.WriteString("| KDF (one derivation) | wall |")
	for _, tool := range tools {
		s := st[[3]string{tree, tool, "kdf"}]
		if s == nil {
			w.WriteString(" – |")
			continue
		}
		fmt.Fprintf(w, " %.2f s |", s.wall)
	}
	w.WriteString(" | deliberate setting |\n")
}

func gb(b float64) string {
	if b >= 1e9 {
		return fmt.Sprintf("%.2f GB", b/1e9)
	}
	return fmt.Sprintf("%.0f MB", b/1e6)
}

// writeGoBench copies the benchmark result lines.
func writeGoBench(w *strings.Builder, out string) {
	var lines []string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return
	}
	w.WriteString("### Go benchmarks (stages, in-memory pipeline, index)\n\n```\n")
	for _, l := range lines {
		w.WriteString(l)
		w.WriteString("\n")
	}
	w.WriteString("```\n")
}

// replaceSection puts body between the markers of the document at path.
func replaceSection(path, body string) error {
	doc, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(doc)
	section := beginMarker + "\n" + body + endMarker
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(endMarker):]
	} else {
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += "\n" + section + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
