package repo

import (
	"context"
	"fmt"
	"slices"

	"github.com/cairn-backup/cairn/backend"
)

// ForgetMissingPacks lists the packs in the backend and drops from the
// in-memory index every pack that the index lists and the backend lacks,
// and returns those packs, sorted. The blobs they held are then unknown
// unless another pack holds them: a backup uploads them again instead of
// deduplicating against data that is gone, and a restore reads the copies
// that remain. The index files are not changed: prune and repair index do
// that. It costs one listing of data/.
//
// It must not run while blobs are being saved or looked up (it rebuilds
// the index; see index.RemovePacks): a backup calls it before and after
// its archiving, a restore before planning.
func (r *Repository) ForgetMissingPacks(ctx context.Context) ([]backend.ID, error) {
	present := make(map[backend.ID]bool)
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, _ int64) error {
		present[id] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	gone := make(map[backend.ID]bool)
	var missing []backend.ID
	for _, id := range r.idx.Packs() {
		if !present[id] && !gone[id] {
			gone[id] = true
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	r.idx.RemovePacks(gone)
	slices.SortFunc(missing, cmpBlobID)
	return missing, nil
}
