package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// indexEvery is how many packs may be uploaded before an index file covering
// them is written, so a long backup that is killed leaves most of its
// uploaded data indexed and the next run does not upload it again. On a
// slow link Options.IndexInterval comes first: an index file is also
// written whenever packs have waited that long for one.
const indexEvery = 64

type blobKey struct {
	t  pack.BlobType
	id backend.ID
}

type finishedPack struct {
	w     *pack.Writer // owns parts; reused once the upload is done
	id    backend.ID
	parts [][]byte // the pack is their concatenation
	blobs []pack.Blob
	tree  bool
}

// partsReader is a backend.RewindReader over the concatenation of parts,
// so a pack goes out without being copied into one buffer first.
type partsReader struct {
	parts [][]byte
	i     int // current part
	off   int // offset in it
	n     int64
}

func newPartsReader(parts [][]byte) *partsReader {
	r := &partsReader{parts: parts}
	for _, p := range parts {
		r.n += int64(len(p))
	}
	return r
}

func (r *partsReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) && r.i < len(r.parts) {
		c := copy(b[n:], r.parts[r.i][r.off:])
		n += c
		r.off += c
		if r.off == len(r.parts[r.i]) {
			r.i, r.off = r.i+1, 0
		}
	}
	if n == 0 && len(b) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// WriteTo writes the remaining parts to w without an intermediate buffer.
func (r *partsReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.i < len(r.parts) {
		n, err := w.Write(r.parts[r.i][r.off:])
		total += int64(n)
		if err != nil {
			r.off += n
			return total, err
		}
		r.i, r.off = r.i+1, 0
	}
	return total, nil
}

func (r *partsReader) Rewind() error { r.i, r.off = 0, 0; return nil }
func (r *partsReader) Length() int64 { return r.n }

// packer turns saved blobs into packs and uploads them. Compression and
// sealing run on the callers' goroutines (the archiver calls SaveBlob from
// several workers); uploads run on a fixed set of workers sized by the
// backend's connection limit.
//
// Uploads belong to the repository, not to the SaveBlob call whose blob
// filled the pack: they run under the packer's own context, which Close
// cancels. A caller that cancels its context (the archiver does so as
// Snapshot returns) therefore cannot fail an upload already handed over;
// Flush waits for them, and Close stops them.
type packer struct {
	r *Repository

	mu sync.Mutex // guards the fields below
	// writers holds the pack being assembled, per blob type.
	writers map[pack.BlobType]*pack.Writer
	// inflight holds blobs accepted but not yet in the index.
	inflight map[blobKey]struct{}
	// unindexed holds uploaded packs no index file lists yet.
	unindexed []index.Pack
	// idle holds uploaded data pack writers, reset, for the next data
	// packs: a writer keeps its pack-sized buffer, so reusing it spares
	// growing and faulting in 17 MiB of fresh memory per pack. At most
	// maxIdle are kept. idleTree is the same for tree packs, which grow
	// as needed: the two are kept apart, since a tree pack that took an
	// idle data writer would hold its 17 MiB buffer (mostly unused, tree
	// packs being small) while the next data pack allocated another.
	idle     []*pack.Writer
	maxIdle  int
	idleTree *pack.Writer
	// err is the first upload error; once set, every save fails.
	err error

	// uploadedBytes sums the sizes of the packs uploaded.
	uploadedBytes atomic.Uint64

	indexMu sync.Mutex // serialises index file writes

	uploadCtx    context.Context // cancelled by close
	cancelUpload context.CancelFunc
	// slots bounds the data packs in memory: one is taken to open a
	// pack and given back when its upload ends. There is one slot per
	// upload worker, and at least two so that a pack can fill while
	// another uploads: with the local backend's two connections, one
	// fills while the other uploads, or both upload and the savers wait
	// for one to end rather than opening another 17 MiB pack. A slot
	// more for the pack being filled bought no throughput on the
	// benchmark trees (docs/performance.md) and cost 17 MiB of peak RSS.
	// Two are also the least that is safe: a saver that finds no pack
	// open waits for a slot without looking again, so with one slot a
	// saver that lost the race for it waits on the pack the winner
	// opened, and if no other blob comes to fill that pack (the winner
	// is idle, the walker waits on this saver's file) nothing ever
	// does; a backup with slots forced to 1 hung so. With two, every
	// slot but the filling pack's belongs to an upload, which ends.
	slots    chan struct{}
	uploads  chan finishedPack
	pendingW sync.WaitGroup // packs handed to uploads and not yet done
	workers  sync.WaitGroup
	closed   bool
	// bufs pools sealed blob buffers, one pool per class (see
	// blobBufClass), so that a blob never takes a buffer of another
	// class only to put it back and make one of its own.
	bufs [3]sync.Pool
}

