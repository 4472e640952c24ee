package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/restic/chunker"
	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// fsFile is what the archiver uses of an open file or directory;
// *os.File implements it.
type fsFile interface {
	io.ReadSeekCloser
	Stat() (os.FileInfo, error)
	Readdirnames(n int) ([]string, error)
}

// fileJob asks a reader to read, chunk and save one regular file.
type fileJob struct {
	path string
	node *snapshot.Node // metadata from lstat; the reader fills Size and Content
	prev *snapshot.Node // the parent snapshot's node, or nil
	fut  *future
}

// fileState tracks a file whose chunks are being saved. pending counts the
// chunks not yet saved plus one held by the reader until it has queued the
// last chunk; whoever brings it to zero finishes the file.
type fileState struct {
	job *fileJob

	mu      sync.Mutex // guards the fields below
	content []backend.ID
	pending int
	failed  bool // a read failed: the file is skipped
}

// blobJob asks a saver to hash and save one chunk of a file.
type blobJob struct {
	buf   []byte // pooled; the chunk is buf
	file  *fileState
	index int // position of the chunk in the file's content
}

// smallFile is the size below which a file is read whole into one buffer
// instead of going through the chunker: the chunker never cuts before
// chunker.MinSize bytes, so such a file is one chunk either way, and the
// shortcut saves the chunker's copy.
const smallFile = chunker.MinSize

// saveFile queues a regular file, or records it with the parent's content
// when it is unchanged.
func (r *run) saveFile(ctx context.Context, path string, node, prev *snapshot.Node) (*future, error) {
	if !r.a.opts.Force && r.unchanged(node, prev) {
		node.Content = prev.Content
		r.countFile(path, node, StatusUnmodified)
		return doneFuture(node), nil
	}
	job := &fileJob{path: path, node: node, prev: prev, fut: newFuture()}
	if err := send(ctx, r.fileCh, job); err != nil {
		return nil, err
	}
	return job.fut, nil
}

// unchanged reports whether a file may reuse the parent's content: same
// type, size, mtime, ctime and inode (the last two unless ignored), and
// every content blob still in the repository.
func (r *run) unchanged(node, prev *snapshot.Node) bool {
	o := &r.a.opts
	if prev == nil || prev.Type != snapshot.NodeFile || prev.Size != node.Size ||
		!prev.ModTime.Equal(node.ModTime) ||
		!o.IgnoreCtime && !o.IgnoreInode && !prev.ChangeTime.Equal(node.ChangeTime) ||
		!o.IgnoreInode && prev.Inode != node.Inode {
		return false
	}
	if node.Size > 0 && len(prev.Content) == 0 {
		return false
	}
	for _, id := range prev.Content {
		if !r.repo.Has(pack.DataBlob, id) {
			return false
		}
	}
	return true
}

// fileReader reads queued files until fileCh is closed or ctx ends. It owns
// one chunker for its whole life and resets it for each large file.
func (r *run) fileReader(ctx context.Context) {
	var chk *chunker.Chunker
	for {
		job, ok := receive(ctx, r.fileCh)
		if !ok {
			return
		}
		if err := r.readFile(ctx, job, &chk); err != nil {
			r.fail(err)
			return
		}
	}
}

// openFlags open a file for reading without following a symlink that
// replaced it since lstat, without blocking on a fifo that replaced it, and
// without updating its atime.
const openFlags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC

// openNoAtime opens with O_NOATIME, which only the file's owner or root
// may use, and falls back to a plain open when that is refused.
func (r *run) openNoAtime(path string, flag int) (fsFile, error) {
	f, err := r.a.open(path, flag|unix.O_NOATIME)
	if errors.Is(err, syscall.EPERM) {
		f, err = r.a.open(path, flag)
	}
	return f, err
}

