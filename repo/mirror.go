package repo

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
	"golang.org/x/sync/errgroup"
)

// Mirroring copies a repository's files from one backend to another
// without keys: every file is named by its hash, and the log's envelopes
// are signed, so a mirror can check what it copies without the password.

// ErrDiverged is wrapped by the error a mirror returns when the
// destination's log holds entries the source's does not.
var ErrDiverged = errors.New("destination log has diverged from the source")

// ErrOtherRepository is returned when the destination holds a different
// repository (another config).
var ErrOtherRepository = errors.New("destination holds another repository")

// ErrSourceDamaged is wrapped by a mirror's error when the source lacks
// files its own index or log names, or holds files whose content does not
// match their names: the mirror copied everything else and removed nothing.
var ErrSourceDamaged = errors.New("the source is damaged")

// ErrReplaceRefused is wrapped by a mirror's error when the destination
// holds files whose size does not match the source's and refuses to
// replace them.
var ErrReplaceRefused = errors.New("the destination refuses to replace damaged files")

// MirrorOptions configure a mirror; the zero value copies what is
// missing. PlanMirror reads Prune and Refs; ExecuteMirror reads the rest.
type MirrorOptions struct {
	// Prune plans to remove files from the destination that the source
	// dropped on purpose (see PlanMirror), where the destination allows
	// it. It needs Refs.
	Prune bool
	// Refs is what the source's own index references (see
	// Repository.MirrorRefs): with it, a file the source lacks but its
	// index lists is damage, never something to remove from the
	// destination. Prune requires it; without Prune it is optional.
	Refs *MirrorRefs
	// Progress is called after each file copied or removed, from several
	// goroutines at once; it must be safe for concurrent use. Log entries
	// are copied one at a time, and Progress is called after each on the
	// goroutine that called ExecuteMirror, before the next one is copied.
	Progress func(MirrorStats)
	// Warn receives problems that do not fail the mirror: files under
	// log/ that are not log entries (skipped), destination files of the
	// wrong size (replaced, or why not), log entries held back, stale
	// temporary files on the destination that could not be removed. It
	// may be called from several goroutines at once. Nil discards them.
	Warn func(msg string)
}

// MirrorRefs is what a source repository's index references, read with
// its keys: what a keyless mirror cannot know.
type MirrorRefs struct {
	packs map[backend.ID]bool
	// damagedIndex are index files of the source that did not open.
	damagedIndex []backend.ID
	// superseded are the index files the source's index files name as
	// replaced on purpose.
	superseded map[backend.ID]bool
	// openIndex opens an index file of this repository, given its bytes
	// (which hash to id); it needs the keys.
	openIndex func(id backend.ID, sealed []byte) (*index.File, error)
	// unindexed are the blobs the source's live snapshots need that its
	// index does not list (see SetUnindexed).
	unindexed *BlobSet
}

// SetUnindexed tells the mirror the blobs the source's live snapshots need
// that its index does not list (snapshot.UnindexedBlobs): the source lost
// them, perhaps with the only index file that named their packs. With
// Prune, a mirror then removes nothing from the destination, and names the
// destination's packs that hold them so that "repair packs --from" can
// fetch them back.
func (refs *MirrorRefs) SetUnindexed(blobs *BlobSet) { refs.unindexed = blobs }

// MirrorRefs returns the packs the loaded index lists, the index files
// that failed to load and the ones the loaded index files supersede, for
// MirrorOptions.Refs; with it, a mirror can also read the index files of
// the destination. The index must be loaded, and r must stay open while
// the mirror runs.
func (r *Repository) MirrorRefs() *MirrorRefs {
	refs := &MirrorRefs{packs: make(map[backend.ID]bool), damagedIndex: slices.Clone(r.skippedIndex),
		superseded: make(map[backend.ID]bool)}
	for _, id := range r.idx.Packs() {
		refs.packs[id] = true
	}
	r.supersededMu.Lock()
	for id := range r.supersededIndex {
		refs.superseded[id] = true
	}
	r.supersededMu.Unlock()
	refs.openIndex = r.openIndexFile
	return refs
}

