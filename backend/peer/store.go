package peer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypt"
)

// store is the server's storage: under its root, one folder per client
// named by the client's peer ID, and in it one folder per repository NAME,
// each in backend/local's layout. It keeps each client's byte count for
// the quota and applies the client's mode. It is the place where gossip of
// signed heads and background scrubbing will live.
type store struct {
	root  string
	quota int64
	logf  func(format string, args ...any)

	mu      sync.Mutex // guards clients
	clients map[crypt.PeerID]*clientStore
}

func newStore(root string, quota int64, logf func(string, ...any)) *store {
	return &store{root: root, quota: quota, logf: logf, clients: map[crypt.PeerID]*clientStore{}}
}

// client returns the state of one client, made on first use.
func (s *store) client(id crypt.PeerID, mode Mode) *clientStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[id]
	if c == nil {
		c = &clientStore{
			id: id, dir: filepath.Join(s.root, id.String()), mode: mode, quota: s.quota, logf: s.logf,
			repos: map[string]*repoStore{},
		}
		s.clients[id] = c
	}
	return c
}

// clientStore is one client's folder.
type clientStore struct {
	id    crypt.PeerID
	dir   string
	mode  Mode
	quota int64 // 0: none
	logf  func(format string, args ...any)

	mu       sync.Mutex // guards the fields below
	scanned  bool       // used has been counted from the disk
	used     int64      // bytes in the client's stored files
	reserved int64      // bytes of puts under way, not yet in used
	conns    int        // open connections
	repos    map[string]*repoStore
}

// attach counts a new connection; it fails when the client already has
// max. A successful attach must be followed by detach.
func (c *clientStore) attach(max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns >= max {
		return false
	}
	c.conns++
	return true
}

func (c *clientStore) detach() {
	c.mu.Lock()
	c.conns--
	c.mu.Unlock()
}

// tempPrefix starts the names of backend/local's temporary files.
const tempPrefix = backend.TempPrefix

// usage returns the bytes the client's files take. The first call walks
// the client's folder to count them, and removes the temporary files that
// puts cut short by a crash of the server left behind: no put of this
// client can be under way before its first connection has been counted.
func (c *clientStore) usage() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.scanned {
		return c.used, nil
	}
	var used int64
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == c.dir && errors.Is(err, fs.ErrNotExist) {
				return nil // no files yet
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil // folders are walked; links and others are not ours
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			c.logf("peer %s: removed a temporary file left by an interrupted put", c.id.Short())
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		used += fi.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count the files of %s: %w", c.id.Short(), err)
	}
	c.used, c.scanned = used, true
	return used, nil
}

// reserve books delta more bytes for a put of h, failing with ErrQuota
// when they do not fit. settle must follow.
func (c *clientStore) reserve(h backend.Handle, delta int64) error {
	if delta <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.quota > 0 && c.used+c.reserved+delta > c.quota {
		return fmt.Errorf("%w: storing %s (%s) would bring this device's files on the server to %s, over its quota of %s",
			backend.ErrQuota, h, formatBytes(delta), formatBytes(c.used+c.reserved+delta), formatBytes(c.quota))
	}
	c.reserved += delta
	return nil
}

// settle ends a reservation; stored says whether the put succeeded.
func (c *clientStore) settle(delta int64, stored bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if delta > 0 {
		c.reserved -= delta
	}
	if stored {
		c.used += delta
	}
}

// freed accounts for a deleted file.
func (c *clientStore) freed(size int64) {
	c.mu.Lock()
	c.used -= size
	c.mu.Unlock()
}

// repo returns the repository NAME of the client; name must be valid.
func (c *clientStore) repo(name string) *repoStore {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.repos[name]
	if r == nil {
		r = &repoStore{c: c, dir: filepath.Join(c.dir, name), busy: map[backend.Handle]chan struct{}{}}
		c.repos[name] = r
	}
	return r
}

// repoStore is one repository of one client.
type repoStore struct {
	c   *clientStore
	dir string

	mu sync.Mutex // guards be and busy
	// be is nil until the repository's folder exists.
	be *local.Backend
	// busy holds the names with a put or delete under way; the channel
	// is closed when it ends. Serializing them per name keeps the
	// append-only check and the byte count exact.
	busy map[backend.Handle]chan struct{}
}

