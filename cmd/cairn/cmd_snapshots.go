package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) snapshotsCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshots",
		Usage:     "list snapshots",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Lists the snapshots in the repository, oldest first, or only the ones named.\n" +
			"With --json it prints one JSON array of snapshots with restic's field names\n" +
			"(id, short_id, time, hostname, username, paths, tags, tree, parent, summary).\n\n" +
			selectorHelp,
		Flags:  filterFlags(),
		Action: e.runSnapshots,
	}
}

func (e *appEnv) runSnapshots(c *cli.Context) error {
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
		if s.g.JSON {
			out := make([]snapshotJSON, 0, len(snaps))
			for _, sn := range snaps {
				out = append(out, toSnapshotJSON(sn))
			}
			s.p.JSON(out)
			return nil
		}
		printSnapshotTable(s.p, snaps)
		return nil
	})
}

func printSnapshotTable(p *printer, snaps []*snapshot.Snapshot) {
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
	if len(snaps) == 1 {
		p.Printf("1 snapshot")
	} else {
		p.Printf("%d snapshots", len(snaps))
	}
}