// MirrorStats sums up a mirror.
type MirrorStats struct {
	FilesCopied  int   `json:"files_copied"`
	BytesCopied  int64 `json:"bytes_copied"`
	FilesSkipped int   `json:"files_skipped"` // already on the destination
	BytesSkipped int64 `json:"bytes_skipped"`
	FilesRemoved int   `json:"files_removed"`
	BytesRemoved int64 `json:"bytes_removed"`
	// FilesKept counts files Prune would remove but the destination
	// refused to delete (an append-only peer).
	FilesKept int `json:"files_kept"`
	// FilesToCopy and BytesToCopy are what the plan found missing.
	FilesToCopy int   `json:"files_to_copy"`
	BytesToCopy int64 `json:"bytes_to_copy"`
	// FilesReplaced counts destination files whose size did not match the
	// source's and that were replaced by the source's (they are among
	// FilesCopied).
	FilesReplaced int `json:"files_replaced"`
	// LogEntriesCopied counts the log entries among FilesCopied.
	LogEntriesCopied int `json:"log_entries_copied"`
	// TempFilesRemoved and TempBytesRemoved count the stale temporary
	// files, left on the destination by uploads killed mid-way, that the
	// mirror removed after copying.
	TempFilesRemoved int   `json:"temp_files_removed"`
	TempBytesRemoved int64 `json:"temp_bytes_removed"`
}

// MirrorError is the error of a mirror that went through but could not
// copy everything, or refused to remove anything: it names the files.
// It wraps ErrSourceDamaged when the source lacks or has damaged files
// (and backend.ErrHashMismatch when some were damaged), and
// ErrReplaceRefused when the destination refused to replace files.
type MirrorError struct {
	// Dest is the destination's location.
	Dest string
	// Missing are files the source's index or log names that the source
	// lacks; Damaged are source files whose content does not match their
	// names, and index files of the source that do not open. (The log
	// entries that follow a damaged one are held back with a warning.)
	// Each list is sorted.
	Missing, Damaged []backend.Handle
	// Refused are destination files of the wrong size that the
	// destination did not let the mirror replace.
	Refused []backend.Handle
	// LostIndex are index files the destination holds that the source
	// lost: they list packs the source still holds but no index of the
	// source lists, and no index file of the source replaced them. Sorted.
	LostIndex []backend.Handle
	// LostPacks are packs the destination holds that the source lost
	// with their index files, and its live snapshots need; Unindexed
	// counts the blobs those snapshots need that the source's index
	// lacks (see MirrorPlan). Sorted.
	LostPacks []backend.Handle
	Unindexed int
	// PruneSkipped says that --prune removed nothing because of Missing,
	// Damaged, LostIndex, LostPacks or Unindexed.
	PruneSkipped bool
}

// sourceDamaged says the mirror found damage at the source.
func (e *MirrorError) sourceDamaged() bool {
	return len(e.Missing)+len(e.Damaged)+len(e.LostIndex)+len(e.LostPacks) > 0 || e.Unindexed > 0
}

func (e *MirrorError) Error() string {
	var parts []string
	if n := len(e.Missing); n > 0 {
		parts = append(parts, fmt.Sprintf("the source lacks %d file(s) its own index or log names (%s)", n, nameFiles(e.Missing)))
	}
	if n := len(e.Damaged); n > 0 {
		parts = append(parts, fmt.Sprintf("%d file(s) of the source are damaged and were not copied (%s)", n, nameFiles(e.Damaged)))
	}
	if n := len(e.LostIndex); n > 0 {
		parts = append(parts, fmt.Sprintf("the source lost %d index file(s) that the destination holds (%s): they list packs the source still holds but no longer indexes", n, nameFiles(e.LostIndex)))
	}
	if n := len(e.LostPacks); n > 0 {
		parts = append(parts, fmt.Sprintf("the source lost %d pack(s) with the index files naming them, which the destination holds (%s): the source's snapshots need them", n, nameFiles(e.LostPacks)))
	}
	if e.Unindexed > 0 {
		parts = append(parts, fmt.Sprintf("the source's snapshots need %d blob(s) its index does not list", e.Unindexed))
	}
	if n := len(e.Refused); n > 0 {
		parts = append(parts, fmt.Sprintf("%d file(s) at the destination do not match their names and it refuses to replace them (%s): ask its owner to remove them, then mirror again", n, nameFiles(e.Refused)))
	}
	msg := "mirror to " + e.Dest + ": " + strings.Join(parts, "; ")
	if e.sourceDamaged() {
		msg += "; copied everything else"
		if e.PruneSkipped {
			msg += " and removed nothing"
		}
		if len(e.Missing)+len(e.Damaged)+len(e.LostPacks) > 0 || e.Unindexed > 0 {
			msg += "; heal the source from a good copy with 'cairn repair packs --from LOCATION' (this destination, if it has them)"
		}
		if len(e.LostIndex) > 0 {
			msg += "; rebuild the source's index from its packs with 'cairn repair index'"
		}
	}
	return msg
}

