package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// backupSummaryJSON is the last line of "backup --json", with restic's
// field names.
type backupSummaryJSON struct {
	MessageType         string    `json:"message_type"`
	DryRun              bool      `json:"dry_run,omitempty"`
	FilesNew            uint      `json:"files_new"`
	FilesChanged        uint      `json:"files_changed"`
	FilesUnmodified     uint      `json:"files_unmodified"`
	DirsNew             uint      `json:"dirs_new"`
	DirsChanged         uint      `json:"dirs_changed"`
	DirsUnmodified      uint      `json:"dirs_unmodified"`
	DataBlobs           int       `json:"data_blobs"`
	TreeBlobs           int       `json:"tree_blobs"`
	DataAdded           uint64    `json:"data_added"`
	TotalFilesProcessed uint      `json:"total_files_processed"`
	TotalBytesProcessed uint64    `json:"total_bytes_processed"`
	TotalDuration       float64   `json:"total_duration"` // seconds
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	ErrorCount          uint      `json:"error_count"`
	SnapshotID          string    `json:"snapshot_id,omitempty"`
}

func printBackupSummary(p *printer, sn *snapshot.Snapshot, sum archiver.Summary, dryRun bool) {
	dur := sum.BackupEnd.Sub(sum.BackupStart)
	if p.json {
		j := backupSummaryJSON{
			MessageType: "summary", DryRun: dryRun,
			FilesNew: sum.FilesNew, FilesChanged: sum.FilesChanged, FilesUnmodified: sum.FilesUnmodified,
			DirsNew: sum.DirsNew, DirsChanged: sum.DirsChanged, DirsUnmodified: sum.DirsUnmodified,
			DataBlobs: sum.DataBlobs, TreeBlobs: sum.TreeBlobs, DataAdded: sum.DataAdded,
			TotalFilesProcessed: sum.TotalFilesProcessed, TotalBytesProcessed: sum.TotalBytesProcessed,
			TotalDuration: dur.Seconds(), BackupStart: sum.BackupStart, BackupEnd: sum.BackupEnd,
			ErrorCount: sum.Errors,
		}
		if !dryRun {
			j.SnapshotID = sn.ID.String()
		}
		p.JSON(j)
		return
	}
	p.Printf("Files:  %6d new, %6d changed, %6d unmodified", sum.FilesNew, sum.FilesChanged, sum.FilesUnmodified)
	p.Printf("Dirs:   %6d new, %6d changed, %6d unmodified", sum.DirsNew, sum.DirsChanged, sum.DirsUnmodified)
	verb := "Added to the repository"
	if dryRun {
		verb = "Would add to the repository"
	}
	p.Printf("%s: %s (%d data blobs, %d tree blobs)", verb, formatBytes(sum.DataAdded), sum.DataBlobs, sum.TreeBlobs)
	p.Printf("processed %d files, %s in %s", sum.TotalFilesProcessed, formatBytes(sum.TotalBytesProcessed), formatDuration(dur))
	if dryRun {
		p.Printf("dry run: no snapshot saved")
	} else {
		p.Printf("snapshot %s saved", sn.ID.Str())
	}
}

// maxPatternFileSize caps an exclude file.
const maxPatternFileSize = 16 << 20

// readPatternFile reads patterns one a line, skipping empty lines and
// "#" comments; surrounding white space is removed.
func readPatternFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("exclude file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(io.LimitReader(f, maxPatternFileSize+1))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	read := 0
	for sc.Scan() {
		read += len(sc.Bytes()) + 1
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("exclude file %s: %w", name, err)
	}
	if read > maxPatternFileSize {
		return nil, fmt.Errorf("exclude file %s: larger than %d bytes", name, maxPatternFileSize)
	}
	return out, nil
}

// parseSize parses a byte count with an optional K, M, G or T suffix
// (binary units, "B" optional: 512, 10K, 1.5G, 2MiB).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := float64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = float64(int64(1) << (10 * (i + 1)))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.Trim(t, "0123456789.") != "" || v*mult >= 1<<62 {
		return 0, errors.New("invalid size " + strconv.Quote(s) + " (want e.g. 500K, 10M, 2G)")
	}
	return int64(v * mult), nil
}
