package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/policy"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) snapshotsCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshots",
		Usage:     "list snapshots",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Lists the snapshots in the repository, oldest first, or only the ones named.\n" +
			"--latest N shows only the N newest of each host and set of paths. --group-by\n" +
			"host,paths,tags (any of them) prints one table per group, headed by what its\n" +
			"snapshots share. --compact leaves out the size and paths columns and prints\n" +
			"tags one a line. With --json it prints one JSON array of snapshots with\n" +
			"restic's field names (id, short_id, time, hostname, username, paths, tags, tree,\n" +
			"parent, summary); with --group-by, an array of groups\n" +
			"{\"group_key\": {\"hostname\", \"paths\", \"tags\"}, \"snapshots\": [...]}, as restic.\n\n" +
			"Forgotten snapshots: on an append-only copy, snapshots the owner forgot (after a\n" +
			"ransomware 'forget', say) keep their data. --forgotten lists those the log forgot\n" +
			"whose data the repository still holds whole (every tree and pack, by listing and\n" +
			"index: no download); --all lists them with the live ones. Without either, the\n" +
			"text output ends with a line counting them (by their root trees) when there are\n" +
			"any; --json output is the restic-compatible array alone. Restore one by its ID.\n\n" +
			selectorHelp,
		Flags: append(filterFlags(),
			&cli.IntFlag{Name: "latest", Usage: "show only the last `N` snapshots of each host and set of paths"},
			&cli.BoolFlag{Name: "compact", Aliases: []string{"c"}, Usage: "compact table: no size or paths, one tag a line"},
			&cli.StringFlag{Name: "group-by", Aliases: []string{"g"}, Usage: "print one table per `GROUP` of snapshots: host, paths, tags, or a comma-separated list"},
			&cli.BoolFlag{Name: "forgotten", Usage: "list the snapshots the log forgot whose data is still here"},
			&cli.BoolFlag{Name: "all", Usage: "list the live snapshots and the forgotten ones whose data is still here"},
		),
		Action: e.runSnapshots,
	}
}

// snapshotGroupJSON is one group of "snapshots --group-by --json", in
// restic's shape.
type snapshotGroupJSON struct {
	GroupKey  policy.GroupKey `json:"group_key"`
	Snapshots []snapshotJSON  `json:"snapshots"`
}

func (e *appEnv) runSnapshots(c *cli.Context) error {
	by, err := policy.ParseGroupBy(c.String("group-by"))
	if err != nil {
		return err
	}
	latest := c.Int("latest")
	if latest < 0 {
		return fmt.Errorf("--latest %d: want a number of snapshots, 1 or more", latest)
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		f := filterFrom(c)
		pool, forgotten, err := snapshotPool(ctx, s, c, l)
		if err != nil {
			return err
		}
		var snaps []*snapshot.Snapshot
		if c.Args().Present() {
			for _, sel := range c.Args().Slice() {
				sn, err := snapshot.Find(pool, sel, f)
				if err != nil {
					return err
				}
				snaps = append(snaps, sn)
			}
		} else {
			snaps = f.Apply(pool)
		}
		groups := policy.Group(snaps, by)
		for i := range groups {
			groups[i].Snapshots = policy.Latest(groups[i].Snapshots, latest)
		}
		grouped := by != (policy.GroupBy{})
		switch {
		case s.g.JSON && grouped:
			out := make([]snapshotGroupJSON, 0, len(groups))
			for _, g := range groups {
				out = append(out, snapshotGroupJSON{g.Key, snapshotsJSON(g.Snapshots)})
			}
			s.p.JSON(out)
		case s.g.JSON:
			var all []*snapshot.Snapshot
			for _, g := range groups {
				all = append(all, g.Snapshots...)
			}
			s.p.JSON(snapshotsJSON(all))
		default:
			for i, g := range groups {
				if grouped {
					if i > 0 {
						s.p.Printf("")
					}
					s.p.Printf("snapshots for %s:", groupHeading(g.Key, by))
				}
				printSnapshotTable(s.p, g.Snapshots, c.Bool("compact"))
			}
			if len(groups) == 0 {
				printSnapshotTable(s.p, nil, c.Bool("compact"))
			}
			printForgottenCount(s.p, forgotten)
		}
		return nil
	})
}

