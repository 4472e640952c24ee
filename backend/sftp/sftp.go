package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"path"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
)

var (
	_ backend.Backend     = (*Backend)(nil)
	_ backend.TempCleaner = (*Backend)(nil)
)

const (
	// connections is Properties().Connections. Every request shares one
	// SSH connection and one SFTP session, and OpenSSH's SFTP server
	// answers a session's requests one at a time, so more parallel files
	// do not add bandwidth; a few overlap the round trips each file costs
	// besides its data (open, fsync, close, rename).
	connections = 5
	// folderWorkers is how many folders List reads, or Create makes, at
	// once: the requests are pipelined over the one session, so 256 pack
	// folders cost a few round trips rather than 256.
	folderWorkers = 16
	// readBufferSize is how much Get asks for at a time: 64 requests of
	// 32 KiB in flight (maxConcurrentRequests).
	readBufferSize = 2 << 20
	// maxOrphans bounds the temporary files remembered for removal after
	// a reconnect.
	maxOrphans = 64
)

// errClosed is returned by every method after Close.
var errClosed = errors.New("sftp backend is closed")

// Backend is a repository in a folder on an SFTP server.
type Backend struct {
	d     *dialer
	loc   string
	base  string // the repository folder, cleaned
	props backend.Properties

	buffers sync.Pool // of *[]byte, readBufferSize bytes each, for Get

	dialSem chan struct{} // one dial at a time

	mu      sync.Mutex // guards the fields below
	cur     *conn      // nil, or the connection requests use
	closed  bool
	orphans []string // temporary files a broken connection left behind

	wg sync.WaitGroup // the watchers of each connection
}

// Open connects to the server and returns the backend for the repository
// at cfg.Path. A folder without a config returns an error wrapping
// backend.ErrNoRepository.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, cl, err := connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg, err)
	}
	fi, err := cl.sftp.Stat(b.path(configHandle))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = backend.ErrNoRepository
	case err != nil:
		err = b.check(cl, err)
	case !fi.Mode().IsRegular():
		err = errors.New("config is not a regular file")
	}
	if err != nil {
		_ = b.Close() // err is the one to report
		return nil, fmt.Errorf("open %s: %w", b.loc, err)
	}
	return b, nil
}

// Create connects to the server and makes the repository folders at
// cfg.Path (the folder itself included), laid out as backend/local lays
// them out. It writes no file; the caller stores the config. It refuses,
// with an error wrapping backend.ErrAlreadyExists, a folder that already
// holds a config, and never removes or replaces anything.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, cl, err := connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg, err)
	}
	if err := b.create(ctx, cl); err != nil {
		_ = b.Close() // err is the one to report
		return nil, fmt.Errorf("create %s: %w", b.loc, err)
	}
	return b, nil
}

func (b *Backend) create(ctx context.Context, cl *conn) error {
	switch _, err := cl.sftp.Lstat(b.path(configHandle)); {
	case err == nil:
		return fmt.Errorf("%w: it holds a repository config", backend.ErrAlreadyExists)
	case !errors.Is(err, fs.ErrNotExist):
		return b.check(cl, err)
	}
	_, err := cl.sftp.Stat(b.base)
	existed := err == nil
	if err := cl.sftp.MkdirAll(b.base); err != nil {
		return fmt.Errorf("make folder %s: %w", b.base, b.check(cl, err))
	}
	if !existed {
		_ = cl.sftp.Chmod(b.base, backend.DirMode) // privacy only, as in mkdirs
	}
	var top []string
	for _, t := range backend.AllTypes {
		if t != backend.ConfigFile {
			top = append(top, path.Join(b.base, t.Dir()))
		}
	}
	if err := b.mkdirs(ctx, cl, top); err != nil {
		return err
	}
	data := path.Join(b.base, backend.PackFile.Dir())
	subs := make([]string, 256)
	for i := range subs {
		subs[i] = path.Join(data, fmt.Sprintf("%02x", i))
	}
	return b.mkdirs(ctx, cl, subs)
}

