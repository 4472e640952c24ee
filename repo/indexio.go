package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// maxIndexPlain caps a decompressed index file: 128 MiB holds over two
// million blob entries, far beyond what one index file lists.
const maxIndexPlain = 128 << 20

// saveIndexFile compresses, seals and stores an index file.
func (r *Repository) saveIndexFile(ctx context.Context, f *index.File) (backend.ID, error) {
	plain := index.Encode(f)
	comp := r.codec.encodeFile(plain)
	sealed := r.keys.SealFile(kindIndex, comp)
	id := backend.Hash(sealed)
	h := backend.Handle{Type: backend.IndexFile, Name: id.String()}
	if err := r.be.Put(ctx, h, backend.NewByteReader(sealed)); err != nil {
		return id, fmt.Errorf("save %s: %w", h, err)
	}
	if r.cache != nil {
		r.cache.put(cacheIndex, id, sealed)
	}
	r.noteSuperseded(f)
	return id, nil
}

// loadIndexFile reads one index file, from the cache when it holds it.
func (r *Repository) loadIndexFile(ctx context.Context, id backend.ID) (*index.File, error) {
	var sealed []byte
	if r.cache != nil {
		sealed = r.cache.get(cacheIndex, id)
	}
	if sealed == nil {
		var err error
		h := backend.Handle{Type: backend.IndexFile, Name: id.String()}
		sealed, err = r.readWhole(ctx, h, maxFileSize)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", h, err)
		}
		if backend.Hash(sealed) != id {
			return nil, fmt.Errorf("load %s: %w: content does not match its name", h, ErrDamaged)
		}
		if r.cache != nil {
			r.cache.put(cacheIndex, id, sealed)
		}
	}
	return r.openIndexFile(id, sealed)
}

// openIndexFile authenticates, decompresses and parses the bytes of index
// file id; the caller has checked that they hash to id.
func (r *Repository) openIndexFile(id backend.ID, sealed []byte) (*index.File, error) {
	comp, err := r.keys.OpenFile(kindIndex, sealed)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w: %v", id.Str(), ErrDamaged, err)
	}
	plain, err := r.codec.decodeFile(comp)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w: decompress: %v", id.Str(), ErrDamaged, err)
	}
	if len(plain) > maxIndexPlain {
		return nil, fmt.Errorf("index %s: %w: too large", id.Str(), ErrDamaged)
	}
	f, err := index.Decode(plain)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w: %v", id.Str(), ErrDamaged, err)
	}
	return f, nil
}

// noteSuperseded remembers the index files f names as superseded. It is
// safe for concurrent use.
func (r *Repository) noteSuperseded(f *index.File) {
	if len(f.Supersedes) == 0 {
		return
	}
	r.supersededMu.Lock()
	defer r.supersededMu.Unlock()
	if r.supersededIndex == nil {
		r.supersededIndex = make(map[backend.ID]bool)
	}
	for _, id := range f.Supersedes {
		r.supersededIndex[id] = true
	}
}

// IndexFiles lists the index files in the repository.
func (r *Repository) IndexFiles(ctx context.Context) ([]backend.ID, error) {
	return r.FileIDs(ctx, backend.IndexFile)
}

