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

// InodeCost is what each file and each folder of a client counts against
// its quota on top of the file's bytes: a file system spends an inode
// and, for all but the smallest files, at least one 4 KiB block on each,
// so a client storing many tiny files or folders costs the server far more
// than their bytes.
const InodeCost = 4 << 10

// store is the server's storage: under its root, one folder per client
// named by the client's peer ID, and in it one folder per repository NAME,
// each in backend/local's layout. It keeps each client's cost for the
// quota (bytes, files and folders), bounds its repositories and applies
// its mode. It is the place where gossip of signed heads and background
// scrubbing will live.
type store struct {
	root     string
	maxRepos int
	logf     func(format string, args ...any)

	mu      sync.Mutex // guards clients
	clients map[crypt.PeerID]*clientStore
}

func newStore(root string, maxRepos int, logf func(string, ...any)) *store {
	return &store{root: root, maxRepos: maxRepos, logf: logf, clients: map[crypt.PeerID]*clientStore{}}
}

// client returns the state of one client, made on first use, with its
// mode and quota set to p's.
func (s *store) client(id crypt.PeerID, p friendPolicy) *clientStore {
	s.mu.Lock()
	c := s.clients[id]
	if c == nil {
		c = &clientStore{
			id: id, dir: filepath.Join(s.root, id.String()), maxRepos: s.maxRepos,
			logf: s.logf, repos: map[string]*repoStore{},
		}
		s.clients[id] = c
	}
	s.mu.Unlock()
	c.setPolicy(p)
	return c
}

// update sets the mode and quota of the clients known so far from
// friends (a reloaded peers file): connections under way see the change
// at their next request. A client no longer listed keeps its folder and
// its open connections; new ones are refused.
func (s *store) update(friends map[crypt.PeerID]friendPolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.clients {
		if p, ok := friends[id]; ok {
			c.setPolicy(p)
		}
	}
}

// friendPolicy is what one client may do and store.
type friendPolicy struct {
	mode  Mode
	quota int64 // 0: none
}

func (c *clientStore) setPolicy(p friendPolicy) {
	c.mu.Lock()
	c.mode, c.quota = p.mode, p.quota
	c.mu.Unlock()
}

// policy returns the client's mode and quota.
func (c *clientStore) policy() friendPolicy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return friendPolicy{mode: c.mode, quota: c.quota}
}

