package repo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// DefaultMaxUnused is the share of unused bytes, in percent of the stored
// blob bytes, that Prune leaves in partly used packs rather than repack
// them: repacking copies the used part of a pack, so a little waste costs
// less than rewriting many packs every night.
const DefaultMaxUnused = 5.0

// indexFileBlobs is the most blobs Prune and RepairIndex put in one index
// file (about 4 MiB): a prune rewrites only the files that list a changed
// pack, so smaller files mean less to rewrite.
const indexFileBlobs = 100_000

// smallIndexFile: index files listing fewer blobs are merged by Prune when
// there are several (each backup leaves at least one small file).
const smallIndexFile = indexFileBlobs / 4

// staleTempAge is how old a temporary file (".tmp-...", left by an upload
// killed mid-way) must be before Prune and Mirror remove it. A temporary
// file is rewritten as long as its upload runs, so its modification time
// stays recent; an hour is far longer than any pause in a live upload (the
// retry wrapper gives up within minutes), so a file that old belongs to a
// dead writer, while a concurrent upload from another host, which no lock
// of ours covers, keeps its file.
const staleTempAge = time.Hour

// ErrMissingBlobs is wrapped by Prune's error when blobs that live
// snapshots use are in no pack: pruning then could only make things worse.
var ErrMissingBlobs = errors.New("blobs used by live snapshots are missing")

// ProgressFunc is told how far an operation has come: done of total units
// of the named phase. Calls come one at a time, but not always from the
// caller's goroutine.
type ProgressFunc func(phase string, done, total int64)

// PruneOptions configure Prune; the zero value works.
type PruneOptions struct {
	// DryRun computes and reports what would be done, and changes nothing.
	DryRun bool
	// MaxUnused is how many unused bytes, in percent of the blob bytes
	// kept, may stay in partly used packs; the packs with most waste are
	// repacked until the rest is within it. 0 means DefaultMaxUnused, a
	// negative value means none (every partly used pack is repacked), 100
	// means any amount (nothing is repacked).
	MaxUnused float64
	// Progress, if set, is told about each phase.
	Progress ProgressFunc
}

// PruneStats say what Prune found and did (or would do, for a dry run).
// Byte counts are of sealed blobs, except pack and freed bytes, which are
// file sizes.
type PruneStats struct {
	Packs          int          `json:"packs"`
	PackBytes      int64        `json:"pack_bytes"`
	UnindexedPacks int          `json:"unindexed_packs"` // packs no index listed; their headers were read
	DamagedPacks   []backend.ID `json:"damaged_packs,omitempty"`
	MissingPacks   []backend.ID `json:"missing_packs,omitempty"`

	UsedBlobs      int   `json:"used_blobs"`
	UsedBytes      int64 `json:"used_bytes"`
	UnusedBlobs    int   `json:"unused_blobs"`
	UnusedBytes    int64 `json:"unused_bytes"`
	DuplicateBlobs int   `json:"duplicate_blobs"`
	DuplicateBytes int64 `json:"duplicate_bytes"`

	KeptPacks    int   `json:"kept_packs"`
	UnusedPacks  int   `json:"unused_packs"`
	RepackPacks  int   `json:"repack_packs"`
	RepackBlobs  int   `json:"repack_blobs"`
	RepackBytes  int64 `json:"repack_bytes"`
	UnusedAfter  int64 `json:"unused_after"` // unused and duplicate bytes left in kept packs
	NewPacks     int   `json:"new_packs"`
	NewPackBytes int64 `json:"new_pack_bytes"`
	DeletedPacks int   `json:"deleted_packs"`
	DeletedBytes int64 `json:"deleted_bytes"`
	IndexWritten int   `json:"index_files_written"`
	IndexRemoved int   `json:"index_files_removed"`
	FreedBytes   int64 `json:"freed_bytes"` // deleted minus new pack bytes (estimated for a dry run)
	DryRun       bool  `json:"dry_run"`
	NothingToDo  bool  `json:"nothing_to_do"`

	// TempFilesRemoved and TempBytesRemoved count the stale temporary
	// files, left by uploads killed mid-way, that Prune removed.
	TempFilesRemoved int   `json:"temp_files_removed"`
	TempBytesRemoved int64 `json:"temp_bytes_removed"`
}