// mkdirs makes the folders, folderWorkers at a time, leaving existing ones
// alone. New folders get mode 0700 where the server allows it.
func (b *Backend) mkdirs(ctx context.Context, cl *conn, dirs []string) error {
	return parallel(ctx, dirs, func(_ context.Context, dir string) error {
		err := cl.sftp.Mkdir(dir)
		if err == nil {
			// Privacy, not correctness: a server that refuses keeps its
			// default mode.
			_ = cl.sftp.Chmod(dir, backend.DirMode)
			return nil
		}
		if fi, serr := cl.sftp.Stat(dir); serr == nil && fi.IsDir() {
			return nil
		}
		return fmt.Errorf("make folder %s: %w", dir, b.check(cl, err))
	})
}

// parallel runs fn on each item, folderWorkers at a time (errgroup with
// SetLimit), on other goroutines. It keeps the rule of every worker pool
// in cairn: the first error cancels the ctx the calls get and starts no
// more, and parallel returns it once every started call has returned; if
// the caller's ctx ends first, it returns its cause.
func parallel(ctx context.Context, items []string, fn func(ctx context.Context, item string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(folderWorkers)
	for _, it := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return context.Cause(gctx) // cancelled while waiting for a slot
			}
			return fn(gctx, it)
		})
	}
	err := g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())) {
		return context.Cause(ctx)
	}
	return err
}

// connect resolves cfg, dials, and returns a backend using the connection.
func connect(ctx context.Context, cfg Config) (*Backend, *conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	d, err := newDialer(cfg)
	if err != nil {
		return nil, nil, err
	}
	b := &Backend{
		d:       d,
		loc:     d.cfg.String(),
		base:    path.Clean(d.cfg.Path),
		dialSem: make(chan struct{}, 1),
	}
	b.buffers.New = func() any {
		buf := make([]byte, readBufferSize)
		return &buf
	}
	cl, err := b.client(ctx)
	if err != nil {
		return nil, nil, err
	}
	b.props = backend.Properties{Connections: connections, HasAtomicReplace: cl.posixRename}
	return b, cl, nil
}

var configHandle = backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}

// Location implements backend.Backend: the location without a password.
func (b *Backend) Location() string { return b.loc }

// Properties implements backend.Backend. HasAtomicReplace is true when the
// server offers posix-rename@openssh.com (every OpenSSH server does).
func (b *Backend) Properties() backend.Properties { return b.props }

// path is where h lives; h must be valid.
func (b *Backend) path(h backend.Handle) string { return path.Join(b.base, backend.FilePath(h)) }

// client returns the live connection, dialing a new one when there is none
// or the last one broke.
func (b *Backend) client(ctx context.Context) (*conn, error) {
	if cl, err := b.current(); cl != nil || err != nil {
		return cl, err
	}
	select {
	case b.dialSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-b.dialSem }()
	// Another caller may have dialed while this one waited.
	if cl, err := b.current(); cl != nil || err != nil {
		return cl, err
	}
	cl, err := b.d.dial(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cl.close()
		return nil, backend.Permanent(errClosed)
	}
	b.cur = cl
	orphans := b.orphans
	b.orphans = nil
	b.wg.Go(func() {
		cl.wait()
		cl.close()
	})
	b.wg.Go(func() { b.d.keepAliveLoop(cl) })
	b.mu.Unlock()
	for _, p := range orphans {
		// Best effort: a file already gone or not removable stays a
		// temporary file that List ignores.
		_ = cl.sftp.Remove(p)
	}
	return cl, nil
}

// current returns the connection if it is alive, or errClosed.
func (b *Backend) current() (*conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, backend.Permanent(errClosed)
	}
	if b.cur != nil && b.cur.alive() {
		return b.cur, nil
	}
	return nil, nil
}