func newPacker(r *Repository) *packer {
	n := r.be.Properties().Connections
	if n < 1 {
		n = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &packer{
		r:            r,
		writers:      make(map[pack.BlobType]*pack.Writer),
		inflight:     make(map[blobKey]struct{}),
		uploads:      make(chan finishedPack),
		slots:        make(chan struct{}, max(n, 2)),
		uploadCtx:    ctx,
		cancelUpload: cancel,
		// The data slots cover the steady state; a writer more
		// would only hold 17 MiB idle.
		maxIdle: max(n, 2),
	}
	for i := 0; i < n; i++ {
		p.workers.Go(p.uploadLoop)
	}
	p.workers.Go(func() { p.indexLoop(r.opts.IndexInterval) })
	return p
}

// indexLoop writes an index file for the packs uploaded and not yet
// listed by one every interval, until the packer is closed, so that
// uploaded packs wait at most that long to be indexed (a tick with none
// writes nothing). It runs beside the count bound in upload.
func (p *packer) indexLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.uploadCtx.Done():
			return
		case <-t.C:
		}
		if err := p.writeIndex(p.uploadCtx); err != nil && p.uploadCtx.Err() == nil {
			p.setErr(fmt.Errorf("write index: %w", err))
		}
	}
}

// Sealed blob buffers are made in two sizes, smallBlobBuf for small
// files' blobs and trees, pooledBlobBuf for the chunks of up to 2 MiB (the
// archiver's chunk buffer), the great majority, and a larger blob's of its
// own size; the pool keeps them all up to maxPooledBlobBuf. A tree of
// small files so holds 64 KiB per saver rather than 1 MiB. Dropping the
// buffers of larger blobs after use instead saved 5-9 MiB of peak RSS on
// the bench trees but cost 1.5% more CPU time on the mixed tree (making
// and zeroing a new buffer for each large chunk).
const (
	smallBlobBuf     = 64 << 10
	pooledBlobBuf    = 2<<20 + 64<<10 // a 2 MiB chunk's sealedBufSize
	maxPooledBlobBuf = 16 << 20
)

// sealedBufSize is the room saveBlob needs to compress and seal n bytes
// in one buffer without growing it.
func sealedBufSize(n int) int { return crypt.Overhead + n + n>>6 + 1<<10 }

// blobBufClass returns the pool of a buffer of capacity c: 0 for
// smallBlobBuf, 1 for pooledBlobBuf, 2 for larger ones up to
// maxPooledBlobBuf, -1 for a buffer not to pool.
func blobBufClass(c int) int {
	switch {
	case c <= smallBlobBuf:
		return 0
	case c <= pooledBlobBuf:
		return 1
	case c <= maxPooledBlobBuf:
		return 2
	}
	return -1
}