// snapshotPool is what the command lists from: the live snapshots, the
// forgotten ones still held (--forgotten), or both (--all); and the
// forgotten ones still held, by their root trees, for the count line.
func snapshotPool(ctx context.Context, s *session, c *cli.Context, l *snapshot.Log) ([]*snapshot.Snapshot, []*snapshot.Snapshot, error) {
	forgottenOnly, all := c.Bool("forgotten"), c.Bool("all")
	if forgottenOnly && all {
		return nil, nil, fmt.Errorf("--forgotten and --all: give one")
	}
	if !forgottenOnly && !all {
		if s.g.JSON {
			return l.Snapshots(), nil, nil
		}
		held, err := snapshot.HeldForgotten(ctx, s.repo, l, false)
		return l.Snapshots(), held, err
	}
	held, err := snapshot.HeldForgotten(ctx, s.repo, l, true)
	if err != nil || forgottenOnly {
		return held, nil, err
	}
	pool := append(slices.Clone(l.Snapshots()), held...)
	snapshot.SortByTime(pool)
	return pool, nil, nil
}

// printForgottenCount ends a plain listing with how many forgotten
// snapshots still have their data here.
func printForgottenCount(p *printer, held []*snapshot.Snapshot) {
	switch n := len(held); {
	case n == 1:
		p.Printf("1 forgotten snapshot still has its data here: list it with 'cairn snapshots --forgotten'")
	case n > 1:
		p.Printf("%d forgotten snapshots still have their data here: list them with 'cairn snapshots --forgotten'", n)
	}
}

func printSnapshotTable(p *printer, snaps []*snapshot.Snapshot, compact bool) {
	if compact {
		printCompactSnapshotTable(p, snaps)
		return
	}
	const format = "%-8s  %-19s  %-16s  %-16s  %10s  %s"
	header := strings.TrimRight(fmt.Sprintf(format, "ID", "Time", "Host", "Tags", "Size", "Paths"), " ")
	rule := strings.Repeat("-", max(len(header), 80))
	p.Printf("%s", header)
	p.Printf("%s", rule)
	for _, sn := range snaps {
		size := ""
		if sn.Summary != nil {
			size = formatBytes(sn.Summary.TotalBytesProcessed)
		}
		paths := sn.Paths
		if len(paths) == 0 {
			paths = []string{""}
		}
		p.Printf(format, sn.ID.Str(), sn.Time.Local().Format("2006-01-02 15:04:05"), sn.Hostname, strings.Join(sn.Tags, ","), size, paths[0])
		for _, extra := range paths[1:] {
			p.Printf(format, "", "", "", "", "", extra)
		}
	}
	p.Printf("%s", rule)
	printSnapshotCount(p, len(snaps))
}

// printCompactSnapshotTable is restic's snapshots --compact: ID, time,
// host, and the tags one a line.
func printCompactSnapshotTable(p *printer, snaps []*snapshot.Snapshot) {
	const format = "%-8s  %-19s  %-16s  %s"
	header := strings.TrimRight(fmt.Sprintf(format, "ID", "Time", "Host", "Tags"), " ")
	rule := strings.Repeat("-", 60)
	p.Printf("%s", header)
	p.Printf("%s", rule)
	for _, sn := range snaps {
		tags := sn.Tags
		if len(tags) == 0 {
			tags = []string{""}
		}
		p.Printf("%s", strings.TrimRight(fmt.Sprintf(format, sn.ID.Str(), sn.Time.Local().Format("2006-01-02 15:04:05"), sn.Hostname, tags[0]), " "))
		for _, tag := range tags[1:] {
			p.Printf(format, "", "", "", tag)
		}
	}
	p.Printf("%s", rule)
	printSnapshotCount(p, len(snaps))
}

func printSnapshotCount(p *printer, n int) {
	if n == 1 {
		p.Printf("1 snapshot")
	} else {
		p.Printf("%d snapshots", n)
	}
}

// groupHeading names what the snapshots of a group share: each field the
// grouping is by, empty ones too ("host vm, tags []").
func groupHeading(k policy.GroupKey, by policy.GroupBy) string {
	var parts []string
	if by.Host {
		parts = append(parts, "host "+k.Hostname)
	}
	if by.Paths {
		parts = append(parts, fmt.Sprintf("paths %v", k.Paths))
	}
	if by.Tags {
		parts = append(parts, fmt.Sprintf("tags %v", k.Tags))
	}
	return strings.Join(parts, ", ")
}
