package restorer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

type entryKind uint8

const (
	kindDir entryKind = iota + 1
	kindFile
	kindSymlink
	kindSpecial
)

// entry is a restored node waiting for its metadata.
type entry struct {
	kind  entryKind
	node  *snapshot.Node
	dir   *pathElem // the parent directory's place in the snapshot
	dirfd int       // the parent directory; open until this entry is done (-1: lost, reported)
	name  string
	// fd is the node's own descriptor, or -1: read-write for a file,
	// read-only for a directory, O_PATH for a symlink, fifo or device.
	fd   int
	file *fileEntry // for kindFile
	// create marks a file that flush or a pack worker creates; skip
	// marks one whose creation failed (reported): it gets neither
	// content nor metadata.
	create, skip bool
	// ownerSet says a file was created with the owner and group its node
	// has, modeSet with its mode: applyMetadata skips chown or chmod.
	ownerSet, modeSet bool
	// keepTimes makes applyMetadata leave the times alone: a file whose
	// content could not be restored whole.
	keepTimes bool
	// keep marks a file the target held with the node's content already
	// (Overwrite): fd is a read-only descriptor of it, for its metadata;
	// nothing else is done to it. replacing marks a node made in place
	// of something the target held.
	keep, replacing bool
	// dirGID is the group a file created in dirfd gets.
	dirGID uint32
}

// path returns e's path inside the snapshot.
func (e *entry) path() string { return e.dir.path(e.name) }

// fileEntry is a file whose content is planned.
type fileEntry struct {
	*entry
	size   uint64
	chunks []chunk // the placed chunks, in file order
	// remaining counts chunk writes still to do; the worker that brings it
	// to zero reports the file done.
	remaining atomic.Int64
	// failed is set once an error was reported for the content; verify
	// skips the file.
	failed atomic.Bool
	// writeFailed makes a write error reported once per file.
	writeFailed atomic.Bool
	// short is set when a chunk was not written (a run of zeros left as
	// a hole, or a blob that failed): writes alone may then leave the
	// file shorter than its size, and it is truncated to its size.
	short atomic.Bool
	// direct marks a file whose chunks all lie in one pack: the worker
	// reading that pack creates it on its first blob and finishes it on
	// its last, so it holds a descriptor only meanwhile. Other files are
	// created before the packs are read and stay open until finished.
	direct bool
}

type chunk struct {
	id     backend.ID
	off    uint64
	length uint32
}

// target is one place a blob is written to.
type target struct {
	f   *fileEntry
	off uint64
}

// blobJob is one blob of a pack and the places it goes.
type blobJob struct {
	blob    pack.Blob
	targets []target
	done    bool // set by the worker that handles the pack
}

// packJob is everything a batch reads from one pack.
type packJob struct {
	id    backend.ID
	blobs map[backend.ID]*blobJob
}

// batch is the unit of planning: its content is written, then its
// metadata applied, before the walk goes on.
type batch struct {
	entries []*entry // walk order, directories after their contents
	files   []*fileEntry
	packs   map[backend.ID]*packJob
	order   []*packJob // packs in order of first use
	refs    int        // planned chunk writes
	fds     int        // descriptors owned by entries, and kept
	kept    []int      // directories' descriptors the walker released to the batch
}

func newBatch() *batch { return &batch{packs: map[backend.ID]*packJob{}} }

func (b *batch) add(e *entry) {
	b.entries = append(b.entries, e)
	if e.fd >= 0 {
		b.fds++
	}
}

// closeAll closes the descriptors the batch still owns.
func (b *batch) closeAll() {
	for _, e := range b.entries {
		if e.fd >= 0 {
			closeFD(e.fd)
			e.fd = -1
		}
	}
	for _, fd := range b.kept {
		closeFD(fd)
	}
	b.kept = nil
}

// keep makes the batch close fd, a directory that its entries name, when
// it is done: the walker no longer needs it.
func (b *batch) keep(fd int) {
	b.kept = append(b.kept, fd)
	b.fds++
}