// getBuf returns a buffer for compressing and sealing a blob of n bytes:
// a pooled one of its class if there is one with room, else a new one.
func (p *packer) getBuf(n int) *[]byte {
	need := sealedBufSize(n)
	class := blobBufClass(need)
	if class >= 0 {
		// Buffers of the first two classes all have the class's size;
		// a larger one may be too small for this blob, and is then
		// dropped for one that fits.
		if b, _ := p.bufs[class].Get().(*[]byte); b != nil && cap(*b) >= need {
			return b
		}
	}
	size := need
	switch class {
	case 0:
		size = smallBlobBuf
	case 1:
		size = pooledBlobBuf
	}
	nb := make([]byte, 0, size)
	return &nb
}

func (p *packer) putBuf(b *[]byte) {
	if class := blobBufClass(cap(*b)); class >= 0 {
		*b = (*b)[:0]
		p.bufs[class].Put(b)
	}
}

// newWriter returns an idle writer or a new one for blobs of type t;
// p.mu must be held.
func (p *packer) newWriter(t pack.BlobType) *pack.Writer {
	var w *pack.Writer
	if t != pack.DataBlob {
		if w, p.idleTree = p.idleTree, nil; w == nil {
			w = pack.NewWriter(p.r.keys.Current())
		}
		return w
	}
	if n := len(p.idle); n > 0 {
		w = p.idle[n-1]
		p.idle = p.idle[:n-1]
	} else {
		w = pack.NewWriter(p.r.keys.Current())
	}
	// A data pack fills up to the target size and ends with the blob
	// that takes it past, unless that blob would not fit in packSlack
	// (see add): room for one average chunk beyond spares a dozen copies
	// (and garbage) of a growing buffer; a reused writer has it already.
	// Tree packs (above) are mostly small (a backup with few changed
	// folders) and grow as needed.
	w.Grow(p.r.packSize + packSlack)
	return w
}

// recycle resets an uploaded writer and keeps it for reuse. A writer
// seals with the key it was made with; that is still the current key,
// since a Repository's key ring is fixed once it is opened.
func (p *packer) recycle(w *pack.Writer, tree bool) {
	w.Reset()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case tree:
		p.idleTree = w
	case len(p.idle) < p.maxIdle:
		p.idle = append(p.idle, w)
	}
}

func (p *packer) pending(t pack.BlobType, id backend.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.inflight[blobKey{t, id}]
	return ok
}

