package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// RepairIndexPlan is what RepairIndex would do, computed by
// PlanRepairIndex from every pack's header: a value that describes
// everything ExecuteRepairIndex then does.
type RepairIndexPlan struct {
	Packs int `json:"packs"` // packs whose header reads: the new index lists them
	Blobs int `json:"blobs"` // blobs they hold
	// Damaged lists the packs whose header does not read: they are left
	// in place, and no index lists them any more.
	Damaged []Problem `json:"damaged,omitempty"`
	// Added counts the packs the index does not list now and the new
	// index lists; Dropped are the packs it lists now and the new index
	// does not (missing or damaged), sorted.
	Added   int          `json:"added"`
	Dropped []backend.ID `json:"dropped,omitempty"`
	// IndexFiles is how many index files are written; Replace are the
	// index files there are now, all deleted once the new ones are stored.
	IndexFiles int          `json:"index_files"`
	Replace    []backend.ID `json:"replace"`

	files []*index.File
	guard *planGuard
}

// RepairIndexResult says what ExecuteRepairIndex did.
type RepairIndexResult struct {
	IndexWritten int `json:"index_files_written"`
	IndexRemoved int `json:"index_files_removed"`
}

// PlanRepairIndex plans the rebuilding of the index from the packs: it
// reads every pack's header; the plan is to write new index files listing
// every pack that reads (each superseding every old index file), then
// delete the old index files. Packs whose header does not read are
// reported and left in place; their blobs are no longer indexed, so
// 'repair snapshots' can then drop the files that need them. It writes
// nothing.
func (r *Repository) PlanRepairIndex(ctx context.Context, progress ProgressFunc) (RepairIndexPlan, error) {
	plan := RepairIndexPlan{guard: r.newPlanGuard()}
	progress = orNoProgress(progress)
	old, err := r.IndexFiles(ctx)
	if err != nil {
		return plan, fmt.Errorf("list index: %w", err)
	}
	slices.SortFunc(old, cmpBlobID)
	plan.Replace = append([]backend.ID{}, old...)
	type packFile struct {
		id   backend.ID
		size int64
	}
	var packs []packFile
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		packs = append(packs, packFile{id, size})
		return nil
	}); err != nil {
		return plan, fmt.Errorf("list packs: %w", err)
	}
	fresh := index.New()
	var mu sync.Mutex // guards plan, fresh and done
	var done int64
	err = r.forEachParallel(ctx, len(packs), func(ctx context.Context, i int) error {
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
			plan.Damaged = append(plan.Damaged, Problem{Kind: ProblemPackDamaged, File: handleOf(backend.PackFile, p.id),
				Message: fmt.Sprintf("damaged: header does not read, the pack is left in place: %v", err)})
			return nil
		}
		fresh.AddPack(p.id, blobs)
		plan.Packs++
		plan.Blobs += len(blobs)
		return nil
	})
	if err != nil {
		return plan, err
	}
	slices.SortFunc(plan.Damaged, func(a, b Problem) int { return strings.Compare(a.File, b.File) })
	plan.compare(r.idx.Packs(), fresh.Packs())
	plan.files = fresh.ToFiles(indexFileBlobs)
	plan.IndexFiles = len(plan.files)
	return plan, nil
}

// compare fills in Added and Dropped from the packs the index lists now
// and those the new index lists.
func (plan *RepairIndexPlan) compare(now, rebuilt []backend.ID) {
	listed := make(map[backend.ID]bool, len(now))
	for _, id := range now {
		listed[id] = true
	}
	for _, id := range rebuilt {
		if listed[id] {
			delete(listed, id)
		} else {
			plan.Added++
		}
	}
	for id := range listed {
		plan.Dropped = append(plan.Dropped, id)
	}
	slices.SortFunc(plan.Dropped, cmpBlobID)
}

