package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) pruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "delete data no snapshot uses",
		ArgsUsage: " ",
		Description: "Deletes the packs that hold only data no live snapshot uses, and repacks\n" +
			"partly used packs (copies their used data into new packs, then deletes them)\n" +
			"until at most --max-unused of the stored data is unused: repacking costs a\n" +
			"download and an upload of the used part, so a little waste is cheaper.\n" +
			"--max-unused 0% repacks every partly used pack, \"unlimited\" none.\n" +
			"As in restic: --max-repack-size SIZE repacks packs holding at most SIZE of\n" +
			"data in all (the rest waits for a later prune); --repack-cacheable-only\n" +
			"repacks only tree packs, keeping partly used data packs; --repack-small\n" +
			"also repacks fully used packs below 80% of the target pack size, when there\n" +
			"are ten or more of them.\n\n" +
			"Prune first makes a plan (which packs to delete, which to repack, which\n" +
			"index files to replace, what the snapshot log loses), then carries it out.\n" +
			"--dry-run prints the plan and changes nothing (--verbose lists every pack;\n" +
			"--json prints the plan, and after a real run what was done too).\n\n" +
			"Prune holds an exclusive lock: no backup can run meanwhile, so it never\n" +
			"deletes data a running backup may reference. It refuses to run when the\n" +
			"snapshot log shows problems or a live snapshot is damaged (run \"cairn check\"):\n" +
			"the set of live snapshots decides what is deleted. Killed at any moment, it\n" +
			"leaves a repository that works and that the next prune finishes cleaning.\n\n" +
			"A file an S3 bucket's object lock retains (not deletable yet) is kept: prune names it in a warning line\n" +
			"(\"kept\" in --json), keeps the packs a kept index file lists, deletes the\n" +
			"rest and exits 0; the next prune tries the kept files again.\n\n" +
			"Prune also writes a checkpoint of the snapshot log once it has grown long\n" +
			"and deletes the entries the checkpoint covers.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only print the plan: what would be done"},
			&cli.StringFlag{Name: "max-unused", Value: "5%", Usage: "leave at most `LIMIT` of unused data in partly used packs: a percentage, or \"unlimited\""},
			&cli.StringFlag{Name: "max-repack-size", Usage: "repack packs holding at most `SIZE` of data in all (e.g. 500M, 2G)"},
			&cli.BoolFlag{Name: "repack-cacheable-only", Usage: "repack only packs holding no file data (tree packs)"},
			&cli.BoolFlag{Name: "repack-small", Usage: "also repack packs below 80% of the target pack size"},
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

func (e *appEnv) runPrune(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	settings, err := parsePruneSettings(c)
	if err != nil {
		return err
	}
	dryRun := c.Bool("dry-run")
	return e.withRepo(c, dryRunLock(exclusiveLock, dryRun), func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		out, err := pruneWithLog(ctx, s, l, l.Snapshots(), dryRun, settings)
		if err != nil {
			return err
		}
		out.MessageType = "summary"
		if s.g.JSON {
			s.p.JSON(out)
			return nil
		}
		printPrune(s.p, out)
		return nil
	})
}

// pruneFlags are the flags forget --prune shares with prune.
func pruneFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "max-unused", Value: "5%", Usage: "with --prune: leave at most `LIMIT` of unused data in partly used packs: a percentage, or \"unlimited\""},
		&cli.StringFlag{Name: "max-repack-size", Usage: "with --prune: repack packs holding at most `SIZE` of data in all (e.g. 500M, 2G)"},
		&cli.BoolFlag{Name: "repack-cacheable-only", Usage: "with --prune: repack only packs holding no file data (tree packs)"},
		&cli.BoolFlag{Name: "repack-small", Usage: "with --prune: also repack packs below 80% of the target pack size"},
	}
}

// pruneSettingFlags are the flags of pruneFlags.
var pruneSettingFlags = []string{"max-unused", "max-repack-size", "repack-cacheable-only", "repack-small"}

// pruneSettings are what the prune flags ask for.
type pruneSettings struct {
	maxUnused float64
	repack    repo.RepackOptions
}

// parsePruneSettings reads the flags of pruneFlags.
func parsePruneSettings(c *cli.Context) (pruneSettings, error) {
	var ps pruneSettings
	var err error
	if ps.maxUnused, err = parseMaxUnused(c.String("max-unused")); err != nil {
		return ps, err
	}
	if s := c.String("max-repack-size"); s != "" {
		if ps.repack.MaxBytes, err = parseSize(s); err != nil || ps.repack.MaxBytes <= 0 {
			return ps, fmt.Errorf("--max-repack-size %q: want a size above 0, e.g. 500M or 2G", s)
		}
	}
	ps.repack.CacheableOnly = c.Bool("repack-cacheable-only")
	ps.repack.Small = c.Bool("repack-small")
	return ps, nil
}

// pruneJSON is the plan of a prune and, unless it was a dry run, what it
// did: "prune --json" prints it, and "forget --prune --json" prints it
// as its "prune" part.
type pruneJSON struct {
	MessageType string                `json:"message_type,omitempty"`
	DryRun      bool                  `json:"dry_run"`
	Plan        snapshot.PrunePlan    `json:"plan"`
	Done        *snapshot.PruneResult `json:"done,omitempty"`
}

// pruneWithLog prunes what the snapshots live leaves (those of l, or
// those a forget would leave) do not use, and compacts the log; in a dry
// run it only plans both. The caller holds the exclusive lock, except
// for a dry run.
func pruneWithLog(ctx context.Context, s *session, l *snapshot.Log, live []*snapshot.Snapshot, dryRun bool, ps pruneSettings) (pruneJSON, error) {
	out := pruneJSON{DryRun: dryRun}
	s.p.Printf("finding the data of %d snapshot(s)", len(live))
	pp := startPhaseProgress(s.p, false)
	defer pp.stop()
	progress := pp.report
	plan, err := snapshot.PlanPrune(ctx, s.repo, l, live, snapshot.PruneOptions{MaxUnused: ps.maxUnused, Repack: ps.repack, Progress: progress,
		Seen: seenReport(s, l), CompactLog: s.g.ConfigDir != "", Now: s.now()})
	if err != nil {
		return out, err
	}
	out.Plan = plan
	for _, id := range plan.DamagedPacks {
		s.p.Warnf("pack data/%s is in no index and its header does not read: left alone (run 'cairn check --read-data')", id)
	}
	for _, id := range plan.MissingPacks {
		s.p.Warnf("the index listed pack data/%s, which is missing: dropped from the index", id)
	}
	if dryRun {
		return out, nil
	}
	res, err := snapshot.ExecutePrune(ctx, s.repo, l, plan, s.device.Identity, s.now(), progress)
	out.Done = &res
	if res.Log != nil && (res.Log.WriteCheckpoint || len(res.Log.Remove) > 0) {
		rememberLog(s, l)
	}
	return out, err
}