// prunePack is what Prune learns about one pack file.
type prunePack struct {
	size    int64
	damaged bool // unindexed and its header does not read
	// Pass 1: all blob bytes, and those of used blobs (any copy).
	total, anyUsed int64
	// Pass 3: the copies kept, the blobs nothing uses, the extra copies.
	used, unused, dup                int64
	usedBlobs, unusedBlobs, dupBlobs int
}

func (p *prunePack) waste() int64 { return p.unused + p.dup }

// blobLoc is one stored copy of a blob.
type blobLoc struct {
	pack backend.ID
	off  uint32
}

// Prune removes what no live snapshot uses: packs that hold only unused
// blobs are deleted, and partly used packs are repacked (their used blobs
// copied into new packs, then the old packs deleted) while the unused
// share is above opts.MaxUnused. used must hold every blob that a live
// snapshot reaches (snapshot.UsedBlobs collects them). Extra copies of a
// blob count as unused; packs no index lists are read from their headers
// and treated like the others; packs whose header does not read are left
// alone and reported. If a used blob is in no pack, Prune refuses, with an
// error wrapping ErrMissingBlobs, and changes nothing.
//
// The caller must hold an exclusive lock: a backup running meanwhile
// could otherwise reference a blob Prune deletes. Safety rests on that
// lock and on the log, never on file times.
//
// Prune survives a crash at any moment: it writes every new pack and
// index file before it deletes anything, deletes the index files it
// replaced before any pack, and deletes only packs that no remaining index
// lists. Whatever a crash leaves (unindexed packs, duplicate copies,
// superseded index files) is what the next Prune cleans up, and check
// accepts it meanwhile. Last, Prune removes the temporary files that
// uploads killed mid-way left in the backend an hour or more ago
// (backend.RemoveStaleTemp).
func (r *Repository) Prune(ctx context.Context, used *BlobSet, opts PruneOptions) (PruneStats, error) {
	st := PruneStats{DryRun: opts.DryRun}
	limit, err := maxUnusedShare(opts.MaxUnused)
	if err != nil {
		return st, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}

	// The packs in the backend; the unindexed ones are read from their
	// headers, so the leftovers of a crash are treated like any pack.
	progress("list packs", 0, 0)
	packs := make(map[backend.ID]*prunePack)
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		packs[id] = &prunePack{size: size}
		st.Packs++
		st.PackBytes += size
		return nil
	}); err != nil {
		return st, fmt.Errorf("list packs: %w", err)
	}
	indexed := make(map[backend.ID]bool)
	for _, id := range r.idx.Packs() {
		indexed[id] = true
	}
	var unindexed []backend.ID
	for id := range packs {
		if !indexed[id] {
			unindexed = append(unindexed, id)
		}
	}
	st.UnindexedPacks = len(unindexed)
	var mu sync.Mutex // guards the packs' damaged flags during the reads
	var done int64
	err = r.forEachParallel(ctx, len(unindexed), func(ctx context.Context, i int) error {
		id := unindexed[i]
		blobs, err := r.ReadPackHeader(ctx, id, packs[id].size)
		mu.Lock()
		defer mu.Unlock()
		done++
		progress("read unindexed packs", done, int64(len(unindexed)))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.opts.Warn(fmt.Sprintf("warning: pack %s is in no index and its header does not read, leaving it alone: %v", id, err))
			packs[id].damaged = true
			return nil
		}
		r.idx.AddPack(id, blobs)
		return nil
	})
	if err != nil {
		return st, err
	}

	// Pass 1: count the copies of each used blob, and sum bytes per pack.
	progress("find used blobs", 0, 0)
	used.compact()
	counts := make([]uint8, used.Len())
	missingPacks := make(map[backend.ID]bool)
	r.idx.Each(func(pb index.PackedBlob) bool {
		p := packs[pb.PackID]
		if p == nil {
			missingPacks[pb.PackID] = true
			return true
		}
		p.total += int64(pb.Length)
		if i, ok := used.pos(pb.Type, pb.ID); ok {
			if counts[i] < math.MaxUint8 {
				counts[i]++
			}
			p.anyUsed += int64(pb.Length)
		}
		return true
	})
	for id := range missingPacks {
		st.MissingPacks = append(st.MissingPacks, id)
	}
	slices.SortFunc(st.MissingPacks, cmpBlobID)
	if err := missingBlobsError(used, counts); err != nil {
		return st, err
	}

	// Pass 2: choose which copy of a duplicated blob to keep: the one in
	// the pack with the largest used share (a pack repacked before a crash
	// loses to its fully used copy), ties to the lowest pack ID.
	keeper := make(map[blobKey]blobLoc)
	r.idx.Each(func(pb index.PackedBlob) bool {
		i, ok := used.pos(pb.Type, pb.ID)
		if !ok || counts[i] < 2 {
			return true
		}
		k := blobKey{pb.Type, pb.ID}
		if _, done := keeper[k]; done {
			return true
		}
		var best blobLoc
		bestShare := -1.0
		for _, loc := range r.idx.LookupAll(pb.Type, pb.ID) {
			p := packs[loc.PackID]
			if p == nil || p.total == 0 {
				continue
			}
			if share := float64(p.anyUsed) / float64(p.total); share > bestShare {
				best, bestShare = blobLoc{loc.PackID, loc.Offset}, share
			}
		}
		keeper[k] = best
		return true
	})

	// Pass 3: what each pack keeps.
	r.idx.Each(func(pb index.PackedBlob) bool {
		p := packs[pb.PackID]
		if p == nil {
			return true
		}
		n := int64(pb.Length)
		i, ok := used.pos(pb.Type, pb.ID)
		switch {
		case !ok:
			p.unused += n
			p.unusedBlobs++
		case counts[i] == 1 || keeper[blobKey{pb.Type, pb.ID}] == blobLoc{pb.PackID, pb.Offset}:
			p.used += n
			p.usedBlobs++
		default:
			p.dup += n
			p.dupBlobs++
		}
		return true
	})

	// Classify the packs and choose what to repack.
	remove := make(map[backend.ID]bool)
	var candidates []backend.ID
	var keptUsed, candWaste int64
	for id, p := range packs {
		st.UsedBlobs += p.usedBlobs
		st.UsedBytes += p.used
		st.UnusedBlobs += p.unusedBlobs
		st.UnusedBytes += p.unused
		st.DuplicateBlobs += p.dupBlobs
		st.DuplicateBytes += p.dup
		switch {
		case p.damaged:
			st.DamagedPacks = append(st.DamagedPacks, id)
		case p.usedBlobs == 0:
			remove[id] = true
			st.UnusedPacks++
		case p.waste() == 0:
			st.KeptPacks++
			keptUsed += p.used
		default:
			candidates = append(candidates, id)
			keptUsed += p.used
			candWaste += p.waste()
		}
	}
	slices.SortFunc(st.DamagedPacks, cmpBlobID)
	// Most waste per byte copied first.
	sort.Slice(candidates, func(i, j int) bool {
		a, b := packs[candidates[i]], packs[candidates[j]]
		fa, fb := float64(a.waste())/float64(a.total), float64(b.waste())/float64(b.total)
		if fa != fb {
			return fa > fb
		}
		return candidates[i].Less(candidates[j])
	})
	// Waste may stay while waste <= limit * (used + waste).
	allowed := func(waste int64) bool {
		return float64(waste) <= limit*float64(keptUsed+waste)
	}
	repack := make(map[backend.ID]bool)
	for _, id := range candidates {
		p := packs[id]
		if allowed(candWaste) {
			st.KeptPacks++
			continue
		}
		repack[id] = true
		candWaste -= p.waste()
		st.RepackPacks++
		st.RepackBlobs += p.usedBlobs
		st.RepackBytes += p.used
	}
	st.UnusedAfter = candWaste
	var toDelete []backend.ID
	for id := range remove {
		toDelete = append(toDelete, id)
	}
	for id := range repack {
		toDelete = append(toDelete, id)
	}
	slices.SortFunc(toDelete, cmpBlobID)
	var deleteBytes int64
	for _, id := range toDelete {
		deleteBytes += packs[id].size
	}
	if opts.DryRun {
		st.FreedBytes = deleteBytes - st.RepackBytes
		st.NothingToDo = len(toDelete) == 0 && len(missingPacks) == 0 && len(unindexed) == len(st.DamagedPacks)
		return st, nil
	}

	if len(repack) > 0 {
		if err := r.repack(ctx, packs, repack, counts, keeper, used, progress); err != nil {
			return st, err
		}
		// The new packs, as the listing now shows them.
		if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
			if packs[id] == nil {
				st.NewPacks++
				st.NewPackBytes += size
			}
			return nil
		}); err != nil {
			return st, fmt.Errorf("list packs: %w", err)
		}
	}

	drop := make(map[backend.ID]bool, len(toDelete)+len(missingPacks))
	for _, id := range toDelete {
		drop[id] = true
	}
	for id := range missingPacks {
		drop[id] = true
	}
	r.idx.RemovePacks(drop)
	written, removed, err := r.rewriteIndex(ctx, progress)
	st.IndexWritten, st.IndexRemoved = written, removed
	if err != nil {
		return st, err
	}

	// Only now, with no index file left that lists them, the packs go.
	var dmu sync.Mutex // guards the deletion counts
	var deleted int64
	err = r.forEachParallel(ctx, len(toDelete), func(ctx context.Context, i int) error {
		id := toDelete[i]
		err := r.DeleteFile(ctx, backend.PackFile, id)
		if err != nil && !backend.IsNotExist(err) {
			return err
		}
		dmu.Lock()
		defer dmu.Unlock()
		deleted++
		st.DeletedPacks++
		st.DeletedBytes += packs[id].size
		progress("delete packs", deleted, int64(len(toDelete)))
		return nil
	})
	st.FreedBytes = st.DeletedBytes - st.NewPackBytes
	if err != nil {
		return st, err
	}
	st.NothingToDo = len(toDelete) == 0 && written == 0 && removed == 0
	if r.cache != nil {
		r.cache.prune(cacheData, r.idx.Packs())
	}
	st.TempFilesRemoved, st.TempBytesRemoved, err = removeStaleTemp(ctx, r.be, r.opts.Warn)
	return st, err
}

