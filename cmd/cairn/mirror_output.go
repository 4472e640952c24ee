package main

import (
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
)

// mirrorSummaryJSON is one destination's summary line of "mirror --json".
type mirrorSummaryJSON struct {
	MessageType string `json:"message_type"`
	Destination string `json:"destination"`
	DryRun      bool   `json:"dry_run"`
	repo.MirrorStats
}

// mirrorPlanJSON is the plan of "mirror --dry-run --json" for one
// destination: one line, before its summary.
type mirrorPlanJSON struct {
	MessageType      string             `json:"message_type"`
	Destination      string             `json:"destination"`
	Prune            bool               `json:"prune"`
	SourceFiles      int                `json:"source_files"`
	SourceBytes      int64              `json:"source_bytes"`
	DestinationFiles int                `json:"destination_files"`
	DestinationBytes int64              `json:"destination_bytes"`
	FilesToCopy      int                `json:"files_to_copy"`
	BytesToCopy      int64              `json:"bytes_to_copy"`
	FilesSkipped     int                `json:"files_skipped"`
	BytesSkipped     int64              `json:"bytes_skipped"`
	FilesToRemove    int                `json:"files_to_remove"`
	BytesToRemove    int64              `json:"bytes_to_remove"`
	Copy             []mirrorCopyJSON   `json:"copy"`
	Remove           []mirrorRemoveJSON `json:"remove"`
	PruneSkipped     bool               `json:"prune_skipped"`
	Held             []string           `json:"held"`
	Junk             []mirrorJunkJSON   `json:"junk"`
	Missing          []string           `json:"missing"`
	Damaged          []string           `json:"damaged"`
	LostIndex        []string           `json:"lost_index"`
	LostPacks        []string           `json:"lost_packs"`
	Unindexed        int                `json:"unindexed_blobs"`
}

type mirrorCopyJSON struct {
	File            string   `json:"file"`
	Size            int64    `json:"size"`
	Replace         bool     `json:"replace,omitempty"`
	DestinationSize *int64   `json:"destination_size,omitempty"`
	After           []string `json:"after,omitempty"`
}

type mirrorRemoveJSON struct {
	File   string            `json:"file"`
	Size   int64             `json:"size"`
	Reason repo.RemoveReason `json:"reason"`
}

type mirrorJunkJSON struct {
	File   string `json:"file"`
	Side   string `json:"side"` // "source" or "destination"
	Reason string `json:"reason"`
}

// newMirrorPlanJSON turns a plan into its JSON line; lists are [] when
// empty.
func newMirrorPlanJSON(dest string, plan *repo.MirrorPlan) mirrorPlanJSON {
	st := plan.Stats()
	out := mirrorPlanJSON{MessageType: "plan", Destination: dest, Prune: plan.Prune,
		SourceFiles: plan.SourceFiles, SourceBytes: plan.SourceBytes, DestinationFiles: plan.DestFiles, DestinationBytes: plan.DestBytes,
		FilesToCopy: st.FilesToCopy, BytesToCopy: st.BytesToCopy, FilesSkipped: st.FilesSkipped, BytesSkipped: st.BytesSkipped,
		FilesToRemove: st.FilesRemoved, BytesToRemove: st.BytesRemoved, PruneSkipped: plan.PruneSkipped,
		Copy: []mirrorCopyJSON{}, Remove: []mirrorRemoveJSON{}, Junk: []mirrorJunkJSON{},
		Held: handlePaths(plan.Held), Missing: handlePaths(plan.Missing), Damaged: handlePaths(plan.Damaged),
		LostIndex: handlePaths(plan.LostIndex), LostPacks: handlePaths(plan.LostPacks), Unindexed: plan.Unindexed}
	for _, c := range plan.Copy {
		cj := mirrorCopyJSON{File: c.Handle.String(), Size: c.Size, Replace: c.Replace, After: c.After}
		if c.Replace {
			cj.DestinationSize = &c.DestSize
		}
		out.Copy = append(out.Copy, cj)
	}
	for _, r := range plan.Remove {
		out.Remove = append(out.Remove, mirrorRemoveJSON{File: r.Handle.String(), Size: r.Size, Reason: r.Reason})
	}
	for _, j := range plan.Junk {
		side := "destination"
		if j.AtSource {
			side = "source"
		}
		out.Junk = append(out.Junk, mirrorJunkJSON{File: j.Handle.String(), Side: side, Reason: j.Reason})
	}
	return out
}

func handlePaths(hs []backend.Handle) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.String())
	}
	return out
}

// mirrorPhaseNames name the files of each phase of a mirror's copies, in
// order, singular and plural.
var mirrorPhaseNames = [][2]string{{"pack", "packs"}, {"index file", "index files"}, {"key or config file", "key and config files"}, {"log entry", "log entries"}, {"meta record", "meta records"}}

// removeReasonText says in words why a mirror removes files, singular and
// plural.
var removeReasonText = map[repo.RemoveReason][2]string{
	repo.RemovePackPruned:    {"pack the source pruned", "packs the source pruned"},
	repo.RemoveIndexReplaced: {"index file the source replaced", "index files the source replaced"},
	repo.RemoveKeyRemoved:    {"key the source removed", "keys the source removed"},
	repo.RemoveLogCompacted:  {"log entry under the source's newest checkpoint", "log entries under the source's newest checkpoint"},
	repo.RemoveMetaReplaced:  {"meta record the source replaced", "meta records the source replaced"},
}

