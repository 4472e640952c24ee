package main

import (
	"context"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
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
			"{\"message_type\":\"statistics\",...} with restic's fields: changed_files, and added and\n" +
			"removed, each {files, dirs, others, data_blobs, tree_blobs, bytes}.\n\n" + selectorHelp,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "metadata", Usage: "also show paths whose metadata alone changed (U)"},
		},
		Action: e.runDiff,
	}
}

// diffStatsJSON is the last line of "diff --json": restic's statistics
// message, and cairn's counts of changes by kind.
type diffStatsJSON struct {
	MessageType    string            `json:"message_type"`
	SourceSnapshot string            `json:"source_snapshot"`
	TargetSnapshot string            `json:"target_snapshot"`
	ChangedFiles   int               `json:"changed_files"`
	Added          snapshot.DiffStat `json:"added"`
	Removed        snapshot.DiffStat `json:"removed"`
	// cairn's: changes by kind.
	Modified    int `json:"modified"`
	Metadata    int `json:"metadata_changed"`
	TypeChanged int `json:"type_changed"`
}

// blobSize is the plaintext size of a blob the index knows.
func blobSize(r *repo.Repository) snapshot.BlobSizer {
	return func(t pack.BlobType, id backend.ID) (uint64, bool) {
		pb, ok := r.Lookup(t, id)
		return uint64(pb.Blob.PlaintextLength()), ok
	}
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
		if !s.g.JSON {
			s.p.Printf("comparing snapshot %s to %s:", a.sn.ID.Str(), b.sn.ID.Str())
		}
		metadata := c.Bool("metadata")
		st, err := snapshot.DiffWithStats(ctx, s.repo, blobSize(s.repo), a.tree, b.tree, func(ch snapshot.Change) error {
			if ch.Kind == snapshot.MetadataChanged && !metadata {
				return nil
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
		if !metadata {
			st.MetadataChanged = 0 // not shown, so not counted, as restic
		}
		if s.g.JSON {
			s.p.JSON(diffStatsJSON{MessageType: "statistics", SourceSnapshot: a.sn.ID.String(), TargetSnapshot: b.sn.ID.String(),
				ChangedFiles: st.ChangedFiles, Added: st.Added, Removed: st.Removed,
				Modified: st.Modified, Metadata: st.MetadataChanged, TypeChanged: st.TypeChanged})
			return nil
		}
		s.p.Printf("")
		s.p.Printf("Files:       %5d new, %5d removed, %5d changed", st.Added.Files, st.Removed.Files, st.ChangedFiles)
		s.p.Printf("Dirs:        %5d new, %5d removed", st.Added.Dirs, st.Removed.Dirs)
		s.p.Printf("Others:      %5d new, %5d removed", st.Added.Others, st.Removed.Others)
		s.p.Printf("Data Blobs:  %5d new, %5d removed", st.Added.DataBlobs, st.Removed.DataBlobs)
		s.p.Printf("Tree Blobs:  %5d new, %5d removed", st.Added.TreeBlobs, st.Removed.TreeBlobs)
		s.p.Printf("  Added:   %s", formatBytes(st.Added.Bytes))
		s.p.Printf("  Removed: %s", formatBytes(st.Removed.Bytes))
		added, removed := st.Added.Files+st.Added.Dirs+st.Added.Others, st.Removed.Files+st.Removed.Dirs+st.Removed.Others
		if metadata {
			s.p.Printf("changes: %d added, %d removed, %d changed, %d metadata changed, %d type changed",
				added, removed, st.Modified, st.MetadataChanged, st.TypeChanged)
		} else {
			s.p.Printf("changes: %d added, %d removed, %d changed, %d type changed", added, removed, st.Modified, st.TypeChanged)
		}
		return nil
	})
}