// readFile reads one file; it returns only fatal errors.
func (r *run) readFile(ctx context.Context, job *fileJob, chk **chunker.Chunker) error {
	f, err := r.openNoAtime(job.path, openFlags)
	if err != nil {
		return r.skipFile(job, err)
	}
	defer f.Close()
	if err := r.refreshStat(f, job); err != nil {
		return r.skipFile(job, err)
	}
	r.progress.StartFile(job.path)

	st := &fileState{job: job, pending: 1}
	size, rerr := r.readContent(ctx, f, st, chk)
	if rerr != nil && ctx.Err() != nil {
		// Cancelled: nobody waits for this file any more.
		return context.Cause(ctx)
	}
	var ferr error
	if rerr != nil {
		ferr = r.itemError(job.path, fmt.Errorf("read %s: %w", job.path, rerr))
	} else if size != job.node.Size {
		r.warn(job.path, fmt.Errorf("file size changed from %d to %d bytes while reading", job.node.Size, size))
	}
	st.mu.Lock()
	st.failed = rerr != nil
	job.node.Size = size
	st.mu.Unlock()
	r.chunkDone(st, -1, backend.ID{})
	return ferr
}

// skipFile reports a file that could not be opened and completes it as
// skipped unless the error is fatal.
func (r *run) skipFile(job *fileJob, err error) error {
	if ferr := r.itemError(job.path, err); ferr != nil {
		return ferr
	}
	job.fut.complete(nil)
	return nil
}

// refreshStat checks the opened file with fstat: it must still be a
// regular file; if it was replaced since lstat, its node takes the new
// metadata so content and metadata agree.
func (r *run) refreshStat(f fsFile, job *fileJob) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", job.path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer a regular file", job.path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("stat %s: no unix stat data", job.path)
	}
	n := job.node
	if st.Ino != n.Inode || !timespec(st.Mtim).Equal(n.ModTime) || !timespec(st.Ctim).Equal(n.ChangeTime) ||
		uint64(st.Size) != n.Size {
		fresh, err := r.nodeFromStat(job.path, n.Name, fi, st)
		if err != nil {
			return err
		}
		fresh.ExtendedAttributes = n.ExtendedAttributes
		*n = *fresh
	}
	return nil
}

// readContent reads f and queues its chunks; it returns the number of
// bytes read.
func (r *run) readContent(ctx context.Context, f fsFile, st *fileState, chk **chunker.Chunker) (uint64, error) {
	// A small file is read whole into a buffer of the smallest class
	// above its size, so that reading it to the end finds EOF. If it
	// fills the buffer, it grew since fstat: it is read again from the
	// start with the next class, and with the chunker once it reaches
	// smallFile bytes, so its chunks are the ones the chunker would cut.
	for class := smallClassOf(st.job.node.Size); class < len(smallClasses); class++ {
		if err := r.bufs.acquire(ctx); err != nil {
			return 0, err
		}
		buf := r.bufs.getSmall(class)
		n, err := io.ReadFull(f, buf[:cap(buf)])
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if n == 0 {
				r.bufs.put(buf)
				return 0, nil
			}
			r.progress.BytesRead(st.job.path, uint64(n))
			return uint64(n), r.queueChunk(ctx, st, buf[:n])
		case err != nil:
			r.bufs.put(buf)
			return 0, err
		}
		r.bufs.put(buf)
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
	}

	if *chk == nil {
		*chk = chunker.New(f, r.pol)
	} else {
		(*chk).Reset(f, r.pol)
	}
	var total uint64
	for {
		if err := r.bufs.acquire(ctx); err != nil {
			return total, err
		}
		buf := r.bufs.get()
		c, err := (*chk).Next(buf)
		if err == io.EOF {
			r.bufs.put(buf)
			return total, nil
		}
		if err != nil {
			r.bufs.put(buf)
			return total, err
		}
		total += uint64(c.Length)
		r.progress.BytesRead(st.job.path, uint64(c.Length))
		if err := r.queueChunk(ctx, st, c.Data); err != nil {
			return total, err
		}
	}
}

// queueChunk hands a chunk to the savers; the buffer goes with it.
func (r *run) queueChunk(ctx context.Context, st *fileState, data []byte) error {
	st.mu.Lock()
	idx := len(st.content)
	st.content = append(st.content, backend.ID{})
	st.pending++
	st.mu.Unlock()
	if err := send(ctx, r.blobCh, &blobJob{buf: data, file: st, index: idx}); err != nil {
		r.bufs.put(data)
		return err
	}
	return nil
}

// chunkDone records the ID of chunk index (index -1: the reader is done
// queueing) and finishes the file after its last chunk.
func (r *run) chunkDone(st *fileState, index int, id backend.ID) {
	st.mu.Lock()
	if index >= 0 {
		st.content[index] = id
	}
	st.pending--
	last := st.pending == 0
	st.mu.Unlock()
	if !last {
		return
	}
	job := st.job
	if st.failed {
		job.fut.complete(nil)
		return
	}
	job.node.Content = st.content
	r.countFile(job.path, job.node, statusOf(job.node, job.prev))
	job.fut.complete(job.node)
}

