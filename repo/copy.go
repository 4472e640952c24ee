package repo

import (
	"context"
	"fmt"
	"sync"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

// CopyStats says what CopyBlobs copied.
type CopyStats struct {
	// Blobs counts the blobs stored, Bytes their plaintext size.
	Blobs int    `json:"blobs"`
	Bytes uint64 `json:"bytes"`
	// PacksRead counts the packs of the source read.
	PacksRead int `json:"packs_read"`
}

// CopyBlobs stores in r the blobs of the set, read from src, another
// repository with its own keys: each blob is read from one of src's packs
// (each pack once, several packs at a time, as many as src's backend
// allows connections), checked against its ID, and saved with SaveBlob,
// which compresses it with r's mode, seals it with r's key, and skips a
// blob r already holds. Blob IDs are hashes of the plaintext, so they stay
// valid in r whatever the two repositories' chunker polynomials are. Then
// it flushes r: when CopyBlobs returns nil, every blob of the set is in a
// pack of r and indexed.
//
// A blob src's index does not list, or no copy of which reads, fails the
// copy; blobs already stored stay in r, used by nothing until a snapshot
// needs them or prune removes them. progress, if set, is called with the
// phase "copy" and the packs read so far, one call at a time. The caller
// holds a lock on each repository (a shared one on src, at least an append
// lock on r).
func (r *Repository) CopyBlobs(ctx context.Context, src *Repository, blobs *BlobSet, progress ProgressFunc) (CopyStats, error) {
	var st CopyStats
	byPack := map[backend.ID][]pack.Blob{}
	var missing error
	blobs.Each(func(t pack.BlobType, id backend.ID) bool {
		pb, ok := src.idx.Lookup(t, id)
		if !ok {
			missing = fmt.Errorf("copy %s blob %s: %w in the source repository", t, id.Str(), ErrBlobNotFound)
			return false
		}
		byPack[pb.PackID] = append(byPack[pb.PackID], pb.Blob)
		return true
	})
	if missing != nil {
		return st, missing
	}
	packs := make([]backend.ID, 0, len(byPack))
	for id := range byPack {
		packs = append(packs, id)
	}
	progress = orNoProgress(progress)
	var mu sync.Mutex // guards st and the calls of progress
	err := src.forEachParallel(ctx, len(packs), func(ctx context.Context, i int) error {
		n, size, err := r.copyPack(ctx, src, packs[i], byPack[packs[i]])
		mu.Lock()
		defer mu.Unlock()
		st.Blobs += n
		st.Bytes += size
		if err == nil {
			st.PacksRead++
			progress("copy", int64(st.PacksRead), int64(len(packs)))
		}
		return err
	})
	if err != nil {
		return st, err
	}
	if err := r.Flush(ctx); err != nil {
		return st, fmt.Errorf("copy: %w", err)
	}
	return st, nil
}

// copyPack copies the given blobs of src's pack packID into r, and says
// how many it stored and their plaintext size.
func (r *Repository) copyPack(ctx context.Context, src *Repository, packID backend.ID, blobs []pack.Blob) (int, uint64, error) {
	var n int
	var size uint64
	err := src.LoadPack(ctx, packID, blobs, func(b pack.Blob, plain []byte, err error) error {
		if err != nil {
			// Another copy may read; LoadBlob tries them all.
			var lerr error
			if plain, lerr = src.LoadBlob(ctx, b.Type, b.ID, nil); lerr != nil {
				return fmt.Errorf("%w; no copy of %s blob %s reads in the source repository (run 'cairn check --read-data' there)", err, b.Type, b.ID.Str())
			}
		}
		had, err := r.SaveBlob(ctx, b.Type, b.ID, plain)
		if err != nil {
			return err
		}
		if !had {
			n++
			size += uint64(len(plain))
		}
		return nil
	})
	if err != nil {
		return n, size, fmt.Errorf("copy from %s: %w", backend.Handle{Type: backend.PackFile, Name: packID.String()}, err)
	}
	return n, size, nil
}
