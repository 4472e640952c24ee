package repo

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
	"golang.org/x/sync/errgroup"
)

// ProblemKind names a kind of problem that check finds.
type ProblemKind string

// The problems Check finds. Package snapshot adds the ones it finds in
// trees and in the log.
const (
	ProblemConfig        ProblemKind = "config_damaged"
	ProblemKeyFile       ProblemKind = "key_damaged"
	ProblemKeyJunk       ProblemKind = "key_junk"       // a warning: a file under keys/ that matches its name but is no key file
	ProblemKeyTooCostly  ProblemKind = "key_too_costly" // a warning: a key file whose KDF exceeds the cost limit, never tried
	ProblemIndexFile     ProblemKind = "index_damaged"
	ProblemPackMissing   ProblemKind = "pack_missing"        // an index lists a pack the backend lacks
	ProblemPackSize      ProblemKind = "pack_size_wrong"     // the pack's size does not fit what the index lists
	ProblemPackDamaged   ProblemKind = "pack_damaged"        // bytes, header or a blob fail to verify
	ProblemPackIndex     ProblemKind = "pack_index_mismatch" // the header does not list what the index lists
	ProblemPackUnindexed ProblemKind = "pack_unindexed"      // a warning: no index lists the pack
)

// Problem is one thing check found wrong. Which fields are set depends on
// the kind; Message says what is wrong in words.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// File is the repository file concerned, as its path in the
	// repository: "data/<id>" for a pack, "index/<id>", "keys/<id>",
	// "config".
	File string `json:"file,omitempty"`
	// Snapshot is the ID of the snapshot concerned.
	Snapshot string `json:"snapshot,omitempty"`
	// Path is the path of the file or folder inside the snapshot.
	Path string `json:"path,omitempty"`
	// Blob is the ID of the blob concerned.
	Blob string `json:"blob,omitempty"`
	// Warning says the problem is not damage: nothing is lost.
	Warning bool   `json:"warning,omitempty"`
	Message string `json:"message"`
}

// String is the problem on one line, naming the file, snapshot, path and
// blob it concerns.
func (p Problem) String() string {
	var where []string
	if p.File != "" {
		where = append(where, p.File)
	}
	if p.Snapshot != "" {
		where = append(where, "snapshot "+shortHex(p.Snapshot))
	}
	if p.Path != "" {
		where = append(where, p.Path)
	}
	if p.Blob != "" {
		where = append(where, "blob "+shortHex(p.Blob))
	}
	s := strings.Join(where, " ")
	if s != "" {
		s += ": "
	}
	s += p.Message
	if p.Warning {
		s = "warning: " + s
	}
	return s
}

func shortHex(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// HasDamage reports whether any of the problems is more than a warning.
func HasDamage(problems []Problem) bool {
	for _, p := range problems {
		if !p.Warning {
			return true
		}
	}
	return false
}

// Subset selects part of the packs whose data check reads. The zero
// value selects every pack.
type Subset struct {
	n, m    int     // group n of m, when m > 0
	percent float64 // a random share, when > 0
}

// ParseSubset parses "n/m" (1 <= n <= m <= 256) or "P%" (0 < P <= 100).
//
// "n/m" selects the packs whose ID's first byte modulo m is n-1: the m
// groups are disjoint, of about equal size (pack IDs are hashes), and
// together hold every pack, so reading group (day mod m) + 1 each night
// reads the whole repository every m nights, e.g. from cron:
//
//	cairn check --read-data-subset "$(( $(date +%-j) % 30 + 1 ))/30"
//
// (day of the year; the day of the month works for m up to 28). "P%"
// selects a random P percent of the packs, rounded up, afresh each run.
func ParseSubset(s string) (Subset, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(v) || v <= 0 || v > 100 {
			return Subset{}, fmt.Errorf("read data subset %q: want a percentage above 0 and at most 100", s)
		}
		return Subset{percent: v}, nil
	}
	ns, ms, ok := strings.Cut(s, "/")
	n, err1 := strconv.Atoi(ns)
	m, err2 := strconv.Atoi(ms)
	if !ok || err1 != nil || err2 != nil || m < 1 || m > 256 || n < 1 || n > m {
		return Subset{}, fmt.Errorf("read data subset %q: want n/m with 1 <= n <= m <= 256, or P%%", s)
	}
	return Subset{n: n, m: m}, nil
}