// Unwrap lets errors.Is find the sentinels the problems stand for.
func (e *MirrorError) Unwrap() []error {
	var out []error
	if e.sourceDamaged() {
		out = append(out, ErrSourceDamaged)
	}
	if len(e.Damaged) > 0 {
		out = append(out, backend.ErrHashMismatch)
	}
	if len(e.Refused) > 0 {
		out = append(out, ErrReplaceRefused)
	}
	return out
}

// nameFiles names up to three files in full, then how many more.
func nameFiles(hs []backend.Handle) string {
	var names []string
	for i, h := range hs {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(hs)-3))
			break
		}
		names = append(names, h.String())
	}
	return strings.Join(names, ", ")
}

// MirrorPlan is what a mirror will do, worked out by PlanMirror from the
// listings of both sides, their log entries and the source's references:
// a plain value that ExecuteMirror carries out and "mirror --dry-run"
// prints. Every list is in the order it is carried out, or sorted.
type MirrorPlan struct {
	// Source and Dest are the locations it was planned for.
	Source, Dest string
	// SourceFiles and SourceBytes sum up the source's listing (lock
	// files aside); DestFiles and DestBytes the destination's.
	SourceFiles, DestFiles int
	SourceBytes, DestBytes int64
	// Copy are the files to copy, in the order they are copied: packs,
	// then index files, then keys and the config (each phase sorted by
	// name, several files at once), then log entries one at a time, each
	// after the entries it follows, then meta records.
	Copy []MirrorCopy
	// FilesSkipped and BytesSkipped count the source's files the
	// destination holds already (same name, same size).
	FilesSkipped int
	BytesSkipped int64
	// Prune says the plan removes what the source dropped on purpose.
	Prune bool
	// Remove are the destination's files to remove (Prune only), in the
	// order they are removed: log entries, then index files, then packs,
	// then keys, so the destination never holds an index naming a
	// removed pack. ExecuteMirror removes nothing if copying finds a
	// damaged source file.
	Remove []MirrorRemoval
	// PruneSkipped says Prune removes nothing because of Missing,
	// Damaged or LostIndex.
	PruneSkipped bool
	// Held are source log entries not to copy because they follow one
	// that cannot be copied (damaged at the source): the destination's
	// log must stay valid.
	Held []backend.Handle
	// Junk are files under log/ that are not log entries, on either
	// side: skipped, and left where they are.
	Junk []MirrorJunk
	// NoMeta says the destination does not take meta records (a peer
	// server older than them): none are copied.
	NoMeta bool
	// Missing are files the source's index or log names that the source
	// lacks; Damaged are source files found not to match their names (log
	// entries) or not to open (index files, per Refs). See MirrorError.
	Missing, Damaged []backend.Handle
	// LostIndex are index files the destination holds that the source
	// lost (Prune only): they list packs the source holds but no longer
	// indexes, and no index file of the source replaced them, or blobs
	// the source's live snapshots need that its index lacks. They are
	// damage, and stay at the destination. See MirrorError.
	LostIndex []backend.Handle
	// LostPacks are packs the destination holds that the source lost
	// together with the index files naming them (Prune only, found in
	// LostIndex): they hold blobs the source's live snapshots need. They
	// stay at the destination, which "repair packs --from" fetches them
	// from.
	LostPacks []backend.Handle
	// Unindexed counts the blobs the source's live snapshots need that its
	// index lacks (Prune only, MirrorRefs.SetUnindexed): with any, Prune
	// removes nothing.
	Unindexed int
}