// clientStore is one client's folder.
type clientStore struct {
	id       crypt.PeerID
	dir      string
	maxRepos int
	logf     func(format string, args ...any)

	// change is held shared across each change to the client's folder
	// together with its accounting (a file renamed into place or deleted,
	// a folder made), and exclusively by a count, so a count never sees a
	// change whose cost is not yet booked, or the reverse.
	change sync.RWMutex
	// mkdir serializes the making of folders, so that two puts into a
	// missing folder make it, and pay for it, once.
	mkdir sync.Mutex

	mu        sync.Mutex // guards the fields below
	mode      Mode       // what the client may do; a reloaded peers file changes it
	quota     int64      // 0: none; a reloaded peers file changes it
	counted   bool       // used and repoCount have been counted from the disk
	used      int64      // the cost of the client's files and folders
	reserved  int64      // the cost of puts and folders under way, not yet in used
	repoCount int        // repository folders
	conns     int        // open connections
	repos     map[string]*repoStore
	verifying bool // a verify (opVerify) of one of its repositories runs

	// scrubMu guards the scrub state files of the client's repositories.
	scrubMu sync.Mutex
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

// usageCount is what a count found in a client's folder.
type usageCount struct {
	repos, files, folders, others int64 // others: entries neither file nor folder (links)
	bytes                         int64 // of the files
	temps                         int   // temporary files removed
}

// cost is what the counted entries count against the quota.
func (u usageCount) cost() int64 {
	return u.bytes + InodeCost*(u.files+u.folders+u.others)
}

// usage returns the cost of the client's files and folders, counting them
// first if that has not been done (the count at the server's start
// failed).
func (c *clientStore) usage() (int64, error) {
	c.mu.Lock()
	counted, used := c.counted, c.used
	c.mu.Unlock()
	if counted {
		return used, nil
	}
	if _, err := c.count(true); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, nil
}

// count walks the client's folder and sets its cost and repository count
// from what it holds. With removeTemp it removes the temporary files of
// puts a crash of the server cut short, which only the count made before
// any put of the client can be under way may do: it then returns at once
// if the client has been counted already. Without it, temporary files are
// left alone and not counted: the puts writing them have booked their
// cost.
func (c *clientStore) count(removeTemp bool) (usageCount, error) {
	c.change.Lock()
	defer c.change.Unlock()
	if removeTemp {
		c.mu.Lock()
		counted := c.counted
		c.mu.Unlock()
		if counted {
			return usageCount{}, nil
		}
	}
	var u usageCount
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == c.dir && errors.Is(err, fs.ErrNotExist) {
				return nil // no files yet
			}
			return err
		}
		switch {
		case d.IsDir():
			u.folders++
			if filepath.Dir(p) == c.dir && ValidName(d.Name()) == nil {
				u.repos++
			}
		case d.Type().IsRegular() && strings.HasPrefix(d.Name(), tempPrefix):
			if !removeTemp {
				return nil
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			u.temps++
		case d.Type().IsRegular():
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			u.files++
			u.bytes += fi.Size()
		default:
			u.others++ // a link or other entry is not ours, but takes an inode
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("count the files of %s: %w", c.id.Short(), err)
	}
	if u.temps > 0 {
		c.logf("peer %s: removed %d temporary file(s) left by puts a crash of the server interrupted", c.id.Short(), u.temps)
	}
	c.mu.Lock()
	c.used, c.repoCount, c.counted = u.cost(), int(u.repos), true
	c.mu.Unlock()
	return u, nil
}

// reserve books cost more for a put of h, or a folder it needs, failing
// with ErrQuota when it does not fit. settle must follow.
func (c *clientStore) reserve(h backend.Handle, what string, cost int64) error {
	if cost <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.quota > 0 && c.used+c.reserved+cost > c.quota {
		return fmt.Errorf("%w: storing %s (%s) would bring this device's use of the server to %s, over its quota of %s",
			backend.ErrQuota, what, formatBytes(cost), formatBytes(c.used+c.reserved+cost), formatBytes(c.quota))
	}
	c.reserved += cost
	return nil
}

// settle ends a reservation; stored says whether the change was made.
func (c *clientStore) settle(cost int64, stored bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cost > 0 {
		c.reserved -= cost
	}
	if stored {
		c.used += cost
	}
}

// freed accounts for a deleted file.
func (c *clientStore) freed(cost int64) {
	c.mu.Lock()
	c.used -= cost
	c.mu.Unlock()
}

// repo returns the repository NAME of the client, which must be valid,
// for one connection; release must follow when the connection ends.
func (c *clientStore) repo(name string) *repoStore {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.repos[name]
	if r == nil {
		dir := filepath.Join(c.dir, name)
		r = &repoStore{c: c, name: name, dir: dir, be: local.New(dir), busy: map[backend.Handle]chan struct{}{}}
		c.repos[name] = r
	}
	r.refs++
	return r
}

// release ends what repo began: the state of a repository no connection
// uses is dropped, so a client cycling through names costs no memory.
func (c *clientStore) release(r *repoStore) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.refs--; r.refs == 0 {
		delete(c.repos, r.name)
	}
}

// repoStore is one repository of one client.
type repoStore struct {
	c    *clientStore
	name string
	dir  string
	// be stores the files; it makes no folder (see makeDirs).
	be   *local.Backend
	refs int // connections using it; guarded by c.mu

	mu sync.Mutex // guards busy
	// busy holds the names with a put or delete under way; the channel
	// is closed when it ends. Serializing them per name keeps the
	// append-only check and the accounting exact.
	busy map[backend.Handle]chan struct{}
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

// dirsOf lists the folders that hold h, outermost first: the client's,
// the repository's, the file type's and, for a pack, its subfolder.
func (r *repoStore) dirsOf(h backend.Handle) []string {
	dirs := []string{r.c.dir, r.dir}
	if h.Type != backend.ConfigFile {
		dirs = append(dirs, filepath.Join(r.dir, h.Type.Dir()))
	}
	if h.Type == backend.PackFile {
		dirs = append(dirs, filepath.Join(r.dir, h.Type.Dir(), backend.PackDir(h.Name)))
	}
	return dirs
}

// makeDirs makes the folders that will hold h and do not exist yet, each
// counted against the quota like a file; a new repository folder must
// also fit within the client's bound on repositories. Folders are made
// only for a put, so a repository costs the folders its files need and
// no more.
func (r *repoStore) makeDirs(h backend.Handle) error {
	dirs := r.dirsOf(h)
	if fi, err := os.Stat(dirs[len(dirs)-1]); err == nil && fi.IsDir() {
		return nil
	}
	c := r.c
	c.mkdir.Lock()
	defer c.mkdir.Unlock()
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("put %s: %s is not a folder", h, d)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("put %s: %w", h, err)
		}
		if err := r.makeDir(h, d); err != nil {
			return err
		}
	}
	return nil
}

