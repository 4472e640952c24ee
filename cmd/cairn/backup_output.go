package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

// backupSummaryJSON is the last line of "backup --json": the summary the
// snapshot stores (snapshot.Summary: restic's field names), with the
// message type, the duration and the snapshot's ID.
type backupSummaryJSON struct {
	MessageType string `json:"message_type"`
	DryRun      bool   `json:"dry_run,omitempty"`
	snapshot.Summary
	// ErrorCount is printed even when zero, which the stored summary
	// leaves out; it shadows the embedded field.
	ErrorCount    uint64  `json:"error_count"`
	TotalDuration float64 `json:"total_duration"` // seconds
	SnapshotID    string  `json:"snapshot_id,omitempty"`
}

func printBackupSummary(p *printer, sn *snapshot.Snapshot, sum snapshot.Summary, dryRun bool) {
	dur := sum.BackupEnd.Sub(sum.BackupStart)
	if p.json {
		j := backupSummaryJSON{MessageType: "summary", DryRun: dryRun, Summary: sum,
			ErrorCount: sum.ErrorCount, TotalDuration: dur.Seconds()}
		if !dryRun && sn != nil { // nil: skipped, unchanged
			j.SnapshotID = sn.ID.String()
		}
		p.JSON(j)
		return
	}
	p.Printf("Files:  %6d new, %6d changed, %6d unmodified", sum.FilesNew, sum.FilesChanged, sum.FilesUnmodified)
	p.Printf("Dirs:   %6d new, %6d changed, %6d unmodified", sum.DirsNew, sum.DirsChanged, sum.DirsUnmodified)
	// restic's lines, each within 80 columns whatever the figures.
	if dryRun {
		p.Printf("Would add to the repository: %s", formatBytes(sum.DataAdded))
	} else {
		p.Printf("Added to the repository: %s (%s stored)", formatBytes(sum.DataAdded), formatBytes(sum.DataAddedPacked))
	}
	p.Verbosef("  %d data blobs, %d tree blobs", sum.DataBlobs, sum.TreeBlobs)
	p.Printf("processed %d files, %s in %s", sum.TotalFilesProcessed, formatBytes(sum.TotalBytesProcessed), formatDuration(dur))
	if dryRun {
		p.Printf("dry run: no snapshot saved")
	} else if sn == nil {
		p.Printf("skipped creating snapshot: nothing changed since the parent snapshot (--skip-if-unchanged)")
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
		return nil, fmt.Errorf("pattern file: %w", err)
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
		return nil, fmt.Errorf("pattern file %s: %w", name, err)
	}
	if read > maxPatternFileSize {
		return nil, fmt.Errorf("pattern file %s: larger than %d bytes", name, maxPatternFileSize)
	}
	return out, nil
}

// parseSize parses a byte count with an optional K, M, G or T suffix
// (binary units, "B" optional: 512, 10K, 1.5G, 2MiB).
func parseSize(s string) (int64, error) { return backend.ParseSize(s) }
