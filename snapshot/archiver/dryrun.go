package archiver

import (
	"context"
	"sync"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

// dryRunRepo wraps a repository for Options.DryRun: SaveBlob discards the
// data but remembers the ID, so it reports known exactly as a real save
// would have, and the summary says what a real run would add.
type dryRunRepo struct {
	Repository

	mu   sync.Mutex // guards seen
	seen map[blobKey]struct{}
}

type blobKey struct {
	t  pack.BlobType
	id backend.ID
}

func newDryRunRepo(r Repository) *dryRunRepo {
	return &dryRunRepo{Repository: r, seen: map[blobKey]struct{}{}}
}

func (d *dryRunRepo) SaveBlob(ctx context.Context, t pack.BlobType, id backend.ID, _ []byte) (bool, error) {
	if err := context.Cause(ctx); err != nil {
		return false, err
	}
	if d.Repository.Has(t, id) {
		return true, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[blobKey{t, id}]; ok {
		return true, nil
	}
	d.seen[blobKey{t, id}] = struct{}{}
	return false, nil
}

func (d *dryRunRepo) Has(t pack.BlobType, id backend.ID) bool {
	if d.Repository.Has(t, id) {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.seen[blobKey{t, id}]
	return ok
}
