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

// ErrMissingBlobs is wrapped by PlanPrune's error when blobs that live
// snapshots use are in no pack: pruning then could only make things worse.
var ErrMissingBlobs = errors.New("blobs used by live snapshots are missing")

// ProgressFunc is told how far an operation has come: done of total units
// of the named phase. Calls come one at a time, but not always from the
// caller's goroutine.
type ProgressFunc func(phase string, done, total int64)

// PhaseReadData is check's phase of reading packs' data; its units are
// bytes (every other phase counts files or packs).
const PhaseReadData = "read data"

// PruneOptions configure PlanPrune and ExecutePrune; the zero value works.
type PruneOptions struct {
	// MaxUnused is how many unused bytes, in percent of the blob bytes
	// kept, may stay in partly used packs; the packs with most waste are
	// repacked until the rest is within it. 0 means DefaultMaxUnused, a
	// negative value means none (every partly used pack is repacked), 100
	// means any amount (nothing is repacked).
	MaxUnused float64
	// Repack narrows or widens the choice of packs to repack.
	Repack RepackOptions
	// Progress, if set, is told about each phase.
	Progress ProgressFunc
}

// RepackOptions are restic's prune flags that change which packs a prune
// repacks; the zero value changes nothing.
type RepackOptions struct {
	// MaxBytes, if above 0, bounds the blob bytes (used and unused) of
	// the packs repacked in one run: candidates that would pass it are
	// kept (restic's --max-repack-size). Packs holding only unused data
	// are deleted whatever it says.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// CacheableOnly repacks only packs holding no data blobs (tree
	// packs, which the cache holds); partly used data packs are kept
	// (restic's --repack-cacheable-only).
	CacheableOnly bool `json:"cacheable_only,omitempty"`
	// Small also repacks fully used packs whose blobs fill less than
	// SmallPackShare of the target pack size, when there are at least
	// MinSmallPacks of them (restic's --repack-small): fewer are not
	// worth a repack, and the rule keeps a prune from repacking one
	// small pack again and again.
	Small bool `json:"small,omitempty"`
}

// SmallPackShare and MinSmallPacks define RepackOptions.Small, as restic
// defines --repack-small: a pack is small below 80% of the target pack
// size, and small packs are repacked only when there are 10 or more.
const (
	SmallPackShare = 0.8
	MinSmallPacks  = 10
)

// PrunePack is one pack a prune deletes or repacks. Byte counts are of
// sealed blobs; Size is the pack file's size.
type PrunePack struct {
	ID   backend.ID `json:"id"`
	Size int64      `json:"size"`
	// BlobUse counts the pack's blobs; its used ones are what a repack
	// copies into new packs (none for a pack deleted whole), and its
	// duplicates are extra copies of used blobs whose kept copy lies in
	// another pack.
	BlobUse
}

// BlobUse counts blobs, and their sealed bytes, by use: a copy of a blob
// a live snapshot uses (the one copy prune keeps), a blob no live
// snapshot uses, and an extra copy of a used blob. In JSON its fields
// stand among those of the struct that embeds it.
type BlobUse struct {
	UsedBlobs      int   `json:"used_blobs"`
	UsedBytes      int64 `json:"used_bytes"`
	UnusedBlobs    int   `json:"unused_blobs"`
	UnusedBytes    int64 `json:"unused_bytes"`
	DuplicateBlobs int   `json:"duplicate_blobs"`
	DuplicateBytes int64 `json:"duplicate_bytes"`
}

// add adds o's counts to u's.
func (u *BlobUse) add(o BlobUse) {
	u.UsedBlobs += o.UsedBlobs
	u.UsedBytes += o.UsedBytes
	u.UnusedBlobs += o.UnusedBlobs
	u.UnusedBytes += o.UnusedBytes
	u.DuplicateBlobs += o.DuplicateBlobs
	u.DuplicateBytes += o.DuplicateBytes
}

