package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"golang.org/x/sync/errgroup"
)

// The log side of a mirror, keyless: which entries to copy and in what
// order, and what the destination's extra entries are.

// maxEntryFile caps a log file read by a mirror: the largest entry is the
// largest body plus the envelope's fixed part and 16 parents.
const maxEntryFile = crypt.MaxEntryBodySize + 64<<10

// logView is what a mirror knows of the two logs.
type logView struct {
	// order are the source's entries to copy, each after the entries it
	// names as parents.
	order []backend.Handle
	// parents are the parents of the entries in order, by file name.
	parents map[string][]string
	// skip are source log files not to copy: not log entries, or not
	// matching their names.
	skip map[string]bool
	// covered are destination entries the source lacks that its newest
	// checkpoint covers: it pruned them on purpose. The value is the
	// entry's sequence number: they are removed oldest first, so that a
	// mirror killed while removing them leaves the rest linked to the
	// checkpoint, as a killed compaction does.
	covered map[string]uint64
}

// loadedEntry is one log file read by a mirror.
type loadedEntry struct {
	h   backend.Handle
	e   *crypt.Entry // nil when the file is not a valid entry
	bad error        // why not: it does not match its name (wraps backend.ErrHashMismatch), or does not decode
	// copy says the entry is one of the source's that the destination
	// lacks.
	copy bool
}

// readLogs reads the log entries the mirror needs: the source's entries
// the destination lacks (to order them), and, when the destination holds
// entries the source lacks, every entry of both (to tell entries the
// source pruned or lost from entries someone else wrote). A file under
// log/ that is not a valid entry goes to the plan's Junk. It refuses a
// destination whose log has diverged from the source's.
func (p *mirrorPlanner) readLogs(ctx context.Context) (*logView, error) {
	lv := &logView{parents: make(map[string][]string), skip: make(map[string]bool), covered: make(map[string]uint64)}
	var toCopy, extra []backend.Handle
	for h, size := range p.srcFiles {
		if h.Type == backend.LogFile {
			if dsize, ok := p.dstFiles[h]; !ok || dsize != size {
				toCopy = append(toCopy, h)
			}
		}
	}
	for h := range p.dstFiles {
		if h.Type == backend.LogFile {
			if _, ok := p.srcFiles[h]; !ok {
				extra = append(extra, h)
			}
		}
	}
	srcLoad := toCopy
	if len(extra) > 0 {
		srcLoad = srcLoad[:0:0]
		for h := range p.srcFiles {
			if h.Type == backend.LogFile {
				srcLoad = append(srcLoad, h)
			}
		}
	}
	srcEntries, err := loadEntries(ctx, p.src, srcLoad)
	if err != nil {
		return nil, err
	}
	for i := range srcEntries {
		h := srcEntries[i].h
		dsize, ok := p.dstFiles[h]
		srcEntries[i].copy = !ok || dsize != p.srcFiles[h]
	}
	dstEntries, err := loadEntries(ctx, p.dst, extra)
	if err != nil {
		return nil, err
	}

	all := make(map[[32]byte]*crypt.Entry, len(srcEntries)+len(dstEntries))
	srcOnly := make(map[[32]byte]*crypt.Entry, len(srcEntries))
	for _, le := range srcEntries {
		if le.e == nil {
			lv.skip[le.h.Name] = true
			if errors.Is(le.bad, backend.ErrHashMismatch) {
				p.plan.Damaged = append(p.plan.Damaged, le.h)
			} else {
				p.plan.Junk = append(p.plan.Junk, MirrorJunk{Handle: le.h, AtSource: true, Reason: le.bad.Error()})
			}
			continue
		}
		id, _ := backend.ParseID(le.h.Name)
		all[id], srcOnly[id] = le.e, le.e
	}
	for _, le := range dstEntries {
		if le.e == nil {
			p.plan.Junk = append(p.plan.Junk, MirrorJunk{Handle: le.h, Reason: le.bad.Error()})
			continue
		}
		id, _ := backend.ParseID(le.h.Name)
		all[id] = le.e
	}
	if len(extra) > 0 {
		if err := p.classifyExtra(lv, dstEntries, all, srcOnly); err != nil {
			return nil, err
		}
	}
	lv.order = orderParentsFirst(srcEntries, lv)
	return lv, nil
}