// maxPlaintext bounds one blob's plaintext (its length is a uint32).
const maxPlaintext = math.MaxUint32

// planFile looks up the chunks of f, decides where each goes and adds them
// to the batch. Chunks the index lacks are reported; the chunks before the
// first missing one are placed from the start of the file and, when the
// node's size agrees, those after the last missing one from its end, so one
// lost chunk loses only its own range.
func (rs *restore) planFile(f *fileEntry) error {
	content := f.node.Content
	type loc struct {
		packID backend.ID
		blob   pack.Blob
		ok     bool
	}
	locs := make([]loc, len(content))
	firstMissing, lastMissing, missing := -1, -1, 0
	for i, id := range content {
		pb, ok := rs.repo.Lookup(pack.DataBlob, id)
		if ok && pb.Blob.ID != id {
			ok = false // the index answered for another blob: a bug, but do not write garbage
		}
		locs[i] = loc{pb.PackID, pb.Blob, ok}
		if !ok {
			if firstMissing < 0 {
				firstMissing = i
			}
			lastMissing = i
			missing++
			f.failed.Store(true)
			f.short.Store(true)
			if err := rs.report(f.path(), fmt.Errorf("chunk %d: blob %s: %w", i, id.Str(), ErrBlobMissing)); err != nil {
				return err
			}
		}
	}
	place := func(i int, off uint64) {
		l := locs[i]
		f.chunks = append(f.chunks, chunk{id: content[i], off: off, length: l.blob.PlaintextLength()})
		job := rs.b.packs[l.packID]
		if job == nil {
			job = &packJob{id: l.packID, blobs: map[backend.ID]*blobJob{}}
			rs.b.packs[l.packID] = job
			rs.b.order = append(rs.b.order, job)
		}
		bj := job.blobs[content[i]]
		if bj == nil {
			bj = &blobJob{blob: l.blob}
			job.blobs[content[i]] = bj
		}
		bj.targets = append(bj.targets, target{f: f, off: off})
		rs.b.refs++
	}
	var off uint64
	end := len(content)
	if firstMissing >= 0 {
		end = firstMissing
	}
	for i := 0; i < end; i++ {
		place(i, off)
		off += uint64(locs[i].blob.PlaintextLength())
	}
	f.size = off
	if missing > 0 {
		var suffix uint64
		for i := lastMissing + 1; i < len(content); i++ {
			suffix += uint64(locs[i].blob.PlaintextLength())
		}
		size := f.node.Size
		// Trust the node's size only as far as the missing chunks could
		// account for it.
		if size >= off+suffix && size-off-suffix <= uint64(missing)*maxPlaintext {
			f.size = size
			at := size - suffix
			for i := lastMissing + 1; i < len(content); i++ {
				place(i, at)
				at += uint64(locs[i].blob.PlaintextLength())
			}
		}
	}
	if f.create && len(f.chunks) > 0 {
		f.direct = true
		var first backend.ID
		seen := false
		for _, l := range locs {
			if !l.ok {
				continue
			}
			if !seen {
				first, seen = l.packID, true
			} else if l.packID != first {
				f.direct = false
				break
			}
		}
	}
	f.remaining.Store(int64(len(f.chunks)))
	rs.b.files = append(rs.b.files, f)
	return nil
}