// removeStaleTemp removes the temporary files that uploads killed mid-way
// left in be at least staleTempAge ago. A file it cannot remove is only
// worth a warning: the operation that calls it has done its work. It
// returns an error only when ctx is cancelled.
func removeStaleTemp(ctx context.Context, be backend.Backend, warn func(string)) (int, int64, error) {
	n, size, err := backend.RemoveStaleTemp(ctx, be, staleTempAge)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return n, size, cerr
		}
		if warn != nil {
			warn(fmt.Sprintf("warning: %s: %v", be.Location(), err))
		}
	}
	return n, size, nil
}

// maxUnusedShare turns the MaxUnused option into a fraction of the bytes
// kept.
func maxUnusedShare(p float64) (float64, error) {
	switch {
	case math.IsNaN(p) || p > 100:
		return 0, fmt.Errorf("prune: max unused %v%% is not a percentage", p)
	case p == 0:
		p = DefaultMaxUnused
	case p < 0:
		p = 0
	}
	return p / 100, nil
}

// missingBlobsError reports the used blobs no pack holds.
func missingBlobsError(used *BlobSet, counts []uint8) error {
	var n int
	var first []string
	i := 0
	used.Each(func(t pack.BlobType, id backend.ID) bool {
		if counts[i] == 0 {
			n++
			if len(first) < 5 {
				first = append(first, t.String()+" "+id.Str())
			}
		}
		i++
		return true
	})
	if n == 0 {
		return nil
	}
	return fmt.Errorf("prune: %w: %d blob(s), e.g. %s; nothing was changed (run 'cairn check', then 'cairn repair index' and 'cairn repair snapshots')",
		ErrMissingBlobs, n, strings.Join(first, ", "))
}