// check drops cl when err says the connection broke, so the next request
// dials again. It returns err.
func (b *Backend) check(cl *conn, err error) error {
	if err != nil && isConnError(err) {
		cl.close()
	}
	return err
}

// isConnError reports whether err came from the connection rather than
// from the server's answer to a request.
func isConnError(err error) bool {
	var status *sftp.StatusError
	switch {
	case errors.Is(err, sftp.ErrSSHFxConnectionLost), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	case errors.As(err, &status), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// List implements backend.Backend. Temporary files, entries that are not
// regular files (symbolic links are followed) and names that are not
// valid for t, or for packs lie in the wrong subfolder, are skipped. The
// pack subfolders are read folderWorkers at a time; fn still runs on the
// caller's goroutine.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := backend.CheckType(ctx, t); err != nil {
		return err
	}
	cl, err := b.client(ctx)
	if err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	switch t {
	case backend.ConfigFile:
		fi, err := cl.sftp.Stat(b.path(configHandle))
		return backend.ListConfig(fi, b.check(cl, err), fn)
	case backend.PackFile:
		return b.listPacks(ctx, cl, fn)
	}
	dir := path.Join(b.base, t.Dir())
	entries, err := cl.sftp.ReadDirContext(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", t, b.check(cl, err))
	}
	return b.listEntries(ctx, cl, t, dir, "", entries, fn)
}

// listEntries calls fn for each valid file of type t among the entries of
// dir whose name starts with prefix. Errors from fn are returned as they are.
func (b *Backend) listEntries(ctx context.Context, cl *conn, t backend.FileType, dir, prefix string, entries []os.FileInfo, fn func(backend.FileInfo) error) error {
	for _, e := range entries {
		err := backend.ListEntry(ctx, t, prefix, e.Name(), func() (fs.FileInfo, error) {
			if e.Mode()&fs.ModeSymlink == 0 {
				return e, nil
			}
			fi, err := cl.sftp.Stat(path.Join(dir, e.Name())) // followed, as Stat and Get follow it
			return fi, b.check(cl, err)
		}, fn)
		if err != nil {
			return err
		}
	}
	return nil
}

// folderListing is one pack subfolder's entries.
type folderListing struct {
	prefix  string
	entries []os.FileInfo
	err     error
}