// flush writes the current batch's content, verifies it if asked, applies
// its metadata and closes its descriptors.
func (rs *restore) flush() error {
	b := rs.b
	rs.b = newBatch()
	defer rs.closeBatch(b)
	if len(b.entries) == 0 {
		return nil
	}
	// Files that are not created by a pack worker: those whose chunks lie
	// in several packs are created now, and those without a chunk to
	// write are finished at once.
	var early []*fileEntry
	for _, f := range b.files {
		if !f.direct {
			early = append(early, f)
		}
	}
	if err := rs.parallel(len(early), func(i int) error { return rs.prepareFile(early[i]) }); err != nil {
		return err
	}
	if err := rs.parallel(len(b.order), func(i int) error { return rs.loadPack(b.order[i]) }); err != nil {
		return err
	}
	// Every file is finished by now (by the worker that wrote its last
	// chunk). Metadata of the rest: symlinks, special files and files
	// kept in parallel, then directories in walk order, after their contents, so
	// their times stick.
	err := rs.parallel(len(b.entries), func(i int) error {
		if e := b.entries[i]; e.kind == kindDir || e.kind == kindFile && !e.keep {
			return nil
		}
		return rs.finishEntry(b.entries[i])
	})
	if err != nil {
		return err
	}
	for _, e := range b.entries {
		if e.kind != kindDir {
			continue
		}
		if err := rs.finishEntry(e); err != nil {
			return err
		}
	}
	return nil
}

// prepareFile creates a file that is not direct, and finishes it if it has
// no chunk to write. A failure is reported and the file skipped; it
// returns only errors that stop the restore.
func (rs *restore) prepareFile(f *fileEntry) error {
	if f.create && f.fd < 0 {
		if err := rs.createFile(f); err != nil {
			return err
		}
	}
	if len(f.chunks) == 0 {
		return rs.finishFile(f)
	}
	return nil
}

// createFile creates a planned file. A failure is reported and the file
// skipped; it returns only errors that stop the restore.
func (rs *restore) createFile(f *fileEntry) error {
	e := f.entry
	fd, err := createFile(e.dirfd, e.name, rs.createPerm(e))
	if err != nil {
		e.skip = true
		f.failed.Store(true)
		return rs.report(e.path(), err)
	}
	e.fd = fd
	rs.madeFile(e)
	return nil
}

// createPerm says with which permission bits to create the file of e, and
// marks e when that makes a later chown or chmod unneeded. The final mode
// is used when the umask leaves it whole and nothing set later needs
// more access than it grants (a user's xattrs on a read-only file) or
// clears it (chown clears setuid and setgid); otherwise 0600, and chmod
// follows. It must be called just before creating the file with O_EXCL.
func (rs *restore) createPerm(e *entry) uint32 {
	n := e.node
	e.ownerSet = uint32(n.UID) == rs.euid && uint32(n.GID) == e.dirGID
	mode := unixMode(n.Mode)
	if rs.umaskOK && mode&rs.umask == 0 && mode&^0o777 == 0 && (len(n.ExtendedAttributes) == 0 || rs.chown) {
		e.modeSet = true
		return mode
	}
	return 0o600
}

// finishFile completes a file once every chunk write is done or given up
// on: it creates the file if no blob of it could be written, truncates it
// to its size if its writes may have left it short (trailing zeros kept as
// a hole, a failed blob), verifies it if asked, applies its metadata and
// closes it. It runs once per file, on the goroutine that finished the
// last chunk (or on flush's, for a file without chunks).
func (rs *restore) finishFile(f *fileEntry) error {
	e := f.entry
	if p := rs.opts.Progress; p != nil {
		defer p.FileDone(f.path())
	}
	if !e.skip && e.fd < 0 {
		if err := rs.createFile(f); err != nil || e.skip {
			return err
		}
	}
	if e.skip {
		return nil
	}
	// A hardlinked file (not created by flush) was truncated to its
	// size when it was created.
	if f.create && f.short.Load() {
		if err := truncateFD(e.fd, f.size); err != nil {
			f.failed.Store(true)
			if stop := rs.report(f.path(), err); stop != nil {
				return stop
			}
		}
	}
	if rs.opts.Verify {
		if err := rs.verifyFile(f); err != nil {
			return err
		}
	}
	if f.failed.Load() {
		// Its content is not the snapshot's: it keeps the restore's
		// time, so that it does not pass for complete (a later restore
		// with --overwrite if-changed restores it again).
		e.keepTimes = true
	} else {
		rs.st.files.Add(1)
		if e.replacing {
			rs.st.updated.Add(1)
		}
	}
	return rs.finishEntry(e)
}