// repack copies the kept blobs of the given packs into new packs and
// flushes them, so they are indexed before anything is deleted.
func (r *Repository) repack(ctx context.Context, packs map[backend.ID]*prunePack, repack map[backend.ID]bool,
	counts []uint8, keeper map[blobKey]blobLoc, used *BlobSet, progress ProgressFunc) error {
	keep := make(map[backend.ID][]pack.Blob, len(repack))
	r.idx.Each(func(pb index.PackedBlob) bool {
		if !repack[pb.PackID] {
			return true
		}
		i, ok := used.pos(pb.Type, pb.ID)
		if ok && (counts[i] == 1 || keeper[blobKey{pb.Type, pb.ID}] == blobLoc{pb.PackID, pb.Offset}) {
			keep[pb.PackID] = append(keep[pb.PackID], pb.Blob)
		}
		return true
	})
	order := make([]backend.ID, 0, len(repack))
	for id := range repack {
		order = append(order, id)
	}
	slices.SortFunc(order, cmpBlobID)
	for n, id := range order {
		progress("repack", int64(n), int64(len(order)))
		err := r.LoadPack(ctx, id, keep[id], func(b pack.Blob, plain []byte, err error) error {
			if err != nil {
				// Another copy may read; LoadBlob tries them all.
				var lerr error
				plain, lerr = r.LoadBlob(ctx, b.Type, b.ID, nil)
				if lerr != nil {
					return fmt.Errorf("%w; no copy of %s blob %s reads (run 'cairn check --read-data'; nothing was deleted)", err, b.Type, b.ID.Str())
				}
			}
			_, err = r.saveBlob(ctx, b.Type, b.ID, plain, true)
			return err
		})
		if err != nil {
			return fmt.Errorf("repack %s: %w", backend.Handle{Type: backend.PackFile, Name: id.String()}, err)
		}
	}
	progress("repack", int64(len(order)), int64(len(order)))
	if err := r.Flush(ctx); err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	return nil
}

