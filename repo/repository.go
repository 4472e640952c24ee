package repo

import (
	"bytes"
	"context"
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
	"github.com/restic/chunker"
)

// Kind bytes bind a sealed file to its type (crypt.SealFile's kind).
const (
	kindConfig byte = 'C'
	kindIndex  byte = 'I'
	kindLock   byte = 'L'
	// KindLogBody seals the body of a snapshot log entry.
	KindLogBody byte = 'B'
)

// maxFileSize caps unpacked files (index, lock, log) before they are read.
const maxFileSize = 256 << 20

// ErrWrongPassword is returned when no key file opens with the password.
var ErrWrongPassword = crypt.ErrWrongPassword

// Options configure Init and Open; the zero value works.
type Options struct {
	// CacheDir is the root of the local cache ($XDG_CACHE_HOME/cairn);
	// empty means no cache.
	CacheDir string
	// Warn receives non-fatal problems (a damaged index file, a broken
	// cache entry). Nil discards them.
	Warn func(msg string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Hostname and Username are recorded in key and lock files.
	Hostname, Username string
	// StateDir is this device's state folder ($XDG_CONFIG_HOME/cairn).
	// Open remembers in it which key file opened each repository and
	// tries that one first next time (see Repository.unlock); empty
	// remembers nothing.
	StateDir string
	// RetryLock is how long Lock keeps trying while another process
	// holds a conflicting lock (restic's --retry-lock); 0 fails at once.
	RetryLock time.Duration
	// IndexInterval is the longest time an uploaded pack waits for an
	// index file to list it (see packer); 0 means DefaultIndexInterval.
	IndexInterval time.Duration
}

// DefaultIndexInterval is how often, at most, a job that uploads packs
// writes an index file for them: a backup killed (or a machine that lost
// power) leaves at most that much upload unindexed, which the next run
// uploads again. Five minutes of uploading at 10 MB/s is 3 GB, at 100
// MB/s 30 GB: the 64-pack bound (indexEvery, 1 GiB of the default packs)
// is then reached first. An index file costs a few hundred bytes per
// pack; one every five minutes is nothing beside the packs.
const DefaultIndexInterval = 5 * time.Minute

func (o *Options) applyDefaults() {
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IndexInterval <= 0 {
		o.IndexInterval = DefaultIndexInterval
	}
}

// InitOptions configure a new repository.
type InitOptions struct {
	Options
	// Compression is the repository's default compression mode.
	Compression CompressionMode
	// PackSize is the target pack size in bytes; 0 means DefaultPackSize.
	PackSize int
	// KDF are the password derivation parameters; zero means
	// crypt.DefaultKDFParams.
	KDF crypt.KDFParams
	// TestOnlyAfterKeyFile, if set, runs between writing the key file and
	// writing the config, so that tests can kill an init there.
	TestOnlyAfterKeyFile func(ctx context.Context)
}

// Repository is an open repository: its keys, config, in-memory index and
// the pipeline that packs new blobs. It is safe for concurrent use.
type Repository struct {
	be    backend.Backend
	keys  *crypt.KeyRing
	keyID backend.ID // the key file that opened the repository
	// keyInfo is keyID's metadata, from its sealed part.
	keyInfo crypt.KeyFileInfo
	// wrapKey is the key the password derived for keyID; it opens the
	// ring records sealed for that key file (rotate.go).
	wrapKey *crypt.Key
	// keysTried counts the key files Open tried the password on.
	keysTried int
	// lastKeyFile is where this device remembers keyID (lastKeyFile()).
	lastKeyFile string
	cfg         Config
	opts        Options
	cache       *cache
	codec       *codec
	idx         *index.Index
	packer      *packer
	// readBufs holds LoadPack's buffers for ranged reads (load.go).
	readBufs readBufPool
	// skippedIndex are the index files LoadIndex could not read or
	// open, sorted.
	skippedIndex []backend.ID
	// supersededIndex are the index files that the loaded or written
	// index files name as superseded: ones a prune or a repair replaced
	// on purpose. Guarded by supersededMu while LoadIndex runs.
	supersededIndex map[backend.ID]bool
	supersededMu    sync.Mutex

	compression CompressionMode
	// packSize is the target size of the packs this Repository writes:
	// the config's, unless SetPackSize changed it.
	packSize int

	// bootID names this machine's current boot (see clock); clockFn,
	// if set, replaces clock (a test seam).
	bootID  string
	clockFn func() clockReading
	// sightMu serialises sightLocks; sightings are the lock sightings
	// of a Repository without a cache.
	sightMu   sync.Mutex
	sightings map[backend.ID]lockSighting
	// heldMu guards held: the exclusive lock taken through this
	// Repository and not yet unlocked, which maintenance plans are
	// checked against (plan.go).
	heldMu sync.Mutex
	held   *Lock

	// locksHeld counts this Repository's Locks not yet unlocked, and
	// lockFree says OpenForJob opened it without a lock on purpose:
	// LoadIndex needs one or the other.
	locksHeld atomic.Int32
	lockFree  bool
}

// Init creates a repository in an empty backend: it writes a key file,
// then the config. It refuses, changing nothing, a backend that holds a
// config, or key files together with data, index or log files.
//
// A backend that holds key files and nothing else is what an init killed
// between its two writes leaves (see CheckInterruptedInit). Init finishes
// that one: it writes the config with the key ring of the key file the
// password opens, and warns that it did. When the password opens none of
// them it fails with an error wrapping crypt.ErrWrongPassword and removes
// nothing.
func Init(ctx context.Context, be backend.Backend, password []byte, opts InitOptions) (*Repository, error) {
	opts.applyDefaults()
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}); err == nil {
		return nil, fmt.Errorf("init %s: %w", be.Location(), ErrAlreadyInitialized)
	} else if !backend.IsNotExist(err) {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	hasKeys, err := hasFiles(ctx, be, backend.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	cfg, err := newConfig(opts.Compression, opts.PackSize)
	if err != nil {
		return nil, err
	}
	r := &Repository{be: be, cfg: cfg, opts: opts.Options, compression: cfg.Compression}
	if hasKeys {
		if err := r.resumeInit(ctx, password); err != nil {
			return nil, err
		}
	} else {
		if r.keys, err = crypt.NewKeyRing(); err != nil {
			return nil, err
		}
		kdf := opts.KDF
		if kdf.Algorithm == "" {
			if kdf, err = crypt.DefaultKDFParams(); err != nil {
				return nil, err
			}
		}
		// The key file goes first: a config without a key would be a
		// repository nobody can open, while a key without a config is
		// what resumeInit finishes.
		if r.keyID, r.keyInfo, r.wrapKey, err = r.writeKeyFile(ctx, password, kdf); err != nil {
			return nil, fmt.Errorf("init: write key: %w", err)
		}
		if opts.TestOnlyAfterKeyFile != nil {
			opts.TestOnlyAfterKeyFile(ctx)
		}
	}
	plain, err := encodeConfig(cfg)
	if err != nil {
		return nil, err
	}
	sealed := r.keys.SealFile(kindConfig, plain)
	h := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	if err := be.Put(ctx, h, backend.NewByteReader(sealed)); err != nil {
		return nil, fmt.Errorf("init: write config: %w", err)
	}
	r.lastKeyFile = lastKeyFile(opts.StateDir, sealed)
	r.rememberKey()
	if err := r.setup(); err != nil {
		return nil, err
	}
	return r, nil
}

// resumeInit takes over the key ring of the key file that an interrupted
// init left, after checking that key files are all the backend holds.
func (r *Repository) resumeInit(ctx context.Context, password []byte) error {
	loc := r.be.Location()
	for _, t := range []backend.FileType{backend.PackFile, backend.IndexFile, backend.LogFile} {
		has, err := hasFiles(ctx, r.be, t)
		if err != nil {
			return fmt.Errorf("init %s: %w", loc, err)
		}
		if has {
			return fmt.Errorf("init %s: %w (key files and %s files present, but no config)", loc, ErrAlreadyInitialized, t)
		}
	}
	if err := r.unlock(ctx, password, "", nil); err != nil {
		if errors.Is(err, crypt.ErrWrongPassword) || errors.Is(err, ErrNoUsableKey) {
			return fmt.Errorf("init %s: an interrupted init left key files, and none opens with this password "+
				"(run init with the password given then, or delete the key files to start over): %w", loc, err)
		}
		return fmt.Errorf("init %s: %w", loc, err)
	}
	r.opts.Warn(fmt.Sprintf("finishing an interrupted initialisation with its key file %s", r.keyID.Str()))
	return nil
}

// hasFiles reports whether be holds any file of type t.
func hasFiles(ctx context.Context, be backend.Backend, t backend.FileType) (bool, error) {
	errFound := errors.New("found")
	err := be.List(ctx, t, func(backend.FileInfo) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// ErrAlreadyInitialized is returned by Init for a location that already
// holds a repository.
var ErrAlreadyInitialized = errors.New("repository already exists")

// ErrInitInterrupted says a location holds what an interrupted init left:
// key files and nothing else, no config. It wraps backend.ErrNoRepository
// (exit status 10); running init again with the same password finishes
// the repository.
var ErrInitInterrupted error = initInterruptedError{}

type initInterruptedError struct{}

func (initInterruptedError) Error() string {
	return "repository initialisation was interrupted; run cairn init again"
}

func (initInterruptedError) Unwrap() error { return backend.ErrNoRepository }

// CheckInterruptedInit returns an error wrapping ErrInitInterrupted when
// the location holds key files and no config, data, index or log file (an
// init killed between writing its key file and its config), and nil
// otherwise, also when looking fails.
func CheckInterruptedInit(ctx context.Context, be backend.Backend) error {
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}); !backend.IsNotExist(err) {
		return nil
	}
	if has, err := hasFiles(ctx, be, backend.KeyFile); err != nil || !has {
		return nil
	}
	for _, t := range []backend.FileType{backend.PackFile, backend.IndexFile, backend.LogFile} {
		if has, err := hasFiles(ctx, be, t); err != nil || has {
			return nil
		}
	}
	return fmt.Errorf("open %s: %w", be.Location(), ErrInitInterrupted)
}

// Open opens an existing repository with a password. A location without a
// config returns an error wrapping backend.ErrNoRepository (and
// ErrInitInterrupted when an interrupted init left it so); a password
// that opens no key file returns crypt.ErrWrongPassword, and a repository
// none of whose key files could be tried ErrNoUsableKey.
//
// Open loads no index: enough for key management, not for a job on the
// repository's data. Such a job opens it with OpenForJob, which locks it
// and then loads the index; LoadIndex refuses to run before a lock.
func Open(ctx context.Context, be backend.Backend, password []byte, opts Options) (*Repository, error) {
	opts.applyDefaults()
	r := &Repository{be: be, opts: opts}
	cfgBytes, err := r.readWhole(ctx, backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}, maxConfigSize)
	if backend.IsNotExist(err) {
		if err := CheckInterruptedInit(ctx, be); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("open %s: %w", be.Location(), backend.ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: read config: %w", be.Location(), err)
	}
	r.lastKeyFile = lastKeyFile(opts.StateDir, cfgBytes)
	var plain []byte
	openConfig := func(ring *crypt.KeyRing) error {
		var err error
		plain, err = ring.OpenFile(kindConfig, cfgBytes)
		return err
	}
	if err := r.unlock(ctx, password, r.lastKeyFile, openConfig); err != nil {
		return nil, err
	}
	if err := r.followRings(ctx); err != nil {
		return nil, err
	}
	r.rememberKey()
	cfg, err := decodeConfig(plain)
	if err != nil {
		return nil, err
	}
	r.cfg = cfg
	r.compression = cfg.Compression
	if err := r.setup(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Repository) setup() error {
	r.packSize = r.cfg.PackSize
	c, err := newCodec()
	if err != nil {
		return err
	}
	r.codec = c
	r.idx = index.New()
	r.bootID = bootID()
	if r.opts.CacheDir != "" {
		r.cache = newCache(r.opts.CacheDir, r.cfg.ID, r.opts.Warn)
		r.cache.touch(r.opts.Now())
	}
	r.packer = newPacker(r)
	return nil
}

// Close stops the packer (discarding unflushed blobs: call Flush first)
// and releases resources. It does not close the backend.
func (r *Repository) Close() error {
	if r.packer != nil {
		r.packer.close()
	}
	if r.codec != nil {
		r.codec.close()
	}
	return nil
}

// Backend returns the storage the repository lives in.
func (r *Repository) Backend() backend.Backend { return r.be }

// Config returns the repository configuration.
func (r *Repository) Config() Config { return r.cfg }

// ChunkerPolynomial is the secret polynomial for content-defined chunking.
func (r *Repository) ChunkerPolynomial() chunker.Pol { return r.cfg.ChunkerPolynomial }

// Keys returns the master key ring.
func (r *Repository) Keys() *crypt.KeyRing { return r.keys }

// KeyFileID is the key file that opened the repository.
func (r *Repository) KeyFileID() backend.ID { return r.keyID }

// Index returns the in-memory index.
func (r *Repository) Index() *index.Index { return r.idx }

// SetCompression overrides the config's compression mode for blobs saved
// from now on.
func (r *Repository) SetCompression(m CompressionMode) { r.compression = m }

// SetPackSize sets the target size of the packs this Repository writes,
// in bytes, from MinPackSize to MaxPackSize (restic's --pack-size); the
// repository's config is unchanged. Packs may come out up to one blob
// larger. Each data pack being filled or uploaded holds a buffer of that
// size: with the default two upload slots, 128 MiB packs cost about
// 260 MiB of memory. It must be called before any blob is saved.
func (r *Repository) SetPackSize(n int) error {
	if n < MinPackSize || n > MaxPackSize {
		return fmt.Errorf("pack size %d bytes is not between %d and %d", n, MinPackSize, MaxPackSize)
	}
	r.packSize = n
	return nil
}

// Has reports whether the blob is in the index or already queued.
func (r *Repository) Has(t pack.BlobType, id backend.ID) bool {
	return r.idx.Has(t, id) || r.packer.pending(t, id)
}

// Lookup finds where a blob is stored.
func (r *Repository) Lookup(t pack.BlobType, id backend.ID) (index.PackedBlob, bool) {
	return r.idx.Lookup(t, id)
}

// readWhole reads a whole file, refusing one larger than limit.
func (r *Repository) readWhole(ctx context.Context, h backend.Handle, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	err := r.be.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		buf.Reset()
		// A reader that knows its size (the local backend's) gets a
		// buffer of that size up front instead of a dozen regrowths.
		if s, ok := rd.(interface{ Size() int64 }); ok && s.Size() >= 0 && s.Size() <= limit {
			buf.Grow(int(s.Size()) + bytes.MinRead)
		}
		n, err := io.Copy(&buf, io.LimitReader(rd, limit+1))
		if err != nil {
			return err
		}
		if n > limit {
			return fmt.Errorf("%w: %s larger than %d bytes", ErrFormat, h, limit)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ErrDamaged is wrapped by errors about a file whose bytes do not hash to
// its name or do not authenticate.
var ErrDamaged = errors.New("damaged")

// LoadFile reads a content-addressed file, checks its hash against its
// name and, for sealed types, opens it. Key and log files are returned as
// stored (they are not sealed as a whole).
func (r *Repository) LoadFile(ctx context.Context, t backend.FileType, id backend.ID) ([]byte, error) {
	h := backend.Handle{Type: t, Name: id.String()}
	data, err := r.readWhole(ctx, h, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	if backend.Hash(data) != id {
		return nil, fmt.Errorf("load %s: %w: content does not match its name", h, ErrDamaged)
	}
	kind, sealed := kindOf(t)
	if !sealed {
		return data, nil
	}
	plain, err := r.keys.OpenFile(kind, data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w: %v", h, ErrDamaged, err)
	}
	return plain, nil
}

// SaveFile seals plaintext (for sealed types) and stores it under the hash
// of the stored bytes, which it returns.
func (r *Repository) SaveFile(ctx context.Context, t backend.FileType, plaintext []byte) (backend.ID, error) {
	data := plaintext
	if kind, sealed := kindOf(t); sealed {
		data = r.keys.SealFile(kind, plaintext)
	}
	id := backend.Hash(data)
	h := backend.Handle{Type: t, Name: id.String()}
	if err := r.be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		return id, fmt.Errorf("save %s: %w", h, err)
	}
	return id, nil
}

// DeleteFile removes a file from the backend.
func (r *Repository) DeleteFile(ctx context.Context, t backend.FileType, id backend.ID) error {
	h := backend.Handle{Type: t, Name: id.String()}
	if err := r.be.Delete(ctx, h); err != nil {
		return fmt.Errorf("delete %s: %w", h, err)
	}
	return nil
}

// ListFiles calls fn for every well-named file of type t.
func (r *Repository) ListFiles(ctx context.Context, t backend.FileType, fn func(id backend.ID, size int64) error) error {
	return r.be.List(ctx, t, func(fi backend.FileInfo) error {
		id, err := backend.ParseID(fi.Name)
		if err != nil {
			return nil
		}
		return fn(id, fi.Size)
	})
}

func kindOf(t backend.FileType) (byte, bool) {
	switch t {
	case backend.IndexFile:
		return kindIndex, true
	case backend.LockFile:
		return kindLock, true
	case backend.MetaFile:
		return kindMeta, true
	}
	return 0, false
}