// closeBatch closes the descriptors b still owns. A file still open then
// was not finished (the restore stopped while it was written: no space
// left, an interrupt, an error that stops it): it is emptied and its name
// removed, so that no file the restore left looks complete but is not;
// other names of a hardlinked file are left empty.
func (rs *restore) closeBatch(b *batch) {
	for _, e := range b.entries {
		if e.kind == kindFile && e.file != nil && e.fd >= 0 {
			_ = unix.Ftruncate(e.fd, 0) // frees its space whatever follows
			if e.dirfd >= 0 && sameNode(e.dirfd, e.name, e.fd) == nil {
				_ = unix.Unlinkat(e.dirfd, e.name, 0)
			}
		}
	}
	b.closeAll()
}

// finishEntry applies an entry's metadata and closes its descriptor.
func (rs *restore) finishEntry(e *entry) error {
	var err error
	if !e.skip {
		if hook := rs.opts.TestOnlyBetween; hook != nil {
			hook(e.path(), false)
		}
		err = rs.applyMetadata(e)
	}
	if e.fd >= 0 {
		closeFD(e.fd)
		e.fd = -1
	}
	if err != nil {
		return rs.report(e.path(), err)
	}
	return nil
}

// parallel runs fn(0..n-1), at most Workers calls at once (errgroup with
// SetLimit), on other goroutines. It keeps the rule of every worker pool
// in cairn: the first error cancels the restore (rs.ctx, under which every
// call does its I/O), no call starts after it, and parallel returns the
// restore's cause once every started call has returned. It returns that
// cause too when the restore was stopped otherwise (by the caller's ctx,
// by Options.Error), since calls may then have been left out.
func (rs *restore) parallel(n int, fn func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(rs.opts.Workers)
	for i := range n {
		if rs.ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if rs.ctx.Err() != nil {
				return nil // stopped while this call waited for a slot
			}
			if err := fn(i); err != nil {
				rs.cancel(err)
			}
			return nil
		})
	}
	_ = g.Wait() // errors cancel rs.ctx, whose cause is the first
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	return nil
}

// maxReadSpan bounds the stretch of a pack one LoadPack call covers (a
// larger blob is read alone), so each worker holds at most about this
// much of a pack in memory however much of it a batch needs.
const maxReadSpan = 4 << 20

// loadPack reads the blobs job needs from its pack and writes them. It
// returns only errors that stop the restore.
func (rs *restore) loadPack(job *packJob) error {
	blobs := make([]pack.Blob, 0, len(job.blobs))
	for _, bj := range job.blobs {
		blobs = append(blobs, bj.blob)
	}
	slices.SortFunc(blobs, func(a, b pack.Blob) int { return cmp.Compare(a.Offset, b.Offset) })
	fn := func(b pack.Blob, plain []byte, err error) error {
		bj := job.blobs[b.ID]
		if bj == nil || bj.done {
			return nil // not asked for: ignore
		}
		bj.done = true
		if err == nil && uint64(len(plain)) != uint64(bj.blob.PlaintextLength()) {
			err = fmt.Errorf("blob %s has %d bytes, the index says %d", b.ID.Str(), len(plain), bj.blob.PlaintextLength())
		}
		if err != nil {
			return rs.blobFailed(bj, err)
		}
		return rs.writeBlob(bj, plain)
	}
	var err error
	for start := 0; start < len(blobs) && err == nil; {
		end := start + 1
		lo := uint64(blobs[start].Offset)
		for end < len(blobs) && uint64(blobs[end].Offset)+uint64(blobs[end].Length)-lo <= maxReadSpan {
			end++
		}
		err = rs.repo.LoadPack(rs.ctx, job.id, blobs[start:end], fn)
		start = end
	}
	rs.st.packs.Add(1)
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	for _, bj := range job.blobs {
		if bj.done {
			continue
		}
		bj.done = true
		e := err
		if e == nil {
			e = errors.New("not returned by the repository")
		}
		if stop := rs.blobFailed(bj, fmt.Errorf("load pack %s: blob %s: %w", job.id.Str(), bj.blob.ID.Str(), e)); stop != nil {
			return stop
		}
	}
	return nil
}