func (b *Backend) listPacks(ctx context.Context, cl *conn, fn func(backend.FileInfo) error) error {
	t := backend.PackFile
	data := path.Join(b.base, t.Dir())
	subs, err := cl.sftp.ReadDirContext(ctx, data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", t, b.check(cl, err))
	}
	var prefixes []string
	for _, s := range subs {
		if !backend.IsPackDir(s.Name()) {
			continue
		}
		if s.Mode()&fs.ModeSymlink != 0 {
			// A link to a folder is followed, as Get would.
			fi, err := cl.sftp.Stat(path.Join(data, s.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("list %s: %w", t, b.check(cl, err))
			}
			s = fi
		}
		if s.IsDir() {
			prefixes = append(prefixes, s.Name())
		}
	}

	// Readers fetch folders ahead, folderWorkers at a time (errgroup with
	// SetLimit); this goroutine hands their entries to fn, so at most
	// folderWorkers listings wait in memory. Its first error (or fn's)
	// cancels ctx, which stops the readers: the pools' one rule.
	ctx, cancel := context.WithCancel(ctx)
	results := make(chan folderListing)
	var feeder sync.WaitGroup
	defer func() {
		cancel()
		feeder.Wait()
	}()
	feeder.Go(func() {
		defer close(results)
		var readers errgroup.Group
		readers.SetLimit(folderWorkers)
		for _, p := range prefixes {
			if ctx.Err() != nil {
				break
			}
			readers.Go(func() error {
				entries, err := cl.sftp.ReadDirContext(ctx, path.Join(data, p))
				select {
				case results <- folderListing{prefix: p, entries: entries, err: err}:
				case <-ctx.Done():
				}
				return nil // errors travel in the listing, to the consumer
			})
		}
		_ = readers.Wait()
	})
	for r := range results {
		switch {
		case errors.Is(r.err, fs.ErrNotExist):
			continue // removed while listing, or a dangling link
		case r.err != nil:
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("list %s: %w", t, cerr)
			}
			return fmt.Errorf("list %s: %w", t, b.check(cl, r.err))
		}
		if err := b.listEntries(ctx, cl, t, path.Join(data, r.prefix), r.prefix, r.entries, fn); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	return nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := backend.CheckHandle(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	cl, err := b.client(ctx)
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	fi, err := cl.sftp.Stat(b.path(h))
	return backend.StatResult(h, fi, b.check(cl, err))
}

// Get implements backend.Backend. fn's reader fetches the range in 2 MiB
// chunks, 64 requests in flight at a time, whatever size fn's reads are.
func (b *Backend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) (err error) {
	if err := backend.CheckHandle(ctx, "get", h); err != nil {
		return err
	}
	if length < 0 || offset < 0 {
		return backend.Permanent(fmt.Errorf("get %s: invalid range: offset %d, length %d", h, offset, length))
	}
	cl, err := b.client(ctx)
	if err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	f, err := cl.sftp.Open(b.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("get %s: %w", h, backend.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", h, b.check(cl, err))
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("get %s: close: %w", h, b.check(cl, cerr))
		}
	}()
	end := int64(math.MaxInt64)
	if length > 0 && offset <= math.MaxInt64-int64(length) {
		end = offset + int64(length)
	}
	bufp := b.buffers.Get().(*[]byte)
	defer b.buffers.Put(bufp)
	rd := &rangeReader{ctx: ctx, f: f, off: offset, end: end, buf: *bufp}
	if err := fn(rd); err != nil {
		if rd.err != nil {
			_ = b.check(cl, rd.err) // fn's error says what went wrong
		}
		return fmt.Errorf("get %s: %w", h, err)
	}
	return nil
}

// Put implements backend.Backend. The content goes to a temporary file in
// the destination folder (a name List skips), is flushed to disk where the
// server offers fsync@openssh.com, and is then renamed to its name, with
// posix-rename@openssh.com where offered, so a reader sees the file whole
// or not at all. A failure removes the temporary file; if the connection
// broke, the removal is done after the next connection is made.
func (b *Backend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) (err error) {
	size, err := backend.CheckPut(ctx, h, rd)
	if err != nil {
		return err
	}
	cl, err := b.client(ctx)
	if err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	final := b.path(h)
	dir := path.Dir(final)
	tmp, err := tempName(dir)
	if err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := cl.sftp.OpenFile(tmp, flags)
	if errors.Is(err, fs.ErrNotExist) && h.Type != backend.ConfigFile {
		// A folder removed by hand or lost in a copy: make it again.
		if err := cl.sftp.MkdirAll(dir); err != nil {
			return fmt.Errorf("put %s: make folder: %w", h, b.check(cl, err))
		}
		f, err = cl.sftp.OpenFile(tmp, flags)
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", h, b.check(cl, err))
	}
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = f.Close() // the write already failed; that error is the one to report
		}
		if !cl.alive() {
			b.addOrphan(tmp)
			return
		}
		if rerr := cl.sftp.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			if isConnError(rerr) {
				b.addOrphan(tmp)
				cl.close()
				return
			}
			err = fmt.Errorf("%w (and removing temporary file: %v)", err, rerr)
		}
	}()

	// An SFTP open cannot give the new file a mode, so the server's
	// umask decides it (often 0644): make it private before any byte of
	// content is in it. A server that refuses permission changes still
	// stores the file (in a folder that is 0700 where it allows that); a
	// broken connection fails the put.
	if err := f.Chmod(backend.TempMode); err != nil && isConnError(err) {
		return fmt.Errorf("put %s: %w", h, b.check(cl, err))
	}
	src := backend.NewContextReader(ctx, rd)
	n, err := f.ReadFrom(io.LimitReader(src, size+1))
	if err != nil {
		if src.Err() != nil && errors.Is(err, src.Err()) {
			return fmt.Errorf("put %s: %w", h, err)
		}
		return fmt.Errorf("put %s: %w", h, b.check(cl, err))
	}
	if n != size {
		return fmt.Errorf("put %s: content is %d bytes, reader said %d", h, n, size)
	}
	// Read-only guards against accidents; servers that refuse still work.
	_ = f.Chmod(backend.FileMode)
	if cl.fsync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("put %s: sync: %w", h, b.check(cl, err))
		}
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: close: %w", h, b.check(cl, err))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", h, err)
	}
	if cl.posixRename {
		err = cl.sftp.PosixRename(tmp, final)
	} else {
		err = cl.sftp.Rename(tmp, final)
		if err != nil && !isConnError(err) {
			if _, serr := cl.sftp.Lstat(final); serr == nil {
				err = fmt.Errorf("%w: the server cannot replace files atomically", backend.ErrAlreadyExists)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("put %s: rename: %w", h, b.check(cl, err))
	}
	return nil
}

func (b *Backend) addOrphan(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.orphans) < maxOrphans {
		b.orphans = append(b.orphans, p)
	}
}

