package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/policy"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) forgetCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "keep-last", Aliases: []string{"l"}, Usage: "keep the last `N` snapshots (N or \"unlimited\")"},
		&cli.StringFlag{Name: "keep-hourly", Aliases: []string{"H"}, Usage: "keep the last `N` hourly snapshots"},
		&cli.StringFlag{Name: "keep-daily", Aliases: []string{"d"}, Usage: "keep the last `N` daily snapshots"},
		&cli.StringFlag{Name: "keep-weekly", Aliases: []string{"w"}, Usage: "keep the last `N` weekly snapshots"},
		&cli.StringFlag{Name: "keep-monthly", Aliases: []string{"m"}, Usage: "keep the last `N` monthly snapshots"},
		&cli.StringFlag{Name: "keep-yearly", Aliases: []string{"y"}, Usage: "keep the last `N` yearly snapshots"},
		&cli.StringFlag{Name: "keep-within", Usage: "keep snapshots newer than `DURATION` (e.g. 1y5m7d2h) before the latest snapshot"},
		&cli.StringFlag{Name: "keep-within-hourly", Usage: "keep hourly snapshots within `DURATION` of the latest snapshot"},
		&cli.StringFlag{Name: "keep-within-daily", Usage: "keep daily snapshots within `DURATION` of the latest snapshot"},
		&cli.StringFlag{Name: "keep-within-weekly", Usage: "keep weekly snapshots within `DURATION` of the latest snapshot"},
		&cli.StringFlag{Name: "keep-within-monthly", Usage: "keep monthly snapshots within `DURATION` of the latest snapshot"},
		&cli.StringFlag{Name: "keep-within-yearly", Usage: "keep yearly snapshots within `DURATION` of the latest snapshot"},
		&cli.StringSliceFlag{Name: "keep-tag", Usage: "keep snapshots with `TAG[,TAG...]` (repeatable)"},
		&cli.StringFlag{Name: "group-by", Value: "host,paths", Usage: "apply the policy per group of `host,paths,tags` (any subset; \"\" for one group)"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only print the plan: what would be forgotten (and, with --prune, pruned)"},
		&cli.BoolFlag{Name: "prune", Usage: "run prune afterwards to free the space"},
	}
	flags = append(flags, filterFlags()...)
	flags = append(flags, pruneFlags()...)
	return &cli.Command{
		Name:      "forget",
		Usage:     "forget snapshots by ID or by a retention policy",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Records in the snapshot log that snapshots are no longer kept: the ones named, or the\n" +
			"ones a policy does not keep. Policies follow restic's: within each group (default: host and\n" +
			"paths), --keep-daily 7 keeps the newest snapshot of each of the last 7 days that have one, and\n" +
			"so on; a snapshot kept by any rule stays. Durations count back from the group's latest\n" +
			"snapshot. The data stays in the repository until prune (or --prune) removes it. With\n" +
			"--prune, prune runs even when there is nothing to forget, so a run that was killed\n" +
			"during its prune is finished by the next. --dry-run prints the plan (which snapshots\n" +
			"go, and why the others stay; with --prune, the prune's plan for the snapshots left)\n" +
			"and changes nothing. --json prints one document, restic's array of groups; with\n" +
			"--prune the last group also holds \"prune\": the prune's plan and outcome.",
		Flags:  flags,
		Action: e.runForget,
	}
}

func policyFrom(c *cli.Context) (policy.Policy, error) {
	var p policy.Policy
	counts := []struct {
		flag string
		dst  *int
	}{{"keep-last", &p.Last}, {"keep-hourly", &p.Hourly}, {"keep-daily", &p.Daily}, {"keep-weekly", &p.Weekly}, {"keep-monthly", &p.Monthly}, {"keep-yearly", &p.Yearly}}
	for _, cf := range counts {
		if !c.IsSet(cf.flag) {
			continue
		}
		n, err := policy.ParseCount(c.String(cf.flag))
		if err != nil {
			return p, fmt.Errorf("--%s: %w", cf.flag, err)
		}
		*cf.dst = n
	}
	durs := []struct {
		flag string
		dst  *policy.Duration
	}{{"keep-within", &p.Within}, {"keep-within-hourly", &p.WithinHourly}, {"keep-within-daily", &p.WithinDaily}, {"keep-within-weekly", &p.WithinWeekly}, {"keep-within-monthly", &p.WithinMonthly}, {"keep-within-yearly", &p.WithinYearly}}
	for _, df := range durs {
		if !c.IsSet(df.flag) {
			continue
		}
		d, err := policy.ParseDuration(c.String(df.flag))
		if err != nil {
			return p, fmt.Errorf("--%s: %w", df.flag, err)
		}
		*df.dst = d
	}
	for _, t := range c.StringSlice("keep-tag") {
		var entry []string
		for _, tag := range strings.Split(t, ",") {
			if tag = strings.TrimSpace(tag); tag != "" {
				entry = append(entry, tag)
			}
		}
		p.Tags = append(p.Tags, entry)
	}
	return p, p.Validate()
}