func (p *packer) stickyErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *packer) setErr(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

// SaveBlob stores data under id unless the repository has it already, and
// reports whether it had. id must be the SHA-256 of data; the caller may
// reuse data once SaveBlob returns. It blocks while uploads lag behind, so
// memory stays bounded. Safe for concurrent use.
func (r *Repository) SaveBlob(ctx context.Context, t pack.BlobType, id backend.ID, data []byte) (bool, error) {
	return r.saveBlob(ctx, t, id, data, false)
}

// saveBlob is SaveBlob; with force it stores the blob even when the index
// already lists it (prune's repacking), deduplicating only against blobs
// queued since.
func (r *Repository) saveBlob(ctx context.Context, t pack.BlobType, id backend.ID, data []byte, force bool) (bool, error) {
	p := r.packer
	if len(data) > maxBlobSize {
		return false, fmt.Errorf("save blob %s: %d bytes is larger than the %d byte limit", id.Str(), len(data), maxBlobSize)
	}
	if !force && r.idx.Has(t, id) {
		return true, nil
	}
	k := blobKey{t, id}
	p.mu.Lock()
	if p.err != nil || p.closed {
		err := p.err
		if p.closed {
			err = errClosed
		}
		p.mu.Unlock()
		return false, err
	}
	if _, ok := p.inflight[k]; ok {
		p.mu.Unlock()
		return true, nil
	}
	p.inflight[k] = struct{}{}
	p.mu.Unlock()

	// The blob is compressed and sealed in one pooled buffer: the
	// compressed plaintext goes to buf[NonceSize:] and is sealed in
	// place (the AEAD allows an output that exactly overlaps its input),
	// so a blob in flight holds one buffer of its size, not two. Add
	// copies the sealed blob into the pack, after which buf is free.
	// getBuf makes room for the worst case up front: growing inside the
	// encoder or the sealer copies the blob again.
	buf := p.getBuf(len(data))
	defer p.putBuf(buf)

	plain := data
	var rawLen uint32
	comp, ok := r.codec.compress((*buf)[crypt.NonceSize:crypt.NonceSize], data, r.compression)
	if ok {
		plain = comp
		rawLen = uint32(len(data))
	}
	sealed := pack.SealBlob(r.keys.Current(), (*buf)[:0], t, id, plain)
	if cap(sealed) > cap(*buf) {
		*buf = sealed[:0] // keep the larger buffer for the next blob
	}

	if err := p.add(ctx, t, id, sealed, rawLen); err != nil {
		return false, err
	}
	return false, nil
}

// packSlack is the room a data pack's buffer has beyond the target size
// (see newWriter).
const packSlack = 1 << 20

// add puts a sealed blob into the pack being filled for its type, opening
// one (and, for data, taking a slot) if there is none, and hands the pack
// to the uploads once it reaches the target size.
func (p *packer) add(ctx context.Context, t pack.BlobType, id backend.ID, sealed []byte, rawLen uint32) error {
	for {
		p.mu.Lock()
		w := p.writers[t]
		if w == nil && t == pack.DataBlob {
			// A new data pack needs a slot: wait for one without the lock.
			p.mu.Unlock()
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				err := fmt.Errorf("save blob %s: %w", id.Str(), ctx.Err())
				p.setErr(err) // the blob was accepted as in flight and is lost
				return err
			}
			p.mu.Lock()
			if w = p.writers[t]; w != nil {
				<-p.slots // another saver opened a pack meanwhile
			}
		}
		if w == nil {
			w = p.newWriter(t)
			p.writers[t] = w
		}
		if t == pack.DataBlob && w.Count() > 0 && w.Size()+len(sealed) > p.r.packSize+packSlack {
			// The blob would take the pack past the room newWriter
			// made: Add would regrow the buffer (the old one turning
			// into 16 MiB of garbage, the writer keeping the larger
			// one for good). Finish the pack a little below the
			// target size instead and put the blob into the next.
			delete(p.writers, t)
			p.mu.Unlock()
			if err := p.finish(ctx, w, false); err != nil {
				return err
			}
			continue
		}
		if err := w.Add(t, id, sealed, rawLen); err != nil {
			p.mu.Unlock()
			return fmt.Errorf("save blob %s: %w", id.Str(), err)
		}
		var full *pack.Writer
		if w.Size() >= p.r.packSize {
			full = w
			delete(p.writers, t)
		}
		p.mu.Unlock()
		if full != nil {
			return p.finish(ctx, full, t == pack.TreeBlob)
		}
		return nil
	}
}

// finish seals the pack's header and hands it to an upload worker, waiting
// while all workers are busy.
func (p *packer) finish(ctx context.Context, w *pack.Writer, tree bool) error {
	parts, blobs, err := w.FinalizeParts()
	if err != nil {
		p.releaseSlot(tree)
		p.setErr(err)
		return fmt.Errorf("finish pack: %w", err)
	}
	h := sha256.New()
	for _, part := range parts {
		h.Write(part)
	}
	var id backend.ID
	h.Sum(id[:0])
	fp := finishedPack{w: w, id: id, parts: parts, blobs: blobs, tree: tree}
	p.pendingW.Add(1)
	select {
	case p.uploads <- fp:
		return nil
	case <-ctx.Done():
		p.pendingW.Done()
		p.releaseSlot(tree)
		// Its blobs were accepted (and may have been reported as
		// known to later callers) but will never be stored.
		err := fmt.Errorf("finish pack: %w", ctx.Err())
		p.setErr(err)
		return err
	}
}

