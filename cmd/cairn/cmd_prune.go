package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

// logCheckpointAfter is how many log entries prune lets accumulate after
// the newest checkpoint before it writes another: with hourly backups,
// about once a week, so the log a client reads stays small.
const logCheckpointAfter = 200

// logRetention is how long prune keeps the entries a checkpoint covers: it
// deletes those under the newest checkpoint at least this old. A copy
// mirrored within that time still holds part of the log the source keeps,
// which is how mirror tells the source's own older history from entries
// someone else wrote (repo.Mirror refuses the latter as diverged); delete
// the entries sooner and every copy that lags behind looks diverged.
const logRetention = 7 * 24 * time.Hour

func (e *appEnv) pruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "delete data no snapshot uses",
		ArgsUsage: " ",
		Description: "Deletes the packs that hold only data no live snapshot uses, and repacks\n" +
			"partly used packs (copies their used data into new packs, then deletes them)\n" +
			"until at most --max-unused of the stored data is unused: repacking costs a\n" +
			"download and an upload of the used part, so a little waste is cheaper.\n" +
			"--max-unused 0% repacks every partly used pack, \"unlimited\" none.\n\n" +
			"Prune holds an exclusive lock: no backup can run meanwhile, so it never\n" +
			"deletes data a running backup may reference. It refuses to run when the\n" +
			"snapshot log shows problems or a live snapshot is damaged (run \"cairn check\"):\n" +
			"the set of live snapshots decides what is deleted. Killed at any moment, it\n" +
			"leaves a repository that works and that the next prune finishes cleaning.\n\n" +
			"Prune also writes a checkpoint of the snapshot log once it has grown long\n" +
			"and deletes the entries the checkpoint covers.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only report what would be done"},
			&cli.StringFlag{Name: "max-unused", Value: "5%", Usage: "leave at most `LIMIT` of unused data in partly used packs: a percentage, or \"unlimited\""},
		},
		Action: e.runPrune,
	}
}

// parseMaxUnused reads --max-unused as repo.PruneOptions.MaxUnused wants
// it.
func parseMaxUnused(s string) (float64, error) {
	if s == "unlimited" {
		return 100, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
		return 0, fmt.Errorf("--max-unused %q: want a percentage from 0%% to 100%%, or \"unlimited\"", s)
	}
	if v == 0 {
		return -1, nil // repo's zero means the default; negative means none
	}
	return v, nil
}

// pruneSummaryJSON is the output of "prune --json".
type pruneSummaryJSON struct {
	MessageType string `json:"message_type"`
	repo.PruneStats
	LogEntriesRemoved int `json:"log_entries_removed"`
}

func (e *appEnv) runPrune(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	maxUnused, err := parseMaxUnused(c.String("max-unused"))
	if err != nil {
		return err
	}
	dryRun := c.Bool("dry-run")
	return e.withRepo(c, dryRunLock(exclusiveLock, dryRun), func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		return pruneWithLog(ctx, s, l, dryRun, maxUnused)
	})
}

// pruneFlags are the flags forget --prune shares with prune.
func pruneFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "max-unused", Value: "5%", Usage: "with --prune: leave at most `LIMIT` of unused data in partly used packs: a percentage, or \"unlimited\""},
	}
}

