package main

import (
	"context"
	"fmt"
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
			selectorHelp,
		Flags: append(filterFlags(),
			&cli.IntFlag{Name: "latest", Usage: "show only the last `N` snapshots of each host and set of paths"},
			&cli.BoolFlag{Name: "compact", Aliases: []string{"c"}, Usage: "compact table: no size or paths, one tag a line"},
			&cli.StringFlag{Name: "group-by", Aliases: []string{"g"}, Usage: "print one table per `GROUP` of snapshots: host, paths, tags, or a comma-separated list"},
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
		var snaps []*snapshot.Snapshot
		if c.Args().Present() {
			for _, sel := range c.Args().Slice() {
				sn, err := snapshot.Find(l.Snapshots(), sel, f)
				if err != nil {
					return err
				}
				snaps = append(snaps, sn)
			}
		} else {
			snaps = f.Apply(l.Snapshots())
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
		}
		return nil
	})
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
