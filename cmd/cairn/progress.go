package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// backupProgress implements archiver.Progress and receives the scanner's
// totals: a status line on a terminal, status messages with --json, item
// lines with --verbose. Its methods run on many goroutines.
type backupProgress struct {
	p     *printer
	start time.Time

	files, errors atomic.Uint64

	mu sync.Mutex // guards the fields below
	// bytes is the content of the files completed; reading holds the
	// bytes read so far of the files being read (at most one per
	// reader), so that a large file moves the display as it is read.
	bytes   uint64
	reading map[string]uint64
	current string // the file most recently started, while it is read
	// scan is the scanner's latest report; scanning says one runs
	// (no --no-scan).
	scan     archiver.ScanStats
	scanning bool

	meter rateMeter // the ticker's goroutine only
}

func newBackupProgress(p *printer, scan bool) *backupProgress {
	return &backupProgress{p: p, start: time.Now(), reading: map[string]uint64{}, scanning: scan}
}

// Scanned receives the scanner's running totals (BackupOptions.Scanned).
func (b *backupProgress) Scanned(s archiver.ScanStats) {
	b.mu.Lock()
	b.scan = s
	b.mu.Unlock()
}

func (b *backupProgress) StartFile(path string) {
	b.mu.Lock()
	b.reading[path] = 0
	b.current = path
	b.mu.Unlock()
}

func (b *backupProgress) BytesRead(path string, n uint64) {
	b.mu.Lock()
	if done, ok := b.reading[path]; ok {
		b.reading[path] = done + n
	}
	b.mu.Unlock()
}

// doneWith forgets a file that was being read.
func (b *backupProgress) doneWith(path string) {
	delete(b.reading, path)
	if b.current == path {
		b.current = ""
	}
}

