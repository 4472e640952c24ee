package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
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
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only print what would be forgotten"},
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
			"during its prune is finished by the next.\n\n" +
			"EXIT STATUS:\n   0 done, 1 error, 10 no repository, 11 locked, 12 wrong password.",
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
}

type reasonJSON struct {
	Snapshot snapshotJSON    `json:"snapshot"`
	Matches  []string        `json:"matches"`
	Counters policy.Counters `json:"counters"`
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
	ids := c.Args().Slice()
	if p.Empty() && len(ids) == 0 {
		return errors.New("no policy and no snapshots given: nothing to forget (see 'cairn help forget')")
	}
	if !p.Empty() && len(ids) > 0 {
		return errors.New("give either snapshot IDs or a policy, not both")
	}
	dryRun := c.Bool("dry-run")
	maxUnused, err := parseMaxUnused(c.String("max-unused"))
	if err != nil {
		return err
	}
	return e.withRepo(c, dryRunLock(exclusiveLock, dryRun), func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		var remove []backend.ID
		if len(ids) > 0 {
			for _, sel := range ids {
				sn, err := snapshot.Find(l.Snapshots(), sel, filterFrom(c))
				if errors.Is(err, snapshot.ErrNoSnapshot) {
					// Forgetting is idempotent: a snapshot the log
					// already records as forgotten (by an earlier run,
					// perhaps one killed before its prune finished) is
					// noted, and the run goes on to its prune.
					if old, ferr := snapshot.Find(forgottenSnapshots(l), sel, filterFrom(c)); ferr == nil {
						s.p.Printf("snapshot %s is already forgotten", old.ID.Str())
						continue
					}
				}
				if err != nil {
					return err
				}
				remove = append(remove, sn.ID)
			}
		} else {
			remove = applyPolicy(s, filterFrom(c).Apply(l.Snapshots()), p, by, e.now())
		}
		if dryRun || len(remove) == 0 {
			if dryRun && !s.g.JSON {
				s.p.Printf("would forget %d snapshots (dry run)", len(remove))
			}
			if !dryRun && c.Bool("prune") {
				// Nothing (left) to forget, but a run killed during its
				// prune may have left the prune half done: finish it.
				return pruneWithLog(ctx, s, l, false, maxUnused)
			}
			return nil
		}
		ident, err := s.device.Identity()
		if err != nil {
			return err
		}
		if _, err := l.Forget(ctx, s.repo, ident, remove, e.now()); err != nil {
			return err
		}
		rememberLog(s, l)
		if !s.g.JSON {
			s.p.Printf("forgot %d snapshots", len(remove))
		}
		if c.Bool("prune") {
			return pruneWithLog(ctx, s, l, false, maxUnused)
		}
		return nil
	})
}

// applyPolicy prints each group's decision and returns the IDs to forget.
func applyPolicy(s *session, snaps []*snapshot.Snapshot, p policy.Policy, by policy.GroupBy, now time.Time) []backend.ID {
	var remove []backend.ID
	var out []forgetGroupJSON
	if !s.g.JSON {
		s.p.Printf("Applying policy: %s", p)
	}
	for _, g := range policy.Group(snaps, by) {
		keep, rm, reasons := policy.Apply(g.Snapshots, p, now)
		for _, sn := range rm {
			remove = append(remove, sn.ID)
		}
		if s.g.JSON {
			gj := forgetGroupJSON{Tags: g.Key.Tags, Host: g.Key.Hostname, Paths: g.Key.Paths, Keep: []snapshotJSON{}, Remove: []snapshotJSON{}}
			for _, sn := range keep {
				gj.Keep = append(gj.Keep, toSnapshotJSON(sn))
			}
			for _, sn := range rm {
				gj.Remove = append(gj.Remove, toSnapshotJSON(sn))
			}
			for _, r := range reasons {
				gj.Reasons = append(gj.Reasons, reasonJSON{Snapshot: toSnapshotJSON(r.Snapshot), Matches: r.Matches, Counters: r.Counters})
			}
			out = append(out, gj)
			continue
		}
		if k := g.Key.String(); k != "" {
			s.p.Printf("snapshots for %s:", k)
		}
		s.p.Printf("keep %d snapshots:", len(keep))
		for _, r := range reasons {
			s.p.Printf("  %s  %s  %s", r.Snapshot.ID.Str(), r.Snapshot.Time.Local().Format("2006-01-02 15:04:05"), strings.Join(r.Matches, ", "))
		}
		if len(rm) > 0 {
			s.p.Printf("remove %d snapshots:", len(rm))
			for _, sn := range rm {
				s.p.Printf("  %s  %s", sn.ID.Str(), sn.Time.Local().Format("2006-01-02 15:04:05"))
			}
		}
		s.p.Printf("")
	}
	if s.g.JSON {
		if out == nil {
			out = []forgetGroupJSON{}
		}
		s.p.JSON(out)
	}
	return remove
}