// PruneKept counts the packs a prune leaves in place, by why.
type PruneKept struct {
	// FullyUsed packs hold only blobs in use.
	FullyUsed int `json:"fully_used"`
	// WithinLimit packs hold some unused data, but repacking them is not
	// needed to bring the unused share down to MaxUnused.
	WithinLimit int `json:"within_limit"`
	// Damaged packs are in no index and their header does not read: they
	// are left alone (PrunePlan.DamagedPacks).
	Damaged int `json:"damaged"`
	// OverRepackLimit packs would have been repacked but would have
	// passed RepackOptions.MaxBytes; NotCacheable are partly used data
	// packs kept by RepackOptions.CacheableOnly.
	OverRepackLimit int `json:"over_repack_limit"`
	NotCacheable    int `json:"not_cacheable"`
}

// PruneIndexPlan is the part of a prune that rewrites the index: new
// index files are written, listing the packs named here and the packs a
// repack writes, and only then are the replaced files deleted.
type PruneIndexPlan struct {
	// Replace are the index files to delete once the new ones are
	// stored: those that list a pack the prune deletes or that is
	// missing, those that do not load, and, when there are several,
	// those listing fewer than a quarter of the most an index file holds.
	Replace []backend.ID `json:"replace"`
	// Packs and Blobs are what the new index files list besides the
	// packs a repack writes: the packs kept that only replaced files
	// listed, and those no index file lists.
	Packs int `json:"packs"`
	Blobs int `json:"blobs"`
}

// PrunePlan is what a prune would do, computed by PlanPrune: a value that
// describes everything ExecutePrune then does and nothing more. Byte
// counts are of sealed blobs, except Size, PackBytes, DeleteBytes and
// FreedBytes, which are file sizes.
type PrunePlan struct {
	// MaxUnused is the limit the plan was made with, in percent, and
	// Repack the repack options.
	MaxUnused     float64       `json:"max_unused"`
	RepackOptions RepackOptions `json:"repack_options"`

	Packs          int   `json:"packs"`
	PackBytes      int64 `json:"pack_bytes"`
	UnindexedPacks int   `json:"unindexed_packs"` // packs no index listed; their headers were read
	// DamagedPacks are in no index and their header does not read: left
	// alone. MissingPacks are listed by the index and absent: dropped
	// from the index.
	DamagedPacks []backend.ID `json:"damaged_packs,omitempty"`
	MissingPacks []backend.ID `json:"missing_packs,omitempty"`

	// BlobUse sums the packs' counts.
	BlobUse

	// Delete are the packs holding nothing in use, deleted whole;
	// Repack the partly used packs (and, with RepackOptions.Small, the
	// small ones) whose used blobs are copied into new packs before they
	// are deleted. Both sorted by ID.
	Delete []PrunePack `json:"delete"`
	Repack []PrunePack `json:"repack"`
	Kept   PruneKept   `json:"kept"`

	RepackBlobs int   `json:"repack_blobs"` // blobs copied into new packs
	RepackBytes int64 `json:"repack_bytes"`
	// RepackPackBytes are the blob bytes, used and unused, of the packs
	// repacked: what RepackOptions.MaxBytes bounds.
	RepackPackBytes int64 `json:"repack_pack_bytes"`
	// UnusedAfter is the unused and duplicate bytes left in kept packs.
	UnusedAfter int64 `json:"unused_after"`
	// DeleteBytes is the size of the packs deleted (Delete and Repack);
	// FreedBytes estimates what the prune frees: DeleteBytes less what
	// the repack writes.
	DeleteBytes int64 `json:"delete_bytes"`
	FreedBytes  int64 `json:"freed_bytes"`

	Index PruneIndexPlan `json:"index"`
	// NothingToDo says the prune would change nothing (but remove stale
	// temporary files).
	NothingToDo bool `json:"nothing_to_do"`

	// copy lists, per repacked pack, the blobs to copy.
	copy map[backend.ID][]pack.Blob
	// relist are the packs of Index.Packs; indexFiles every index file
	// there was, so that those a repack writes are told apart.
	relist     []backend.ID
	indexFiles map[backend.ID]bool
	guard      *planGuard
}

