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

// RepairPacksOptions configure RepairPacks; the zero value works.
type RepairPacksOptions struct {
	// DryRun finds what is lost or damaged and whether the copy has it,
	// and changes nothing.
	DryRun bool
	// Progress, if set, is told about each phase.
	Progress ProgressFunc
}

// RepairedFile is one file RepairPacks found lost or damaged.
type RepairedFile struct {
	// File is the file's path in the repository ("data/<id>", ...).
	File string `json:"file"`
	// Problem says what was wrong with it: "missing" or "damaged".
	Problem string `json:"problem"`
	// Fetched says it was fetched from the copy (or, in a dry run, that
	// the copy has it).
	Fetched bool `json:"fetched"`
	// Error says why it could not be fetched.
	Error string `json:"error,omitempty"`
}

// RepairPacksStats say what RepairPacks did.
type RepairPacksStats struct {
	PacksRead int   `json:"packs_read"` // packs the index lists, read and hashed
	BytesRead int64 `json:"bytes_read"`
	// Files are the lost or damaged files, in the order they were
	// fetched: packs, index files, log entries.
	Files []RepairedFile `json:"files,omitempty"`
}

// Unrecovered counts the files that could not be fetched.
func (st RepairPacksStats) Unrecovered() int {
	n := 0
	for _, f := range st.Files {
		if !f.Fetched {
			n++
		}
	}
	return n
}

// ErrNotACopy is returned by RepairPacks when the location to fetch from
// holds another repository.
var ErrNotACopy = errors.New("holds another repository (its config differs)")

