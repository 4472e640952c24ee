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
	flags := append(keepFlags(),
		&cli.StringSliceFlag{Name: "keep-tag", Usage: "keep snapshots with `TAG[,TAG...]` (repeatable)"},
		&cli.StringFlag{Name: "group-by", Value: "host,paths", Usage: "apply the policy per group of `host,paths,tags` (any subset; \"\" for one group)"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only print the plan: what would be forgotten (and, with --prune, pruned)"},
		&cli.BoolFlag{Name: "prune", Usage: "run prune afterwards to free the space"},
	)
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

// keepPeriod is one period of forget's policy: its --keep-PERIOD count
// and --keep-within-PERIOD duration (--keep-last and --keep-within for
// the period "").
type keepPeriod struct {
	period, alias string
	count         *int
	within        *policy.Duration
}

func (k keepPeriod) countFlag() string {
	if k.period == "" {
		return "keep-last"
	}
	return "keep-" + k.period
}

func (k keepPeriod) withinFlag() string {
	if k.period == "" {
		return "keep-within"
	}
	return "keep-within-" + k.period
}

// keepPeriods are forget's policy periods, filling p.
func keepPeriods(p *policy.Policy) []keepPeriod {
	return []keepPeriod{
		{"", "l", &p.Last, &p.Within},
		{"hourly", "H", &p.Hourly, &p.WithinHourly},
		{"daily", "d", &p.Daily, &p.WithinDaily},
		{"weekly", "w", &p.Weekly, &p.WithinWeekly},
		{"monthly", "m", &p.Monthly, &p.WithinMonthly},
		{"yearly", "y", &p.Yearly, &p.WithinYearly},
	}
}

// keepFlags are the flags of keepPeriods: each count, then each duration.
func keepFlags() []cli.Flag {
	var counts, durations []cli.Flag
	for _, k := range keepPeriods(&policy.Policy{}) {
		countUsage := "keep the last `N` " + k.period + " snapshots"
		withinUsage := "keep " + k.period + " snapshots within `DURATION` of the latest snapshot"
		if k.period == "" {
			countUsage = "keep the last `N` snapshots (N or \"unlimited\")"
			withinUsage = "keep snapshots newer than `DURATION` (e.g. 1y5m7d2h) before the latest snapshot"
		}
		counts = append(counts, &cli.StringFlag{Name: k.countFlag(), Aliases: []string{k.alias}, Usage: countUsage})
		durations = append(durations, &cli.StringFlag{Name: k.withinFlag(), Usage: withinUsage})
	}
	return append(counts, durations...)
}

func policyFrom(c *cli.Context) (policy.Policy, error) {
	var p policy.Policy
	keeps := keepPeriods(&p)
	for _, k := range keeps {
		if !c.IsSet(k.countFlag()) {
			continue
		}
		n, err := policy.ParseCount(c.String(k.countFlag()))
		if err != nil {
			return p, fmt.Errorf("--%s: %w", k.countFlag(), err)
		}
		*k.count = n
	}
	for _, k := range keeps {
		if !c.IsSet(k.withinFlag()) {
			continue
		}
		d, err := policy.ParseDuration(c.String(k.withinFlag()))
		if err != nil {
			return p, fmt.Errorf("--%s: %w", k.withinFlag(), err)
		}
		*k.within = d
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
