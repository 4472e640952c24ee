package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// phaseProgress shows how far a check, prune or repair has come, phase
// by phase (repo.ProgressFunc): a status line on a terminal with the
// phase's percentage, rate and ETA, and with jsonLines set, --json
// status lines. It refreshes on a ticker, whatever the pace of reports.
type phaseProgress struct {
	p         *printer
	start     time.Time
	jsonLines bool
	t         *ticker // nil when nothing is shown

	mu           sync.Mutex // guards phase, done and total
	phase        string
	done, total  int64
	shown        string        // the ticker's goroutine only: the phase the meter measures
	phaseStarted time.Duration // the ticker's goroutine only
	meter        rateMeter     // the ticker's goroutine only
}

// startPhaseProgress starts the display: on a terminal, and with
// jsonLines (--json of a command whose output is a stream of lines) as
// --json status lines. stop must be called before the command prints
// its results.
func startPhaseProgress(p *printer, jsonLines bool) *phaseProgress {
	pp := &phaseProgress{p: p, start: time.Now(), jsonLines: jsonLines && p.json}
	if p.progress() || pp.jsonLines {
		pp.t = startTicker(p, p.statusInterval(), pp.tick)
	}
	return pp
}

// report is the repo.ProgressFunc.
func (pp *phaseProgress) report(phase string, done, total int64) {
	pp.mu.Lock()
	pp.phase, pp.done, pp.total = phase, done, total
	pp.mu.Unlock()
}

// stop erases the status line; nothing is shown after it.
func (pp *phaseProgress) stop() {
	if pp.t != nil {
		pp.t.Stop()
		pp.t = nil
	}
}

// phaseStatusJSON is a --json status line of check: restic has none
// for check, so the fields are cairn's, named as restic's status lines
// name theirs where they mean the same.
type phaseStatusJSON struct {
	MessageType      string  `json:"message_type"`
	Phase            string  `json:"phase"`
	Unit             string  `json:"unit"` // "bytes", or "items" (index files, packs...)
	Done             int64   `json:"done"`
	Total            int64   `json:"total"`
	PercentDone      float64 `json:"percent_done"`
	SecondsElapsed   uint64  `json:"seconds_elapsed"`
	SecondsRemaining uint64  `json:"seconds_remaining"`
}

func (pp *phaseProgress) tick() {
	pp.mu.Lock()
	phase, done, total := pp.phase, max(pp.done, 0), max(pp.total, 0)
	pp.mu.Unlock()
	if phase == "" {
		return
	}
	elapsed := time.Since(pp.start)
	if phase != pp.shown {
		pp.shown, pp.phaseStarted, pp.meter = phase, elapsed, rateMeter{}
	}
	rate, left := pp.meter.sample(elapsed-pp.phaseStarted, uint64(done), uint64(total))
	bytes := phase == repo.PhaseReadData
	if pp.jsonLines {
		unit := "items"
		if bytes {
			unit = "bytes"
		}
		pp.p.JSON(phaseStatusJSON{MessageType: "status", Phase: phase, Unit: unit, Done: done, Total: total,
			PercentDone: fraction(uint64(done), uint64(total)), SecondsElapsed: uint64(elapsed / time.Second), SecondsRemaining: secondsLeft(left)})
		return
	}
	line := statusText{elapsed: elapsed, phase: phase, percent: -1, eta: -1, rate: -1}
	if total > 0 {
		line.percent, line.eta = percent(uint64(done), uint64(total)), left
		if bytes {
			line.counts = []string{formatBytes(uint64(done)) + " / " + formatBytes(uint64(total))}
			line.rate = rate
		} else {
			line.counts = []string{fmt.Sprintf("%d / %d", done, total)}
			line.rate, line.rateUnit = rate, "items"
		}
	}
	pp.p.Status(line.String())
}

// mirrorProgress shows a mirror's copying to one destination: a status
// line on a terminal with files, bytes, percentage, rate and ETA, and
// --json status lines. Its report method is repo.MirrorOptions.Progress.
type mirrorProgress struct {
	p     *printer
	dest  string
	start time.Time
	t     *ticker

	mu sync.Mutex // guards st
	st repo.MirrorStats

	meter rateMeter // the ticker's goroutine only
}

func startMirrorProgress(p *printer, dest string) *mirrorProgress {
	m := &mirrorProgress{p: p, dest: dest, start: time.Now()}
	if p.progress() || p.json {
		m.t = startTicker(p, p.statusInterval(), m.tick)
	}
	return m
}

func (m *mirrorProgress) report(st repo.MirrorStats) {
	m.mu.Lock()
	m.st = st
	m.mu.Unlock()
}

func (m *mirrorProgress) stop() {
	if m.t != nil {
		m.t.Stop()
		m.t = nil
	}
}

// mirrorStatusJSON is a --json status line of mirror, named as restic's
// backup status lines are (restic has no mirror).
type mirrorStatusJSON struct {
	MessageType string `json:"message_type"`
	Destination string `json:"destination"`
	filesBytesStatusJSON
}

func (m *mirrorProgress) tick() {
	m.mu.Lock()
	st := m.st
	m.mu.Unlock()
	if st.FilesToCopy == 0 {
		return // still planning, or nothing to copy
	}
	elapsed := time.Since(m.start)
	files, bytes := uint64(max(st.FilesCopied, 0)), uint64(max(st.BytesCopied, 0))
	totalFiles, totalBytes := uint64(max(st.FilesToCopy, 0)), uint64(max(st.BytesToCopy, 0))
	rate, left := m.meter.sample(elapsed, bytes, totalBytes)
	if m.p.json {
		m.p.JSON(mirrorStatusJSON{MessageType: "status", Destination: m.dest,
			filesBytesStatusJSON: newFilesBytesStatus(elapsed, left, files, totalFiles, bytes, totalBytes)})
		return
	}
	m.p.Status(statusText{elapsed: elapsed, phase: m.dest, percent: percent(bytes, totalBytes), eta: left, rate: rate,
		counts: filesBytesCounts(files, totalFiles, bytes, totalBytes)}.String())
}