// ExecuteRepairIndex does what plan says: it writes the new index files,
// then deletes the old ones (replaceIndex), and makes the in-memory index
// match. The plan must come from PlanRepairIndex on this Repository under
// the exclusive lock it holds now, and runs once; otherwise it changes
// nothing and returns an error wrapping ErrPlanNotHeld.
//
// A crash leaves the old and some new index files side by side, which
// loads as their union; repairing the index again finishes the job.
func (r *Repository) ExecuteRepairIndex(ctx context.Context, plan RepairIndexPlan, progress ProgressFunc) (RepairIndexResult, error) {
	var res RepairIndexResult
	if err := plan.guard.claim(r, "repair index"); err != nil {
		return res, err
	}
	var err error
	res.IndexWritten, res.IndexRemoved, err = r.replaceIndex(ctx, plan.files, plan.Replace, orNoProgress(progress))
	if err != nil {
		return res, err
	}
	// The in-memory index becomes the rebuilt one.
	all := make(map[backend.ID]bool)
	for _, id := range r.idx.Packs() {
		all[id] = true
	}
	r.idx.RemovePacks(all)
	for _, f := range plan.files {
		r.idx.AddFile(f)
	}
	return res, nil
}

// RepairFetch is one file PlanRepairPacks found lost or damaged, and
// whether the copy has it.
type RepairFetch struct {
	// File is the file's path in the repository ("data/<id>", ...).
	File string `json:"file"`
	// Problem says what is wrong with it here: "missing" or "damaged".
	Problem string `json:"problem"`
	// Available says the copy has the file: ExecuteRepairPacks fetches
	// it, and Size is its size there. A log entry has been read and
	// checked already; a pack or index file is checked when fetched.
	Available bool  `json:"available"`
	Size      int64 `json:"size"`
	// Error says why the copy cannot provide it.
	Error string `json:"error,omitempty"`
}

// RepairPacksPlan is what RepairPacks would fetch, computed by
// PlanRepairPacks.
type RepairPacksPlan struct {
	PacksRead int   `json:"packs_read"` // packs the index lists, read and hashed
	BytesRead int64 `json:"bytes_read"`
	// Files are the lost or damaged files, in the order they are to be
	// fetched: packs and index files, then log entries.
	Files []RepairFetch `json:"files"`

	guard *planGuard
}

// Unavailable counts the files the copy cannot provide.
func (p RepairPacksPlan) Unavailable() int {
	n := 0
	for _, f := range p.Files {
		if !f.Available {
			n++
		}
	}
	return n
}

// RepairedFile is one file ExecuteRepairPacks was to fetch.
type RepairedFile struct {
	// File is the file's path in the repository ("data/<id>", ...).
	File string `json:"file"`
	// Problem says what was wrong with it: "missing" or "damaged".
	Problem string `json:"problem"`
	// Fetched says it was fetched from the copy.
	Fetched bool `json:"fetched"`
	// Error says why it could not be fetched.
	Error string `json:"error,omitempty"`
}

// RepairPacksResult says what ExecuteRepairPacks did.
type RepairPacksResult struct {
	// Files are the plan's files, in its order.
	Files []RepairedFile `json:"files"`
}

// Unrecovered counts the files that could not be fetched.
func (res RepairPacksResult) Unrecovered() int {
	n := 0
	for _, f := range res.Files {
		if !f.Fetched {
			n++
		}
	}
	return n
}

// ErrNotACopy is returned by PlanRepairPacks when the location to fetch
// from holds another repository.
var ErrNotACopy = errors.New("holds another repository (its config differs)")

// PlanRepairPacks finds what to heal from a copy of the repository (a
// mirror at another location): every pack the index lists that is
// missing, or whose content does not match its name; every index file
// whose content does not match its name; and every log entry the log
// names as a parent (outside what the newest checkpoint covers) that is
// missing or damaged, along with the entries those name in turn (read
// from the copy to follow their links). Every pack the index lists is
// read in full to find damage. An index file that is lost is not
// planned ("repair index" rebuilds the index from the packs). It writes
// nothing.
//
// lost (nil for none) are blobs the live snapshots need that no pack here
// holds (snapshot.LostBlobs): a pack lost together with the only index
// file naming it. It looks for them in the copy's index files that this
// repository lacks, and plans to fetch the packs that hold them, and each
// such index file once every pack it lists is here or planned.
func (r *Repository) PlanRepairPacks(ctx context.Context, from backend.Backend, lost *BlobSet, progress ProgressFunc) (RepairPacksPlan, error) {
	plan := RepairPacksPlan{Files: []RepairFetch{}, guard: r.newPlanGuard()}
	progress = orNoProgress(progress)
	cfg := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	same, err := sameFile(ctx, r.be, from, cfg)
	if err != nil {
		return plan, err
	}
	if !same {
		return plan, fmt.Errorf("%s %w", from.Location(), ErrNotACopy)
	}
	want, err := r.findDamage(ctx, &plan, progress)
	if err != nil {
		return plan, err
	}
	if lost != nil && lost.Len() > 0 {
		progress("look for lost blobs at the copy", 0, 0)
		found, err := r.findLostAtCopy(ctx, from, lost)
		if err != nil {
			return plan, err
		}
		want = append(want, found...)
		slices.SortFunc(want, func(a, b RepairFetch) int { return strings.Compare(a.File, b.File) })
	}
	for i := range want {
		progress("look at the copy", int64(i), int64(len(want)))
		if err := statAtCopy(ctx, from, &want[i]); err != nil {
			return plan, err
		}
	}
	progress("read the log", 0, 0)
	logFiles, err := r.planRepairLog(ctx, from)
	plan.Files = append(append(plan.Files, want...), logFiles...)
	return plan, err
}

