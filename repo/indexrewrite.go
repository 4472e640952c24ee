package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// indexFileInfo is what planIndex needs of an existing index file.
type indexFileInfo struct {
	id      backend.ID
	packs   []backend.ID
	blobs   int
	damaged bool
}

// readIndexFiles loads every index file (from the cache when it holds
// it) and says which packs each lists; a file that does not load is
// marked damaged.
func (r *Repository) readIndexFiles(ctx context.Context) ([]indexFileInfo, error) {
	ids, err := r.IndexFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	files := make([]indexFileInfo, len(ids))
	err = r.forEachParallel(ctx, len(ids), func(ctx context.Context, i int) error {
		fi := indexFileInfo{id: ids[i]}
		f, err := r.loadIndexFile(ctx, ids[i])
		if errors.Is(err, crypt.ErrUnknownKey) {
			// Not damage: sealed after a rotation this key file was
			// revoked from. Replacing it would drop what it lists.
			return fmt.Errorf("%w: rewriting the index needs the password that rotated the key", err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fi.damaged = true
		} else {
			for _, p := range f.Packs {
				fi.packs = append(fi.packs, p.ID)
				fi.blobs += len(p.Blobs)
			}
		}
		files[i] = fi
		return nil
	})
	return files, err
}

// planIndex fills in plan.Index: once the packs in drop are gone from
// the in-memory index, the index files to replace are those that list a
// pack it lacks, those that do not load, and the small ones when there
// are several (merged); the new files list every pack of the in-memory
// index that no remaining file lists. Replacing a file is always safe:
// whatever it listed that the in-memory index keeps is in a new file
// first.
func (r *Repository) planIndex(ctx context.Context, plan *PrunePlan, drop map[backend.ID]bool, progress ProgressFunc) error {
	progress("read index", 0, 0)
	files, err := r.readIndexFiles(ctx)
	if err != nil {
		return err
	}
	keep := make(map[backend.ID]bool)
	for _, id := range r.idx.Packs() {
		if !drop[id] {
			keep[id] = true
		}
	}
	small := 0
	for _, f := range files {
		if !f.damaged && f.blobs < smallIndexFile {
			small++
		}
	}
	plan.indexFiles = make(map[backend.ID]bool, len(files))
	covered := make(map[backend.ID]bool)
	for _, f := range files {
		plan.indexFiles[f.id] = true
		stale := f.damaged || (small > 1 && f.blobs < smallIndexFile)
		for _, p := range f.packs {
			if !keep[p] {
				stale = true
			}
		}
		if stale {
			plan.Index.Replace = append(plan.Index.Replace, f.id)
			continue
		}
		for _, p := range f.packs {
			covered[p] = true
		}
	}
	slices.SortFunc(plan.Index.Replace, cmpBlobID)
	relist := make(map[backend.ID]bool)
	r.idx.Each(func(pb index.PackedBlob) bool {
		if keep[pb.PackID] && !covered[pb.PackID] {
			relist[pb.PackID] = true
			plan.Index.Blobs++
		}
		return true
	})
	for id := range relist {
		plan.relist = append(plan.relist, id)
	}
	slices.SortFunc(plan.relist, cmpBlobID)
	plan.Index.Packs = len(plan.relist)
	return nil
}

// executeIndexPlan writes the new index files of plan, listing the packs
// it relists and newPacks (the packs the repack wrote), each superseding
// the files the plan replaces and those the repack wrote as it went; then
// it deletes those.
func (r *Repository) executeIndexPlan(ctx context.Context, plan PrunePlan, newPacks []backend.ID, res *PruneResult, progress ProgressFunc) error {
	old := slices.Clone(plan.Index.Replace)
	if len(newPacks) > 0 {
		// The index files the repack wrote: every file the plan did
		// not know (no one else writes under the exclusive lock).
		ids, err := r.IndexFiles(ctx)
		if err != nil {
			return fmt.Errorf("list index: %w", err)
		}
		for _, id := range ids {
			if !plan.indexFiles[id] {
				old = append(old, id)
				res.IndexWritten++
			}
		}
	}
	list := make(map[backend.ID]bool, len(plan.relist)+len(newPacks))
	for _, ids := range [][]backend.ID{plan.relist, newPacks} {
		for _, id := range ids {
			list[id] = true
		}
	}
	files := r.indexFilesFor(list)
	written, removed, err := r.replaceIndex(ctx, files, old, progress, func(id backend.ID) {
		res.Kept = append(res.Kept, backend.Handle{Type: backend.IndexFile, Name: id.String()}.String())
	})
	res.IndexWritten += written
	res.IndexRemoved += removed
	return err
}

// indexFilesFor returns index files listing the given packs as the
// in-memory index holds them.
func (r *Repository) indexFilesFor(packs map[backend.ID]bool) []*index.File {
	if len(packs) == 0 {
		return nil
	}
	byPack := make(map[backend.ID][]pack.Blob, len(packs))
	r.idx.Each(func(pb index.PackedBlob) bool {
		if packs[pb.PackID] {
			byPack[pb.PackID] = append(byPack[pb.PackID], pb.Blob)
		}
		return true
	})
	fresh := index.New()
	for id, blobs := range byPack {
		fresh.AddPack(id, blobs)
	}
	return fresh.ToFiles(indexFileBlobs)
}

// replaceIndex is how the index is rewritten, by Prune and RepairIndex
// alike: it stores every new file, each naming the old files it
// supersedes, and only once all are stored deletes the old files. A
// crash in between leaves old and new files side by side, which load as
// their union (a pack listed twice does no harm), and the next run
// deletes the old files. It returns how many files it wrote and deleted.
// An old file object lock keeps from being deleted (backend.ErrRetained)
// is passed to kept, when
// kept is not nil, and the rest go on; with kept nil it is an error.
func (r *Repository) replaceIndex(ctx context.Context, files []*index.File, old []backend.ID, progress ProgressFunc, kept func(backend.ID)) (written, removed int, err error) {
	old = slices.Clone(old)
	slices.SortFunc(old, cmpBlobID)
	wrote := make(map[backend.ID]bool, len(files))
	for i, f := range files {
		progress("write index", int64(i), int64(len(files)))
		f.Supersedes = old
		id, err := r.saveIndexFile(ctx, f)
		if err != nil {
			return written, 0, err
		}
		wrote[id] = true
		written++
	}
	for i, id := range old {
		progress("remove old index", int64(i), int64(len(old)))
		if wrote[id] {
			continue
		}
		err := r.DeleteFile(ctx, backend.IndexFile, id)
		switch {
		case err == nil:
			removed++
		case kept != nil && errors.Is(err, backend.ErrRetained):
			kept(id)
		case !backend.IsNotExist(err):
			return written, removed, err
		default:
			removed++
		}
	}
	return written, removed, nil
}