// damaged says the plan found damage at the source: then a mirror removes
// nothing from the destination.
func (p *MirrorPlan) damaged() bool {
	return len(p.Missing)+len(p.Damaged)+len(p.LostIndex)+len(p.LostPacks) > 0 || p.Unindexed > 0
}

// MirrorCopy is one file a mirror copies.
type MirrorCopy struct {
	Handle backend.Handle
	// Size is the file's size at the source.
	Size int64
	// Replace says the destination holds a file of that name whose size
	// DestSize differs from the source's: it is replaced.
	Replace  bool
	DestSize int64
	// After are, for a log entry, the entries (by file name) it follows
	// that are copied in the same run: it is copied only once they are.
	After []string
}

// RemoveReason says why a mirror removes a file from the destination.
type RemoveReason string

// The reasons a file goes: each is a drop the source made on purpose.
const (
	RemovePackPruned    RemoveReason = "pack_pruned"    // the source lacks the pack and its index no longer lists it (prune)
	RemoveIndexReplaced RemoveReason = "index_replaced" // the source lacks the index file (prune and repair replace index files)
	RemoveKeyRemoved    RemoveReason = "key_removed"    // the source lacks the key file (key remove)
	RemoveLogCompacted  RemoveReason = "log_compacted"  // the source lacks the entry and its newest checkpoint covers it (prune compacts the log)
	RemoveMetaReplaced  RemoveReason = "meta_replaced"  // the source lacks the meta record (SaveMeta keeps the newest MetaKeep of a kind)
)

// MirrorRemoval is one destination file a mirror removes.
type MirrorRemoval struct {
	Handle backend.Handle
	// Size is the file's size at the destination.
	Size   int64
	Reason RemoveReason
}

// MirrorJunk is a file under log/ that is not a log entry.
type MirrorJunk struct {
	Handle backend.Handle
	// AtSource says which side holds it.
	AtSource bool
	// Reason says why it is not an entry.
	Reason string
}

// Stats is what the plan would do as MirrorStats: the files to copy and
// skip, and in FilesRemoved and BytesRemoved the files to remove.
func (p *MirrorPlan) Stats() MirrorStats {
	st := MirrorStats{FilesSkipped: p.FilesSkipped, BytesSkipped: p.BytesSkipped}
	for _, c := range p.Copy {
		st.FilesToCopy++
		st.BytesToCopy += c.Size
	}
	for _, r := range p.Remove {
		st.FilesRemoved++
		st.BytesRemoved += r.Size
	}
	return st
}

// Err is nil, or the *MirrorError naming the damage the plan found at the
// source (Missing, Damaged, LostIndex): what executing it would report at
// least.
func (p *MirrorPlan) Err() error {
	e := &MirrorError{Dest: p.Dest, Missing: slices.Clone(p.Missing), Damaged: slices.Clone(p.Damaged),
		LostIndex: slices.Clone(p.LostIndex), LostPacks: slices.Clone(p.LostPacks), Unindexed: p.Unindexed, PruneSkipped: p.PruneSkipped}
	if !e.sourceDamaged() {
		return nil
	}
	return e
}

// MirrorPhase is the phase, 0 to 4, in which a mirror copies a file of
// type t: packs, index files, keys and the config, log entries, meta
// records. The files of a phase are copied only once every file of the
// phases before is.
func MirrorPhase(t backend.FileType) int {
	switch t {
	case backend.PackFile:
		return 0
	case backend.IndexFile:
		return 1
	case backend.KeyFile, backend.ConfigFile:
		return 2
	case backend.MetaFile:
		return MirrorPhaseMeta
	}
	return 3
}

// MirrorPhaseMeta is the last phase: meta records, after the log they
// speak of.
const MirrorPhaseMeta = 4