// String gives the subset as ParseSubset reads it ("all" for the zero
// value).
func (s Subset) String() string {
	switch {
	case s.m > 0:
		return fmt.Sprintf("%d/%d", s.n, s.m)
	case s.percent > 0:
		return strconv.FormatFloat(s.percent, 'f', -1, 64) + "%"
	}
	return "all"
}

// IsAll reports whether the subset selects every pack.
func (s Subset) IsAll() bool { return s.m == 0 && s.percent == 0 }

// choose returns the selected IDs of ids, which it may reorder.
func (s Subset) choose(ids []backend.ID) []backend.ID {
	switch {
	case s.m > 0:
		var out []backend.ID
		for _, id := range ids {
			if int(id[0])%s.m == s.n-1 {
				out = append(out, id)
			}
		}
		return out
	case s.percent > 0:
		n := int(math.Ceil(float64(len(ids)) * s.percent / 100))
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		out := slices.Clone(ids[:min(n, len(ids))])
		slices.SortFunc(out, cmpBlobID)
		return out
	}
	return ids
}

// CheckOptions configure a check; the zero value checks the structure
// only. PlanCheck reads ReadData and Subset; ExecuteCheck reads Progress.
type CheckOptions struct {
	// ReadData downloads the packs and verifies every byte: the pack's
	// hash, its header against the index, and every blob.
	ReadData bool
	// Subset limits the packs read; a subset other than all implies
	// ReadData.
	Subset Subset
	// Progress, if set, is told about each phase.
	Progress ProgressFunc
}

// CheckPlan is what a check reads and verifies, worked out by PlanCheck
// from the backend's listings: a plain value that ExecuteCheck carries
// out. Check has no dry run: it changes nothing, and its plan costs only
// the listings, so a caller shows the plan and goes on.
type CheckPlan struct {
	// Keys and IndexFiles are the key files and index files to read and
	// verify, sorted.
	Keys, IndexFiles []backend.ID
	// Packs are the packs the backend holds, sorted by ID, to compare
	// with the index; PackBytes is their total size.
	Packs     []CheckPack
	PackBytes int64
	// ReadData says pack data is read: all packs, or the Subset.
	ReadData bool
	Subset   Subset
	// Read are the packs whose data is read, in the order they are read
	// (sorted by ID), with their sizes; ReadBytes is their total.
	Read      []CheckPack
	ReadBytes int64
}

// CheckPack is a pack a check covers.
type CheckPack struct {
	ID   backend.ID
	Size int64
}

// CheckResult is what Check found.
type CheckResult struct {
	// Problems are sorted by file, then kind.
	Problems   []Problem `json:"problems"`
	IndexFiles int       `json:"index_files"`
	Packs      int       `json:"packs"`
	Blobs      int       `json:"blobs"`
	PacksRead  int       `json:"packs_read"`
	BytesRead  int64     `json:"bytes_read"`
}

// missingPacksCopied returns the packs the index lists (stats) that are
// missing from the backend (sizes) and whose every blob the index also
// lists in a pack the backend has: a backup after the loss stored them
// again, so the loss costs nothing. It reads the index once, and looks up
// only the blobs of missing packs.
func (r *Repository) missingPacksCopied(stats map[backend.ID]*packIndexStat, sizes map[backend.ID]int64) map[backend.ID]bool {
	copied := make(map[backend.ID]bool)
	for id := range stats {
		if _, ok := sizes[id]; !ok {
			copied[id] = true
		}
	}
	if len(copied) == 0 {
		return copied
	}
	type lost struct {
		pack backend.ID
		t    pack.BlobType
		id   backend.ID
	}
	var blobs []lost
	r.idx.Each(func(pb index.PackedBlob) bool {
		if copied[pb.PackID] {
			blobs = append(blobs, lost{pb.PackID, pb.Type, pb.ID})
		}
		return true
	})
	for _, b := range blobs {
		if !copied[b.pack] {
			continue
		}
		elsewhere := false
		for _, loc := range r.idx.LookupAll(b.t, b.id) {
			if _, ok := sizes[loc.PackID]; ok {
				elsewhere = true
				break
			}
		}
		if !elsewhere {
			copied[b.pack] = false
		}
	}
	return copied
}

// packIndexStat sums what the in-memory index says about one pack.
type packIndexStat struct {
	blobs int
	end   int64 // where the last blob ends
	sum   int64 // the blobs' lengths
}

// maxPackFile caps a pack file that check reads whole: the largest pack
// size, plus the blob that may overflow it, plus the largest header.
const maxPackFile = MaxPackSize + maxBlobSize + pack.MaxHeaderSize + 4

