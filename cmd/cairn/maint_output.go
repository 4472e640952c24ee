package main

import (
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// printPrune prints a prune's plan, and what was done unless it was a dry
// run; --verbose lists every pack deleted or repacked and every index
// file replaced.
func printPrune(p *printer, out pruneJSON) {
	plan := out.Plan.PrunePlan
	unindexed := ""
	if plan.UnindexedPacks > 0 {
		unindexed = fmt.Sprintf(", %d of them in no index (left by an interrupted run)", plan.UnindexedPacks)
	}
	p.Printf("repository: %d packs (%s)%s", plan.Packs, formatBytes(uint64(plan.PackBytes)), unindexed)
	p.Printf("used:       %d blobs, %s", plan.UsedBlobs, formatBytes(uint64(plan.UsedBytes)))
	p.Printf("unused:     %d blobs, %s", plan.UnusedBlobs, formatBytes(uint64(plan.UnusedBytes)))
	if plan.DuplicateBlobs > 0 {
		p.Printf("duplicates: %d blobs, %s", plan.DuplicateBlobs, formatBytes(uint64(plan.DuplicateBytes)))
	}
	if plan.NothingToDo {
		p.Printf("nothing to prune")
	} else {
		printPrunePlan(p, plan, out.DryRun)
	}
	if out.DryRun {
		printCompaction(p, out.Plan.Log, true)
		if !plan.NothingToDo {
			p.Printf("would free about %s", formatBytes(uint64(max(plan.FreedBytes, 0))))
		}
		return
	}
	res := out.Done.PruneResult
	if !plan.NothingToDo {
		p.Printf("deleted %d pack(s), wrote %d new pack(s), %d index file(s) (replacing %d): freed %s",
			res.DeletedPacks, res.NewPacks, res.IndexWritten, res.IndexRemoved, formatBytes(uint64(max(res.FreedBytes, 0))))
	}
	for _, k := range res.Kept {
		p.Warnf("%s: the location refuses to delete it yet (append-only, or retained by object lock): kept; the next prune tries again", k)
	}
	if res.TempFilesRemoved > 0 {
		p.Printf("removed %d stale temporary file(s) (%s) left by interrupted uploads",
			res.TempFilesRemoved, formatBytes(uint64(res.TempBytesRemoved)))
	}
	printCompaction(p, out.Done.Log, false)
}

// printPrunePlan prints what a prune deletes, repacks, keeps and
// rewrites in the index.
func printPrunePlan(p *printer, plan repo.PrunePlan, dryRun bool) {
	var deleted int64
	for _, pk := range plan.Delete {
		deleted += pk.Size
	}
	what := fmt.Sprintf("%d pack(s) holding only unused data (%s)", len(plan.Delete), formatBytes(uint64(deleted)))
	repack := fmt.Sprintf("%d pack(s) (%d blobs, %s of used data)", len(plan.Repack), plan.RepackBlobs, formatBytes(uint64(plan.RepackBytes)))
	switch {
	case len(plan.Delete)+len(plan.Repack) == 0:
	case dryRun:
		p.Printf("would remove %s and repack %s", what, repack)
	default:
		p.Printf("removed %s; repacked %s", what, repack)
	}
	for _, pk := range plan.Delete {
		p.Verbosef("  remove data/%s (%s): only unused data", pk.ID, formatBytes(uint64(pk.Size)))
	}
	for _, pk := range plan.Repack {
		p.Verbosef("  repack data/%s (%s): copy %d blobs (%s), drop %s unused", pk.ID, formatBytes(uint64(pk.Size)),
			pk.UsedBlobs, formatBytes(uint64(pk.UsedBytes)), formatBytes(uint64(pk.UnusedBytes+pk.DuplicateBytes)))
	}
	k := plan.Kept
	kept := fmt.Sprintf("%d pack(s): %d fully used, %d within --max-unused %g%%", k.FullyUsed+k.WithinLimit+k.Damaged+k.OverRepackLimit+k.NotCacheable,
		k.FullyUsed, k.WithinLimit, plan.MaxUnused)
	if k.OverRepackLimit > 0 {
		kept += fmt.Sprintf(", %d over --max-repack-size %s", k.OverRepackLimit, formatBytes(uint64(plan.RepackOptions.MaxBytes)))
	}
	if k.NotCacheable > 0 {
		kept += fmt.Sprintf(", %d data pack(s) left by --repack-cacheable-only", k.NotCacheable)
	}
	if k.Damaged > 0 {
		kept += fmt.Sprintf(", %d damaged (left alone)", k.Damaged)
	}
	p.Printf("%s %s", verb(dryRun, "would keep", "kept"), kept)
	share := 0.0
	if all := plan.UsedBytes + plan.UnusedAfter; all > 0 {
		share = 100 * float64(plan.UnusedAfter) / float64(all)
	}
	p.Printf("unused data left in kept packs: %s (%.1f%%)", formatBytes(uint64(plan.UnusedAfter)), share)
	if n := len(plan.Index.Replace); n > 0 || plan.Index.Packs > 0 || len(plan.Repack) > 0 {
		repacked := ""
		if len(plan.Repack) > 0 {
			repacked = " and the new packs"
		}
		p.Printf("index: %s %d file(s) by new ones listing %d pack(s) (%d blobs)%s", verb(dryRun, "would replace", "replaced"),
			n, plan.Index.Packs, plan.Index.Blobs, repacked)
	}
	for _, id := range plan.Index.Replace {
		p.Verbosef("  replace index/%s", id)
	}
	for _, id := range plan.MissingPacks {
		p.Verbosef("  drop the missing pack data/%s from the index", id)
	}
}

// printCompaction prints what the snapshot log's compaction does, or
// would do.
func printCompaction(p *printer, c *snapshot.LogCompaction, dryRun bool) {
	if c == nil {
		return
	}
	if c.WriteCheckpoint {
		if dryRun {
			p.Printf("snapshot log: would write a checkpoint (%d entries since the last)", c.EntriesSinceCheckpoint)
		} else {
			p.Printf("snapshot log: wrote a checkpoint")
		}
	}
	if n := len(c.Remove); n > 0 {
		p.Printf("snapshot log: %s %d entries covered by a checkpoint over %s old", verb(dryRun, "would remove", "removed"), n, snapshot.LogRetention)
	}
}

// verb picks the words for a dry run or for what was done.
func verb(dryRun bool, would, did string) string {
	if dryRun {
		return would
	}
	return did
}

// printRepairIndex prints the plan of "repair index" and, unless it was a
// dry run, what it did.
func printRepairIndex(p *printer, plan repo.RepairIndexPlan, res *repo.RepairIndexResult) {
	for _, id := range plan.Dropped {
		p.Verbosef("  no longer index data/%s (missing or damaged)", id)
	}
	for _, id := range plan.Replace {
		p.Verbosef("  replace index/%s", id)
	}
	if res == nil {
		p.Printf("would index %d blobs in %d pack(s) (%d not indexed now, %d no longer indexed); would write %d index file(s), remove %d",
			plan.Blobs, plan.Packs, plan.Added, len(plan.Dropped), plan.IndexFiles, len(plan.Replace))
	} else {
		p.Printf("indexed %d blobs in %d pack(s); wrote %d index file(s), removed %d", plan.Blobs, plan.Packs, res.IndexWritten, res.IndexRemoved)
	}
	if len(plan.Damaged) > 0 {
		p.Printf("%d pack(s) could not be read and %s no longer indexed: run 'cairn repair snapshots'", len(plan.Damaged), verb(res == nil, "would be", "are"))
	}
}

// printRepairPacks prints the plan of "repair packs" and, unless it was
// a dry run, what it fetched.
func printRepairPacks(p *printer, from string, plan repo.RepairPacksPlan, res *repo.RepairPacksResult) {
	if res == nil {
		for _, f := range plan.Files {
			if f.Available {
				p.Printf("%s: %s; %s has it (%s)", f.File, f.Problem, from, formatBytes(uint64(f.Size)))
			} else {
				p.Printf("%s: %s; cannot be fetched: %s", f.File, f.Problem, f.Error)
			}
		}
		p.Printf("read %d packs (%s); %d file(s) lost or damaged, %d available from the copy", plan.PacksRead, formatBytes(uint64(plan.BytesRead)),
			len(plan.Files), len(plan.Files)-plan.Unavailable())
		return
	}
	for _, f := range res.Files {
		if f.Fetched {
			p.Printf("%s: %s; fetched from %s", f.File, f.Problem, from)
		} else {
			p.Printf("%s: %s; cannot be fetched: %s", f.File, f.Problem, f.Error)
		}
	}
	p.Printf("read %d packs (%s); %d file(s) lost or damaged, %d fetched", plan.PacksRead, formatBytes(uint64(plan.BytesRead)),
		len(res.Files), len(res.Files)-res.Unrecovered())
}

// printForget prints which snapshots a forget retires and why, as
// restic's forget does: per group, the snapshots kept with the rules
// that keep them, then those removed.
func printForget(p *printer, plan forgetPlanOut) {
	for _, sn := range plan.AlreadyForgotten {
		p.Printf("snapshot %s is already forgotten", sn.ID.Str())
	}
	if !plan.ByPolicy {
		if len(plan.Named) > 0 {
			p.Printf("remove %d snapshots:", len(plan.Named))
			for _, sn := range plan.Named {
				p.Printf("  %s  %s", sn.ID.Str(), sn.Time.Local().Format("2006-01-02 15:04:05"))
			}
		}
		return
	}
	p.Printf("Applying policy: %s", plan.policy)
	for _, g := range plan.Groups {
		if k := g.Key.String(); k != "" {
			p.Printf("snapshots for %s:", k)
		}
		p.Printf("keep %d snapshots:", len(g.Keep))
		for _, r := range g.Reasons {
			p.Printf("  %s  %s  %s", r.Snapshot.ID.Str(), r.Snapshot.Time.Local().Format("2006-01-02 15:04:05"), strings.Join(r.Matches, ", "))
		}
		if len(g.Remove) > 0 {
			p.Printf("remove %d snapshots:", len(g.Remove))
			for _, sn := range g.Remove {
				p.Printf("  %s  %s", sn.ID.Str(), sn.Time.Local().Format("2006-01-02 15:04:05"))
			}
		}
		p.Printf("")
	}
}