// backend returns the local backend of the repository's folder, making
// the folder when create is set; it returns nil when the folder does not
// exist and create is not set.
func (r *repoStore) backend(ctx context.Context, create bool) (*local.Backend, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.be != nil {
		return r.be, nil
	}
	be, err := local.Open(ctx, r.dir)
	if err == nil {
		r.be = be
		return be, nil
	}
	if !errors.Is(err, backend.ErrNoRepository) {
		return nil, err
	}
	// A folder without a config still holds files (mirror copies the
	// config late), so it is opened the same way as a new one.
	if !create {
		if fi, err := os.Stat(r.dir); err != nil || !fi.IsDir() {
			return nil, nil
		}
	}
	be, err = local.Create(ctx, r.dir)
	if errors.Is(err, backend.ErrAlreadyExists) {
		be, err = local.Open(ctx, r.dir)
	}
	if err != nil {
		return nil, err
	}
	r.be = be
	return be, nil
}

// lock waits until no put or delete of h is under way and claims h.
func (r *repoStore) lock(ctx context.Context, h backend.Handle) (unlock func(), err error) {
	for {
		r.mu.Lock()
		ch, busy := r.busy[h]
		if !busy {
			ch = make(chan struct{})
			r.busy[h] = ch
			r.mu.Unlock()
			return func() {
				r.mu.Lock()
				delete(r.busy, h)
				r.mu.Unlock()
				close(ch)
			}, nil
		}
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func notExist(h backend.Handle) error { return fmt.Errorf("%s: %w", h, backend.ErrNotExist) }

func (r *repoStore) list(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if !t.Valid() {
		return fmt.Errorf("%w: invalid file type %d", backend.ErrInvalidName, t)
	}
	be, err := r.backend(ctx, false)
	if err != nil || be == nil {
		return err
	}
	return be.List(ctx, t, fn)
}

func (r *repoStore) stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return backend.FileInfo{}, err
	}
	be, err := r.backend(ctx, false)
	if err != nil {
		return backend.FileInfo{}, err
	}
	if be == nil {
		return backend.FileInfo{}, notExist(h)
	}
	return be.Stat(ctx, h)
}

// get hands fn the size of the range and a reader over it.
func (r *repoStore) get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(int64, io.Reader) error) error {
	if err := h.Valid(); err != nil {
		return err
	}
	be, err := r.backend(ctx, false)
	if err != nil {
		return err
	}
	if be == nil {
		return notExist(h)
	}
	return be.Get(ctx, h, length, offset, func(rd io.Reader) error {
		// backend/local hands over an *io.SectionReader, which knows the
		// length of the range it covers even when the range ends early.
		sized, ok := rd.(interface{ Size() int64 })
		if !ok {
			return fmt.Errorf("get %s: internal error: local backend reader has no size", h)
		}
		return fn(sized.Size(), rd)
	})
}

// put stores size bytes read from content under h. When the content has
// been read and hashed, and before the file becomes visible, finish is
// called with its SHA-256 to read and check the client's commit; the file
// is stored only if finish returns nil and, for any file but the config,
// the hash is the file's name.
func (r *repoStore) put(ctx context.Context, h backend.Handle, size int64, content io.Reader, finish func([32]byte) error) error {
	if err := h.Valid(); err != nil {
		return err
	}
	unlock, err := r.lock(ctx, h)
	if err != nil {
		return err
	}
	defer unlock()
	be, err := r.backend(ctx, true)
	if err != nil {
		return err
	}
	var old int64
	damaged := ""
	fi, err := be.Stat(ctx, h)
	switch {
	case err == nil && r.c.mode == ModeAppendOnly:
		damaged, err = r.damage(ctx, be, h, fi.Size, size)
		if err != nil {
			return err
		}
		if damaged == "" {
			return fmt.Errorf("%w: %s exists and this device may not replace it", backend.ErrAppendOnly, h)
		}
		old = fi.Size
	case err == nil:
		old = fi.Size
	case !backend.IsNotExist(err):
		return err
	}
	delta := size - old
	if err := r.c.reserve(h, delta); err != nil {
		return err
	}
	vr := &verifyingReader{h: h, r: content, size: size, hash: sha256.New(), finish: finish}
	err = be.Put(ctx, h, vr)
	r.c.settle(delta, err == nil)
	if err == nil && damaged != "" {
		r.c.logf("peer %s: replaced damaged file %s in repository %q (%s)", r.c.id.Short(), h, filepath.Base(r.dir), damaged)
	}
	return err
}

