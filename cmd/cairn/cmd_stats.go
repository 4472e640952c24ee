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
			"one JSON object.\n\n" +
			"--mode counts as restic's stats does, walking the snapshots' trees:\n" +
			"  restore-size       every file and folder, and the bytes a restore writes\n" +
			"                     (a file hardlinked within a snapshot counted once)\n" +
			"  files-by-contents  each distinct file content once, with its size\n" +
			"  blobs-per-file     the data blobs of each distinct content, per path, and\n" +
			"                     their uncompressed bytes\n" +
			"  raw-data           the distinct blobs the snapshots use and their stored\n" +
			"                     bytes, with what compression saved\n" +
			"and prints restic's figures (snapshots_count, total_size, total_file_count,\n" +
			"total_blob_count, total_uncompressed_size, compression_ratio, ...).\n\n" + selectorHelp,
		Flags: append(filterFlags(),
			&cli.StringFlag{Name: "mode", Usage: "count as restic does, in `MODE`: restore-size, files-by-contents, blobs-per-file or raw-data"},
		),
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
	var mode snapshot.StatsMode
	if m := c.String("mode"); c.IsSet("mode") {
		var err error
		if mode, err = snapshot.ParseStatsMode(m); err != nil {
			return err
		}
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		_, snaps, err := loadLive(ctx, s, c)
		if err != nil {
			return err
		}
		if mode != "" {
			return printModeStats(ctx, s, snaps, mode)
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

// printModeStats counts snaps in mode and prints the figures as restic
// does.
func printModeStats(ctx context.Context, s *session, snaps []*snapshot.Snapshot, mode snapshot.StatsMode) error {
	st, err := snapshot.Stats(ctx, s.repo, snaps, mode)
	if err != nil {
		return err
	}
	if s.g.JSON {
		s.p.JSON(st)
		return nil
	}
	s.p.Printf("Stats in %s mode:", mode)
	s.p.Printf("     Snapshots processed:  %d", st.SnapshotsCount)
	if st.TotalBlobCount > 0 {
		s.p.Printf("        Total Blob Count:  %d", st.TotalBlobCount)
	}
	if st.TotalFileCount > 0 {
		s.p.Printf("        Total File Count:  %d", st.TotalFileCount)
	}
	if st.TotalUncompressedSize > 0 {
		s.p.Printf(" Total Uncompressed Size:  %s", formatBytes(st.TotalUncompressedSize))
	}
	s.p.Printf("              Total Size:  %s", formatBytes(st.TotalSize))
	if st.CompressionProgress > 0 {
		s.p.Printf("    Compression Progress:  %.2f%%", st.CompressionProgress)
	}
	if st.CompressionRatio > 0 {
		s.p.Printf("       Compression Ratio:  %.2fx", st.CompressionRatio)
	}
	if st.CompressionSpaceSaving > 0 {
		s.p.Printf("Compression Space Saving:  %.2f%%", st.CompressionSpaceSaving)
	}
	return nil
}