func (p *packer) uploadLoop() {
	for fp := range p.uploads {
		p.upload(fp)
		p.recycle(fp.w, fp.tree)
		p.releaseSlot(fp.tree)
		p.pendingW.Done()
	}
}

// releaseSlot frees the slot a data pack held.
func (p *packer) releaseSlot(tree bool) {
	if !tree {
		<-p.slots
	}
}

func (p *packer) upload(fp finishedPack) {
	r := p.r
	ctx := p.uploadCtx
	h := backend.Handle{Type: backend.PackFile, Name: fp.id.String()}
	rd := newPartsReader(fp.parts)
	if err := r.be.Put(ctx, h, rd); err != nil {
		p.setErr(fmt.Errorf("upload %s: %w", h, err))
		return
	}
	p.uploadedBytes.Add(uint64(rd.Length()))
	if fp.tree && r.cache != nil {
		r.cache.put(cacheData, fp.id, bytes.Join(fp.parts, nil))
	}
	r.idx.AddPack(fp.id, fp.blobs)
	p.mu.Lock()
	for _, b := range fp.blobs {
		delete(p.inflight, blobKey{b.Type, b.ID})
	}
	p.unindexed = append(p.unindexed, index.Pack{ID: fp.id, Blobs: fp.blobs})
	n := len(p.unindexed)
	p.mu.Unlock()
	if n >= indexEvery {
		if err := p.writeIndex(ctx); err != nil {
			p.setErr(err)
		}
	}
}

// writeIndex writes one index file for the packs uploaded since the last.
func (p *packer) writeIndex(ctx context.Context) error {
	p.indexMu.Lock()
	defer p.indexMu.Unlock()
	p.mu.Lock()
	packs := p.unindexed
	p.unindexed = nil
	p.mu.Unlock()
	if len(packs) == 0 {
		return nil
	}
	if _, err := p.r.saveIndexFile(ctx, &index.File{Packs: packs}); err != nil {
		p.mu.Lock()
		p.unindexed = append(packs, p.unindexed...)
		p.mu.Unlock()
		return err
	}
	return nil
}

// SaveUploadedIndex writes an index file for the packs uploaded so far
// that no index file lists yet. Unlike Flush it neither finishes the packs
// being filled nor waits for uploads in progress: it is what a job that
// stops early (cancelled, or failed) calls so that a rerun finds, and does
// not upload again, what was uploaded. It works after the packer failed:
// an uploaded pack is whole whatever happened since.
func (r *Repository) SaveUploadedIndex(ctx context.Context) error {
	return r.packer.writeIndex(ctx)
}

// UploadedPackBytes is the total size of the packs this Repository has
// uploaded since it was opened: blobs saved, compressed and encrypted,
// with their packs' headers. Safe for concurrent use.
func (r *Repository) UploadedPackBytes() uint64 { return r.packer.uploadedBytes.Load() }

// Flush uploads every partly filled pack, waits for all uploads and writes
// an index file for them. After Flush returns nil, every blob saved before
// it is in the repository and indexed.
func (r *Repository) Flush(ctx context.Context) error {
	p := r.packer
	p.mu.Lock()
	var ws []*pack.Writer
	var trees []bool
	for t, w := range p.writers {
		if w.Count() > 0 {
			ws = append(ws, w)
			trees = append(trees, t == pack.TreeBlob)
		}
		delete(p.writers, t)
	}
	p.mu.Unlock()
	for i, w := range ws {
		if err := p.finish(ctx, w, trees[i]); err != nil {
			return err
		}
	}
	// Wait for the uploads, or for ctx: they go on under the packer's
	// own context until Close.
	done := make(chan struct{})
	go func() {
		p.pendingW.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := p.stickyErr(); err != nil {
		return err
	}
	return p.writeIndex(ctx)
}

func (p *packer) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.cancelUpload()
	close(p.uploads)
	p.workers.Wait()
}

// errClosed is returned when the repository is used after Close.
var errClosed = errors.New("repository is closed")