// makeDir makes the folder d for a put of h; c.mkdir is held.
func (r *repoStore) makeDir(h backend.Handle, d string) error {
	c := r.c
	c.change.RLock()
	defer c.change.RUnlock()
	newRepo := d == r.dir
	if newRepo {
		c.mu.Lock()
		n := c.repoCount
		c.mu.Unlock()
		if n >= c.maxRepos {
			return fmt.Errorf("%w: this device keeps %d repositories on this server, its limit; %q would be one more",
				backend.ErrQuota, n, r.name)
		}
	}
	what := "the folder for " + h.String()
	if newRepo {
		what = fmt.Sprintf("repository %q", r.name)
	}
	if err := c.reserve(h, what, InodeCost); err != nil {
		return err
	}
	err := local.MakeDir(d)
	c.settle(InodeCost, err == nil)
	if err != nil {
		return fmt.Errorf("put %s: make folder: %w", h, err)
	}
	if newRepo {
		c.mu.Lock()
		c.repoCount++
		c.mu.Unlock()
	}
	return nil
}

func (r *repoStore) list(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if !t.Valid() {
		return fmt.Errorf("%w: invalid file type %d", backend.ErrInvalidName, t)
	}
	return r.be.List(ctx, t, fn)
}

func (r *repoStore) stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return backend.FileInfo{}, err
	}
	return r.be.Stat(ctx, h)
}

// get hands fn the size of the range and a reader over it.
func (r *repoStore) get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(int64, io.Reader) error) error {
	if err := h.Valid(); err != nil {
		return err
	}
	return r.be.Get(ctx, h, length, offset, func(rd io.Reader) error {
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
	exists := false
	var old int64
	damaged := ""
	fi, err := r.be.Stat(ctx, h)
	switch {
	case err == nil && r.c.policy().mode == ModeAppendOnly:
		damaged, err = r.damage(ctx, h, fi.Size, size)
		if err != nil {
			return err
		}
		if damaged == "" {
			return fmt.Errorf("%w: %s exists and this device may not replace it", backend.ErrAppendOnly, h)
		}
		exists, old = true, fi.Size
	case err == nil:
		exists, old = true, fi.Size
	case !backend.IsNotExist(err):
		return err
	}
	cost := size - old
	if !exists {
		if err := r.makeDirs(h); err != nil {
			return err
		}
		cost += InodeCost
	}
	if err := r.c.reserve(h, h.String(), cost); err != nil {
		return err
	}
	vr := &verifyingReader{h: h, r: content, size: size, hash: sha256.New(), finish: finish, change: &r.c.change}
	err = r.be.Put(ctx, h, vr)
	r.c.settle(cost, err == nil)
	if vr.locked {
		r.c.change.RUnlock()
	}
	if err == nil && damaged != "" {
		r.c.logf("peer %s: replaced damaged file %s in repository %q (%s)", r.c.id.Short(), h, r.name, damaged)
	}
	if err == nil {
		r.unquarantine(h)
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
func (r *repoStore) damage(ctx context.Context, h backend.Handle, stored, size int64) (string, error) {
	if h.Type == backend.ConfigFile {
		return "", nil
	}
	if stored != size {
		return fmt.Sprintf("it held %d bytes, its name says %d", stored, size), nil
	}
	hw := sha256.New()
	err := r.be.Get(ctx, h, 0, 0, func(rd io.Reader) error {
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
	if r.c.policy().mode == ModeAppendOnly && h.Type != backend.LockFile {
		return fmt.Errorf("%w: this device may not delete %s", backend.ErrAppendOnly, h)
	}
	unlock, err := r.lock(ctx, h)
	if err != nil {
		return err
	}
	defer unlock()
	fi, err := r.be.Stat(ctx, h)
	if err != nil {
		return err
	}
	r.c.change.RLock()
	defer r.c.change.RUnlock()
	if err := r.be.Delete(ctx, h); err != nil {
		return err
	}
	r.c.freed(fi.Size + InodeCost)
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
	// change is taken shared once the content is verified and until the
	// caller has booked the file's cost, since local's Put renames the
	// file into place after its last read; locked says it was.
	change *sync.RWMutex
	locked bool
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
			v.change.RLock()
			v.locked = true
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
func formatBytes(n int64) string { return backend.FormatSize(uint64(max(n, 0)), 1) }
