package main

import (
	"context"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "show how much the repository and its snapshots hold",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Shows the repository's packs, blobs and stored bytes (from the index), the\n" +
			"compression ratio, and the number of snapshots with the total size and\n" +
			"count of the files they hold (from each snapshot's backup summary): all\n" +
			"snapshots that pass the filters, or the ones named. With --json it prints\n" +
			"one JSON object.\n\n" + selectorHelp,
		Flags:  filterFlags(),
		Action: e.runStats,
	}
}

// statsJSON is the output of "stats --json".
type statsJSON struct {
	repo.Stats
	CompressionRatio float64 `json:"compression_ratio"`
	SnapshotsCount   int     `json:"snapshots_count"`
	TotalSize        uint64  `json:"total_size"`
	TotalFileCount   uint64  `json:"total_file_count"`
}

func (e *appEnv) runStats(c *cli.Context) error {
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		f := filterFrom(c)
		snaps := f.Apply(l.Snapshots())
		if c.Args().Present() {
			snaps = nil
			for _, sel := range c.Args().Slice() {
				sn, err := snapshot.Find(l.Snapshots(), sel, f)
				if err != nil {
					return err
				}
				snaps = append(snaps, sn)
			}
		}
		st, err := s.repo.Stats(ctx)
		if err != nil {
			return err
		}
		out := statsJSON{Stats: st, SnapshotsCount: len(snaps)}
		if st.StoredBytes > 0 {
			out.CompressionRatio = float64(st.RawBytes) / float64(st.StoredBytes)
		}
		for _, sn := range snaps {
			if sn.Summary != nil {
				out.TotalSize += sn.Summary.TotalBytesProcessed
				out.TotalFileCount += sn.Summary.TotalFilesProcessed
			}
		}
		if s.g.JSON {
			s.p.JSON(out)
			return nil
		}
		s.p.Printf("Snapshots:              %d", out.SnapshotsCount)
		s.p.Printf("Files in snapshots:     %d (%s)", out.TotalFileCount, formatBytes(out.TotalSize))
		s.p.Printf("Blobs:                  %d data, %d tree (%d compressed)", st.DataBlobs, st.TreeBlobs, st.CompressedBlob)
		s.p.Printf("Blob data:              %s stored, %s uncompressed (ratio %.2fx)", formatBytes(st.StoredBytes), formatBytes(st.RawBytes), out.CompressionRatio)
		s.p.Printf("Packs:                  %d (%s), index files: %d", st.Packs, formatBytes(st.PackBytes), st.IndexFiles)
		return nil
	})
}
