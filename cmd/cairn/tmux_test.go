package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The live status line as a user sees it: the real binary in an 80×24
// tmux pane, watched with capture-pane while it runs.

// statusRow is a status line as the pane shows it: "[m:ss] ...".
var statusRow = regexp.MustCompile(`^\[\d+:\d\d(:\d\d)?\] `)

// percentETA is the part of a status line that says how far and how
// long: "41.3% ETA 0:04".
var percentETA = regexp.MustCompile(`\] \d+\.\d% ETA \d+:\d\d`)

// exitRow is what the script run in the pane prints when cairn is done:
// "cairn-exit-N=CODE" for the Nth script, so that one run's end is not
// taken for the next one's.
var exitRow = regexp.MustCompile(`^cairn-exit-(\d+)=(\d+)$`)

// tmuxPane is a terminal of 80 columns and 24 rows, running a shell, on a
// tmux server of the test's own (its socket under the test's folder),
// killed when the test ends.
type tmuxPane struct {
	t    *testing.T
	e    *testEnv
	sock string
	n    int // scripts run so far
}

func newTmuxPane(t *testing.T, e *testEnv) *tmuxPane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		requireNamed(t, "tmux", "tmux is not installed (scripts/test-deps.sh installs it)")
	}
	p := &tmuxPane{t: t, e: e, sock: filepath.Join(e.dir, "tmux.sock")}
	// The shell gets the test's environment and nothing else.
	args := append([]string{"new-session", "-d", "-x", "80", "-y", "24", "-s", "cairn", "env", "-i"}, e.env...)
	p.tmux(append(args, "PS1=$ ", "/bin/sh")...)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", p.sock, "kill-server").Run() })
	return p
}

// tmux runs a tmux command on the pane's server.
func (p *tmuxPane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// rows returns the pane's rows as shown (a line wider than the pane
// takes two rows), or with join its lines (wrapped rows joined).
func (p *tmuxPane) rows(join bool) []string {
	p.t.Helper()
	args := []string{"capture-pane", "-p", "-t", "cairn"}
	if join {
		args = append(args, "-J")
	}
	var out []string
	for _, r := range strings.Split(p.tmux(args...), "\n") {
		out = append(out, strings.TrimRight(r, " "))
	}
	return out
}

// paneRun is what watching one command in the pane saw.
type paneRun struct {
	code int
	// lastStatus is the last status line seen while the command ran, and
	// withETA the last one with percent and ETA ("" if none).
	lastStatus, withETA string
	// partial is a status line seen with percent and ETA below 100%.
	partial string
	// lines are the pane's lines when the command was done.
	lines []string
}

// run clears the pane and runs cairn with args in it, then watches it
// with capture-pane until it is done: at every look the pane must hold at
// most one status line, and nothing below it, since anything under the
// status line is a stale copy or the wrapped end of one.
func (p *tmuxPane) run(env []string, args ...string) paneRun {
	p.t.Helper()
	p.n++
	var script bytes.Buffer
	script.WriteString("printf '\\033[H\\033[2J'\n") // clear the screen
	fmt.Fprintf(&script, "env %s %s", shellQuote(env...), shellQuote(cairnBin))
	fmt.Fprintf(&script, " %s\necho cairn-exit-%d=$?\n", shellQuote(args...), p.n)
	name := filepath.Join(p.e.dir, fmt.Sprintf("pane%d.sh", p.n))
	p.e.writeFile(name, script.String())
	p.tmux("send-keys", "-t", "cairn", "-l", "sh "+name)
	p.tmux("send-keys", "-t", "cairn", "Enter")

	var res paneRun
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			p.t.Fatalf("cairn %q did not finish in the pane within 2 minutes:\n%s", args, strings.Join(p.rows(false), "\n"))
		}
		rows := p.rows(false)
		var status []int
		done := -1
		last := -1 // the last non-empty row
		for i, r := range rows {
			if r != "" {
				last = i
			}
			if statusRow.MatchString(r) {
				status = append(status, i)
			}
			if m := exitRow.FindStringSubmatch(r); m != nil && m[1] == fmt.Sprint(p.n) {
				done = i
				_, _ = fmt.Sscan(m[2], &res.code)
			}
		}
		if done >= 0 {
			if len(status) > 0 {
				p.t.Fatalf("cairn %q left a status line behind:\n%s", args, strings.Join(rows, "\n"))
			}
			res.lines = p.rows(true)
			return res
		}
		switch {
		case len(status) > 1:
			p.t.Fatalf("cairn %q: %d status lines in the pane, want one:\n%s", args, len(status), strings.Join(rows, "\n"))
		case len(status) == 1 && status[0] != last:
			p.t.Fatalf("cairn %q: rows below the status line (stale, or the line wrapped):\n%s", args, strings.Join(rows, "\n"))
		case len(status) == 1:
			res.lastStatus = rows[status[0]]
			if percentETA.MatchString(res.lastStatus) {
				res.withETA = res.lastStatus
				if !strings.Contains(res.lastStatus, "] 100.0%") {
					res.partial = res.lastStatus
				}
			}
		}
		// Bounded by the deadline; a status line lasts 1/10 s at most.
		time.Sleep(20 * time.Millisecond)
	}
}

