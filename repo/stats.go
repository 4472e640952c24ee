package repo

import (
	"context"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// Stats are figures about the stored data, from the index and a listing.
type Stats struct {
	Packs          int    `json:"packs"`
	PackBytes      uint64 `json:"total_pack_size"`
	IndexFiles     int    `json:"index_files"`
	DataBlobs      int    `json:"data_blobs"`
	TreeBlobs      int    `json:"tree_blobs"`
	StoredBytes    uint64 `json:"total_blob_size"`         // sealed blob bytes
	RawBytes       uint64 `json:"total_uncompressed_size"` // plaintext bytes
	CompressedBlob int    `json:"compressed_blobs"`
}

// Stats counts packs, blobs and bytes.
func (r *Repository) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := r.ListFiles(ctx, backend.PackFile, func(_ backend.ID, size int64) error {
		s.Packs++
		s.PackBytes += uint64(size)
		return nil
	})
	if err != nil {
		return s, err
	}
	err = r.ListFiles(ctx, backend.IndexFile, func(backend.ID, int64) error {
		s.IndexFiles++
		return nil
	})
	if err != nil {
		return s, err
	}
	r.idx.Each(func(pb index.PackedBlob) bool {
		if pb.Type == pack.TreeBlob {
			s.TreeBlobs++
		} else {
			s.DataBlobs++
		}
		s.StoredBytes += uint64(pb.Length)
		s.RawBytes += uint64(pb.PlaintextLength())
		if pb.RawLength > 0 {
			s.CompressedBlob++
		}
		return true
	})
	return s, nil
}
