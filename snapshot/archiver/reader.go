package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/restic/chunker"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

// Stream is content that is not a file on disk, backed up as one regular
// file: standard input, or the output of a command (restic's --stdin and
// --stdin-from-command).
type Stream struct {
	// Name is the file's absolute path in the snapshot ("/stdin"); the
	// folders on the way are made up, with the file's owner and time.
	// It must be clean, and every element valid UTF-8.
	Name string
	// Reader is read to its end, once.
	Reader io.Reader
	// Wait, if set, is called once Reader is exhausted and before the
	// snapshot is recorded (the command's exit status): an error makes
	// the backup fail, and no snapshot is made.
	Wait func() error
	// ModTime is the time recorded for the file and its folders.
	ModTime time.Time
	// UID, GID, User and Group own the file and its folders.
	UID, GID    uint32
	User, Group string
}

// streamFileMode and streamDirMode are the modes recorded for a stream's
// file and the folders above it, restic's.
const (
	streamFileMode = 0o644
	streamDirMode  = os.ModeDir | 0o755
)

// CheckStreamName checks that name can be a stream's path in a snapshot:
// absolute, clean, not "/", every element valid UTF-8.
func CheckStreamName(name string) error {
	switch {
	case !path.IsAbs(name) || path.Clean(name) != name || name == "/":
		return fmt.Errorf("stream file name %q is not a clean absolute path to a file", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("stream file name %q: %w", name, errNotUTF8)
	}
	return nil
}

// SnapshotStream backs up s as one regular file and returns the root tree
// ID, as Snapshot does for paths. The parent snapshot (Options.Parent)
// only tells a changed file from a new one: a stream is always read.
func (a *Archiver) SnapshotStream(ctx context.Context, s *Stream) (root backend.ID, sum snapshot.Summary, err error) {
	sum.BackupStart = a.opts.Now()
	if err := CheckStreamName(s.Name); err != nil {
		return backend.ID{}, sum, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := a.newRun(cancel)
	var savers, trees sync.WaitGroup
	for range a.opts.SaveConcurrency {
		savers.Go(func() { r.blobSaver(ctx) })
		trees.Go(func() { r.treeSaver(ctx) })
	}
	rootFut, walkErr := r.walkStream(ctx, s)
	if walkErr != nil {
		cancel(walkErr)
	}
	close(r.fileCh)
	close(r.treeCh)
	close(r.blobCh)
	savers.Wait()
	trees.Wait()
	if err := context.Cause(ctx); err != nil {
		return backend.ID{}, r.summary(sum), err
	}
	node := rootFut.node
	if node == nil || node.Subtree == nil {
		panic("archiver: internal error: stream root tree finished without an ID")
	}
	sum = r.summary(sum)
	sum.BackupEnd = a.opts.Now()
	return *node.Subtree, sum, nil
}

// walkStream reads the stream into chunks on the caller's goroutine (the
// savers hash and store them) and submits the trees of the folders above
// it, deepest first.
func (r *run) walkStream(ctx context.Context, s *Stream) (*future, error) {
	names := strings.Split(s.Name[1:], "/")
	// The parent snapshot's nodes along the path, for the statuses.
	prevs := make([]*snapshot.Node, len(names))
	prevTrees := make([]*snapshot.Tree, len(names))
	if parent := r.a.opts.Parent; !parent.IsNull() {
		t := r.loadTree(ctx, "/", &snapshot.Node{Type: snapshot.NodeDir, Subtree: &parent})
		for i, name := range names {
			prevTrees[i] = t
			if t == nil {
				break
			}
			prevs[i] = t.Find(name)
			t = r.loadTree(ctx, "/"+path.Join(names[:i+1]...), prevs[i])
		}
	}
	meta := func(name string, mode os.FileMode, t snapshot.NodeType) *snapshot.Node {
		return &snapshot.Node{Name: name, Type: t, Mode: mode, ModTime: s.ModTime, AccessTime: s.ModTime,
			ChangeTime: s.ModTime, UID: s.UID, GID: s.GID, User: s.User, Group: s.Group}
	}
	last := len(names) - 1
	file := meta(names[last], streamFileMode, snapshot.NodeFile)
	file.Links = 1
	job := &fileJob{path: s.Name, node: file, prev: prevs[last], fut: newFuture()}
	if err := r.readStream(ctx, s.Reader, job); err != nil {
		return nil, err
	}
	child := job.fut
	for i := last - 1; i >= 0; i-- {
		p := "/" + path.Join(names[:i+1]...)
		f, err := r.submitTree(ctx, p, meta(names[i], streamDirMode, snapshot.NodeDir), prevs[i], prevTrees[i+1], []*future{child})
		if err != nil {
			return nil, err
		}
		child = f
	}
	return r.submitTree(ctx, "/", nil, nil, prevTrees[0], []*future{child})
}

// readStream reads rd through the chunker and queues its chunks for the
// savers; the file's future completes with its last chunk. A read error
// aborts the backup: a stream cannot be skipped as an unreadable file is,
// since the snapshot would hold nothing.
func (r *run) readStream(ctx context.Context, rd io.Reader, job *fileJob) error {
	r.progress.StartFile(job.path)
	st := &fileState{job: job, pending: 1}
	chk := chunker.New(rd, r.pol)
	var total uint64
	for {
		if err := r.bufs.acquire(ctx); err != nil {
			return err
		}
		buf := r.bufs.get()
		c, err := chk.Next(buf)
		if errors.Is(err, io.EOF) {
			r.bufs.put(buf)
			break
		}
		if err != nil {
			r.bufs.put(buf)
			if cerr := context.Cause(ctx); cerr != nil {
				return cerr
			}
			return fmt.Errorf("read %s: %w", job.path, err)
		}
		total += uint64(c.Length)
		r.progress.BytesRead(job.path, uint64(c.Length))
		if err := r.queueChunk(ctx, st, c.Data); err != nil {
			return err
		}
	}
	st.mu.Lock()
	job.node.Size = total
	st.mu.Unlock()
	r.chunkDone(st, -1, backend.ID{})
	return nil
}