// shellQuote quotes words for sh.
func shellQuote(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// checkLines fails unless every non-empty line matches one of the
// patterns, in order, each pattern once.
func checkLines(t *testing.T, what string, lines []string, patterns ...string) {
	t.Helper()
	var got []string
	for _, l := range lines {
		if l != "" {
			got = append(got, l)
		}
	}
	ok := len(got) == len(patterns)
	for i := 0; ok && i < len(got); i++ {
		ok = matches(patterns[i], got[i])
	}
	if !ok {
		t.Fatalf("%s: the pane shows\n%s\nwant lines matching\n%s", what, strings.Join(got, "\n"), strings.Join(patterns, "\n"))
	}
}

// progressTree writes n files of 1 MiB under src, whose names are wider
// than the pane (CJK characters take two columns each).
func progressTree(t *testing.T, src string, n int) {
	t.Helper()
	files := map[string][]byte{}
	dir := "長いフォルダの名前/もっと長いサブフォルダの名前"
	for i := range n {
		files[fmt.Sprintf("%s/データファイル番号%02d_とても長い名前.bin", dir, i)] = pseudoRandom(uint64(100+i), 1<<20)
	}
	writeTree(t, src, files)
}

// slowRun slows the repository to 8 MB/s a request: a 16 MiB pack takes
// two seconds to upload. A backup of more than two packs' worth (one
// filling while the local backend's two connections upload) then waits
// for an upload before it reads on, so its status line shows a percent
// and an ETA below 100% for a second or more.
var slowRun = []string{envTestThrottle + "=8000000"}

// TestStatusLineInTmux is issue 13's "what must show" for progress: a
// backup and a restore in an 80-column tmux pane show one status line,
// cut to the width, with percent and ETA while they run, and leave no
// stale line behind: only their summaries. The restored files equal
// the source byte for byte.
func TestStatusLineInTmux(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	progressTree(t, src, 40)
	pane := newTmuxPane(t, e)

	b := pane.run(slowRun, "backup", src)
	if b.code != 0 {
		t.Fatalf("backup: exit %d\n%s", b.code, strings.Join(b.lines, "\n"))
	}
	if b.partial == "" {
		t.Fatalf("backup: no status line with percent and ETA below 100%% seen (last with ETA: %q, last: %q)", b.withETA, b.lastStatus)
	}
	t.Logf("backup status line: %s", b.partial)
	checkLines(t, "backup", b.lines,
		`^Files: +40 new, +0 changed, +0 unmodified$`,
		`^Dirs: +\d+ new, +0 changed, +0 unmodified$`,
		// restic's line: what the files added, and what the repository grew.
		`^Added to the repository: \d+\.\d{3} MiB \(\d+\.\d{3} MiB stored\)$`,
		`^processed 40 files, 40\.000 MiB in \d+:\d\d$`,
		`^snapshot [0-9a-f]{8} saved$`,
		`^cairn-exit-\d+=0$`, `^[$#]$`)
	// The summary's duration covers the upload of the last pack, which
	// the status line watched.
	checkDurationCovers(t, b)

	target := filepath.Join(e.dir, "out")
	r := pane.run(slowRun, "restore", "--target", target, "latest")
	if r.code != 0 {
		t.Fatalf("restore: exit %d\n%s", r.code, strings.Join(r.lines, "\n"))
	}
	if r.partial == "" {
		t.Fatalf("restore: no status line with percent and ETA below 100%% seen (last with ETA: %q, last: %q)", r.withETA, r.lastStatus)
	}
	t.Logf("restore status line: %s", r.partial)
	checkLines(t, "restore", r.lines,
		`^restoring snapshot [0-9a-f]{8} of \[.*\] at .* to `+regexp.QuoteMeta(target)+`$`,
		`^restored 40 files \(40\.000 MiB\) in \d+:\d\d$`,
		`^and \d+ folders, 0 symlinks, 0 hardlinks, 0 special files$`,
		`^cairn-exit-\d+=0$`, `^[$#]$`)
	checkDurationCovers(t, r)
	compareTrees(t, src, filepath.Join(target, src), false)
}

// checkDurationCovers fails when the summary's "in m:ss" is shorter than
// the time the last status line showed, less a second for rounding.
func checkDurationCovers(t *testing.T, r paneRun) {
	t.Helper()
	parse := func(s string) time.Duration {
		var m, sec int
		if _, err := fmt.Sscanf(s, "%d:%d", &m, &sec); err != nil {
			t.Fatalf("duration %q: %v", s, err)
		}
		return time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	}
	shown := parse(strings.TrimPrefix(statusRow.FindString(r.lastStatus), "["))
	for _, l := range r.lines {
		if i := strings.LastIndex(l, " in "); i >= 0 && matches(` in \d+:\d\d$`, l) {
			if took := parse(l[i+4:]); took < shown-time.Second {
				t.Fatalf("summary %q, but the status line showed %s elapsed", l, shown)
			}
			return
		}
	}
	t.Fatalf("no duration in the summary:\n%s", strings.Join(r.lines, "\n"))
}

// TestProgressSilentOffTerminal: a slow backup and restore whose output
// goes to a pipe (cron's case) print their summaries only: no status
// line, no carriage return, no escape sequence.
func TestProgressSilentOffTerminal(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	progressTree(t, src, 8)
	for _, args := range [][]string{{"backup", src}, {"restore", "--target", filepath.Join(e.dir, "out"), "latest"}} {
		r := e.runWith(runOpts{env: slowRun}, args...)
		if r.code != 0 {
			t.Fatalf("want exit 0\n%s", r)
		}
		for _, out := range []string{r.stdout, r.stderr} {
			if strings.ContainsAny(out, "\r\x1b") || strings.Contains(out, "ETA") {
				t.Fatalf("progress drawn off a terminal:\n%q", out)
			}
		}
		for _, l := range strings.Split(r.stdout, "\n") {
			if statusRow.MatchString(l) {
				t.Fatalf("status line off a terminal: %q\n%s", l, r)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir, "out", src)); err != nil {
		t.Fatal(err)
	}
}