// forgetGroupJSON is one group of forget --json, in restic's shape.
type forgetGroupJSON struct {
	Tags    []string       `json:"tags"`
	Host    string         `json:"host"`
	Paths   []string       `json:"paths"`
	Keep    []snapshotJSON `json:"keep"`
	Remove  []snapshotJSON `json:"remove"`
	Reasons []reasonJSON   `json:"reasons"`
	// Prune is cairn's: with --prune, the last group carries the prune's
	// plan and outcome, so that the output stays restic's one array.
	Prune *pruneJSON `json:"prune,omitempty"`
}

type reasonJSON struct {
	Snapshot snapshotJSON    `json:"snapshot"`
	Matches  []string        `json:"matches"`
	Counters policy.Counters `json:"counters"`
}

// forgetPlanOut is a forget's plan with the policy it applied, for
// printing.
type forgetPlanOut struct {
	policy.ForgetPlan
	policy policy.Policy
}

func (e *appEnv) runForget(c *cli.Context) error {
	p, err := policyFrom(c)
	if err != nil {
		return err
	}
	by, err := policy.ParseGroupBy(c.String("group-by"))
	if err != nil {
		return err
	}
	req := policy.ForgetRequest{IDs: c.Args().Slice(), Policy: p, GroupBy: by, Filter: filterFrom(c)}
	if err := req.Validate(); err != nil {
		return err
	}
	dryRun, prune := c.Bool("dry-run"), c.Bool("prune")
	settings, err := parsePruneSettings(c)
	if err != nil {
		return err
	}
	for _, name := range pruneSettingFlags {
		if c.IsSet(name) && !prune {
			return fmt.Errorf("--%s works only with --prune", name)
		}
	}
	return e.withRepo(c, dryRunLock(exclusiveLock, dryRun), func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		plan, err := policy.PlanForget(l, req, e.now())
		if err != nil {
			return err
		}
		if !s.g.JSON {
			printForget(s.p, forgetPlanOut{plan, p})
		}
		live := plan.Left(l.Snapshots())
		if remove := plan.Remove(); dryRun {
			s.p.Printf("would forget %d snapshots (dry run)", len(remove))
		} else if len(remove) > 0 {
			ident, err := s.device.Identity()
			if err != nil {
				return err
			}
			if _, err := l.Forget(ctx, s.repo, ident, remove, e.now()); err != nil {
				return err
			}
			rememberLog(s, l)
			live = l.Snapshots()
			s.p.Printf("forgot %d snapshots", len(remove))
		}
		if !prune {
			if s.g.JSON {
				s.p.JSON(forgetGroupsJSON(plan))
			}
			return nil
		}
		// With nothing (left) to forget, prune still runs: a run killed
		// during its prune may have left the prune half done.
		out, err := pruneWithLog(ctx, s, l, live, dryRun, settings)
		if err != nil {
			return err
		}
		if s.g.JSON {
			groups := forgetGroupsJSON(plan)
			if len(groups) == 0 {
				// Nothing to group: one group with no key, to carry the prune.
				groups = append(groups, forgetGroupJSON{Keep: []snapshotJSON{}, Remove: []snapshotJSON{}, Reasons: []reasonJSON{}})
			}
			groups[len(groups)-1].Prune = &out
			s.p.JSON(groups)
			return nil
		}
		printPrune(s.p, out)
		return nil
	})
}

// forgetGroupsJSON is the plan as "forget --json" prints it: restic's
// groups; snapshots named by ID make one group with no key.
func forgetGroupsJSON(plan policy.ForgetPlan) []forgetGroupJSON {
	out := []forgetGroupJSON{}
	if !plan.ByPolicy {
		if len(plan.Named) > 0 {
			out = append(out, forgetGroupJSON{Keep: []snapshotJSON{}, Remove: snapshotsJSON(plan.Named), Reasons: []reasonJSON{}})
		}
		return out
	}
	for _, g := range plan.Groups {
		gj := forgetGroupJSON{Tags: g.Key.Tags, Host: g.Key.Hostname, Paths: g.Key.Paths,
			Keep: snapshotsJSON(g.Keep), Remove: snapshotsJSON(g.Remove), Reasons: []reasonJSON{}}
		for _, r := range g.Reasons {
			gj.Reasons = append(gj.Reasons, reasonJSON{Snapshot: toSnapshotJSON(r.Snapshot), Matches: r.Matches, Counters: r.Counters})
		}
		out = append(out, gj)
	}
	return out
}

func snapshotsJSON(snaps []*snapshot.Snapshot) []snapshotJSON {
	out := make([]snapshotJSON, 0, len(snaps))
	for _, sn := range snaps {
		out = append(out, toSnapshotJSON(sn))
	}
	return out
}