// classifyExtra sorts the destination's valid entries the source lacks:
// one the checkpoint covers whose parent the source still holds it lost
// (lostInGap); those the
// source's newest checkpoint covers, or that are orphans older than it
// (crypt.Orphans), it compacted on purpose; those the source's own
// entries name (directly or through others) it lost; lost entries are
// damage to report, kept at the copy; any other was written by someone
// else, and the mirror is refused.
func (p *mirrorPlanner) classifyExtra(lv *logView, dstEntries []loadedEntry, all, srcOnly map[[32]byte]*crypt.Entry) error {
	// Covered, through the links of both sides: what the source's
	// checkpoint reaches, and the orphans older than it (left by a
	// compaction, or by a mirror killed while it removed entries).
	var covered map[[32]byte]bool
	if sc := crypt.VerifyChain(srcOnly); sc.HasCheckpoint {
		covered = crypt.Reach(all, sc.Checkpoint)
		for id := range crypt.Orphans(all, sc.Checkpoint, covered) {
			covered[id] = true
		}
	}
	var roots [][32]byte
	for id := range srcOnly {
		roots = append(roots, id)
	}
	named := crypt.Reach(all, roots...)

	var diverged []*crypt.Entry
	for _, le := range dstEntries {
		if le.e == nil {
			continue
		}
		id, _ := backend.ParseID(le.h.Name)
		switch {
		case covered[id] && lostInGap(le.e, srcOnly):
			p.plan.Missing = append(p.plan.Missing, le.h)
		case covered[id]:
			lv.covered[le.h.Name] = le.e.Seq
		case named[id]:
			p.plan.Missing = append(p.plan.Missing, le.h)
		default:
			diverged = append(diverged, le.e)
		}
	}
	if len(diverged) == 0 {
		return nil
	}
	newest := diverged[0]
	for _, e := range diverged[1:] {
		if e.Seq > newest.Seq {
			newest = e
		}
	}
	srcMax := uint64(0)
	for _, e := range srcOnly {
		srcMax = max(srcMax, e.Seq)
	}
	return fmt.Errorf("mirror to %s: %w: it holds %d log entries the source does not (newest: sequence %d from device %s at %s); the source holds %d entries up to sequence %d. Someone else wrote to the destination, or the source was rolled back; mirror to a new destination or investigate before overwriting",
		p.dst.Location(), ErrDiverged, len(diverged), newest.Seq, crypt.PeerIDFromKey(newest.Device).Short(),
		time.Unix(0, newest.Time).UTC().Format(time.RFC3339), len(srcOnly), srcMax)
}

// lostInGap says whether e, an entry the destination holds and the
// source lacks, was lost at the source rather than compacted: the source
// still holds one of its parents. Compaction deletes oldest first, so an
// entry it dropped has lost its parents there before it; an entry the
// checkpoint covers that went missing from the middle of the log (rot, a
// hand) has not, and the copy's is what heals the source ('cairn repair
// packs --from').
func lostInGap(e *crypt.Entry, src map[[32]byte]*crypt.Entry) bool {
	for _, p := range e.Parents {
		if _, ok := src[p]; ok {
			return true
		}
	}
	return false
}