// minPackHeader is the smallest sealed header (plus trailer) that lists n
// blobs: version(1) || KeyID(8) || nonce and tag || plaintext of
// version(1) || wrapped-key length(2) || count(4) || 41 bytes an entry,
// then the 4-byte header length (docs/design.md, Packs).
func minPackHeader(n int) int64 {
	return 1 + 8 + crypt.Overhead + 1 + 2 + 4 + 41*int64(n) + 4
}

// Check verifies the repository's structure and, with ReadData or a
// Subset, its data: PlanCheck, then ExecuteCheck.
func (r *Repository) Check(ctx context.Context, opts CheckOptions) (CheckResult, error) {
	plan, err := r.PlanCheck(ctx, opts)
	if err != nil {
		return CheckResult{}, err
	}
	return r.ExecuteCheck(ctx, plan, opts)
}

// PlanCheck lists the key files, index files and packs, and chooses the
// packs whose data ExecuteCheck reads (with ReadData, or a Subset other
// than all). It reads no file.
func (r *Repository) PlanCheck(ctx context.Context, opts CheckOptions) (*CheckPlan, error) {
	plan := &CheckPlan{ReadData: opts.ReadData || !opts.Subset.IsAll(), Subset: opts.Subset}
	if err := r.ListFiles(ctx, backend.KeyFile, func(id backend.ID, _ int64) error {
		plan.Keys = append(plan.Keys, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	ids, err := r.IndexFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	plan.IndexFiles = ids
	if err := r.ListFiles(ctx, backend.PackFile, func(id backend.ID, size int64) error {
		plan.Packs = append(plan.Packs, CheckPack{ID: id, Size: size})
		plan.PackBytes += size
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	slices.SortFunc(plan.Keys, cmpBlobID)
	slices.SortFunc(plan.IndexFiles, cmpBlobID)
	slices.SortFunc(plan.Packs, func(a, b CheckPack) int { return cmpBlobID(a.ID, b.ID) })
	if plan.ReadData {
		all := make([]backend.ID, len(plan.Packs))
		for i, p := range plan.Packs {
			all[i] = p.ID
		}
		chosen := opts.Subset.choose(all)
		plan.Read = make([]CheckPack, 0, len(chosen))
		for _, id := range chosen {
			i, _ := slices.BinarySearchFunc(plan.Packs, id, func(p CheckPack, id backend.ID) int { return cmpBlobID(p.ID, id) })
			plan.Read = append(plan.Read, plan.Packs[i])
			plan.ReadBytes += plan.Packs[i].Size
		}
	}
	return plan, nil
}

// checkRun is one check's state while it carries out its plan.
type checkRun struct {
	r        *Repository
	plan     *CheckPlan
	progress ProgressFunc

	mu  sync.Mutex // guards res while workers add to it
	res CheckResult
}

func (c *checkRun) add(p Problem) {
	c.mu.Lock()
	c.res.Problems = append(c.res.Problems, p)
	c.mu.Unlock()
}

// ExecuteCheck carries out plan, which PlanCheck made for r. It reports
// what it finds as problems and returns an error only when it cannot go
// on (a read fails in a way that is not damage, ctx ends).
//
// The structure: the config opens and parses; every key file is named by
// its hash and parses; every index file reads from the backend (not the
// cache), authenticates and parses; every pack the index lists exists with
// a size that fits its blobs; a pack no index lists is a warning (a
// backup or prune that was interrupted leaves such packs; the next prune
// removes them). A blob stored in several packs is fine.
//
// Reading data: each pack of plan.Read is read once, from start to end;
// its SHA-256 must be its name, its header must open and list exactly what
// the index lists for it, and every blob must open, decompress and hash to
// its ID. A damaged pack is named by its file name. The packs are streamed
// (as many at once as the backend allows connections) while GOMAXPROCS
// workers verify their blobs, so memory stays a few blobs per worker
// whatever the pack size.
func (r *Repository) ExecuteCheck(ctx context.Context, plan *CheckPlan, opts CheckOptions) (CheckResult, error) {
	c := &checkRun{r: r, plan: plan, progress: opts.Progress}
	if c.progress == nil {
		c.progress = func(string, int64, int64) {}
	}
	c.res.IndexFiles, c.res.Packs = len(plan.IndexFiles), len(plan.Packs)
	c.progress("check structure", 0, 0)
	if err := r.checkConfig(ctx); err != nil {
		if ctx.Err() != nil {
			return c.res, ctx.Err()
		}
		c.add(Problem{Kind: ProblemConfig, File: backend.ConfigName, Message: err.Error()})
	}
	if err := r.checkKeys(ctx, plan.Keys, c.add); err != nil {
		return c.res, err
	}
	listed, err := c.checkIndexFiles(ctx)
	if err != nil {
		return c.res, err
	}
	c.progress("check packs", 0, 0)
	sizes := make(map[backend.ID]int64, len(plan.Packs))
	for _, p := range plan.Packs {
		sizes[p.ID] = p.Size
	}
	stats := c.checkPacks(sizes, listed)
	if err := c.readData(ctx, stats); err != nil {
		return c.res, err
	}
	slices.SortFunc(c.res.Problems, func(a, b Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return c.res, nil
}

// checkIndexFiles reads every index file of the plan from the backend and
// returns the packs they list.
func (c *checkRun) checkIndexFiles(ctx context.Context) (map[backend.ID]bool, error) {
	ids := c.plan.IndexFiles
	listed := make(map[backend.ID]bool) // guarded by c.mu
	var done int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(c.r.be.Properties().Connections, 1))
	for _, id := range ids {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			f, err := c.r.fetchIndexFile(gctx, id)
			c.mu.Lock()
			done++
			c.progress("check index", done, int64(len(ids)))
			c.mu.Unlock()
			if err != nil {
				if err := gctx.Err(); err != nil {
					return err
				}
				c.add(Problem{Kind: ProblemIndexFile, File: handleOf(backend.IndexFile, id), Message: err.Error()})
				return nil
			}
			c.mu.Lock()
			for _, p := range f.Packs {
				listed[p.ID] = true
			}
			c.mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return listed, ctx.Err()
}

// checkPacks compares the packs the backend holds (sizes) with what the
// loaded index lists, and with the packs the index files list (listed),
// and returns what the index lists for each pack.
func (c *checkRun) checkPacks(sizes map[backend.ID]int64, listed map[backend.ID]bool) map[backend.ID]*packIndexStat {
	stats := make(map[backend.ID]*packIndexStat)
	c.r.idx.Each(func(pb index.PackedBlob) bool {
		s := stats[pb.PackID]
		if s == nil {
			s = &packIndexStat{}
			stats[pb.PackID] = s
		}
		s.blobs++
		s.end = max(s.end, int64(pb.Offset)+int64(pb.Length))
		s.sum += int64(pb.Length)
		c.res.Blobs++
		return true
	})
	copied := c.r.missingPacksCopied(stats, sizes)
	for id, s := range stats {
		size, ok := sizes[id]
		if !ok && copied[id] {
			c.add(Problem{Kind: ProblemPackMissing, File: handleOf(backend.PackFile, id), Warning: true,
				Message: fmt.Sprintf("missing, but each of the %d blob(s) the index lists in it is stored in another pack too (a backup stored them again): nothing is lost; the next prune drops it from the index", s.blobs)})
			continue
		}
		if !ok {
			c.add(Problem{Kind: ProblemPackMissing, File: handleOf(backend.PackFile, id),
				Message: fmt.Sprintf("missing: the index lists %d blob(s) in this pack", s.blobs)})
			continue
		}
		if msg := implausibleSize(size, s); msg != "" {
			c.add(Problem{Kind: ProblemPackSize, File: handleOf(backend.PackFile, id), Message: msg})
		}
	}
	for id := range sizes {
		if !listed[id] {
			c.add(Problem{Kind: ProblemPackUnindexed, File: handleOf(backend.PackFile, id), Warning: true,
				Message: "no index lists this pack (left by an interrupted backup or prune; the next prune cleans it up, 'cairn repair index' indexes it)"})
		}
	}
	return stats
}

// readData reads and verifies the packs of plan.Read, in batches whose
// index entries, held while their packs are read, number at most
// checkListBlobs.
func (c *checkRun) readData(ctx context.Context, stats map[backend.ID]*packIndexStat) error {
	sel := c.plan.Read
	if len(sel) == 0 {
		return nil
	}
	var done int64
	v := c.r.newVerifier(ctx)
	defer v.close()
	for start := 0; start < len(sel); {
		end, n := start, 0
		for end < len(sel) && (end == start || n+blobsOf(stats[sel[end].ID]) <= checkListBlobs) {
			n += blobsOf(stats[sel[end].ID])
			end++
		}
		batch := sel[start:end]
		if err := c.readBatch(ctx, v, batch, stats, &done); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// readBatch reads and verifies the packs of batch, as many at once as the
// backend allows connections; done counts the bytes read so far. The
// first error (ctx ending) cancels the reads under way and starts no
// more; readBatch returns once every read has ended.
func (c *checkRun) readBatch(ctx context.Context, v *verifier, batch []CheckPack, stats map[backend.ID]*packIndexStat, done *int64) error {
	ids := make([]backend.ID, len(batch))
	for i, p := range batch {
		ids[i] = p.ID
	}
	lists := c.r.packLists(ids)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(c.r.be.Properties().Connections, 1))
	for _, p := range batch {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			problem := c.r.checkPackData(gctx, v, p.ID, p.Size, stats[p.ID], lists[p.ID])
			if err := gctx.Err(); err != nil {
				return err
			}
			if problem != nil {
				c.add(*problem)
			}
			c.mu.Lock()
			c.res.PacksRead++
			c.res.BytesRead += p.Size
			*done += p.Size
			c.progress(PhaseReadData, *done, c.plan.ReadBytes)
			c.mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

func handleOf(t backend.FileType, id backend.ID) string {
	return backend.Handle{Type: t, Name: id.String()}.String()
}

// implausibleSize says why a pack of size bytes cannot hold the blobs the
// index lists, or returns "".
func implausibleSize(size int64, s *packIndexStat) string {
	if s.end != s.sum {
		return fmt.Sprintf("the index lists blobs that overlap or leave gaps (%d bytes of blobs end at %d)", s.sum, s.end)
	}
	lo := s.end + minPackHeader(s.blobs)
	hi := s.end + pack.MaxHeaderSize + 4
	if size < lo || size > hi {
		return fmt.Sprintf("size %d does not fit the %d blob(s) the index lists (want %d to %d bytes)", size, s.blobs, lo, hi)
	}
	return ""
}

// checkConfig reads the config again and checks that it opens and parses.
func (r *Repository) checkConfig(ctx context.Context) error {
	data, err := r.readWhole(ctx, backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}, maxConfigSize)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	plain, err := r.keys.OpenFile(kindConfig, data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	_, err = decodeConfig(plain)
	return err
}

// checkKeys checks that every key file of ids is named by its hash and
// parses. A file whose bytes no longer match its name is damage. One that
// matches its name but is no key file, or whose KDF parameters exceed the
// cost limit, is a warning: whoever can add files to the repository (a
// friend's server, an append-only client) can put such files there, they
// hide nothing, and opening skips them.
func (r *Repository) checkKeys(ctx context.Context, ids []backend.ID, add func(Problem)) error {
	for _, id := range ids {
		file := handleOf(backend.KeyFile, id)
		h := backend.Handle{Type: backend.KeyFile, Name: id.String()}
		data, err := r.readWhole(ctx, h, maxKeyFileSize)
		if errors.Is(err, ErrFormat) {
			// Too large to be a key file: junk if it matches its name.
			ok, _, herr := hashMatches(ctx, r.be, h)
			switch {
			case herr != nil:
				err = herr
			case ok:
				add(Problem{Kind: ProblemKeyJunk, File: file, Warning: true,
					Message: fmt.Sprintf("not a key file (%v): its bytes match its name, so it was stored like this, not damaged; it opens nothing, and opening skips it: delete it if you do not know it", err)})
				continue
			}
		}
		if err == nil && backend.Hash(data) != id {
			err = fmt.Errorf("%w: content does not match its name", ErrDamaged)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			add(Problem{Kind: ProblemKeyFile, File: file, Message: err.Error()})
			continue
		}
		if crypt.IsRingRecord(data) {
			r.checkRingRecord(id, data, add)
			continue
		}
		info, err := crypt.ParseKeyFileInfo(data)
		if err != nil {
			add(Problem{Kind: ProblemKeyJunk, File: file, Warning: true,
				Message: fmt.Sprintf("not a key file (%v): its bytes match its name, so it was stored like this, not damaged; it opens nothing, and opening skips it: delete it if you do not know it", err)})
			continue
		}
		if err := info.KDF.CheckCost(); err != nil {
			add(Problem{Kind: ProblemKeyTooCostly, File: file, Warning: true,
				Message: fmt.Sprintf("%v: never tried; 'cairn key remove %s' if you do not know it", err, id.Str())})
		}
	}
	return nil
}

// fetchIndexFile reads an index file from the backend, bypassing the
// cache, and checks and opens it.
func (r *Repository) fetchIndexFile(ctx context.Context, id backend.ID) (*index.File, error) {
	sealed, err := r.readWhole(ctx, backend.Handle{Type: backend.IndexFile, Name: id.String()}, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if backend.Hash(sealed) != id {
		return nil, fmt.Errorf("%w: content does not match its name", ErrDamaged)
	}
	return r.openIndexFile(id, sealed)
}

// checkListBlobs caps the index entries (pack.Blob, 64 bytes each) that
// check --read-data holds at once: the packs it reads go in batches of at
// most this many blobs (a single pack with more is a batch of its own),
// so a repository of millions of blobs costs a few MiB, not a copy of the
// index.
const checkListBlobs = 1 << 16

// checkBatch is how many bytes of back-to-back sealed blobs a pack reader
// reads at once and hands to the verifier as one job (a larger blob goes
// alone): small blobs cost one read and one hand-over per MiB, and the
// jobs in flight stay a few MiB.
const checkBatch = 1 << 20

// maxKeptBuf is the largest buffer check keeps for reuse: a chunk is at
// most 8 MiB, so only a huge tree blob makes a buffer that is dropped.
const maxKeptBuf = 16 << 20

func blobsOf(st *packIndexStat) int {
	if st == nil {
		return 0
	}
	return st.blobs
}

// packLists returns what the index lists for each of the packs, sorted by
// offset, in one pass over the index.
func (r *Repository) packLists(ids []backend.ID) map[backend.ID][]pack.Blob {
	lists := make(map[backend.ID][]pack.Blob, len(ids))
	for _, id := range ids {
		lists[id] = nil
	}
	r.idx.Each(func(pb index.PackedBlob) bool {
		if l, ok := lists[pb.PackID]; ok {
			lists[pb.PackID] = append(l, pb.Blob)
		}
		return true
	})
	for _, l := range lists {
		slices.SortFunc(l, func(a, b pack.Blob) int { return cmp.Compare(a.Offset, b.Offset) })
	}
	return lists
}

// packVerify collects what the verifier finds in the blobs of one pack.
type packVerify struct {
	wg    sync.WaitGroup // one count per job handed to the verifier
	mu    sync.Mutex     // guards the fields below
	bad   int
	first error  // about the blob at the lowest offset that failed
	at    uint32 // that blob's offset
}

func (pv *packVerify) fail(b pack.Blob, err error) {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	pv.bad++
	if pv.first == nil || b.Offset < pv.at {
		pv.first = fmt.Errorf("%s blob %s: %w", b.Type, b.ID.Str(), err)
		pv.at = b.Offset
	}
}

// blobJob is sealed blobs read back to back from a pack, for the verifier.
type blobJob struct {
	buf   []byte      // the sealed bytes of blobs, in order
	blobs []pack.Blob // what buf holds
	pv    *packVerify // where to report; Done once per job
	// pooled says buf came from getBuf and goes back to it.
	pooled bool
}

// verifier opens, decompresses and hashes the blobs that pack readers hand
// it, on GOMAXPROCS workers: that work is CPU-bound, while the readers (as
// many as the backend allows connections) mostly wait for I/O. Buffers go
// round through free; at most (readers + workers) are in use at once: one
// being filled per reader (the hand-over is unbuffered: a reader reads its
// next batch while a worker verifies the last), one being verified per
// worker. Blobs are decrypted in place, so a worker needs a buffer of its
// own only for the plaintext of a compressed blob.
type verifier struct {
	r    *Repository
	ctx  context.Context
	jobs chan blobJob
	free chan []byte
	wg   sync.WaitGroup // the workers
}

func (r *Repository) newVerifier(ctx context.Context) *verifier {
	n := runtime.GOMAXPROCS(0)
	v := &verifier{
		r:    r,
		ctx:  ctx,
		jobs: make(chan blobJob),
		free: make(chan []byte, n+max(1, r.be.Properties().Connections)),
	}
	for range n {
		v.wg.Go(v.work)
	}
	return v
}

// close stops the workers once the jobs handed over are done.
func (v *verifier) close() {
	close(v.jobs)
	v.wg.Wait()
}

func (v *verifier) work() {
	var plain []byte
	for j := range v.jobs {
		if v.ctx.Err() == nil {
			var off int
			for _, b := range j.blobs {
				p, err := v.r.openBlobInPlace(plain, b, j.buf[off:off+int(b.Length)])
				off += int(b.Length)
				if err != nil {
					j.pv.fail(b, err)
					continue
				}
				if b.Compressed() && cap(p) <= maxKeptBuf {
					plain = p[:0]
				}
			}
		}
		if j.pooled {
			v.putBuf(j.buf)
		}
		j.pv.wg.Done()
	}
}

// getBuf returns a buffer of n bytes, reused when one is free.
func (v *verifier) getBuf(n int) []byte {
	select {
	case b := <-v.free:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n, max(n, checkBatch))
}

func (v *verifier) putBuf(b []byte) {
	if cap(b) > maxKeptBuf {
		return
	}
	select {
	case v.free <- b:
	default:
	}
}

// checkPackData downloads a pack and verifies all of it; st is what the
// index lists for it in sum and list blob by blob (nil for an unindexed
// pack).
//
// A pack whose index entries fill it from offset 0 up to a plausible
// header is streamed once: every byte goes through one SHA-256 of the
// file, the blobs go to the verifier in batches as they arrive, and only
// the header at the end is kept, opened and compared with the index. Any
// other pack (unindexed, or one whose index entries cannot describe it) is
// read whole and its own header says where the blobs are.
func (r *Repository) checkPackData(ctx context.Context, v *verifier, id backend.ID, size int64, st *packIndexStat, list []pack.Blob) *Problem {
	if st == nil || len(list) != st.blobs || implausibleSize(size, st) != "" || !fillsFromStart(list) {
		return r.checkPackWhole(ctx, v, id, size, st)
	}
	file := handleOf(backend.PackFile, id)
	damaged := func(format string, args ...any) *Problem {
		return &Problem{Kind: ProblemPackDamaged, File: file, Message: "damaged: " + fmt.Sprintf(format, args...)}
	}
	dataEnd := st.end
	var (
		pv   packVerify
		read int64      // bytes the reader gave
		sum  backend.ID // their SHA-256
		tail []byte     // the header and trailer, as far as they were read
	)
	err := r.be.Get(ctx, backend.Handle{Type: backend.PackFile, Name: id.String()}, 0, 0, func(rd io.Reader) error {
		// A retry runs this again: start afresh once the jobs handed
		// over so far are done.
		pv.wg.Wait()
		pv.bad, pv.first, read, tail = 0, nil, 0, nil
		hash := sha256.New()
		defer func() { hash.Sum(sum[:0]) }()
		for start := 0; start < len(list); {
			end, n := start, 0
			for end < len(list) && (end == start || n+int(list[end].Length) <= checkBatch) {
				n += int(list[end].Length)
				end++
			}
			buf := v.getBuf(n)
			k, err := io.ReadFull(rd, buf)
			read += int64(k)
			hash.Write(buf[:k])
			if err != nil {
				v.putBuf(buf)
				if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
					return nil // shorter than listed: the size check tells
				}
				return err
			}
			pv.wg.Add(1)
			select {
			case v.jobs <- blobJob{buf: buf, blobs: list[start:end], pv: &pv, pooled: true}:
			case <-ctx.Done():
				pv.wg.Done()
				v.putBuf(buf)
				return ctx.Err()
			}
			start = end
		}
		// implausibleSize bounds this by the largest header.
		tail = make([]byte, size-dataEnd)
		k, err := io.ReadFull(rd, tail)
		read += int64(k)
		hash.Write(tail[:k])
		tail = tail[:k]
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		// Count what lies past the listed size (not hashed: the size
		// check reports it first).
		extra, err := io.Copy(io.Discard, io.LimitReader(rd, maxPackFile))
		read += extra
		return err
	})
	pv.wg.Wait()
	if err != nil {
		if backend.IsNotExist(err) {
			return &Problem{Kind: ProblemPackMissing, File: file, Message: "missing: removed while check ran"}
		}
		if ctx.Err() != nil {
			return nil
		}
		return damaged("read: %v", err)
	}
	if read != size {
		return damaged("read %d bytes, the listing says %d", read, size)
	}
	if sum != id {
		return damaged("content does not match its name (SHA-256 %s)", sum.Str())
	}
	hlen := int64(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if hlen != int64(len(tail))-4 {
		// The header is not where the index says the blobs end: let
		// the header tell where its blobs are, as for an unindexed pack.
		return r.checkPackWhole(ctx, v, id, size, st)
	}
	blobs, _, err := pack.DecodeHeader(r.keys, tail[:hlen])
	if err != nil {
		return damaged("%v", err)
	}
	if msg := compareList(blobs, list); msg != "" {
		return &Problem{Kind: ProblemPackIndex, File: file, Message: msg}
	}
	if pv.bad > 0 {
		return damaged("%d of %d blob(s) do not verify, first %v", pv.bad, len(list), pv.first)
	}
	return nil
}

// fillsFromStart reports whether the blobs, sorted by offset, lie back to
// back from offset 0.
func fillsFromStart(list []pack.Blob) bool {
	var off int64
	for _, b := range list {
		if int64(b.Offset) != off {
			return false
		}
		off += int64(b.Length)
	}
	return true
}

// compareList checks that a pack's header lists exactly the blobs the
// index lists for it (both in offset order), or says how they differ.
func compareList(header, list []pack.Blob) string {
	if len(header) != len(list) {
		return fmt.Sprintf("the header lists %d blob(s), the index %d", len(header), len(list))
	}
	for i, b := range header {
		x := list[i]
		if b.Type != x.Type || b.ID != x.ID || b.Offset != x.Offset || b.Length != x.Length || b.RawLength != x.RawLength {
			return fmt.Sprintf("the index does not list %s blob %s at offset %d as the header does", b.Type, b.ID.Str(), b.Offset)
		}
		if b.KeyID != x.KeyID {
			return fmt.Sprintf("the header seals %s blob %s with key %s, the index names key %s", b.Type, b.ID.Str(), b.KeyID, x.KeyID)
		}
	}
	return ""
}

// checkPackWhole reads a pack whole and verifies it by its own header; st
// is what the index lists for it (nil for an unindexed pack).
func (r *Repository) checkPackWhole(ctx context.Context, v *verifier, id backend.ID, size int64, st *packIndexStat) *Problem {
	file := handleOf(backend.PackFile, id)
	damaged := func(format string, args ...any) *Problem {
		return &Problem{Kind: ProblemPackDamaged, File: file, Message: "damaged: " + fmt.Sprintf(format, args...)}
	}
	data, err := r.readWhole(ctx, backend.Handle{Type: backend.PackFile, Name: id.String()}, maxPackFile)
	if err != nil {
		if backend.IsNotExist(err) {
			return &Problem{Kind: ProblemPackMissing, File: file, Message: "missing: removed while check ran"}
		}
		return damaged("read: %v", err)
	}
	if int64(len(data)) != size {
		return damaged("read %d bytes, the listing says %d", len(data), size)
	}
	if backend.Hash(data) != id {
		return damaged("content does not match its name (SHA-256 %s)", backend.Hash(data).Str())
	}
	blobs, _, err := pack.ReadHeader(r.keys, int64(len(data)), func(off int64, n int) ([]byte, error) {
		if off < 0 || n < 0 || off+int64(n) > int64(len(data)) {
			return nil, fmt.Errorf("%w: read past the end", pack.ErrFormat)
		}
		return data[off : off+int64(n)], nil
	})
	if err != nil {
		return damaged("%v", err)
	}
	if st != nil {
		if msg := r.compareHeader(id, blobs, st); msg != "" {
			return &Problem{Kind: ProblemPackIndex, File: file, Message: msg}
		}
	}
	// The blobs lie back to back from offset 0 (ReadHeader checks it):
	// hand them to the verifier in batches.
	var pv packVerify
	for start := 0; start < len(blobs); {
		end, n := start, 0
		for end < len(blobs) && (end == start || n+int(blobs[end].Length) <= checkBatch) {
			n += int(blobs[end].Length)
			end++
		}
		lo := int64(blobs[start].Offset)
		pv.wg.Add(1)
		select {
		case v.jobs <- blobJob{buf: data[lo : lo+int64(n) : lo+int64(n)], blobs: blobs[start:end], pv: &pv}:
		case <-ctx.Done():
			pv.wg.Done()
		}
		start = end
	}
	pv.wg.Wait()
	if pv.bad > 0 {
		return damaged("%d of %d blob(s) do not verify, first %v", pv.bad, len(blobs), pv.first)
	}
	return nil
}

// compareHeader checks that the header lists exactly the blobs the index
// lists for the pack, or says how they differ.
func (r *Repository) compareHeader(id backend.ID, blobs []pack.Blob, st *packIndexStat) string {
	if len(blobs) != st.blobs {
		return fmt.Sprintf("the header lists %d blob(s), the index %d", len(blobs), st.blobs)
	}
	for _, b := range blobs {
		found := false
		for _, pb := range r.idx.LookupAll(b.Type, b.ID) {
			if pb.PackID == id && pb.Offset == b.Offset && pb.Length == b.Length && pb.RawLength == b.RawLength {
				found = true
				break
			}
		}
		if !found {
			return fmt.Sprintf("the index does not list %s blob %s at offset %d as the header does", b.Type, b.ID.Str(), b.Offset)
		}
	}
	return ""
}