// maxMirrorFile caps a file held in memory while it is copied.
const maxMirrorFile = MaxPackSize + MaxPackSize/4

type listing map[backend.Handle]int64

// noMeta marks the listing of a backend that knows no meta records (a
// peer server older than them refuses the file type): never a file.
var noMeta = backend.Handle{Type: backend.MetaFile}

func listAll(ctx context.Context, be backend.Backend) (listing, error) {
	l := make(listing)
	// List in the reverse of the order files are written (log entries name
	// snapshots whose index files name packs): a file written while the
	// listing runs is then either absent or listed together with all it
	// refers to.
	for _, t := range []backend.FileType{backend.MetaFile, backend.LogFile, backend.ConfigFile, backend.KeyFile, backend.IndexFile, backend.PackFile} {
		if t == backend.ConfigFile {
			h := backend.Handle{Type: t, Name: backend.ConfigName}
			fi, err := be.Stat(ctx, h)
			if err == nil {
				l[h] = fi.Size
			} else if !backend.IsNotExist(err) {
				return nil, fmt.Errorf("stat config of %s: %w", be.Location(), err)
			}
			continue
		}
		err := be.List(ctx, t, func(fi backend.FileInfo) error {
			l[backend.Handle{Type: t, Name: fi.Name}] = fi.Size
			return nil
		})
		if t == backend.MetaFile && errors.Is(err, backend.ErrInvalidName) {
			l[noMeta] = 0 // a peer server older than meta records
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s of %s: %w", t, be.Location(), err)
		}
	}
	return l, nil
}

// mirrorPlanner works out a MirrorPlan.
type mirrorPlanner struct {
	src, dst           backend.Backend
	srcFiles, dstFiles listing
	opts               MirrorOptions
	plan               *MirrorPlan
}

// Mirror plans a mirror from src to dst and carries it out: PlanMirror,
// then ExecuteMirror.
func Mirror(ctx context.Context, src, dst backend.Backend, opts MirrorOptions) (MirrorStats, error) {
	plan, err := PlanMirror(ctx, src, dst, opts)
	if err != nil {
		return MirrorStats{}, err
	}
	return ExecuteMirror(ctx, src, dst, plan, opts)
}

// PlanMirror works out what a mirror from src to dst does, changing
// nothing: it lists both sides and reads the log entries it needs and,
// with opts.Prune, the destination's index files that the source lacks
// and no index file of the source supersedes; no other file. It plans to copy every file dst lacks from src, in an
// order that never leaves dst referring to a file it does not have:
// packs, then index files, then keys and the config, then log entries,
// one at a time and each after the entries it follows, so that a mirror
// stopped at any moment leaves dst with a valid, shorter log. A
// destination file whose size differs from the source's is replaced. A
// file under log/ that is not a log entry, on either side, is skipped; a
// source log entry that does not match its name is damage, and the
// entries that follow it are held back.
//
// It checks that dst holds no other repository and that dst's log is a
// prefix of src's (allowing for old entries src has pruned under a
// checkpoint), and refuses a diverged dst (ErrDiverged).
//
// With opts.Prune, it plans to remove the dst files src lacks only when
// src dropped them on purpose: packs its index (opts.Refs) no longer
// lists, index files, keys, and log entries covered by its newest
// checkpoint. An index file src lacks was dropped on purpose only when an
// index file of src supersedes it, or when it lists no pack that src
// holds unindexed; else src lost it (LostIndex). If src lacks a pack its
// index lists or a log entry its log names, has damaged log entries, has
// index files that do not open, or lost an index file, it plans to
// remove nothing (PruneSkipped).
func PlanMirror(ctx context.Context, src, dst backend.Backend, opts MirrorOptions) (*MirrorPlan, error) {
	if opts.Prune && opts.Refs == nil {
		return nil, errors.New("mirror: internal error: pruning needs the source's references (MirrorOptions.Refs)")
	}
	p := &mirrorPlanner{src: src, dst: dst, opts: opts,
		plan: &MirrorPlan{Source: src.Location(), Dest: dst.Location(), Prune: opts.Prune}}
	if err := p.list(ctx); err != nil {
		return nil, err
	}
	lv, err := p.readLogs(ctx)
	if err != nil {
		return nil, err
	}
	p.planCopies()
	p.planLog(lv)
	p.planMeta()
	p.findLostPacks()
	if err := p.findLostIndex(ctx); err != nil {
		return nil, err
	}
	p.planRemovals(lv)
	for _, l := range [][]backend.Handle{p.plan.Missing, p.plan.Damaged, p.plan.LostIndex, p.plan.LostPacks} {
		sortHandles(l)
	}
	slices.SortFunc(p.plan.Junk, func(a, b MirrorJunk) int { return strings.Compare(a.Handle.String(), b.Handle.String()) })
	return p.plan, nil
}

