package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rivo/uniseg"
)

// The live status line: one line, redrawn in place at most ten times a
// second, never wider than the terminal, and only on a terminal.

// ticker runs fn every interval until stopped, then erases p's status
// line, so that what follows (a summary, results) starts on a clean
// line. It is how every progress display refreshes.
type ticker struct {
	stop chan struct{}
	done sync.WaitGroup
}

func startTicker(p *printer, interval time.Duration, fn func()) *ticker {
	t := &ticker{stop: make(chan struct{})}
	t.done.Go(func() {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-t.stop:
				p.Status("")
				return
			case <-tk.C:
				fn()
			}
		}
	})
	return t
}

// Stop ends the ticker once its status line is erased.
func (t *ticker) Stop() {
	close(t.stop)
	t.done.Wait()
}

// envProgressFPS sets how many times a second progress is shown, as
// restic's RESTIC_PROGRESS_FPS does: a number above 0, at most 10 (a
// status line redrawn more often only flickers). It changes the pace of
// --json status lines too, also off a terminal; it never makes a text
// status line appear off a terminal.
const envProgressFPS = "CAIRN_PROGRESS_FPS"

// maxFPS is the most a status line is redrawn in a second.
const maxFPS = 10

// progressFPS reads $CAIRN_PROGRESS_FPS: 0 when unset.
func progressFPS(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	fps, err := strconv.ParseFloat(s, 64)
	if err != nil || !(fps > 0) || fps > maxFPS {
		return 0, fmt.Errorf("$%s: %q is not a number of updates a second above 0 and at most %d", envProgressFPS, s, maxFPS)
	}
	return fps, nil
}

// statusInterval is how often progress is shown: a terminal's status
// line ten times a second; --json status lines every second on a
// terminal and every minute otherwise (a log gets a line a minute), or
// as $CAIRN_PROGRESS_FPS says.
func (p *printer) statusInterval() time.Duration {
	if p.fps > 0 {
		return time.Duration(float64(time.Second) / p.fps)
	}
	switch {
	case p.tty && !p.json:
		return time.Second / maxFPS
	case p.tty:
		return time.Second
	}
	return time.Minute
}

// defaultWidth is the width assumed when the terminal does not say.
const defaultWidth = 80

// fitWidth cuts s to at most cols columns of a terminal: wide characters
// (CJK, most emoji) take two, combining marks none, and a grapheme
// cluster is never split.
func fitWidth(s string, cols int) string {
	if cols <= 0 {
		return ""
	}
	width, state := 0, -1
	rest := s
	for len(rest) > 0 {
		var cluster string
		var w int
		cluster, rest, w, state = uniseg.FirstGraphemeClusterInString(rest, state)
		if width+w > cols {
			return s[:len(s)-len(rest)-len(cluster)]
		}
		width += w
	}
	return s
}

// terminalWidth returns a function giving the width of the terminal f is
// open on, or 0 when it cannot be told; it is asked again at each redraw,
// so that a resized window is followed.
func terminalWidth(f *os.File, size func(fd int) (w, h int, err error)) func() int {
	return func() int {
		w, _, err := size(int(f.Fd()))
		if err != nil || w <= 0 {
			return 0
		}
		return w
	}
}

// statusText is one state of a progress display, for its status line.
type statusText struct {
	elapsed time.Duration
	// phase names a maintenance command's phase ("" for backup and
	// restore).
	phase string
	// percent is done/total in percent, or negative while the total is
	// not known.
	percent float64
	// eta is the time left, or negative while it cannot be told.
	eta time.Duration
	// counts are "12 / 34 files"-like parts, in order.
	counts []string
	// rate is bytes (or units) a second, or negative when not known yet.
	rate     float64
	rateUnit string // "" for bytes
	errors   uint64
	// item is the file at work, shown last: it is what the width cuts.
	item string
}