// orderParentsFirst returns the valid entries of loaded that are to be
// copied (the source's that the destination lacks) so that each comes
// after every parent among them: a topological order, ties broken by
// sequence then name, so the order is the same on every run. It records
// each entry's parents in lv.parents.
func orderParentsFirst(loaded []loadedEntry, lv *logView) []backend.Handle {
	toCopy := make(map[string]*crypt.Entry)
	for _, le := range loaded {
		if le.e != nil && le.copy {
			toCopy[le.h.Name] = le.e
		}
	}
	children := make(map[string][]string)
	var ready []string
	waiting := make(map[string]int)
	for name, e := range toCopy {
		for _, p := range e.Parents {
			pn := backend.ID(p).String()
			lv.parents[name] = append(lv.parents[name], pn)
			if _, ok := toCopy[pn]; ok {
				children[pn] = append(children[pn], name)
				waiting[name]++
			}
		}
		if waiting[name] == 0 {
			ready = append(ready, name)
		}
	}
	less := func(a, b string) bool {
		if toCopy[a].Seq != toCopy[b].Seq {
			return toCopy[a].Seq < toCopy[b].Seq
		}
		return a < b
	}
	// Entry IDs hash their parents' IDs, so the links cannot form a
	// cycle: every entry to copy is reached.
	order := make([]backend.Handle, 0, len(toCopy))
	for len(ready) > 0 {
		sort.Slice(ready, func(i, j int) bool { return less(ready[i], ready[j]) })
		n := ready[0]
		ready = ready[1:]
		order = append(order, backend.Handle{Type: backend.LogFile, Name: n})
		for _, c := range children[n] {
			if waiting[c]--; waiting[c] == 0 {
				ready = append(ready, c)
			}
		}
	}
	return order
}

// loadEntries reads and decodes the log files hs of be, several at once.
// A file that does not match its name, is too large to be an entry, or
// does not decode is returned with e nil and bad saying why; other errors
// (the backend failing) are returned.
func loadEntries(ctx context.Context, be backend.Backend, hs []backend.Handle) ([]loadedEntry, error) {
	// Each goroutine writes only its own slot of out; Wait returns once
	// every one has ended. The first error cancels the reads under way
	// and starts no more.
	out := make([]loadedEntry, len(hs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(be.Properties().Connections, 1))
	for i, h := range hs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return loadEntry(gctx, be, h, &out[i])
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// loadEntry reads and decodes the log file h into le (see loadEntries).
func loadEntry(ctx context.Context, be backend.Backend, h backend.Handle, le *loadedEntry) error {
	le.h = h
	data, err := readAll(ctx, be, h, maxEntryFile)
	switch {
	case errors.Is(err, ErrFormat):
		le.bad = err
		return nil
	case err != nil:
		return err
	case backend.Hash(data).String() != h.Name:
		le.bad = fmt.Errorf("%w", backend.ErrHashMismatch)
		return nil
	}
	e, err := crypt.DecodeEntry(data)
	if err != nil {
		le.bad = err
		return nil
	}
	e.Body = nil // only the links are needed
	le.e = e
	return nil
}

// planLog plans to copy the source's log entries the destination lacks,
// in lv.order, each after the entries it follows that are copied in the
// same run (MirrorCopy.After). An entry that follows one the plan cannot
// copy (damaged at the source, or held itself) is held back: copied, it
// would leave a broken link at the destination.
func (p *mirrorPlanner) planLog(lv *logView) {
	held := make(map[string]bool)
	for _, h := range lv.order {
		c := p.copyOf(h)
		for _, parent := range lv.parents[h.Name] {
			if !p.needsCopy(backend.Handle{Type: backend.LogFile, Name: parent}) {
				continue // at the destination already, or pruned or lost at the source
			}
			if lv.skip[parent] || held[parent] {
				held[h.Name] = true
				break
			}
			c.After = append(c.After, parent)
		}
		if held[h.Name] {
			p.plan.Held = append(p.plan.Held, h)
			continue
		}
		p.plan.Copy = append(p.plan.Copy, c)
	}
}

// copyLog copies log entries one at a time, in the order of entries, so
// that the destination's log is valid after each. An entry is copied only
// once every entry it comes after is; the entries that follow one that
// could not be copied stay behind, and are counted in the warning with
// those the plan held back. The cause is reported on its own.
func (m *mirrorRun) copyLog(ctx context.Context, entries []MirrorCopy) error {
	copied := make(map[string]bool, len(entries))
	held := 0
	for _, c := range entries {
		ready := true
		for _, p := range c.After {
			if !copied[p] {
				ready = false
				break
			}
		}
		if !ready {
			held++
			continue
		}
		ok, err := m.copy(ctx, c)
		if err != nil {
			return err
		}
		copied[c.Handle.Name] = ok
	}
	m.held += held
	return nil
}