// blobSaver hashes and saves chunks until blobCh is closed or ctx ends.
func (r *run) blobSaver(ctx context.Context) {
	for {
		job, ok := receive(ctx, r.blobCh)
		if !ok {
			return
		}
		id := backend.Hash(job.buf)
		known, err := r.repo.SaveBlob(ctx, pack.DataBlob, id, job.buf)
		size := len(job.buf)
		r.bufs.put(job.buf)
		if err != nil {
			r.fail(fmt.Errorf("save data blob of %s: %w", job.file.job.path, err))
			return
		}
		if !known {
			r.stats.dataBlobs.Add(1)
			r.stats.dataAdded.Add(uint64(size))
		}
		r.chunkDone(job.file, job.index, id)
	}
}

// smallClasses are the capacities of the buffers small files are read
// into whole: a file goes into the smallest one above its size. A tree of
// 1-8 KiB files so holds 16 KiB per buffer in flight rather than 512 KiB.
// The last is smallFile: a file that fills it goes through the chunker.
var smallClasses = [...]int{16 << 10, 128 << 10, smallFile}

// smallClassOf returns the index in smallClasses of the buffer for a file
// of size bytes, or len(smallClasses) if the file is not small.
func smallClassOf(size uint64) int {
	for i, c := range smallClasses {
		if size < uint64(c) {
			return i
		}
	}
	return len(smallClasses)
}

// bufferPool recycles chunk buffers: one size per entry of smallClasses
// for files read whole, newBufSize for the chunker. It also bounds the
// buffers in flight: a reader acquires a token before it takes a buffer
// (get, getSmall), and put, which every buffer taken comes back to, gives
// the token back. get allocates when its pool is empty and put drops a
// buffer when its pool is full, so the memory held is bounded by the
// tokens (see newRun), each buffer at most chunker.MaxSize, plus the
// pools' capacity.
type bufferPool struct {
	small  [len(smallClasses)]chan []byte
	large  chan []byte
	tokens chan struct{}
}

// acquire takes a token for one buffer, waiting while all are in flight.
// Each reader holds at most one buffer at a time and each saver one, and
// a saver always gives its buffer back, so the wait ends.
func (p *bufferPool) acquire(ctx context.Context) error {
	select {
	case p.tokens <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// newBufSize is the capacity of a new chunker buffer, and above smallFile
// so the pools never mix. Beyond the 512 KiB minimum, chunk lengths
// fall off exponentially with a mean of 1 MiB, so about 78% of chunks fit
// 2 MiB and the chunker regrows the buffer for the rest (a copy, counted
// in docs/performance.md); 8 MiB buffers, which every chunk fits, cost
// about 36 MiB more peak memory with the buffers in flight.
const newBufSize = max(2<<20, 2*smallFile)

func newBufferPool(n int) *bufferPool {
	p := &bufferPool{large: make(chan []byte, n), tokens: make(chan struct{}, n)}
	for i := range p.small {
		p.small[i] = make(chan []byte, n)
	}
	return p
}

// getSmall returns an empty buffer of capacity smallClasses[class].
func (p *bufferPool) getSmall(class int) []byte {
	select {
	case b := <-p.small[class]:
		return b
	default:
		return make([]byte, 0, smallClasses[class])
	}
}

// get returns an empty buffer for the chunker's average chunks.
func (p *bufferPool) get() []byte {
	select {
	case b := <-p.large:
		return b
	default:
		return make([]byte, 0, newBufSize)
	}
}

// put gives back a buffer taken with get or getSmall, and its token.
func (p *bufferPool) put(b []byte) {
	<-p.tokens
	ch := p.large
	if cap(b) != newBufSize {
		i := slices.Index(smallClasses[:], cap(b))
		if i < 0 {
			// A buffer the chunker grew for a large chunk (up to
			// chunker.MaxSize, 8 MiB) is dropped rather than pooled:
			// kept, pooled buffers would drift towards 8 MiB and the
			// pool would hold four times the memory for the 22% of
			// chunks that need more than 2 MiB.
			return
		}
		ch = p.small[i]
	}
	select {
	case ch <- b[:0]:
	default:
	}
}