// RepairPacks heals the repository from a copy of it (a mirror at
// another location): every pack the index lists that is missing, or whose
// content does not match its name, is fetched from the copy, checked
// against its name and stored; so is every index file whose content does
// not match its name, and every log entry the log names as a parent
// (outside what the newest checkpoint covers) that is missing or damaged,
// along with the entries those name in turn. Every pack the index lists is
// read in full to find damage. Files the copy lacks or holds damaged too
// are reported, not fetched. An index file that is lost is not fetched
// ("repair index" rebuilds the index from the packs).
//
// The caller must hold an exclusive lock. A crash leaves some files
// fetched; running it again fetches the rest.
func (r *Repository) RepairPacks(ctx context.Context, from backend.Backend, opts RepairPacksOptions) (RepairPacksStats, error) {
	var st RepairPacksStats
	progress := opts.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	cfg := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	same, err := sameFile(ctx, r.be, from, cfg)
	if err != nil {
		return st, err
	}
	if !same {
		return st, fmt.Errorf("%s %w", from.Location(), ErrNotACopy)
	}

	// What is wrong here: packs, index files, log entries.
	var mu sync.Mutex // guards st and want while workers run
	var want []RepairedFile
	record := func(t backend.FileType, id backend.ID, problem string) {
		want = append(want, RepairedFile{File: handleOf(t, id), Problem: problem})
	}
	sizes := make(map[backend.ID]int64)
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		sizes[id] = size
		return nil
	}); err != nil {
		return st, fmt.Errorf("list packs: %w", err)
	}
	packs := r.idx.Packs()
	slices.SortFunc(packs, cmpBlobID)
	var done int64
	err = r.forEachParallel(ctx, len(packs), func(i int) error {
		id := packs[i]
		if _, ok := sizes[id]; !ok {
			mu.Lock()
			record(backend.PackFile, id, "missing")
			mu.Unlock()
			return nil
		}
		ok, n, err := hashMatches(ctx, r.be, backend.Handle{Type: backend.PackFile, Name: id.String()})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		st.PacksRead++
		st.BytesRead += n
		done++
		progress("read packs", done, int64(len(packs)))
		if !ok {
			record(backend.PackFile, id, "damaged")
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	idxFiles, err := r.IndexFiles(ctx)
	if err != nil {
		return st, fmt.Errorf("list index: %w", err)
	}
	progress("read index files", 0, 0)
	err = r.forEachParallel(ctx, len(idxFiles), func(i int) error {
		ok, _, err := hashMatches(ctx, r.be, backend.Handle{Type: backend.IndexFile, Name: idxFiles[i].String()})
		if err != nil {
			return err
		}
		if !ok {
			mu.Lock()
			record(backend.IndexFile, idxFiles[i], "damaged")
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	sortFiles := func(fs []RepairedFile) {
		slices.SortFunc(fs, func(a, b RepairedFile) int { return strings.Compare(a.File, b.File) })
	}
	sortFiles(want)

	// Packs and index files first, so the log never names a snapshot
	// whose data is still being fetched.
	for i := range want {
		progress("fetch", int64(i), int64(len(want)))
		if _, err := r.fetchInto(ctx, from, &want[i], opts.DryRun); err != nil {
			return st, err
		}
	}
	st.Files = want
	progress("read the log", 0, 0)
	logFiles, err := r.repairLog(ctx, from, opts.DryRun)
	st.Files = append(st.Files, logFiles...)
	return st, err
}

// repairLog fetches from the copy the log entries the log holds damaged
// or names and lacks, then those the fetched entries name, and so on.
func (r *Repository) repairLog(ctx context.Context, from backend.Backend, dryRun bool) ([]RepairedFile, error) {
	entries := make(map[[32]byte]*crypt.Entry)
	present := make(map[backend.ID]bool)
	var out []RepairedFile
	var ids []backend.ID
	if err := r.ListFiles(ctx, backend.LogFile, func(id backend.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list log: %w", err)
	}
	slices.SortFunc(ids, cmpBlobID)
	// add decodes an entry the log now holds (a file that is not an
	// entry is junk, not ours to fix) and says whether it is one.
	add := func(id backend.ID, data []byte) bool {
		present[id] = true
		e, err := crypt.DecodeEntry(data)
		if err != nil {
			return false
		}
		e.Body = nil // only the links are needed
		entries[id] = e
		return true
	}
	for _, id := range ids {
		data, err := readAll(ctx, r.be, backend.Handle{Type: backend.LogFile, Name: id.String()}, maxEntryFile)
		switch {
		case errors.Is(err, ErrFormat):
			continue // too large to be an entry: junk
		case err != nil:
			return out, err
		case backend.Hash(data) != id:
			f := RepairedFile{File: handleOf(backend.LogFile, id), Problem: "damaged"}
			if data, err = r.fetchInto(ctx, from, &f, dryRun); err != nil {
				return out, err
			}
			out = append(out, f)
			present[id] = true // here, damaged or fetched: not to fetch again
			if data != nil {
				add(id, data)
			}
			continue
		}
		add(id, data)
	}
	chain := crypt.VerifyChain(entries)
	// Walk from the entries here to the parents they need, outside what
	// the newest checkpoint covers (a prune deletes those on purpose).
	var stack [][32]byte
	for id := range entries {
		stack = append(stack, id)
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if chain.Covered[id] {
			continue
		}
		for _, p := range entries[id].Parents {
			pid := backend.ID(p)
			if present[pid] || chain.Covered[p] {
				continue
			}
			f := RepairedFile{File: handleOf(backend.LogFile, pid), Problem: "missing"}
			data, err := r.fetchInto(ctx, from, &f, dryRun)
			if err != nil {
				return out, err
			}
			out = append(out, f)
			present[pid] = true
			if data != nil && add(pid, data) {
				stack = append(stack, p)
			}
		}
	}
	return out, nil
}

// fetchInto fetches f.File from the copy, checks it against its name (and,
// for a log entry, that it is one), and stores it here, replacing a
// damaged file; in a dry run it only checks that the copy has the file.
// A file the copy lacks or holds damaged is recorded in f.Error; errors
// of either backend are returned. It returns the file's bytes when it
// stored them.
func (r *Repository) fetchInto(ctx context.Context, from backend.Backend, f *RepairedFile, dryRun bool) ([]byte, error) {
	dir, name, _ := strings.Cut(f.File, "/")
	var h backend.Handle
	for _, t := range []backend.FileType{backend.PackFile, backend.IndexFile, backend.LogFile} {
		if t.Dir() == dir {
			h = backend.Handle{Type: t, Name: name}
		}
	}
	if dryRun {
		_, err := from.Stat(ctx, h)
		switch {
		case backend.IsNotExist(err):
			f.Error = "not at " + from.Location()
			return nil, nil
		case err != nil:
			return nil, err
		}
		f.Fetched = true
		return nil, nil
	}
	data, err := readAll(ctx, from, h, maxMirrorFile)
	switch {
	case backend.IsNotExist(err):
		f.Error = "not at " + from.Location()
		return nil, nil
	case errors.Is(err, ErrFormat):
		f.Error = fmt.Sprintf("too large at %s: %v", from.Location(), err)
		return nil, nil
	case err != nil:
		return nil, err
	case backend.Hash(data).String() != name:
		f.Error = "damaged at " + from.Location() + " too"
		return nil, nil
	}
	if h.Type == backend.LogFile {
		if _, err := crypt.DecodeEntry(data); err != nil {
			f.Error = fmt.Sprintf("not a valid log entry at %s: %v", from.Location(), err)
			return nil, nil
		}
	}
	if f.Problem == "damaged" && !r.be.Properties().HasAtomicReplace {
		if err := r.be.Delete(ctx, h); err != nil && !backend.IsNotExist(err) {
			return nil, fmt.Errorf("remove damaged %s: %w", h, err)
		}
	}
	if err := r.be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		return nil, fmt.Errorf("store %s: %w", h, err)
	}
	fi, err := r.be.Stat(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", h, err)
	}
	if fi.Size != int64(len(data)) {
		return nil, fmt.Errorf("store %s: stored %d bytes, want %d", h, fi.Size, len(data))
	}
	f.Fetched = true
	return data, nil
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