func (b *backupProgress) CompleteItem(path string, n *snapshot.Node, st archiver.Status) {
	if n.Type == snapshot.NodeFile {
		b.files.Add(1)
		b.mu.Lock()
		b.doneWith(path)
		b.bytes += n.Size
		b.mu.Unlock()
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

// Error forgets the file; the error itself is reported by Options.Error.
func (b *backupProgress) Error(path string, _ error) {
	b.mu.Lock()
	b.doneWith(path)
	b.mu.Unlock()
}

func (b *backupProgress) Warn(path string, err error) {
	b.p.ItemWarn("archival", path, err)
}

// backupState is what one refresh shows.
type backupState struct {
	files, bytes uint64
	scan         archiver.ScanStats
	scanning     bool
	current      []string
	last         string
}

func (b *backupProgress) state() backupState {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := backupState{files: b.files.Load(), bytes: b.bytes, scan: b.scan, scanning: b.scanning, last: b.current}
	for path, n := range b.reading {
		st.bytes += n
		st.current = append(st.current, path)
	}
	slices.Sort(st.current)
	return st
}

// tick shows the current state; it runs on the ticker's goroutine.
func (b *backupProgress) tick() {
	elapsed := time.Since(b.start)
	st := b.state()
	rate, left := b.meter.sample(elapsed, st.bytes, st.scan.Bytes)
	if !st.scan.Done {
		left = -1 // the total is still growing
	}
	if b.p.json {
		msg := backupStatusJSON{MessageType: "status",
			filesBytesStatusJSON: newFilesBytesStatus(elapsed, left, st.files, st.scan.Files, st.bytes, st.scan.Bytes),
			ErrorCount:           b.errors.Load(), CurrentFiles: st.current, ScanFinished: st.scan.Done}
		if msg.CurrentFiles == nil {
			msg.CurrentFiles = []string{}
		}
		b.p.JSON(msg)
		return
	}
	if !b.p.progress() {
		return
	}
	line := statusText{elapsed: elapsed, percent: -1, eta: -1, rate: rate, errors: b.errors.Load(), item: st.last}
	switch {
	case st.scan.Done:
		line.percent, line.eta = percent(st.bytes, st.scan.Bytes), left
		line.counts = filesBytesCounts(st.files, st.scan.Files, st.bytes, st.scan.Bytes)
	case st.scanning:
		line.counts = []string{fmt.Sprintf("%d files %s", st.files, formatBytes(st.bytes)),
			fmt.Sprintf("scanned %d files %s", st.scan.Files, formatBytes(st.scan.Bytes))}
	default:
		line.counts = []string{fmt.Sprintf("%d files %s", st.files, formatBytes(st.bytes))}
	}
	b.p.Status(line.String())
}

// backupStatusJSON is restic's backup status message, every field
// always present; scan_finished is cairn's: the totals are final.
type backupStatusJSON struct {
	MessageType string `json:"message_type"`
	filesBytesStatusJSON
	ErrorCount   uint64   `json:"error_count"`
	CurrentFiles []string `json:"current_files"`
	ScanFinished bool     `json:"scan_finished"`
}

// filesBytesStatusJSON is the part of restic's backup status message
// that counts files and bytes; mirror's status lines share it.
type filesBytesStatusJSON struct {
	SecondsElapsed   uint64  `json:"seconds_elapsed"`
	SecondsRemaining uint64  `json:"seconds_remaining"`
	PercentDone      float64 `json:"percent_done"`
	TotalFiles       uint64  `json:"total_files"`
	FilesDone        uint64  `json:"files_done"`
	TotalBytes       uint64  `json:"total_bytes"`
	BytesDone        uint64  `json:"bytes_done"`
}

func newFilesBytesStatus(elapsed, left time.Duration, files, totalFiles, bytes, totalBytes uint64) filesBytesStatusJSON {
	return filesBytesStatusJSON{SecondsElapsed: uint64(elapsed / time.Second), SecondsRemaining: secondsLeft(left),
		PercentDone: fraction(bytes, totalBytes), TotalFiles: totalFiles, FilesDone: files, TotalBytes: totalBytes, BytesDone: bytes}
}

// restoreProgress implements restorer.Progress: a status line on a
// terminal, status messages with --json. Its methods run on many
// goroutines; counters are atomic.
type restoreProgress struct {
	p                            *printer
	start                        time.Time
	totalFiles, totalBytes       atomic.Uint64
	doneFiles, doneBytes, errors atomic.Uint64

	meter rateMeter // the ticker's goroutine only
}

func (r *restoreProgress) Totals(files, bytes uint64) {
	r.totalFiles.Store(files)
	r.totalBytes.Store(bytes)
}

func (r *restoreProgress) Restored(n uint64) { r.doneBytes.Add(n) }

func (r *restoreProgress) FileDone(string) { r.doneFiles.Add(1) }

// restoreStatusJSON is restic's restore status message, every field
// always present. files_deleted and bytes_skipped stay 0: cairn's
// restore deletes nothing and skips no content.
type restoreStatusJSON struct {
	MessageType    string  `json:"message_type"`
	SecondsElapsed uint64  `json:"seconds_elapsed"`
	PercentDone    float64 `json:"percent_done"`
	TotalFiles     uint64  `json:"total_files"`
	FilesRestored  uint64  `json:"files_restored"`
	FilesSkipped   uint64  `json:"files_skipped"`
	FilesDeleted   uint64  `json:"files_deleted"`
	TotalBytes     uint64  `json:"total_bytes"`
	BytesRestored  uint64  `json:"bytes_restored"`
	BytesSkipped   uint64  `json:"bytes_skipped"`
	// SecondsRemaining is cairn's.
	SecondsRemaining uint64 `json:"seconds_remaining"`
	ErrorCount       uint64 `json:"error_count"`
}

func (r *restoreProgress) tick() {
	elapsed := time.Since(r.start)
	files, bytes := r.doneFiles.Load(), r.doneBytes.Load()
	totalFiles, totalBytes := r.totalFiles.Load(), r.totalBytes.Load()
	rate, left := r.meter.sample(elapsed, bytes, totalBytes)
	if r.p.json {
		r.p.JSON(restoreStatusJSON{MessageType: "status", SecondsElapsed: uint64(elapsed / time.Second),
			PercentDone: fraction(bytes, totalBytes), TotalFiles: totalFiles, FilesRestored: files,
			TotalBytes: totalBytes, BytesRestored: bytes, SecondsRemaining: secondsLeft(left), ErrorCount: r.errors.Load()})
		return
	}
	if !r.p.progress() {
		return
	}
	r.p.Status(statusText{elapsed: elapsed, percent: percent(bytes, totalBytes), eta: left, rate: rate, errors: r.errors.Load(),
		counts: filesBytesCounts(files, totalFiles, bytes, totalBytes)}.String())
}

// filesBytesCounts is a status line's "3 / 10 files", "1.5 MiB / 20 MiB".
func filesBytesCounts(files, totalFiles, bytes, totalBytes uint64) []string {
	return []string{fmt.Sprintf("%d / %d files", files, totalFiles), formatBytes(bytes) + " / " + formatBytes(totalBytes)}
}

// formatDuration prints h:mm:ss or m:ss.
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