// findDamage reads every pack the index lists and every index file, and
// returns those missing or whose content does not match their names,
// sorted by path.
func (r *Repository) findDamage(ctx context.Context, plan *RepairPacksPlan, progress ProgressFunc) ([]RepairFetch, error) {
	var mu sync.Mutex // guards plan, want and done while workers run
	var want []RepairFetch
	record := func(t backend.FileType, id backend.ID, problem string) {
		mu.Lock()
		defer mu.Unlock()
		want = append(want, RepairFetch{File: handleOf(t, id), Problem: problem})
	}
	sizes := make(map[backend.ID]int64)
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		sizes[id] = size
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	packs := r.idx.Packs()
	slices.SortFunc(packs, cmpBlobID)
	var done int64
	err := r.forEachParallel(ctx, len(packs), func(ctx context.Context, i int) error {
		id := packs[i]
		if _, ok := sizes[id]; !ok {
			record(backend.PackFile, id, "missing")
			return nil
		}
		ok, n, err := hashMatches(ctx, r.be, backend.Handle{Type: backend.PackFile, Name: id.String()})
		if err != nil {
			return err
		}
		if !ok {
			record(backend.PackFile, id, "damaged")
		}
		mu.Lock()
		defer mu.Unlock()
		plan.PacksRead++
		plan.BytesRead += n
		done++
		progress("read packs", done, int64(len(packs)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	idxFiles, err := r.IndexFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	progress("read index files", 0, 0)
	err = r.forEachParallel(ctx, len(idxFiles), func(ctx context.Context, i int) error {
		ok, _, err := hashMatches(ctx, r.be, backend.Handle{Type: backend.IndexFile, Name: idxFiles[i].String()})
		if err == nil && !ok {
			record(backend.IndexFile, idxFiles[i], "damaged")
		}
		return err
	})
	slices.SortFunc(want, func(a, b RepairFetch) int { return strings.Compare(a.File, b.File) })
	return want, err
}

// findLostAtCopy reads the copy's index files that this repository lacks
// and returns, to fetch, the packs they list that hold blobs in lost and
// that this repository lacks, then the index files naming them whose
// every pack is then here. A copy's index file that does not match its
// name or open is passed over.
func (r *Repository) findLostAtCopy(ctx context.Context, from backend.Backend, lost *BlobSet) ([]RepairFetch, error) {
	here := make(map[backend.Handle]bool)
	for _, t := range []backend.FileType{backend.PackFile, backend.IndexFile} {
		err := r.be.List(ctx, t, func(fi backend.FileInfo) error {
			here[backend.Handle{Type: t, Name: fi.Name}] = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", t, err)
		}
	}
	atCopy := make(map[backend.Handle]int64)
	for _, t := range []backend.FileType{backend.PackFile, backend.IndexFile} {
		err := from.List(ctx, t, func(fi backend.FileInfo) error {
			atCopy[backend.Handle{Type: t, Name: fi.Name}] = fi.Size
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s of %s: %w", t, from.Location(), err)
		}
	}
	var packs, indexes []RepairFetch
	planned := make(map[backend.Handle]bool)
	for h := range atCopy {
		if h.Type != backend.IndexFile || here[h] {
			continue
		}
		f, err := r.copyIndexFile(ctx, from, h)
		if err != nil {
			return nil, err
		}
		if f == nil {
			continue
		}
		needed, complete := false, true
		for _, pk := range f.Packs {
			ph := backend.Handle{Type: backend.PackFile, Name: pk.ID.String()}
			holds := slices.ContainsFunc(pk.Blobs, func(b pack.Blob) bool { return lost.Has(b.Type, b.ID) })
			needed = needed || holds
			size, copyHas := atCopy[ph]
			switch {
			case here[ph] || planned[ph]:
			case holds && copyHas:
				planned[ph] = true
				packs = append(packs, RepairFetch{File: ph.String(), Problem: "missing", Available: true, Size: size})
			default:
				complete = false
			}
		}
		if needed && complete {
			indexes = append(indexes, RepairFetch{File: h.String(), Problem: "missing", Available: true, Size: atCopy[h]})
		}
	}
	return append(packs, indexes...), nil
}

// copyIndexFile reads and opens the copy's index file h; a file that does
// not match its name or does not open is nil, without an error.
func (r *Repository) copyIndexFile(ctx context.Context, from backend.Backend, h backend.Handle) (*index.File, error) {
	data, why, err := readFromCopy(ctx, from, h)
	if err != nil || why != "" {
		return nil, err
	}
	id, err := backend.ParseID(h.Name)
	if err != nil {
		return nil, nil
	}
	f, err := r.openIndexFile(id, data)
	if err != nil {
		return nil, nil
	}
	return f, nil
}

// statAtCopy records whether the copy has f.File, and its size there.
func statAtCopy(ctx context.Context, from backend.Backend, f *RepairFetch) error {
	fi, err := from.Stat(ctx, handleOfPath(f.File))
	switch {
	case backend.IsNotExist(err):
		f.Error = "not at " + from.Location()
		return nil
	case err != nil:
		return err
	}
	f.Available, f.Size = true, fi.Size
	return nil
}

// handleOfPath turns a file's path in the repository ("data/<id>") back
// into its handle.
func handleOfPath(file string) backend.Handle {
	dir, name, _ := strings.Cut(file, "/")
	for _, t := range []backend.FileType{backend.PackFile, backend.IndexFile, backend.LogFile} {
		if t.Dir() == dir {
			return backend.Handle{Type: t, Name: name}
		}
	}
	return backend.Handle{Name: name}
}

// planRepairLog finds the log entries the log holds damaged or names and
// lacks, then, reading them from the copy, those they name, and so on.
func (r *Repository) planRepairLog(ctx context.Context, from backend.Backend) ([]RepairFetch, error) {
	w := logWalk{entries: make(map[[32]byte]*crypt.Entry), present: make(map[backend.ID]bool)}
	ids, err := r.FileIDs(ctx, backend.LogFile)
	if err != nil {
		return nil, fmt.Errorf("list log: %w", err)
	}
	slices.SortFunc(ids, cmpBlobID)
	for _, id := range ids {
		data, err := readAll(ctx, r.be, backend.Handle{Type: backend.LogFile, Name: id.String()}, maxEntryFile)
		switch {
		case errors.Is(err, ErrFormat):
			continue // too large to be an entry: junk
		case err != nil:
			return w.out, err
		case backend.Hash(data) != id:
			if err := w.fromCopy(ctx, from, id, "damaged"); err != nil {
				return w.out, err
			}
			continue
		}
		w.add(id, data)
	}
	chain, err := w.fillGaps(ctx, from)
	if err != nil {
		return w.out, err
	}
	// Walk from the entries here to the parents they need, outside what
	// the newest checkpoint covers (a prune deletes those on purpose).
	var stack [][32]byte
	for id := range w.entries {
		stack = append(stack, id)
	}
	slices.SortFunc(stack, func(a, b [32]byte) int { return cmpBlobID(a, b) })
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if chain.Covered[id] {
			continue
		}
		for _, p := range w.entries[id].Parents {
			if w.present[backend.ID(p)] || chain.Covered[p] {
				continue
			}
			if err := w.fromCopy(ctx, from, p, "missing"); err != nil {
				return w.out, err
			}
			if _, ok := w.entries[p]; ok {
				stack = append(stack, p)
			}
		}
	}
	return w.out, nil
}

// fillGaps plans fetching the entries lost from the middle of the log:
// a parent of a covered entry is missing when prune compacted it, or
// when it was lost (rot, a hand); then it still links to entries here
// (gapFill), and the copy's heals the gap. Filling one gap can make more
// entries covered, so it repeats until nothing is added. It returns the
// chain of the log with the gaps filled.
func (w *logWalk) fillGaps(ctx context.Context, from backend.Backend) (*crypt.Chain, error) {
	for {
		chain := crypt.VerifyChain(w.entries)
		var covered [][32]byte
		for id := range w.entries {
			if chain.Covered[id] {
				covered = append(covered, id)
			}
		}
		slices.SortFunc(covered, func(a, b [32]byte) int { return cmpBlobID(a, b) })
		added := false
		for _, id := range covered {
			for _, p := range w.entries[id].Parents {
				if w.present[backend.ID(p)] {
					continue
				}
				fill, err := w.gapFill(ctx, from, backend.ID(p), 0)
				if err != nil {
					return chain, err
				}
				for _, f := range fill {
					if w.present[f.id] {
						continue
					}
					w.add(f.id, f.data)
					w.out = append(w.out, RepairFetch{File: backend.Handle{Type: backend.LogFile, Name: f.id.String()}.String(),
						Problem: "missing", Available: true, Size: int64(len(f.data))})
					added = true
				}
			}
		}
		if !added {
			return chain, nil
		}
	}
}

// maxGapFill bounds how many entries one gap in the log may span.
const maxGapFill = 64

type gapEntry struct {
	id   backend.ID
	data []byte
}

// gapFill reads the log entry id from the copy and returns it, with
// those of its parents the log lacks, if they all lead back to entries
// the log holds: a gap. It returns nothing when the copy lacks one of
// them, or the line reaches the log's first entry or maxGapFill entries
// first: entries prune compacted.
func (w *logWalk) gapFill(ctx context.Context, from backend.Backend, id backend.ID, depth int) ([]gapEntry, error) {
	if depth >= maxGapFill {
		return nil, nil
	}
	data, why, err := readFromCopy(ctx, from, backend.Handle{Type: backend.LogFile, Name: id.String()})
	if err != nil || why != "" {
		return nil, err
	}
	e, err := crypt.DecodeEntry(data)
	if err != nil || len(e.Parents) == 0 {
		return nil, nil
	}
	out := []gapEntry{{id, data}}
	for _, p := range e.Parents {
		if w.present[backend.ID(p)] {
			continue
		}
		sub, err := w.gapFill(ctx, from, backend.ID(p), depth+1)
		if err != nil || sub == nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// logWalk is the state of planRepairLog.
type logWalk struct {
	// entries are the log entries here and those planned from the copy;
	// present the log files here or planned, damaged or not.
	entries map[[32]byte]*crypt.Entry
	present map[backend.ID]bool
	out     []RepairFetch
}

// add decodes an entry the log holds (or will) and records it; a file
// that is not an entry is junk, not ours to fix.
func (w *logWalk) add(id backend.ID, data []byte) {
	w.present[id] = true
	e, err := crypt.DecodeEntry(data)
	if err != nil {
		return
	}
	e.Body = nil // only the links are needed
	w.entries[id] = e
}

// fromCopy plans fetching the log entry id from the copy, reading it
// there to follow its links.
func (w *logWalk) fromCopy(ctx context.Context, from backend.Backend, id backend.ID, problem string) error {
	h := backend.Handle{Type: backend.LogFile, Name: id.String()}
	f := RepairFetch{File: h.String(), Problem: problem}
	data, why, err := readFromCopy(ctx, from, h)
	if err != nil {
		return err
	}
	w.present[id] = true // here, damaged or to fetch: not to plan again
	if why != "" {
		f.Error = why
	} else {
		f.Available, f.Size = true, int64(len(data))
		w.add(id, data)
	}
	w.out = append(w.out, f)
	return nil
}

// ExecuteRepairPacks fetches from the copy every file the plan says it
// has, checks it against its name (and, for a log entry, that it is
// one), and stores it, replacing a damaged file: packs and index files
// first, so the log never names a snapshot whose data is still being
// fetched. A file the copy no longer has, or holds damaged, is reported,
// not stored. The plan must come from PlanRepairPacks on this Repository
// under the exclusive lock it holds now, and runs once; otherwise it
// changes nothing and returns an error wrapping ErrPlanNotHeld.
//
// A crash leaves some files fetched; repairing again fetches the rest.
func (r *Repository) ExecuteRepairPacks(ctx context.Context, from backend.Backend, plan RepairPacksPlan, progress ProgressFunc) (RepairPacksResult, error) {
	res := RepairPacksResult{Files: []RepairedFile{}}
	if err := plan.guard.claim(r, "repair packs"); err != nil {
		return res, err
	}
	progress = orNoProgress(progress)
	for i, f := range plan.Files {
		progress("fetch", int64(i), int64(len(plan.Files)))
		out := RepairedFile{File: f.File, Problem: f.Problem, Error: f.Error}
		if f.Available {
			h := handleOfPath(f.File)
			why, err := r.fetch(ctx, from, h, f.Problem == "damaged")
			if err != nil {
				return res, err
			}
			out.Fetched, out.Error = why == "", why
			if out.Fetched && h.Type == backend.IndexFile && f.Problem == "missing" {
				// A lost index file fetched back: what it lists is
				// here now, for a walk that looks for more.
				if id, err := backend.ParseID(h.Name); err == nil {
					if ixf, err := r.loadIndexFile(ctx, id); err == nil {
						r.idx.AddFile(ixf)
					}
				}
			}
		}
		res.Files = append(res.Files, out)
	}
	return res, nil
}

// readFromCopy reads the file h from the copy and checks it against its
// name and, for a log entry, that it is one. A file the copy lacks or
// holds damaged is not an error: why says what is wrong with it. Errors
// of the backend are returned.
func readFromCopy(ctx context.Context, from backend.Backend, h backend.Handle) (data []byte, why string, err error) {
	data, err = readAll(ctx, from, h, maxMirrorFile)
	switch {
	case backend.IsNotExist(err):
		return nil, "not at " + from.Location(), nil
	case errors.Is(err, ErrFormat):
		return nil, fmt.Sprintf("too large at %s: %v", from.Location(), err), nil
	case err != nil:
		return nil, "", err
	case backend.Hash(data).String() != h.Name:
		return nil, "damaged at " + from.Location() + " too", nil
	}
	if h.Type == backend.LogFile {
		if _, err := crypt.DecodeEntry(data); err != nil {
			return nil, fmt.Sprintf("not a valid log entry at %s: %v", from.Location(), err), nil
		}
	}
	return data, "", nil
}

// fetch reads the file h from the copy, checked (readFromCopy), and
// stores it here, replacing a damaged file. why says why it could not be
// fetched.
func (r *Repository) fetch(ctx context.Context, from backend.Backend, h backend.Handle, damaged bool) (why string, err error) {
	data, why, err := readFromCopy(ctx, from, h)
	if err != nil || why != "" {
		return why, err
	}
	if damaged && !r.be.Properties().HasAtomicReplace {
		if err := r.be.Delete(ctx, h); err != nil && !backend.IsNotExist(err) {
			return "", fmt.Errorf("remove damaged %s: %w", h, err)
		}
	}
	if err := r.be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		return "", fmt.Errorf("store %s: %w", h, err)
	}
	fi, err := r.be.Stat(ctx, h)
	if err != nil {
		return "", fmt.Errorf("store %s: %w", h, err)
	}
	if fi.Size != int64(len(data)) {
		return "", fmt.Errorf("store %s: stored %d bytes, want %d", h, fi.Size, len(data))
	}
	return "", nil
}

// hashMatches reads the file h in full and says whether its SHA-256 is
// its name, and how many bytes it read.
func hashMatches(ctx context.Context, be backend.Backend, h backend.Handle) (bool, int64, error) {
	var sum backend.ID
	var n int64
	err := be.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		hw := sha256.New()
		var err error
		n, err = io.Copy(hw, rd)
		hw.Sum(sum[:0])
		return err
	})
	if backend.IsNotExist(err) {
		return false, 0, nil
	}
	if err != nil {
		return false, n, fmt.Errorf("read %s: %w", h, err)
	}
	return sum.String() == h.Name, n, nil
}