// indexFileInfo is what rewriteIndex needs of an existing index file.
type indexFileInfo struct {
	id      backend.ID
	packs   []backend.ID
	blobs   int
	damaged bool
}

// rewriteIndex makes the index files describe the in-memory index: it
// rewrites every file that lists a pack the in-memory index lacks or that
// does not load, merges small files when there are several, and covers
// every pack no remaining file lists. The new files supersede the ones
// they replace, which are deleted only after all new files are stored.
// Replacing a file is always safe: whatever it listed that the in-memory
// index holds is in a new file first.
func (r *Repository) rewriteIndex(ctx context.Context, progress ProgressFunc) (written, removed int, err error) {
	ids, err := r.IndexFiles(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("list index: %w", err)
	}
	files := make([]indexFileInfo, len(ids))
	err = r.forEachParallel(ctx, len(ids), func(ctx context.Context, i int) error {
		fi := indexFileInfo{id: ids[i]}
		f, err := r.loadIndexFile(ctx, ids[i])
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
	if err != nil {
		return 0, 0, err
	}
	inIndex := make(map[backend.ID]bool)
	for _, id := range r.idx.Packs() {
		inIndex[id] = true
	}
	small := 0
	for _, f := range files {
		if !f.damaged && f.blobs < smallIndexFile {
			small++
		}
	}
	var replace []backend.ID
	covered := make(map[backend.ID]bool)
	for _, f := range files {
		stale := f.damaged || (small > 1 && f.blobs < smallIndexFile)
		for _, p := range f.packs {
			if !inIndex[p] {
				stale = true
			}
		}
		if stale {
			replace = append(replace, f.id)
			continue
		}
		for _, p := range f.packs {
			covered[p] = true
		}
	}
	byPack := make(map[backend.ID][]pack.Blob)
	r.idx.Each(func(pb index.PackedBlob) bool {
		if !covered[pb.PackID] {
			byPack[pb.PackID] = append(byPack[pb.PackID], pb.Blob)
		}
		return true
	})
	fresh := index.New()
	for id, blobs := range byPack {
		fresh.AddPack(id, blobs)
	}
	byPack = nil
	newFiles := fresh.ToFiles(indexFileBlobs)
	slices.SortFunc(replace, cmpBlobID)
	wrote := make(map[backend.ID]bool)
	for i, f := range newFiles {
		progress("write index", int64(i), int64(len(newFiles)))
		f.Supersedes = replace
		id, err := r.saveIndexFile(ctx, f)
		if err != nil {
			return written, 0, err
		}
		wrote[id] = true
		written++
	}
	for i, id := range replace {
		progress("remove old index", int64(i), int64(len(replace)))
		if wrote[id] {
			continue
		}
		if err := r.DeleteFile(ctx, backend.IndexFile, id); err != nil && !backend.IsNotExist(err) {
			return written, removed, err
		}
		removed++
	}
	return written, removed, nil
}