// FileIDs lists the files of type t in the repository by ID, in the
// order the backend lists them (see ListFiles).
func (r *Repository) FileIDs(ctx context.Context, t backend.FileType) ([]backend.ID, error) {
	var ids []backend.ID
	err := r.ListFiles(ctx, t, func(id backend.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// LoadIndex reads every index file into the in-memory index. An index file
// that cannot be read or fails to authenticate is skipped with a warning,
// and the packs no index lists are then read from their own headers, so
// one bad file never blocks a restore.
//
// It refuses, with an error wrapping ErrNotLocked, to run on a repository
// that holds no lock unless OpenForJob opened it lock-free on purpose: an
// index read before the lock could predate a prune that ran in between.
// OpenForJob calls it at the right moment; other callers need not.
func (r *Repository) LoadIndex(ctx context.Context) error {
	if !r.lockFree && r.locksHeld.Load() == 0 {
		return fmt.Errorf("load index: %w: lock it first (OpenForJob locks, then loads the index), or an index read before the lock could predate a prune running meanwhile", ErrNotLocked)
	}
	ids, err := r.IndexFiles(ctx)
	if err != nil {
		return fmt.Errorf("list index: %w", err)
	}
	var (
		mu      sync.Mutex // guards skipped
		skipped []backend.ID
	)
	err = r.forEachParallel(ctx, len(ids), func(ctx context.Context, i int) error {
		f, err := r.loadIndexFile(ctx, ids[i])
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.opts.Warn(fmt.Sprintf("warning: skipping index file %s: %v", ids[i].Str(), err))
			mu.Lock()
			skipped = append(skipped, ids[i])
			mu.Unlock()
			return nil
		}
		r.idx.AddFile(f)
		r.noteSuperseded(f)
		return nil
	})
	if err != nil {
		return err
	}
	if r.cache != nil {
		r.cache.prune(cacheIndex, ids)
	}
	slices.SortFunc(skipped, cmpBlobID)
	r.skippedIndex = skipped
	if len(skipped) > 0 {
		n, err := r.indexUnlistedPacks(ctx)
		if err != nil {
			return err
		}
		r.opts.Warn(fmt.Sprintf("warning: read the headers of %d packs no readable index lists", n))
	}
	return nil
}

// IndexUnlistedPacks reads the header of every pack that no loaded index
// lists and adds its blobs to the in-memory index (nothing is written),
// returning how many packs it read: what a repository that lost index
// files still holds. MirrorRefs taken before it are unchanged.
func (r *Repository) IndexUnlistedPacks(ctx context.Context) (int, error) {
	return r.indexUnlistedPacks(ctx)
}

// indexUnlistedPacks reads the header of every pack that no loaded index
// lists and adds its blobs to the in-memory index.
func (r *Repository) indexUnlistedPacks(ctx context.Context) (int, error) {
	known := make(map[backend.ID]bool)
	for _, id := range r.idx.Packs() {
		known[id] = true
	}
	type packInfo struct {
		id   backend.ID
		size int64
	}
	var todo []packInfo
	err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		if !known[id] {
			todo = append(todo, packInfo{id, size})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list packs: %w", err)
	}
	err = r.forEachParallel(ctx, len(todo), func(ctx context.Context, i int) error {
		blobs, err := r.ReadPackHeader(ctx, todo[i].id, todo[i].size)
		if err != nil {
			r.opts.Warn(fmt.Sprintf("warning: pack %s: %v", todo[i].id, err))
			return nil
		}
		r.idx.AddPack(todo[i].id, blobs)
		return nil
	})
	return len(todo), err
}

// ReadPackHeader reads and opens the header of a stored pack.
func (r *Repository) ReadPackHeader(ctx context.Context, id backend.ID, size int64) ([]pack.Blob, error) {
	h := backend.Handle{Type: backend.PackFile, Name: id.String()}
	readAt := func(off int64, n int) ([]byte, error) {
		buf := make([]byte, n)
		err := r.be.Get(ctx, h, n, off, func(rd io.Reader) error {
			_, err := io.ReadFull(rd, buf)
			return err
		})
		return buf, err
	}
	blobs, _, err := pack.ReadHeader(r.keys, size, readAt)
	if err != nil {
		return nil, fmt.Errorf("read header of %s: %w", h, err)
	}
	return blobs, nil
}

// forEachParallel runs fn(ctx, i) for i in 0..n-1, as many calls at once
// as the backend allows (Properties.Connections), on other goroutines. It
// keeps the rule of every worker pool in cairn (errgroup with SetLimit):
// the first error cancels the ctx the calls get, so calls in flight stop
// their I/O and no call starts after it, and forEachParallel returns that
// error once every started call has returned. If the caller's ctx ends
// first, it returns its cause: some calls may not have run.
func (r *Repository) forEachParallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(r.be.Properties().Connections, 1))
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return context.Cause(gctx) // cancelled while this call waited for a slot
			}
			return fn(gctx, i)
		})
	}
	err := g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())) {
		return context.Cause(ctx)
	}
	return err
}