// String renders the status line, most important first: elapsed time,
// percent and ETA, counts, rate, errors, the current item.
func (s statusText) String() string {
	var b strings.Builder
	b.WriteString("[" + formatDuration(s.elapsed) + "]")
	if s.phase != "" {
		b.WriteString(" " + s.phase + ":")
	}
	if s.percent >= 0 {
		fmt.Fprintf(&b, " %.1f%%", min(s.percent, 100))
		if s.eta >= 0 {
			b.WriteString(" ETA " + formatDuration(s.eta))
		}
	}
	for i, c := range s.counts {
		sep := ", "
		if i == 0 {
			sep = "  "
		}
		b.WriteString(sep + c)
	}
	if s.rate >= 0 {
		if s.rateUnit == "" {
			b.WriteString(", " + formatBytes(uint64(s.rate)) + "/s")
		} else {
			fmt.Fprintf(&b, ", %.1f %s/s", s.rate, s.rateUnit)
		}
	}
	if s.errors > 0 {
		fmt.Fprintf(&b, ", %d errors", s.errors)
	}
	if s.item != "" {
		b.WriteString("  " + s.item)
	}
	return b.String()
}

// rateWindow is how far back the rate looks: long enough to smooth the
// bursts of a pack upload or a large file, short enough to follow a
// change of speed (a slow disk, a fast unchanged folder) within half a
// minute.
const rateWindow = 30 * time.Second

// rateMeter estimates a rate (and so an ETA) from samples of a growing
// count over the last rateWindow. It keeps one sample a second, a fixed
// ring. Its user passes the time in, so it is tested without a clock; it
// is not safe for concurrent use (the ticker's goroutine owns it).
type rateMeter struct {
	samples [int(rateWindow/time.Second) + 1]rateSample
	n, next int
}

type rateSample struct {
	at   time.Duration
	done uint64
}

// add records that done units were complete at elapsed time at; samples
// less than a second after the newest are dropped.
func (m *rateMeter) add(at time.Duration, done uint64) {
	if m.n > 0 {
		newest := m.samples[(m.next+len(m.samples)-1)%len(m.samples)]
		if at-newest.at < time.Second {
			return
		}
	}
	m.samples[m.next] = rateSample{at, done}
	m.next = (m.next + 1) % len(m.samples)
	m.n = min(m.n+1, len(m.samples))
}

// sample adds (at, done) and returns the rate and the time left to reach
// total (see rate and eta).
func (m *rateMeter) sample(at time.Duration, done, total uint64) (rate float64, left time.Duration) {
	m.add(at, done)
	rate = m.rate(at, done)
	return rate, eta(done, total, rate)
}

// rate returns the units a second between the oldest sample kept and
// (at, done), or a negative number until a second has passed.
func (m *rateMeter) rate(at time.Duration, done uint64) float64 {
	if m.n == 0 {
		return -1
	}
	oldest := m.samples[(m.next+len(m.samples)-m.n)%len(m.samples)]
	dt := at - oldest.at
	if dt < time.Second || done < oldest.done {
		return -1
	}
	return float64(done-oldest.done) / dt.Seconds()
}

// eta returns the time left to do total at rate, or -1 when it cannot
// be told (no rate yet, or nothing moving).
func eta(done, total uint64, rate float64) time.Duration {
	if rate <= 0 || total < done {
		return -1
	}
	secs := float64(total-done) / rate
	if secs > 100*24*3600 {
		return -1
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Second)
}

// percent returns done/total in percent, or -1 without a total.
func percent(done, total uint64) float64 {
	if total == 0 {
		return -1
	}
	return min(100*float64(done)/float64(total), 100)
}

// fraction is done/total between 0 and 1 (JSON's percent_done), 0
// without a total.
func fraction(done, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return min(float64(done)/float64(total), 1)
}

// secondsLeft is an ETA in whole seconds for JSON, 0 when unknown.
func secondsLeft(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d / time.Second)
}