// tempName is a fresh temporary file name in dir.
func tempName(dir string) (string, error) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("temporary name: %w", err)
	}
	return path.Join(dir, backend.TempPrefix+hex.EncodeToString(r[:])), nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, h backend.Handle) error {
	if err := backend.CheckHandle(ctx, "delete", h); err != nil {
		return err
	}
	cl, err := b.client(ctx)
	if err != nil {
		return fmt.Errorf("delete %s: %w", h, err)
	}
	err = cl.sftp.Remove(b.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", h, backend.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", h, b.check(cl, err))
	}
	return nil
}

// Close implements backend.Backend: it ends the connection and waits for
// the goroutines watching it.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cl := b.cur
	b.cur = nil
	b.mu.Unlock()
	if cl != nil {
		cl.close()
	}
	b.wg.Wait()
	return nil
}

// rangeReader reads the bytes of f from off to end (or to the end of the
// file) in chunks of len(buf), each fetched with many requests in flight,
// so neither small reads nor io.Copy's 32 KiB buffer make it one round trip
// per request. It implements io.WriterTo so io.Copy uses the large chunks
// too. Errors are sticky; io.EOF marks the end of the range.
type rangeReader struct {
	ctx      context.Context
	f        io.ReaderAt
	off, end int64  // the next offset to fetch, and where the range ends
	buf      []byte // buf[r:w] is fetched and not yet read
	r, w     int
	eof      bool  // nothing is left to fetch
	err      error // the first error other than io.EOF, from f or ctx
}

// fetch reads into p from the next offset, at most to the range's end.
func (c *rangeReader) fetch(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.eof {
		return 0, io.EOF
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	if left := c.end - c.off; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.f.ReadAt(p, c.off)
	c.off += int64(n)
	if c.off >= c.end {
		c.eof = true
	}
	switch {
	case errors.Is(err, io.EOF):
		c.eof = true
	case err != nil:
		c.err = err
		return n, err
	}
	if n == 0 && c.eof {
		return 0, io.EOF
	}
	return n, nil
}

func (c *rangeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.r == c.w {
		if len(p) >= len(c.buf) {
			return c.fetch(p)
		}
		n, err := c.fetch(c.buf)
		c.r, c.w = 0, n
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}

// WriteTo implements io.WriterTo.
func (c *rangeReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if c.r == c.w {
			n, err := c.fetch(c.buf)
			c.r, c.w = 0, n
			if n == 0 {
				if errors.Is(err, io.EOF) {
					return total, nil
				}
				return total, err
			}
		}
		n, err := w.Write(c.buf[c.r:c.w])
		c.r += n
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}