// pruneWithLog prunes what the live snapshots of l do not use; the caller
// holds an exclusive lock.
func pruneWithLog(ctx context.Context, s *session, l *snapshot.Log, dryRun bool, maxUnused float64) error {
	{
		rep := seenReport(s, l)
		if len(l.Problems) > 0 || len(rep.Problems) > 0 {
			return errors.New("prune: refusing to run: the snapshot log shows problems (see the warnings above), so the set of live snapshots cannot be trusted to decide what to delete; run 'cairn check'")
		}
		if rep.Behind != "" {
			// Its newer snapshots' data may be here already (a mirror
			// copies data before the log): pruning would delete it.
			return errors.New("prune: refusing to run: this copy's snapshot log is behind what this device has seen elsewhere, so snapshots it does not list yet may use data it holds; mirror to it first, or prune the repository it is mirrored from")
		}
		s.p.Printf("finding the data of %d snapshot(s)", len(l.Snapshots()))
		used, err := snapshot.UsedBlobs(ctx, s.repo, l.Snapshots())
		if err != nil {
			return err
		}
		st, err := s.repo.Prune(ctx, used, repo.PruneOptions{DryRun: dryRun, MaxUnused: maxUnused, Progress: maintProgress(s.p)})
		if err != nil {
			return err
		}
		for _, id := range st.DamagedPacks {
			s.p.Warnf("pack data/%s is in no index and its header does not read: left alone (run 'cairn check --read-data')", id)
		}
		for _, id := range st.MissingPacks {
			s.p.Warnf("the index listed pack data/%s, which is missing: dropped from the index", id)
		}
		removed, checkpoint := 0, false
		if !dryRun && s.g.ConfigDir != "" {
			if checkpoint, removed, err = compactLog(ctx, s, l); err != nil {
				return err
			}
			if checkpoint || removed > 0 {
				rememberLog(s, l)
			}
		}
		if s.g.JSON {
			s.p.JSON(pruneSummaryJSON{"summary", st, removed})
			return nil
		}
		printPruneStats(s.p, st)
		if st.TempFilesRemoved > 0 {
			s.p.Printf("removed %d stale temporary file(s) (%s) left by interrupted uploads",
				st.TempFilesRemoved, formatBytes(uint64(st.TempBytesRemoved)))
		}
		if checkpoint {
			s.p.Printf("snapshot log: wrote a checkpoint")
		}
		if removed > 0 {
			s.p.Printf("snapshot log: removed %d entries covered by a checkpoint over %s old", removed, logRetention)
		}
		return nil
	}
}

// compactLog writes a checkpoint once more than logCheckpointAfter
// entries follow the newest one, and deletes the entries under the newest
// checkpoint older than logRetention.
func compactLog(ctx context.Context, s *session, l *snapshot.Log) (checkpoint bool, removed int, err error) {
	var since int
	cp := l.Checkpoint()
	for _, e := range l.Entries {
		if cp == nil || e.Seq > cp.Seq {
			since++
		}
	}
	if since > logCheckpointAfter {
		ident, err := s.device.Identity()
		if err != nil {
			return false, 0, err
		}
		if _, err := l.WriteCheckpoint(ctx, s.repo, ident, s.now()); err != nil {
			return false, 0, err
		}
		checkpoint = true
	}
	removed, err = l.PruneCoveredBefore(ctx, s.repo, s.now().Add(-logRetention))
	return checkpoint, removed, err
}

func printPruneStats(p *printer, st repo.PruneStats) {
	p.Printf("repository: %d packs (%s)", st.Packs, formatBytes(uint64(st.PackBytes)))
	if st.UnindexedPacks > 0 {
		p.Printf("            %d of them in no index (left by an interrupted run)", st.UnindexedPacks)
	}
	p.Printf("used:       %d blobs, %s", st.UsedBlobs, formatBytes(uint64(st.UsedBytes)))
	p.Printf("unused:     %d blobs, %s", st.UnusedBlobs, formatBytes(uint64(st.UnusedBytes)))
	if st.DuplicateBlobs > 0 {
		p.Printf("duplicates: %d blobs, %s", st.DuplicateBlobs, formatBytes(uint64(st.DuplicateBytes)))
	}
	if st.NothingToDo {
		p.Printf("nothing to prune")
		return
	}
	what := fmt.Sprintf("%d pack(s) holding only unused data", st.UnusedPacks)
	repack := fmt.Sprintf("%d pack(s) (%d blobs, %s of used data)", st.RepackPacks, st.RepackBlobs, formatBytes(uint64(st.RepackBytes)))
	if st.DryRun {
		p.Printf("would remove %s and repack %s", what, repack)
	} else {
		p.Printf("removed %s; repacked %s", what, repack)
	}
	share := 0.0
	if kept := st.UsedBytes + st.UnusedAfter; kept > 0 {
		share = 100 * float64(st.UnusedAfter) / float64(kept)
	}
	p.Printf("unused data left in kept packs: %s (%.1f%%)", formatBytes(uint64(st.UnusedAfter)), share)
	freed := formatBytes(uint64(max(st.FreedBytes, 0)))
	if st.DryRun {
		p.Printf("would free about %s", freed)
		return
	}
	p.Printf("deleted %d pack(s), wrote %d new pack(s), %d index file(s) (replacing %d): freed %s",
		st.DeletedPacks, st.NewPacks, st.IndexWritten, st.IndexRemoved, freed)
}