// count is "n thing", with the singular or plural of names.
func count(n int, names [2]string) string {
	if n == 1 {
		return "1 " + names[0]
	}
	return fmt.Sprintf("%d %s", n, names[1])
}

// printMirrorPlan prints what a mirror to dest would do: the JSON line
// with --json; in text the copies phase by phase, replacements, removals
// by reason, skipped and held files, and with --verbose every file in the
// order it would be copied or removed.
func printMirrorPlan(p *printer, dest string, plan *repo.MirrorPlan) {
	if p.json {
		p.JSON(newMirrorPlanJSON(dest, plan))
		return
	}
	p.Printf("%s: plan: the source holds %s (%s), the destination %d (%s)", dest, count(plan.SourceFiles, [2]string{"file", "files"}),
		formatBytes(uint64(plan.SourceBytes)), plan.DestFiles, formatBytes(uint64(plan.DestBytes)))
	var files [repo.MirrorPhaseMeta + 1]int
	var bytes [repo.MirrorPhaseMeta + 1]int64
	for _, c := range plan.Copy {
		ph := repo.MirrorPhase(c.Handle.Type)
		files[ph]++
		bytes[ph] += c.Size
	}
	for ph, name := range mirrorPhaseNames {
		if files[ph] == 0 {
			continue
		}
		how := ""
		if ph == repo.MirrorPhase(backend.LogFile) {
			how = ", one at a time, each after the entries it follows"
		}
		p.Printf("%s: would copy %s (%s)%s", dest, count(files[ph], name), formatBytes(uint64(bytes[ph])), how)
	}
	for _, c := range plan.Copy {
		switch {
		case c.Replace:
			p.Printf("%s: would replace %s: %d bytes there, %d at the source", dest, c.Handle, c.DestSize, c.Size)
		default:
			p.Verbosef("%s: copy %s (%s)", dest, c.Handle, formatBytes(uint64(c.Size)))
		}
	}
	printMirrorRemovals(p, dest, plan)
	for _, j := range plan.Junk {
		side := "the destination's"
		if j.AtSource {
			side = "the source's"
		}
		p.Printf("%s: would skip %s %s: not a log entry (%s)", dest, side, j.Handle, j.Reason)
	}
	if n := len(plan.Held); n > 0 {
		p.Printf("%s: would not copy %s: they follow entries of the source that cannot be copied", dest, count(n, mirrorPhaseNames[3]))
	}
}

// printMirrorRemovals prints the removals of a plan: counts by reason,
// and with --verbose each file; or that it removes nothing, and which
// index files the source lost.
func printMirrorRemovals(p *printer, dest string, plan *repo.MirrorPlan) {
	if plan.PruneSkipped {
		p.Printf("%s: would remove nothing: the source lacks or has damaged files (named below)", dest)
		for _, h := range plan.LostIndex {
			p.Printf("%s: would keep %s: the source lost it (it lists packs the source holds but no longer indexes, or blobs its snapshots need)", dest, h)
		}
		for _, h := range plan.LostPacks {
			p.Printf("%s: would keep %s: the source lost it with its index file, and its snapshots need it", dest, h)
		}
		if plan.Unindexed > 0 {
			p.Printf("%s: the source's snapshots need %d blob(s) its index does not list", dest, plan.Unindexed)
		}
		return
	}
	var reasons []repo.RemoveReason
	files := map[repo.RemoveReason]int{}
	bytes := map[repo.RemoveReason]int64{}
	for _, r := range plan.Remove {
		if files[r.Reason] == 0 {
			reasons = append(reasons, r.Reason)
		}
		files[r.Reason]++
		bytes[r.Reason] += r.Size
	}
	for _, why := range reasons {
		p.Printf("%s: would remove %s (%s)", dest, count(files[why], removeReasonText[why]), formatBytes(uint64(bytes[why])))
	}
	for _, r := range plan.Remove {
		p.Verbosef("%s: remove %s (%s): %s", dest, r.Handle, formatBytes(uint64(r.Size)), r.Reason)
	}
}

// printMirrorSummary prints what a mirror to dest did, or with dry would
// do: one JSON line with --json.
func printMirrorSummary(p *printer, dest string, dry, prune bool, st repo.MirrorStats) {
	if p.json {
		p.JSON(mirrorSummaryJSON{MessageType: "summary", Destination: dest, DryRun: dry, MirrorStats: st})
		return
	}
	verb := "copied"
	if dry {
		verb = "would copy"
		st.FilesCopied, st.BytesCopied = st.FilesToCopy, st.BytesToCopy
	}
	p.Printf("%s: %s %d files (%s), %d already there (%s)", dest, verb,
		st.FilesCopied, formatBytes(uint64(st.BytesCopied)), st.FilesSkipped, formatBytes(uint64(st.BytesSkipped)))
	if prune {
		removed := "removed"
		if dry {
			removed = "would remove"
		}
		p.Printf("%s: %s %d files (%s)", dest, removed, st.FilesRemoved, formatBytes(uint64(st.BytesRemoved)))
		if st.FilesKept > 0 {
			p.Printf("%s: kept %d files the destination does not let us delete (append-only)", dest, st.FilesKept)
		}
	}
	if st.FilesReplaced > 0 {
		p.Printf("%s: replaced %d file(s) whose size did not match their names", dest, st.FilesReplaced)
	}
	if st.TempFilesRemoved > 0 {
		p.Printf("%s: removed %d stale temporary file(s) (%s) left by interrupted uploads", dest,
			st.TempFilesRemoved, formatBytes(uint64(st.TempBytesRemoved)))
	}
}
