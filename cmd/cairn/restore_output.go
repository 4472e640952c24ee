package main

import (
	"time"

	"github.com/cairn-backup/cairn/snapshot/restorer"
)

// restoreSummaryJSON is the last line of "restore --json": restic's
// summary (bytes_skipped stays 0: what --overwrite leaves is counted in
// cairn's files_skipped; files_deleted is in Stats) and cairn's counts.
type restoreSummaryJSON struct {
	MessageType    string `json:"message_type"`
	SecondsElapsed uint64 `json:"seconds_elapsed"`
	TotalFiles     uint64 `json:"total_files"`
	TotalBytes     uint64 `json:"total_bytes"`
	BytesSkipped   uint64 `json:"bytes_skipped"`
	SnapshotID     string `json:"snapshot_id"`
	Target         string `json:"target"`
	DryRun         bool   `json:"dry_run,omitempty"`
	restorer.Stats
}

// restoreActionJSON is one line of "restore --json" for one path (with
// --dry-run or --verbose), restic's "verbose_status".
type restoreActionJSON struct {
	MessageType string `json:"message_type"`
	Action      string `json:"action"`
	Item        string `json:"item"`
	Size        uint64 `json:"size"`
}

// restoreReporter returns the restorer's Report: with --dry-run one line
// per path restored, replaced or deleted (and, with --verbose, per file
// unchanged or left), with --verbose in a real restore one line per path;
// silent otherwise.
func restoreReporter(p *printer, dryRun bool) func(restorer.Action, string, uint64) {
	if !dryRun && !p.verbose {
		return nil
	}
	return func(a restorer.Action, item string, size uint64) {
		if !p.verbose && (a == restorer.ActionUnchanged || a == restorer.ActionSkipped) {
			return
		}
		if p.json {
			p.JSON(restoreActionJSON{"verbose_status", a.String(), item, size})
			return
		}
		if size > 0 {
			p.Printf("%-9s %s with size %s", a, item, formatBytes(size))
		} else {
			p.Printf("%-9s %s", a, item)
		}
	}
}

// printRestoreSummary prints what a restore did, or would do.
func printRestoreSummary(s *session, sum restoreSummaryJSON, elapsed time.Duration, overwrite restorer.Overwrite) {
	if s.g.JSON {
		s.p.JSON(sum)
		return
	}
	st := sum.Stats
	verb := "restored"
	if sum.DryRun {
		verb = "would restore"
	}
	s.p.Printf("%s %d files (%s) in %s", verb, st.Files, formatBytes(st.Bytes), formatDuration(elapsed))
	s.p.Printf("and %d folders, %d symlinks, %d hardlinks, %d special files", st.Dirs, st.Symlinks, st.Hardlinks, st.Special)
	if st.Updated+st.Unchanged+st.Skipped+st.Deleted > 0 {
		s.p.Printf("in the target: %d files replaced, %d unchanged (metadata set), %d deleted; %d skipped (--overwrite %s, sockets)",
			st.Updated, st.Unchanged, st.Deleted, st.Skipped, overwrite)
	}
	if st.Verified > 0 {
		s.p.Printf("verified %d files", st.Verified)
	}
	if sum.DryRun {
		s.p.Printf("dry run: nothing was written")
	}
}