// blobFailed reports err once for every file that needed the blob.
func (rs *restore) blobFailed(bj *blobJob, err error) error {
	reported := map[*fileEntry]bool{}
	for _, t := range bj.targets {
		t.f.failed.Store(true)
		t.f.short.Store(true)
		if !reported[t.f] && !t.f.skip {
			reported[t.f] = true
			if stop := rs.report(t.f.path(), err); stop != nil {
				return stop
			}
		}
		if stop := rs.targetDone(t.f); stop != nil {
			return stop
		}
	}
	return nil
}

// writeBlob writes plain to every target of bj, creating a direct file on
// its first blob. A blob of zeros is not written: the file is truncated
// to its full size when finished, so it stays a hole.
func (rs *restore) writeBlob(bj *blobJob, plain []byte) error {
	zero := isZero(plain)
	for _, t := range bj.targets {
		if rs.ctx.Err() != nil {
			return context.Cause(rs.ctx) // stopped: create and write nothing more
		}
		f := t.f
		if f.fd < 0 && !f.skip && !zero {
			if err := rs.createFile(f); err != nil {
				return err
			}
		}
		if f.skip {
			if stop := rs.targetDone(f); stop != nil { // could not be created: reported
				return stop
			}
			continue
		}
		if zero {
			f.short.Store(true)
		} else if err := pwriteAll(f.fd, plain, t.off); err != nil {
			f.failed.Store(true)
			if f.writeFailed.CompareAndSwap(false, true) {
				if stop := rs.report(f.path(), fmt.Errorf("write: %w", err)); stop != nil {
					return stop
				}
			}
			if stop := rs.targetDone(f); stop != nil {
				return stop
			}
			continue
		}
		rs.st.bytes.Add(uint64(len(plain)))
		if p := rs.opts.Progress; p != nil {
			p.Restored(uint64(len(plain)))
		}
		if stop := rs.targetDone(f); stop != nil {
			return stop
		}
	}
	return nil
}

// targetDone counts one chunk write of f as done (or given up on) and
// finishes f after its last one.
func (rs *restore) targetDone(f *fileEntry) error {
	if f.remaining.Add(-1) == 0 {
		return rs.finishFile(f)
	}
	return nil
}

// zeroBlock is compared against, never written.
var zeroBlock [64 << 10]byte

func isZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroBlock))
		if !bytes.Equal(p[:n], zeroBlock[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// verifyFile re-reads f and checks its size and each chunk's hash. Files
// whose content already failed are skipped: their error is reported.
func (rs *restore) verifyFile(f *fileEntry) error {
	if f.failed.Load() {
		return nil
	}
	size, err := fileSize(f.fd)
	if err == nil && size != f.size {
		err = fmt.Errorf("%w: size %d, want %d", ErrVerify, size, f.size)
	}
	if err == nil {
		buf := make([]byte, 256<<10)
		h := sha256.New()
		for i, c := range f.chunks {
			if rs.ctx.Err() != nil {
				return context.Cause(rs.ctx)
			}
			h.Reset()
			if err = hashRange(h, f.fd, c.off, uint64(c.length), buf); err != nil {
				break
			}
			if !bytes.Equal(h.Sum(nil), c.id[:]) {
				err = fmt.Errorf("%w: chunk %d (blob %s) at offset %d", ErrVerify, i, c.id.Str(), c.off)
				break
			}
		}
	}
	if err != nil {
		f.failed.Store(true)
		return rs.report(f.path(), fmt.Errorf("verify: %w", err))
	}
	rs.st.verified.Add(1)
	return nil
}