// damage says how the stored file h of size stored no longer matches its
// name, or "" when it does and so is history an append-only client may
// not replace. A put of size bytes is about to replace it; its content is
// checked against the name as it arrives, so a different size already
// tells: at most one content hashes to the name. Otherwise the stored
// file is read and hashed (at most MaxFileSize bytes, as any put). The
// config's name is no hash: a config is never called damaged.
func (r *repoStore) damage(ctx context.Context, be *local.Backend, h backend.Handle, stored, size int64) (string, error) {
	if h.Type == backend.ConfigFile {
		return "", nil
	}
	if stored != size {
		return fmt.Sprintf("it held %d bytes, its name says %d", stored, size), nil
	}
	hw := sha256.New()
	err := be.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		_, err := io.Copy(hw, io.LimitReader(rd, MaxFileSize+1))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("check %s: %w", h, err)
	}
	var sum [32]byte
	hw.Sum(sum[:0])
	if got := backend.ID(sum); got.String() != h.Name {
		return fmt.Sprintf("its %d bytes hashed to %s", stored, got.Str()), nil
	}
	return "", nil
}

func (r *repoStore) delete(ctx context.Context, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return err
	}
	// Lock files hold no history, and a client that cannot remove its
	// locks leaves them to block every other client.
	if r.c.mode == ModeAppendOnly && h.Type != backend.LockFile {
		return fmt.Errorf("%w: this device may not delete %s", backend.ErrAppendOnly, h)
	}
	unlock, err := r.lock(ctx, h)
	if err != nil {
		return err
	}
	defer unlock()
	be, err := r.backend(ctx, false)
	if err != nil {
		return err
	}
	if be == nil {
		return notExist(h)
	}
	fi, err := be.Stat(ctx, h)
	if err != nil {
		return err
	}
	if err := be.Delete(ctx, h); err != nil {
		return err
	}
	r.c.freed(fi.Size)
	return nil
}

// errShortContent: a put's content ended before its length.
var errShortContent = fmt.Errorf("%w: content ended early", ErrProtocol)

// verifyingReader hands a put's content from the network to
// backend/local's Put, hashing it on the way. Where the content ends it
// checks the hash against the name and lets finish check the client's
// commit; it reports the end (io.EOF) only if both agree, so local's Put
// removes its temporary file instead of renaming it when they do not.
// It can be rewound only before the first byte (local's Put rewinds once
// at the start).
type verifyingReader struct {
	h      backend.Handle
	r      io.Reader
	size   int64
	n      int64
	hash   hash.Hash
	finish func([32]byte) error
	err    error // sticky
}

func (v *verifyingReader) Length() int64 { return v.size }

func (v *verifyingReader) Rewind() error {
	if v.n != 0 {
		return errors.New("content read from the network cannot be rewound")
	}
	return nil
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.n == v.size {
		v.err = v.verify()
		if v.err == nil {
			v.err = io.EOF
		}
		return 0, v.err
	}
	if rest := v.size - v.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	k, err := v.r.Read(p)
	v.hash.Write(p[:k])
	v.n += int64(k)
	if errors.Is(err, io.EOF) {
		err = nil
		if v.n < v.size {
			err = fmt.Errorf("%w: after %d of %d bytes", errShortContent, v.n, v.size)
		}
	}
	if err != nil {
		v.err = err
	}
	return k, err
}

func (v *verifyingReader) verify() error {
	var sum [32]byte
	v.hash.Sum(sum[:0])
	if v.h.Type != backend.ConfigFile && backend.ID(sum).String() != v.h.Name {
		return fmt.Errorf("%w: content hashes to %s", backend.ErrHashMismatch, backend.ID(sum).Str())
	}
	return v.finish(sum)
}

// formatBytes prints a byte count for people.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
