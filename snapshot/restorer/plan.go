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
	"sync"
	"sync/atomic"

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
	path  string // inside the snapshot
	dirfd int    // the parent directory; open until this entry is done
	name  string
	fd    int        // the node's own descriptor (file or directory), or -1
	file  *fileEntry // for kindFile
	// create marks a file that flush creates (and truncates to its
	// size); skip marks one whose creation failed (reported): it gets
	// neither content nor metadata.
	create, skip bool
}

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
	// file shorter than its size, and flush truncates it to its size.
	short atomic.Bool
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
	fds     int        // descriptors owned by entries
	bytes   uint64
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
			if err := rs.report(f.path, fmt.Errorf("chunk %d: blob %s: %w", i, id.Str(), ErrBlobMissing)); err != nil {
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
	f.remaining.Store(int64(len(f.chunks)))
	rs.b.files = append(rs.b.files, f)
	rs.b.bytes += f.size
	return nil
}

// flush writes the current batch's content, verifies it if asked, applies
// its metadata and closes its descriptors.
func (rs *restore) flush() error {
	b := rs.b
	rs.b = newBatch()
	defer b.closeAll()
	if len(b.entries) == 0 {
		return nil
	}
	if p := rs.opts.Progress; p != nil {
		p.Planned(uint64(len(b.files)), b.bytes)
		for _, f := range b.files {
			if len(f.chunks) == 0 {
				p.FileDone(f.path)
			}
		}
	}
	rs.parallel(len(b.files), func(i int) error { return rs.createFile(b.files[i]) })
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	rs.parallel(len(b.order), func(i int) error { return rs.loadPack(b.order[i]) })
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	rs.parallel(len(b.files), func(i int) error { return rs.fixSize(b.files[i]) })
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
	}
	if rs.opts.Verify {
		rs.parallel(len(b.files), func(i int) error { return rs.verifyFile(b.files[i]) })
		if rs.ctx.Err() != nil {
			return context.Cause(rs.ctx)
		}
	}
	// Metadata: everything but directories in parallel (each entry is
	// its own inode), then directories in walk order, after their
	// contents, so their times stick.
	rs.parallel(len(b.entries), func(i int) error {
		if b.entries[i].kind == kindDir {
			return nil
		}
		return rs.finishEntry(b.entries[i])
	})
	if rs.ctx.Err() != nil {
		return context.Cause(rs.ctx)
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

// createFile creates a planned file and truncates it to its size. A
// failure is reported and the file skipped; it returns only errors that
// stop the restore.
func (rs *restore) createFile(f *fileEntry) error {
	e := f.entry
	if !e.create {
		return nil
	}
	fd, err := createFile(e.dirfd, e.name)
	if err != nil {
		e.skip = true
		f.failed.Store(true)
		return rs.report(e.path, err)
	}
	e.fd = fd
	rs.st.files.Add(1)
	return nil
}

// fixSize truncates a file created by flush to its size when its writes
// may have left it short (trailing zeros kept as a hole, a failed blob).
// Files whose every chunk was written have their size already: one
// system call per file saved on a tree of small files.
func (rs *restore) fixSize(f *fileEntry) error {
	if !f.create || f.skip || f.fd < 0 || !f.short.Load() {
		return nil
	}
	if err := truncateFD(f.fd, f.size); err != nil {
		return rs.report(f.path, err)
	}
	return nil
}

// finishEntry applies an entry's metadata and closes its descriptor.
func (rs *restore) finishEntry(e *entry) error {
	var err error
	if !e.skip {
		err = rs.applyMetadata(e)
	}
	if e.fd >= 0 {
		closeFD(e.fd)
		e.fd = -1
	}
	if err != nil {
		return rs.report(e.path, err)
	}
	return nil
}

// parallel runs fn(0..n-1) on at most Workers goroutines. An error from fn
// cancels the restore; parallel returns when every call has returned.
func (rs *restore) parallel(n int, fn func(i int) error) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(rs.opts.Workers, n) {
		wg.Go(func() {
			for i := range work {
				if err := fn(i); err != nil {
					rs.cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case work <- i:
		case <-rs.ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
}

// loadPack reads the blobs job needs from its pack and writes them. It
// returns only errors that stop the restore.
func (rs *restore) loadPack(job *packJob) error {
	blobs := make([]pack.Blob, 0, len(job.blobs))
	for _, bj := range job.blobs {
		blobs = append(blobs, bj.blob)
	}
	slices.SortFunc(blobs, func(a, b pack.Blob) int { return cmp.Compare(a.Offset, b.Offset) })
	err := rs.repo.LoadPack(rs.ctx, job.id, blobs, func(b pack.Blob, plain []byte, err error) error {
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
	})
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
			if stop := rs.report(t.f.path, err); stop != nil {
				return stop
			}
		}
		rs.targetDone(t.f)
	}
	return nil
}

// writeBlob writes plain to every target of bj. A blob of zeros is not
// written: the file was truncated to its full size, so it stays a hole.
func (rs *restore) writeBlob(bj *blobJob, plain []byte) error {
	zero := isZero(plain)
	for _, t := range bj.targets {
		if t.f.skip {
			rs.targetDone(t.f) // could not be created: reported
			continue
		}
		if zero {
			t.f.short.Store(true)
		} else {
			if err := pwriteAll(t.f.fd, plain, t.off); err != nil {
				t.f.failed.Store(true)
				if t.f.writeFailed.CompareAndSwap(false, true) {
					if stop := rs.report(t.f.path, fmt.Errorf("write: %w", err)); stop != nil {
						return stop
					}
				}
				rs.targetDone(t.f)
				continue
			}
		}
		rs.st.bytes.Add(uint64(len(plain)))
		if p := rs.opts.Progress; p != nil {
			p.Restored(uint64(len(plain)))
		}
		rs.targetDone(t.f)
	}
	return nil
}

func (rs *restore) targetDone(f *fileEntry) {
	if f.remaining.Add(-1) == 0 && rs.opts.Progress != nil {
		rs.opts.Progress.FileDone(f.path)
	}
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
		return rs.report(f.path, fmt.Errorf("verify: %w", err))
	}
	rs.st.verified.Add(1)
	return nil
}