// list lists both sides and checks that dst holds no other repository.
func (p *mirrorPlanner) list(ctx context.Context) error {
	var err error
	if p.srcFiles, err = listAll(ctx, p.src); err != nil {
		return err
	}
	cfg := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	if _, ok := p.srcFiles[cfg]; !ok {
		return fmt.Errorf("mirror from %s: %w", p.src.Location(), backend.ErrNoRepository)
	}
	if p.dstFiles, err = listAll(ctx, p.dst); err != nil {
		return err
	}
	if _, ok := p.dstFiles[cfg]; ok {
		same, err := sameFile(ctx, p.src, p.dst, cfg)
		if err != nil {
			return err
		}
		if !same {
			return fmt.Errorf("mirror to %s: %w (its config differs from the source's)", p.dst.Location(), ErrOtherRepository)
		}
	}
	delete(p.srcFiles, noMeta)
	if _, ok := p.dstFiles[noMeta]; ok {
		delete(p.dstFiles, noMeta)
		p.plan.NoMeta = true
	}
	for _, size := range p.srcFiles {
		p.plan.SourceFiles++
		p.plan.SourceBytes += size
	}
	for _, size := range p.dstFiles {
		p.plan.DestFiles++
		p.plan.DestBytes += size
	}
	return nil
}

// needsCopy reports whether dst lacks the source's file h or holds it with
// another size.
func (p *mirrorPlanner) needsCopy(h backend.Handle) bool {
	size, atSrc := p.srcFiles[h]
	dsize, atDst := p.dstFiles[h]
	return atSrc && (!atDst || dsize != size)
}

// copyOf is the copy of the source's file h.
func (p *mirrorPlanner) copyOf(h backend.Handle) MirrorCopy {
	c := MirrorCopy{Handle: h, Size: p.srcFiles[h]}
	if dsize, ok := p.dstFiles[h]; ok {
		c.Replace, c.DestSize = true, dsize
	}
	return c
}

// planCopies counts the files dst holds already, and plans to copy, phase
// by phase, the packs, index files, keys and config it lacks; planLog
// adds the log entries.
func (p *mirrorPlanner) planCopies() {
	var todo []MirrorCopy
	for h, size := range p.srcFiles {
		switch {
		case !p.needsCopy(h):
			p.plan.FilesSkipped++
			p.plan.BytesSkipped += size
		case h.Type != backend.LogFile && h.Type != backend.MetaFile:
			todo = append(todo, p.copyOf(h))
		}
	}
	slices.SortFunc(todo, func(a, b MirrorCopy) int {
		if c := MirrorPhase(a.Handle.Type) - MirrorPhase(b.Handle.Type); c != 0 {
			return c
		}
		return strings.Compare(a.Handle.Name, b.Handle.Name)
	})
	p.plan.Copy = append(p.plan.Copy, todo...)
}

// planMeta plans to copy the meta records dst lacks, after the log.
func (p *mirrorPlanner) planMeta() {
	if p.plan.NoMeta {
		return
	}
	var todo []MirrorCopy
	for h := range p.srcFiles {
		if h.Type == backend.MetaFile && p.needsCopy(h) {
			todo = append(todo, p.copyOf(h))
		}
	}
	slices.SortFunc(todo, func(a, b MirrorCopy) int { return strings.Compare(a.Handle.Name, b.Handle.Name) })
	p.plan.Copy = append(p.plan.Copy, todo...)
}

