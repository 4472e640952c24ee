package snapshot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// StatsMode is how Stats counts, restic's stats --mode.
type StatsMode string

// The modes of Stats, as restic names them.
const (
	// StatsRestoreSize counts every node of every snapshot and the size
	// a restore writes: a file hardlinked within a snapshot once.
	StatsRestoreSize StatsMode = "restore-size"
	// StatsFilesByContents counts each distinct content once (nodes
	// whose content blob lists are equal are one), with its size.
	StatsFilesByContents StatsMode = "files-by-contents"
	// StatsBlobsPerFile counts, for each distinct content, the distinct
	// (path, data blob) pairs, and the blobs' plaintext bytes.
	StatsBlobsPerFile StatsMode = "blobs-per-file"
	// StatsRawData counts the distinct blobs (data and tree) the
	// snapshots reach, and their stored bytes.
	StatsRawData StatsMode = "raw-data"
)

// ErrStatsMode is wrapped by ParseStatsMode's error.
var ErrStatsMode = errors.New("unknown stats mode")

// ParseStatsMode reads a mode by its restic name.
func ParseStatsMode(s string) (StatsMode, error) {
	switch m := StatsMode(s); m {
	case StatsRestoreSize, StatsFilesByContents, StatsBlobsPerFile, StatsRawData:
		return m, nil
	}
	return "", fmt.Errorf("%w %q (want restore-size, files-by-contents, blobs-per-file or raw-data)", ErrStatsMode, s)
}

// ModeStats is what Stats counted, with restic's JSON field names.
type ModeStats struct {
	SnapshotsCount int    `json:"snapshots_count"`
	TotalSize      uint64 `json:"total_size"`
	// TotalUncompressedSize (raw-data) is TotalSize had no blob been
	// compressed; CompressionRatio is the uncompressed over the stored
	// size of the compressed blobs, CompressionProgress the share of the
	// uncompressed bytes that are compressed, and CompressionSpaceSaving
	// how much smaller TotalSize is, both in percent.
	TotalUncompressedSize  uint64  `json:"total_uncompressed_size,omitempty"`
	CompressionRatio       float64 `json:"compression_ratio,omitempty"`
	CompressionProgress    float64 `json:"compression_progress,omitempty"`
	CompressionSpaceSaving float64 `json:"compression_space_saving,omitempty"`
	TotalFileCount         uint64  `json:"total_file_count,omitempty"`
	TotalBlobCount         uint64  `json:"total_blob_count,omitempty"`
}

// StatsRepo is what Stats reads: trees, and the index for blob sizes.
type StatsRepo interface {
	TreeLoader
	Index() *index.Index
}

// Stats counts what snaps hold in the given mode. A tree that does not
// load, or a blob the index lacks, is an error. Memory grows with the
// distinct contents (files-by-contents), the distinct paths
// (blobs-per-file) or the distinct blobs (raw-data) counted, as restic's
// does; restore-size keeps only each snapshot's hardlinked inodes.
func Stats(ctx context.Context, r StatsRepo, snaps []*Snapshot, mode StatsMode) (ModeStats, error) {
	st := ModeStats{SnapshotsCount: len(snaps)}
	if mode == StatsRawData {
		return st, rawDataStats(ctx, r, snaps, &st)
	}
	contents := make(map[[sha256.Size]byte]bool)
	fileBlobs := make(map[string]map[backend.ID]bool)
	for _, sn := range snaps {
		type inode struct{ dev, ino uint64 }
		hardlinks := make(map[inode]bool)
		err := Walk(ctx, r, sn.Tree, func(p string, n *Node, err error) error {
			if err != nil {
				return fmt.Errorf("snapshot %s: %s: %w", sn.ID.Str(), p, err)
			}
			if mode == StatsRestoreSize {
				st.TotalFileCount++
				if n.Links > 1 && n.Type != NodeDir && n.Inode != 0 {
					k := inode{n.DeviceID, n.Inode}
					if hardlinks[k] {
						return nil
					}
					hardlinks[k] = true
				}
				st.TotalSize += n.Size
				return nil
			}
			h := sha256.New()
			for _, id := range n.Content {
				h.Write(id[:])
			}
			var key [sha256.Size]byte
			h.Sum(key[:0])
			if contents[key] {
				return nil
			}
			contents[key] = true
			if mode == StatsFilesByContents {
				st.TotalFileCount++
				st.TotalSize += n.Size
				return nil
			}
			return countFileBlobs(r, p, n, fileBlobs, &st)
		})
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// countFileBlobs adds the data blobs of the file at p not yet counted for
// that path (blobs-per-file).
func countFileBlobs(r StatsRepo, p string, n *Node, fileBlobs map[string]map[backend.ID]bool, st *ModeStats) error {
	for _, id := range n.Content {
		seen := fileBlobs[p]
		if seen == nil {
			seen = make(map[backend.ID]bool)
			fileBlobs[p] = seen
			st.TotalFileCount++
		}
		if seen[id] {
			continue
		}
		pb, ok := r.Index().Lookup(pack.DataBlob, id)
		if !ok {
			return fmt.Errorf("%s: data blob %s is in no pack", p, id.Str())
		}
		seen[id] = true
		st.TotalSize += uint64(pb.PlaintextLength())
		st.TotalBlobCount++
	}
	return nil
}

// rawDataStats counts the distinct blobs the snapshots reach, their
// stored bytes, and what compression saved.
func rawDataStats(ctx context.Context, r StatsRepo, snaps []*Snapshot, st *ModeStats) error {
	used := repo.NewBlobSet()
	err := walkUnique(ctx, r, snaps, used, func(sn *Snapshot, dir string, _ backend.ID, t *Tree, err error) error {
		if err != nil {
			return fmt.Errorf("snapshot %s: folder %s: %w", sn.ID.Str(), dir, err)
		}
		for _, n := range t.Nodes {
			for _, id := range n.Content {
				used.Insert(pack.DataBlob, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var compStored, compRaw uint64
	used.Each(func(t pack.BlobType, id backend.ID) bool {
		pb, ok := r.Index().Lookup(t, id)
		if !ok {
			err = fmt.Errorf("%s blob %s is in no pack", t, id.Str())
			return false
		}
		stored, raw := uint64(pb.Length), uint64(pb.PlaintextLength())+crypt.Overhead
		st.TotalSize += stored
		st.TotalUncompressedSize += raw
		if pb.Compressed() {
			compStored += stored
			compRaw += raw
		}
		st.TotalBlobCount++
		return true
	})
	if err != nil {
		return err
	}
	if compStored > 0 {
		st.CompressionRatio = float64(compRaw) / float64(compStored)
	}
	if st.TotalUncompressedSize > 0 {
		st.CompressionProgress = float64(compRaw) / float64(st.TotalUncompressedSize) * 100
		st.CompressionSpaceSaving = (1 - float64(st.TotalSize)/float64(st.TotalUncompressedSize)) * 100
	}
	return nil
}
