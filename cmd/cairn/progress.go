package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// ticker runs fn every interval until stopped, then once more. It is how
// both progress displays refresh.
type ticker struct {
	stop chan struct{}
	done sync.WaitGroup
}

func startTicker(interval time.Duration, fn func(final bool)) *ticker {
	t := &ticker{stop: make(chan struct{})}
	t.done.Go(func() {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-t.stop:
				fn(true)
				return
			case <-tk.C:
				fn(false)
			}
		}
	})
	return t
}

// Stop ends the ticker after its final call.
func (t *ticker) Stop() {
	close(t.stop)
	t.done.Wait()
}

// statusInterval is how often progress is shown: a terminal is redrawn
// often; JSON status lines to a log come once a minute.
func (p *printer) statusInterval() time.Duration {
	switch {
	case p.tty && !p.json:
		return time.Second / 5
	case p.tty:
		return time.Second
	}
	return time.Minute
}

// backupProgress implements archiver.Progress: a status line on a
// terminal, status messages with --json, item lines with --verbose. Its
// methods run on many goroutines; counters are atomic.
type backupProgress struct {
	p     *printer
	start time.Time
	// expectBytes estimates the total from the parent snapshot (0: none).
	expectBytes uint64

	files, bytes, errors atomic.Uint64
	mu                   sync.Mutex // guards current
	current              string
}

func (b *backupProgress) StartFile(path string) {
	b.mu.Lock()
	b.current = path
	b.mu.Unlock()
}

func (b *backupProgress) BytesRead(string, uint64) {}

func (b *backupProgress) CompleteItem(path string, n *snapshot.Node, st archiver.Status) {
	if n.Type == snapshot.NodeFile {
		b.files.Add(1)
		b.bytes.Add(n.Size)
	}
	if !b.p.verbose {
		return
	}
	if b.p.json {
		b.p.JSON(struct {
			MessageType string `json:"message_type"`
			Action      string `json:"action"`
			Item        string `json:"item"`
			Size        uint64 `json:"data_size"`
		}{"verbose_status", st.String(), path, n.Size})
		return
	}
	b.p.Printf("%-9s %s", st, path)
}

func (b *backupProgress) Error(string, error) {} // reported by Options.Error

func (b *backupProgress) Warn(path string, err error) {
	b.p.ItemWarn("archival", path, err)
}

// tick shows the current state; it runs on the ticker's goroutine.
func (b *backupProgress) tick(final bool) {
	elapsed := time.Since(b.start)
	files, bytes := b.files.Load(), b.bytes.Load()
	b.mu.Lock()
	current := b.current
	b.mu.Unlock()
	if b.p.json {
		if final {
			return // the summary follows
		}
		msg := backupStatusJSON{MessageType: "status", SecondsElapsed: uint64(elapsed.Seconds()), FilesDone: files, BytesDone: bytes, ErrorCount: b.errors.Load()}
		if b.expectBytes > 0 {
			msg.PercentDone = min(float64(bytes)/float64(b.expectBytes), 1)
		}
		if current != "" {
			msg.CurrentFiles = []string{current}
		}
		b.p.JSON(msg)
		return
	}
	if !b.p.progress() {
		return
	}
	if final {
		b.p.Status("")
		return
	}
	line := fmt.Sprintf("[%s] %d files %s", formatDuration(elapsed), files, formatBytes(bytes))
	if s := elapsed.Seconds(); s >= 1 {
		rate := float64(bytes) / s
		line += fmt.Sprintf(", %s/s", formatBytes(uint64(rate)))
		if b.expectBytes > bytes && rate > 0 {
			pct := 100 * float64(bytes) / float64(b.expectBytes)
			eta := time.Duration(float64(b.expectBytes-bytes) / rate * float64(time.Second))
			line = fmt.Sprintf("%s, %.1f%% ETA %s", line, pct, formatDuration(eta))
		}
	}
	b.p.Status(line + "  " + current)
}

// backupStatusJSON follows restic's backup status message.
type backupStatusJSON struct {
	MessageType    string   `json:"message_type"`
	SecondsElapsed uint64   `json:"seconds_elapsed"`
	PercentDone    float64  `json:"percent_done"`
	FilesDone      uint64   `json:"files_done"`
	BytesDone      uint64   `json:"bytes_done"`
	ErrorCount     uint64   `json:"error_count"`
	CurrentFiles   []string `json:"current_files,omitempty"`
}

// restoreProgress implements restorer.Progress on a terminal.
type restoreProgress struct {
	p                            *printer
	start                        time.Time
	planFiles, planBytes         atomic.Uint64
	doneFiles, doneBytes, errors atomic.Uint64
}

func (r *restoreProgress) Planned(files, bytes uint64) {
	r.planFiles.Add(files)
	r.planBytes.Add(bytes)
}

func (r *restoreProgress) Restored(n uint64) { r.doneBytes.Add(n) }

func (r *restoreProgress) FileDone(string) { r.doneFiles.Add(1) }

func (r *restoreProgress) tick(final bool) {
	if !r.p.progress() {
		return
	}
	if final {
		r.p.Status("")
		return
	}
	elapsed := time.Since(r.start)
	line := fmt.Sprintf("[%s] %d / %d files, %s / %s", formatDuration(elapsed),
		r.doneFiles.Load(), r.planFiles.Load(), formatBytes(r.doneBytes.Load()), formatBytes(r.planBytes.Load()))
	if n := r.errors.Load(); n > 0 {
		line += fmt.Sprintf(", %d errors", n)
	}
	r.p.Status(line)
}

// formatDuration prints h:mm:ss or m:ss.
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
