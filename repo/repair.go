package repo

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
)

// RepairIndexOptions configure RepairIndex; the zero value works.
type RepairIndexOptions struct {
	// Progress, if set, is told about each phase.
	Progress ProgressFunc
}

// RepairIndexStats say what RepairIndex did.
type RepairIndexStats struct {
	Packs        int `json:"packs"` // packs whose header was read and indexed
	Blobs        int `json:"blobs"` // blobs they hold
	IndexWritten int `json:"index_files_written"`
	IndexRemoved int `json:"index_files_removed"`
	// Damaged lists the packs whose header does not read: they are left
	// in place, and no index lists them any more.
	Damaged []Problem `json:"damaged,omitempty"`
}

// RepairIndex rebuilds the index from the packs: it reads every pack's
// header, writes new index files listing every pack that reads (each
// superseding every old index file), then deletes the old index files, and
// makes the in-memory index match. Packs whose header does not read are
// reported and left in place; their blobs are no longer indexed, so
// 'repair snapshots' can then drop the files that need them.
//
// The caller must hold an exclusive lock. A crash leaves the old and some
// new index files side by side, which loads as their union; running
// RepairIndex again finishes the job.
func (r *Repository) RepairIndex(ctx context.Context, opts RepairIndexOptions) (RepairIndexStats, error) {
	var st RepairIndexStats
	progress := opts.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	old, err := r.IndexFiles(ctx)
	if err != nil {
		return st, fmt.Errorf("list index: %w", err)
	}
	type packFile struct {
		id   backend.ID
		size int64
	}
	var packs []packFile
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		packs = append(packs, packFile{id, size})
		return nil
	}); err != nil {
		return st, fmt.Errorf("list packs: %w", err)
	}
	fresh := index.New()
	var mu sync.Mutex // guards st and done
	var done int64
	err = r.forEachParallel(ctx, len(packs), func(i int) error {
		p := packs[i]
		blobs, err := r.ReadPackHeader(ctx, p.id, p.size)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		progress("read pack headers", done, int64(len(packs)))
		if err != nil {
			st.Damaged = append(st.Damaged, Problem{Kind: ProblemPackDamaged, File: handleOf(backend.PackFile, p.id),
				Message: fmt.Sprintf("damaged: header does not read, the pack is left in place: %v", err)})
			return nil
		}
		fresh.AddPack(p.id, blobs)
		st.Packs++
		st.Blobs += len(blobs)
		return nil
	})
	if err != nil {
		return st, err
	}
	slices.SortFunc(st.Damaged, func(a, b Problem) int {
		switch {
		case a.File < b.File:
			return -1
		case a.File > b.File:
			return 1
		}
		return 0
	})

	files := fresh.ToFiles(indexFileBlobs)
	slices.SortFunc(old, cmpBlobID)
	wrote := make(map[backend.ID]bool)
	for i, f := range files {
		progress("write index", int64(i), int64(len(files)))
		f.Supersedes = old
		id, err := r.saveIndexFile(ctx, f)
		if err != nil {
			return st, err
		}
		wrote[id] = true
		st.IndexWritten++
	}
	for i, id := range old {
		progress("remove old index", int64(i), int64(len(old)))
		if wrote[id] {
			continue
		}
		if err := r.DeleteFile(ctx, backend.IndexFile, id); err != nil && !backend.IsNotExist(err) {
			return st, err
		}
		st.IndexRemoved++
	}

	// The in-memory index becomes the rebuilt one.
	all := make(map[backend.ID]bool)
	for _, id := range r.idx.Packs() {
		all[id] = true
	}
	r.idx.RemovePacks(all)
	for _, f := range files {
		r.idx.AddFile(f)
	}
	return st, nil
}