// PruneResult says what ExecutePrune did.
type PruneResult struct {
	DeletedPacks int   `json:"deleted_packs"`
	DeletedBytes int64 `json:"deleted_bytes"`
	NewPacks     int   `json:"new_packs"`
	NewPackBytes int64 `json:"new_pack_bytes"`
	// IndexWritten counts the index files written (those the repack
	// wrote as it went included); IndexRemoved the files deleted: the
	// plan's Index.Replace and the repack's own.
	IndexWritten int   `json:"index_files_written"`
	IndexRemoved int   `json:"index_files_removed"`
	FreedBytes   int64 `json:"freed_bytes"` // deleted minus new pack bytes
	// TempFilesRemoved and TempBytesRemoved count the stale temporary
	// files, left by uploads killed mid-way, that the prune removed.
	TempFilesRemoved int   `json:"temp_files_removed"`
	TempBytesRemoved int64 `json:"temp_bytes_removed"`
	// Kept names ("index/ID", "data/ID") the files the backend refused to
	// delete because an S3 bucket's object lock retains them
	// (backend.ErrRetained), and the packs left because a
	// kept index file still lists them. The repository stays consistent;
	// the next prune tries them again. Sorted.
	Kept []string `json:"kept,omitempty"`
}

// prunePack is what PlanPrune learns about one pack file.
type prunePack struct {
	size    int64
	damaged bool // unindexed and its header does not read
	// dataBlobs counts the pack's data blobs: a pack with none is
	// cacheable (RepackOptions.CacheableOnly).
	dataBlobs int
	// Pass 1: all blob bytes, and those of used blobs (any copy).
	total, anyUsed int64
	// Pass 3: the copies kept, the blobs nothing uses, the extra copies.
	BlobUse
}

func (p *prunePack) waste() int64 { return p.UnusedBytes + p.DuplicateBytes }

func (p *prunePack) planned(id backend.ID) PrunePack {
	return PrunePack{ID: id, Size: p.size, BlobUse: p.BlobUse}
}

// blobLoc is one stored copy of a blob.
type blobLoc struct {
	pack backend.ID
	off  uint32
}

// blobUse is what PlanPrune's passes find out about the blobs in use.
type blobUse struct {
	used *BlobSet
	// counts holds, per used blob (in used's order), how many copies
	// the index lists, up to 255.
	counts []uint8
	// keeper is the copy kept of each used blob with several copies.
	keeper map[blobKey]blobLoc
}

// keeps says whether pb is the copy of a used blob that stays.
func (u *blobUse) keeps(pb index.PackedBlob) bool {
	i, ok := u.used.pos(pb.Type, pb.ID)
	return ok && (u.counts[i] == 1 || u.keeper[blobKey{pb.Type, pb.ID}] == blobLoc{pb.PackID, pb.Offset})
}

// PlanPrune computes what a prune would do to remove what no live
// snapshot uses: packs that hold only unused blobs are deleted, and
// partly used packs are repacked (their used blobs copied into new
// packs, then the old packs deleted) while the unused share is above
// opts.MaxUnused. used must hold every blob that a live snapshot reaches
// (snapshot.UsedBlobs collects them). Extra copies of a blob count as
// unused; packs no index lists are read from their headers and treated
// like the others (they are added to the in-memory index); packs whose
// header does not read are left alone and reported. If a used blob is in
// no pack, PlanPrune fails with an error wrapping ErrMissingBlobs.
//
// PlanPrune writes nothing. Its plan can be executed (ExecutePrune) only
// if it was made under the exclusive lock the repository holds: a backup
// running meanwhile could otherwise reference a blob the plan deletes.
// Safety rests on that lock and on the log, never on file times.
func (r *Repository) PlanPrune(ctx context.Context, used *BlobSet, opts PruneOptions) (PrunePlan, error) {
	plan := PrunePlan{Delete: []PrunePack{}, Repack: []PrunePack{}, Index: PruneIndexPlan{Replace: []backend.ID{}}, guard: r.newPlanGuard()}
	limit, err := maxUnusedShare(opts.MaxUnused)
	if err != nil {
		return plan, err
	}
	plan.MaxUnused = 100 * limit
	if opts.Repack.MaxBytes < 0 {
		return plan, fmt.Errorf("prune: max repack size %d is negative", opts.Repack.MaxBytes)
	}
	plan.RepackOptions = opts.Repack
	progress := orNoProgress(opts.Progress)
	packs, err := r.prunePacks(ctx, &plan, progress)
	if err != nil {
		return plan, err
	}
	progress("find used blobs", 0, 0)
	use, missing := r.countCopies(used, packs)
	plan.MissingPacks = missing
	if err := missingBlobsError(used, use.counts); err != nil {
		return plan, err
	}
	r.chooseKeepers(use, packs)
	r.classifyBlobs(use, packs)
	repack := plan.choosePacks(packs, repackRules{limit: limit, RepackOptions: opts.Repack, small: int64(SmallPackShare * float64(r.cfg.PackSize))})
	plan.copy = r.blobsToCopy(use, repack)
	drop := make(map[backend.ID]bool)
	for _, list := range [][]PrunePack{plan.Delete, plan.Repack} {
		for _, p := range list {
			drop[p.ID] = true
		}
	}
	for _, id := range plan.MissingPacks {
		drop[id] = true
	}
	if err := r.planIndex(ctx, &plan, drop, progress); err != nil {
		return plan, err
	}
	plan.NothingToDo = len(drop) == 0 && len(plan.Index.Replace) == 0 && len(plan.relist) == 0
	return plan, nil
}