// findLostPacks names the packs the source's index lists that the source
// lacks, and the source's index files that do not open.
func (p *mirrorPlanner) findLostPacks() {
	refs := p.opts.Refs
	if refs == nil {
		return
	}
	for id := range refs.packs {
		h := backend.Handle{Type: backend.PackFile, Name: id.String()}
		if _, ok := p.srcFiles[h]; !ok {
			p.plan.Missing = append(p.plan.Missing, h)
		}
	}
	for _, id := range refs.damagedIndex {
		p.plan.Damaged = append(p.plan.Damaged, backend.Handle{Type: backend.IndexFile, Name: id.String()})
	}
}

// findLostIndex names in plan.LostIndex, with Prune, the destination's
// index files that the source lacks but did not drop on purpose, and in
// plan.LostPacks the destination's packs the source lost with them. A
// prune or a repair replaces index files: the new files name the old ones
// as superseded, and list every pack the old ones did that the source
// keeps. So an index file the source lacks was lost, not dropped, when no
// index file of the source supersedes it and it lists a pack the source
// still holds that no index of the source lists: removing it from the
// destination would leave that pack unindexed there too. And whatever
// supersedes it, it was lost when it lists a blob the source's live
// snapshots need that the source's index lacks (Refs.SetUnindexed): the
// source lost the pack too, or holds it unindexed. It reads those files,
// as many at once as the destination allows connections. A destination
// file that does not open (damaged, or junk) tells nothing and is left to
// pruning as before.
func (p *mirrorPlanner) findLostIndex(ctx context.Context) error {
	if !p.plan.Prune {
		return nil
	}
	needAll := p.opts.Refs.unindexed != nil && p.opts.Refs.unindexed.Len() > 0
	var todo []backend.Handle
	for h := range p.dstFiles {
		if h.Type != backend.IndexFile {
			continue
		}
		if _, ok := p.srcFiles[h]; ok {
			continue
		}
		if id, err := backend.ParseID(h.Name); err == nil && (needAll || !p.opts.Refs.superseded[id]) {
			todo = append(todo, h)
		}
	}
	found := make([]lostFromIndex, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(p.dst.Properties().Connections, 1))
	for i, h := range todo {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			// Go may have waited for a free slot while another read
			// failed.
			if err := gctx.Err(); err != nil {
				return err
			}
			var err error
			found[i], err = p.indexLost(gctx, h)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	packs := make(map[backend.Handle]bool)
	for i, h := range todo {
		if found[i].lost {
			p.plan.LostIndex = append(p.plan.LostIndex, h)
		}
		for _, pk := range found[i].packs {
			if !packs[pk] {
				packs[pk] = true
				p.plan.LostPacks = append(p.plan.LostPacks, pk)
			}
		}
	}
	if needAll {
		p.plan.Unindexed = p.opts.Refs.unindexed.Len()
	}
	return nil
}

// lostFromIndex is what one of the destination's index files, which the
// source lacks, says the source lost: the file itself, and the packs it
// lists that the destination holds, the source lacks, and the source's
// live snapshots need.
type lostFromIndex struct {
	lost  bool
	packs []backend.Handle
}

// indexLost reads the destination's index file h, which the source lacks,
// and says whether the source lost it: it lists a pack the source holds
// but does not index, or a blob the source's live snapshots need that the
// source's index lacks. A file that does not open says nothing.
func (p *mirrorPlanner) indexLost(ctx context.Context, h backend.Handle) (lostFromIndex, error) {
	var out lostFromIndex
	id, err := backend.ParseID(h.Name)
	if err != nil {
		return out, nil
	}
	data, err := readAll(ctx, p.dst, h, maxMirrorFile)
	switch {
	case errors.Is(err, ErrFormat) || backend.IsNotExist(err):
		return out, nil
	case err != nil:
		return out, err // names the file and the destination
	case backend.Hash(data) != id:
		return out, nil
	}
	f, err := p.opts.Refs.openIndex(id, data)
	if err != nil {
		return out, nil
	}
	need := p.opts.Refs.unindexed
	for _, pk := range f.Packs {
		ph := backend.Handle{Type: backend.PackFile, Name: pk.ID.String()}
		_, held := p.srcFiles[ph]
		if held && !p.opts.Refs.packs[pk.ID] {
			out.lost = true
		}
		if need == nil || need.Len() == 0 || !slices.ContainsFunc(pk.Blobs, func(b pack.Blob) bool { return need.Has(b.Type, b.ID) }) {
			continue
		}
		out.lost = true
		if _, atDst := p.dstFiles[ph]; atDst && !held {
			out.packs = append(out.packs, ph)
		}
	}
	return out, nil
}

// planRemovals lists, with Prune, the dst files src dropped on purpose,
// in a safe order: log entries, then index files, then packs and keys, so
// dst never has an index naming a removed pack. It lists nothing when the
// source lacks or has damaged files it needs, or lost index files: they
// must stay where they are good.
func (p *mirrorPlanner) planRemovals(lv *logView) {
	plan := p.plan
	if !plan.Prune {
		return
	}
	if plan.damaged() {
		plan.PruneSkipped = true
		return
	}
	for h, size := range p.dstFiles {
		if _, ok := p.srcFiles[h]; ok {
			continue
		}
		var why RemoveReason
		switch h.Type {
		case backend.LogFile:
			if _, ok := lv.covered[h.Name]; !ok {
				continue
			}
			why = RemoveLogCompacted
		case backend.IndexFile:
			why = RemoveIndexReplaced
		case backend.PackFile:
			if id, err := backend.ParseID(h.Name); err != nil || p.opts.Refs.packs[id] {
				continue
			}
			why = RemovePackPruned
		case backend.KeyFile:
			why = RemoveKeyRemoved
		case backend.MetaFile:
			why = RemoveMetaReplaced
		default:
			continue
		}
		plan.Remove = append(plan.Remove, MirrorRemoval{Handle: h, Size: size, Reason: why})
	}
	order := map[backend.FileType]int{backend.LogFile: 0, backend.IndexFile: 1, backend.PackFile: 2, backend.KeyFile: 3, backend.MetaFile: 4}
	slices.SortFunc(plan.Remove, func(a, b MirrorRemoval) int {
		if c := order[a.Handle.Type] - order[b.Handle.Type]; c != 0 {
			return c
		}
		if a.Handle.Type == backend.LogFile {
			if c := cmp.Compare(lv.covered[a.Handle.Name], lv.covered[b.Handle.Name]); c != 0 {
				return c // oldest first
			}
		}
		return strings.Compare(a.Handle.Name, b.Handle.Name)
	})
}

// sortHandles sorts hs by their paths.
func sortHandles(hs []backend.Handle) {
	slices.SortFunc(hs, func(a, b backend.Handle) int { return strings.Compare(a.String(), b.String()) })
}

func sameFile(ctx context.Context, a, b backend.Backend, h backend.Handle) (bool, error) {
	ab, err := readAll(ctx, a, h, maxConfigSize)
	if err != nil {
		return false, err
	}
	bb, err := readAll(ctx, b, h, maxConfigSize)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ab, bb), nil
}

func readAll(ctx context.Context, be backend.Backend, h backend.Handle, limit int64) ([]byte, error) {
	return readAllInto(ctx, be, h, limit, nil)
}

// readAllInto is readAll appending to buf[:0]: a buffer with room for the
// whole file and bytes.MinRead more is filled without regrowing.
func readAllInto(ctx context.Context, be backend.Backend, h backend.Handle, limit int64, buf []byte) ([]byte, error) {
	b := bytes.NewBuffer(buf[:0])
	err := be.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		b.Reset()
		n, err := io.Copy(b, io.LimitReader(rd, limit+1))
		if err != nil {
			return err
		}
		if n > limit {
			return fmt.Errorf("%w: %s is larger than %d bytes", ErrFormat, h, limit)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", h, be.Location(), err)
	}
	return b.Bytes(), nil
}
