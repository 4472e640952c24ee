package main

import (
	"context"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "show what changed between two snapshots",
		ArgsUsage: "SNAPSHOT1[:SUBPATH] SNAPSHOT2[:SUBPATH]",
		Description: "Prints one line per changed path, with restic's markers:\n" +
			"   +  added (only in SNAPSHOT2)      -  removed (only in SNAPSHOT1)\n" +
			"   M  content changed                U  metadata changed (mode, owner, mtime, xattrs)\n" +
			"   T  type changed (e.g. a file became a folder)\n" +
			"then a count of each kind. As in restic, U lines (a path whose content is the\n" +
			"same but whose metadata differs) are shown and counted only with --metadata.\n" +
			"Access and change times, inode numbers and link counts are not compared. With --json each change is a line\n" +
			"{\"message_type\":\"change\",\"path\":...,\"modifier\":...} and the last line is\n" +
			"{\"message_type\":\"statistics\",...}.\n\n" + selectorHelp,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "metadata", Usage: "also show paths whose metadata alone changed (U)"},
		},
		Action: e.runDiff,
	}
}

// diffStats counts changes by kind, as the "statistics" message reports.
type diffStats struct {
	MessageType    string `json:"message_type"`
	SourceSnapshot string `json:"source_snapshot"`
	TargetSnapshot string `json:"target_snapshot"`
	Added          uint64 `json:"added"`
	Removed        uint64 `json:"removed"`
	Modified       uint64 `json:"modified"`
	Metadata       uint64 `json:"metadata_changed"`
	TypeChanged    uint64 `json:"type_changed"`
}

func (e *appEnv) runDiff(c *cli.Context) error {
	if err := wantArgs(c, 2, 2); err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		a, err := selectSnapshot(ctx, s, l, c.Args().Get(0), snapshot.Filter{})
		if err != nil {
			return err
		}
		b, err := selectSnapshot(ctx, s, l, c.Args().Get(1), snapshot.Filter{})
		if err != nil {
			return err
		}
		st := diffStats{MessageType: "statistics", SourceSnapshot: a.sn.ID.String(), TargetSnapshot: b.sn.ID.String()}
		if !s.g.JSON {
			s.p.Printf("comparing snapshot %s to %s:", a.sn.ID.Str(), b.sn.ID.Str())
		}
		metadata := c.Bool("metadata")
		err = snapshot.Diff(ctx, s.repo, a.tree, b.tree, func(ch snapshot.Change) error {
			if ch.Kind == snapshot.MetadataChanged && !metadata {
				return nil
			}
			switch ch.Kind {
			case snapshot.Added:
				st.Added++
			case snapshot.Removed:
				st.Removed++
			case snapshot.Modified:
				st.Modified++
			case snapshot.MetadataChanged:
				st.Metadata++
			case snapshot.TypeChanged:
				st.TypeChanged++
			}
			if s.g.JSON {
				s.p.JSON(struct {
					MessageType string `json:"message_type"`
					Path        string `json:"path"`
					Modifier    string `json:"modifier"`
				}{"change", ch.Path, ch.Kind.String()})
				return nil
			}
			s.p.Printf("%-5s%s", ch.Kind, ch.Path)
			return nil
		})
		if err != nil {
			return err
		}
		if s.g.JSON {
			s.p.JSON(st)
			return nil
		}
		s.p.Printf("")
		if metadata {
			s.p.Printf("added: %d, removed: %d, changed: %d, metadata changed: %d, type changed: %d",
				st.Added, st.Removed, st.Modified, st.Metadata, st.TypeChanged)
		} else {
			s.p.Printf("added: %d, removed: %d, changed: %d, type changed: %d",
				st.Added, st.Removed, st.Modified, st.TypeChanged)
		}
		return nil
	})
}