// orNoProgress returns fn, or a ProgressFunc that does nothing.
func orNoProgress(fn ProgressFunc) ProgressFunc {
	if fn == nil {
		return func(string, int64, int64) {}
	}
	return fn
}

// prunePacks lists the packs in the backend and reads the headers of
// those no index lists, so the leftovers of a crash are treated like any
// pack: their blobs join the in-memory index, and the packs whose header
// does not read are marked damaged.
func (r *Repository) prunePacks(ctx context.Context, plan *PrunePlan, progress ProgressFunc) (map[backend.ID]*prunePack, error) {
	progress("list packs", 0, 0)
	packs := make(map[backend.ID]*prunePack)
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		packs[id] = &prunePack{size: size}
		plan.Packs++
		plan.PackBytes += size
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
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
	plan.UnindexedPacks = len(unindexed)
	var mu sync.Mutex // guards the packs' damaged flags and done during the reads
	var done int64
	err := r.forEachParallel(ctx, len(unindexed), func(ctx context.Context, i int) error {
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
	return packs, err
}

// countCopies is pass 1: it counts the copies of each used blob and sums
// the blob bytes per pack. It returns the packs the index lists that are
// not in the backend, sorted.
func (r *Repository) countCopies(used *BlobSet, packs map[backend.ID]*prunePack) (*blobUse, []backend.ID) {
	used.compact()
	use := &blobUse{used: used, counts: make([]uint8, used.Len()), keeper: make(map[blobKey]blobLoc)}
	missing := make(map[backend.ID]bool)
	r.idx.Each(func(pb index.PackedBlob) bool {
		p := packs[pb.PackID]
		if p == nil {
			missing[pb.PackID] = true
			return true
		}
		p.total += int64(pb.Length)
		if pb.Type == pack.DataBlob {
			p.dataBlobs++
		}
		if i, ok := used.pos(pb.Type, pb.ID); ok {
			if use.counts[i] < math.MaxUint8 {
				use.counts[i]++
			}
			p.anyUsed += int64(pb.Length)
		}
		return true
	})
	var out []backend.ID
	for id := range missing {
		out = append(out, id)
	}
	slices.SortFunc(out, cmpBlobID)
	return use, out
}

// chooseKeepers is pass 2: it chooses which copy of a duplicated blob to
// keep: the one in the pack with the largest used share (a pack
// repacked before a crash loses to its fully used copy), ties to the
// lowest pack ID.
func (r *Repository) chooseKeepers(use *blobUse, packs map[backend.ID]*prunePack) {
	r.idx.Each(func(pb index.PackedBlob) bool {
		i, ok := use.used.pos(pb.Type, pb.ID)
		if !ok || use.counts[i] < 2 {
			return true
		}
		k := blobKey{pb.Type, pb.ID}
		if _, done := use.keeper[k]; done {
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
		use.keeper[k] = best
		return true
	})
}

// classifyBlobs is pass 3: what each pack keeps, holds unused, and holds
// in extra copies.
func (r *Repository) classifyBlobs(use *blobUse, packs map[backend.ID]*prunePack) {
	r.idx.Each(func(pb index.PackedBlob) bool {
		p := packs[pb.PackID]
		if p == nil {
			return true
		}
		n := int64(pb.Length)
		switch {
		case !use.used.Has(pb.Type, pb.ID):
			p.UnusedBytes += n
			p.UnusedBlobs++
		case use.keeps(pb):
			p.UsedBytes += n
			p.UsedBlobs++
		default:
			p.DuplicateBytes += n
			p.DuplicateBlobs++
		}
		return true
	})
}

// repackRules are what choosePacks decides by.
type repackRules struct {
	RepackOptions
	limit float64 // MaxUnused as a fraction of the bytes kept
	small int64   // with Small, packs with fewer blob bytes are small
}

func (rr repackRules) isSmall(p *prunePack) bool { return rr.Small && p.total < rr.small }

// choosePacks sorts the packs into those deleted whole, those kept and
// those repacked, and fills in the plan's counts. Partly used packs are
// repacked the most wasteful first while the waste left is above
// rules.limit (a fraction of the bytes kept); with rules.Small, small
// packs come first and are repacked whatever the waste; rules.MaxBytes
// keeps any pack that would take the repacked bytes past it, and
// rules.CacheableOnly every data pack. It returns the packs to repack.
func (plan *PrunePlan) choosePacks(packs map[backend.ID]*prunePack, rules repackRules) map[backend.ID]bool {
	var candidates, small []backend.ID
	var keptUsed, candWaste int64
	for id, p := range packs {
		plan.BlobUse.add(p.BlobUse)
		switch {
		case p.damaged:
			plan.DamagedPacks = append(plan.DamagedPacks, id)
			plan.Kept.Damaged++
			continue
		case p.UsedBlobs == 0:
			plan.Delete = append(plan.Delete, p.planned(id))
			plan.DeleteBytes += p.size
			continue
		case rules.CacheableOnly && p.dataBlobs > 0 && p.waste() > 0:
			plan.Kept.NotCacheable++
			plan.UnusedAfter += p.waste()
		case rules.CacheableOnly && p.dataBlobs > 0, p.waste() == 0 && !rules.isSmall(p):
			plan.Kept.FullyUsed++
		case p.waste() == 0:
			small = append(small, id)
		default:
			candidates = append(candidates, id)
			candWaste += p.waste()
		}
		keptUsed += p.UsedBytes
	}
	if len(small) < MinSmallPacks {
		plan.Kept.FullyUsed += len(small)
	} else {
		candidates = append(candidates, small...)
	}
	slices.SortFunc(plan.DamagedPacks, cmpBlobID)
	slices.SortFunc(plan.Delete, func(a, b PrunePack) int { return cmpBlobID(a.ID, b.ID) })
	// Small packs first (only with rules.Small), then most waste per
	// byte copied.
	sort.Slice(candidates, func(i, j int) bool {
		a, b := packs[candidates[i]], packs[candidates[j]]
		if sa, sb := rules.isSmall(a), rules.isSmall(b); sa != sb {
			return sa
		}
		fa, fb := float64(a.waste())/float64(a.total), float64(b.waste())/float64(b.total)
		if fa != fb {
			return fa > fb
		}
		return candidates[i].Less(candidates[j])
	})
	// Waste may stay while waste <= limit * (used + waste).
	allowed := func(waste int64) bool {
		return float64(waste) <= rules.limit*float64(keptUsed+waste)
	}
	repack := make(map[backend.ID]bool)
	for _, id := range candidates {
		p := packs[id]
		switch {
		case rules.MaxBytes > 0 && plan.RepackPackBytes+p.total > rules.MaxBytes:
			plan.Kept.OverRepackLimit++
			continue
		case !rules.isSmall(p) && allowed(candWaste):
			plan.Kept.WithinLimit++
			continue
		}
		repack[id] = true
		candWaste -= p.waste()
		plan.Repack = append(plan.Repack, p.planned(id))
		plan.RepackBlobs += p.UsedBlobs
		plan.RepackBytes += p.UsedBytes
		plan.RepackPackBytes += p.total
		plan.DeleteBytes += p.size
	}
	slices.SortFunc(plan.Repack, func(a, b PrunePack) int { return cmpBlobID(a.ID, b.ID) })
	plan.UnusedAfter += candWaste
	plan.FreedBytes = plan.DeleteBytes - plan.RepackBytes
	return repack
}

// blobsToCopy lists, per pack to repack, the kept copies of used blobs
// it holds.
func (r *Repository) blobsToCopy(use *blobUse, repack map[backend.ID]bool) map[backend.ID][]pack.Blob {
	keep := make(map[backend.ID][]pack.Blob, len(repack))
	if len(repack) == 0 {
		return keep
	}
	r.idx.Each(func(pb index.PackedBlob) bool {
		if repack[pb.PackID] && use.keeps(pb) {
			keep[pb.PackID] = append(keep[pb.PackID], pb.Blob)
		}
		return true
	})
	return keep
}

// ExecutePrune does what plan says, and nothing else: it copies the used
// blobs of the packs to repack into new packs, writes index files listing
// what the plan relists and the new packs, deletes the index files the
// plan replaces, and only then deletes the packs (no remaining index file
// lists them). Last, it removes the temporary files that uploads killed
// mid-way left in the backend an hour or more ago
// (backend.RemoveStaleTemp).
//
// The plan must come from PlanPrune on this Repository under the
// exclusive lock it holds now, and runs once; otherwise ExecutePrune
// changes nothing and returns an error wrapping ErrPlanNotHeld.
//
// ExecutePrune survives a crash at any moment: it writes every new pack
// and index file before it deletes anything, deletes the index files it
// replaced before any pack, and deletes only packs that no remaining index
// lists. Whatever a crash leaves (unindexed packs, duplicate copies,
// superseded index files) is what the next prune cleans up, and check
// accepts it meanwhile.
func (r *Repository) ExecutePrune(ctx context.Context, plan PrunePlan, progress ProgressFunc) (PruneResult, error) {
	var res PruneResult
	if err := plan.guard.claim(r, "prune"); err != nil {
		return res, err
	}
	progress = orNoProgress(progress)
	known := make(map[backend.ID]bool)
	for _, id := range r.idx.Packs() {
		known[id] = true
	}
	var newPacks []backend.ID
	if len(plan.Repack) > 0 {
		var err error
		if newPacks, err = r.repack(ctx, plan, known, &res, progress); err != nil {
			return res, err
		}
	}
	drop := make(map[backend.ID]bool)
	var deletes []PrunePack
	for _, list := range [][]PrunePack{plan.Delete, plan.Repack} {
		for _, p := range list {
			drop[p.ID] = true
			deletes = append(deletes, p)
		}
	}
	for _, id := range plan.MissingPacks {
		drop[id] = true
	}
	r.idx.RemovePacks(drop)
	if err := r.executeIndexPlan(ctx, plan, newPacks, &res, progress); err != nil {
		return res, err
	}
	deletes, err := r.keepListed(ctx, deletes, &res)
	if err != nil {
		return res, err
	}
	// Only now, with no index file left that lists them, the packs go.
	refused, err := r.deletePacks(ctx, deletes, &res, progress)
	if err == nil {
		err = r.reindexRefused(ctx, refused, &res)
	}
	slices.Sort(res.Kept)
	res.FreedBytes = res.DeletedBytes - res.NewPackBytes
	if err != nil {
		return res, err
	}
	if r.cache != nil {
		r.cache.prune(cacheData, r.idx.Packs())
	}
	res.TempFilesRemoved, res.TempBytesRemoved, err = removeStaleTemp(ctx, r.be, r.opts.Warn)
	return res, err
}

// Prune plans a prune and executes the plan (PlanPrune, ExecutePrune);
// the caller must hold the exclusive lock.
func (r *Repository) Prune(ctx context.Context, used *BlobSet, opts PruneOptions) (PrunePlan, PruneResult, error) {
	plan, err := r.PlanPrune(ctx, used, opts)
	if err != nil {
		return plan, PruneResult{}, err
	}
	res, err := r.ExecutePrune(ctx, plan, opts.Progress)
	return plan, res, err
}

// keepListed drops from packs those that an index file in res.Kept (one
// the backend refused to delete) still lists: deleting them would leave
// that file listing missing packs. They are added to res.Kept.
func (r *Repository) keepListed(ctx context.Context, packs []PrunePack, res *PruneResult) ([]PrunePack, error) {
	if len(res.Kept) == 0 {
		return packs, nil
	}
	listed := make(map[backend.ID]bool)
	for _, name := range res.Kept {
		id, err := backend.ParseID(strings.TrimPrefix(name, backend.IndexFile.Dir()+"/"))
		if err != nil {
			return nil, fmt.Errorf("kept index file %s: %w", name, err)
		}
		f, err := r.loadIndexFile(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("read the kept index file %s: %w", name, err)
		}
		for _, p := range f.Packs {
			listed[p.ID] = true
		}
	}
	var out []PrunePack
	for _, p := range packs {
		if listed[p.ID] {
			res.Kept = append(res.Kept, backend.Handle{Type: backend.PackFile, Name: p.ID.String()}.String())
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// deletePacks deletes the given packs, counting them in res; it returns
// those the backend refuses to delete (backend.ErrRetained: object lock; an append-only refusal stays an error), which it
// adds to res.Kept.
func (r *Repository) deletePacks(ctx context.Context, packs []PrunePack, res *PruneResult, progress ProgressFunc) ([]PrunePack, error) {
	var mu sync.Mutex // guards res, done and refused
	var done int64
	var refused []PrunePack
	err := r.forEachParallel(ctx, len(packs), func(ctx context.Context, i int) error {
		err := r.DeleteFile(ctx, backend.PackFile, packs[i].ID)
		isRefused := errors.Is(err, backend.ErrRetained)
		if err != nil && !isRefused && !backend.IsNotExist(err) {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		progress("delete packs", done, int64(len(packs)))
		if isRefused {
			res.Kept = append(res.Kept, backend.Handle{Type: backend.PackFile, Name: packs[i].ID.String()}.String())
			refused = append(refused, packs[i])
			return nil
		}
		res.DeletedPacks++
		res.DeletedBytes += packs[i].Size
		return nil
	})
	return refused, err
}

// reindexRefused writes an index file listing the packs the backend
// refused to delete, read from their headers: the new index no longer
// lists them, and a pack no index lists is what check warns about. The
// next prune finds them unused again and tries again. A pack whose header
// does not read is left unindexed, with a warning (check reports it, and
// the next prune deletes it).
func (r *Repository) reindexRefused(ctx context.Context, refused []PrunePack, res *PruneResult) error {
	f := &index.File{}
	for _, p := range refused {
		blobs, err := r.ReadPackHeader(ctx, p.ID, p.Size)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if r.opts.Warn != nil {
				r.opts.Warn(fmt.Sprintf("warning: data/%s, kept, is left unindexed: %v", p.ID, err))
			}
			continue
		}
		f.Packs = append(f.Packs, index.Pack{ID: p.ID, Blobs: blobs})
	}
	if len(f.Packs) == 0 {
		return nil
	}
	if _, err := r.saveIndexFile(ctx, f); err != nil {
		return fmt.Errorf("index the packs kept: %w", err)
	}
	res.IndexWritten++
	r.idx.AddFile(f)
	return nil
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

// repack copies the blobs plan.copy lists into new packs and flushes
// them, then returns the packs the in-memory index gained (the new
// packs), sorted, and counts them in res with their sizes.
func (r *Repository) repack(ctx context.Context, plan PrunePlan, known map[backend.ID]bool, res *PruneResult, progress ProgressFunc) ([]backend.ID, error) {
	for n, p := range plan.Repack {
		progress("repack", int64(n), int64(len(plan.Repack)))
		err := r.LoadPack(ctx, p.ID, plan.copy[p.ID], func(b pack.Blob, plain []byte, err error) error {
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
			return nil, fmt.Errorf("repack %s: %w", backend.Handle{Type: backend.PackFile, Name: p.ID.String()}, err)
		}
	}
	progress("repack", int64(len(plan.Repack)), int64(len(plan.Repack)))
	if err := r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("repack: %w", err)
	}
	var fresh []backend.ID
	for _, id := range r.idx.Packs() {
		if !known[id] {
			fresh = append(fresh, id)
		}
	}
	slices.SortFunc(fresh, cmpBlobID)
	isNew := make(map[backend.ID]bool, len(fresh))
	for _, id := range fresh {
		isNew[id] = true
	}
	// The new packs' sizes, as the listing shows them.
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		if isNew[id] {
			res.NewPacks++
			res.NewPackBytes += size
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	return fresh, nil
}
