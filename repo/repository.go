package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// maxKeyFiles bounds how many key files Open tries, each costing a KDF run.
const maxKeyFiles = 20

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
	// NoIndex makes Open skip loading the index; the caller must call
	// LoadIndex before it saves or loads blobs. A command that locks the
	// repository opens it so, locks, then loads the index: an index read
	// before the lock could predate a prune that ran in between, and a
	// backup trusting it would skip uploading data that prune deleted.
	NoIndex bool
}

func (o *Options) applyDefaults() {
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	if o.Now == nil {
		o.Now = time.Now
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
}

// Repository is an open repository: its keys, config, in-memory index and
// the pipeline that packs new blobs. It is safe for concurrent use.
type Repository struct {
	be     backend.Backend
	keys   *crypt.KeyRing
	keyID  backend.ID // the key file that opened the repository
	cfg    Config
	opts   Options
	cache  *cache
	codec  *codec
	idx    *index.Index
	packer *packer
	// readBufs holds LoadPack's buffers for ranged reads (load.go).
	readBufs readBufPool
	// skippedIndex are the index files LoadIndex could not read or
	// open, sorted.
	skippedIndex []backend.ID

	compression CompressionMode
}

// Init creates a repository in an empty backend. It refuses a backend that
// already holds a config or key files, and changes nothing then.
func Init(ctx context.Context, be backend.Backend, password []byte, opts InitOptions) (*Repository, error) {
	opts.applyDefaults()
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}); err == nil {
		return nil, fmt.Errorf("init %s: %w", be.Location(), ErrAlreadyInitialized)
	} else if !backend.IsNotExist(err) {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	hasKeys := false
	if err := be.List(ctx, backend.KeyFile, func(backend.FileInfo) error { hasKeys = true; return nil }); err != nil {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	if hasKeys {
		return nil, fmt.Errorf("init %s: %w (key files present)", be.Location(), ErrAlreadyInitialized)
	}
	cfg, err := newConfig(opts.Compression, opts.PackSize)
	if err != nil {
		return nil, err
	}
	ring, err := crypt.NewKeyRing()
	if err != nil {
		return nil, err
	}
	kdf := opts.KDF
	if kdf.Algorithm == "" {
		if kdf, err = crypt.DefaultKDFParams(); err != nil {
			return nil, err
		}
	}
	r := &Repository{be: be, keys: ring, cfg: cfg, opts: opts.Options, compression: cfg.Compression}
	// The key file goes first: a config without a key would be a
	// repository nobody can open, a key without config is harmless.
	keyID, err := r.writeKeyFile(ctx, password, kdf)
	if err != nil {
		return nil, fmt.Errorf("init: write key: %w", err)
	}
	r.keyID = keyID
	plain, err := encodeConfig(cfg)
	if err != nil {
		return nil, err
	}
	sealed := ring.SealFile(kindConfig, plain)
	h := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	if err := be.Put(ctx, h, backend.NewByteReader(sealed)); err != nil {
		return nil, fmt.Errorf("init: write config: %w", err)
	}
	if err := r.setup(); err != nil {
		return nil, err
	}
	return r, nil
}

// ErrAlreadyInitialized is returned by Init for a location that already
// holds a repository.
var ErrAlreadyInitialized = errors.New("repository already exists")

// Open opens an existing repository with a password. A location without a
// config returns an error wrapping backend.ErrNoRepository; a password
// that opens no key file returns ErrWrongPassword. Open loads the index
// unless opts.NoIndex is set.
func Open(ctx context.Context, be backend.Backend, password []byte, opts Options) (*Repository, error) {
	opts.applyDefaults()
	r := &Repository{be: be, opts: opts}
	cfgBytes, err := r.readWhole(ctx, backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}, maxConfigSize)
	if backend.IsNotExist(err) {
		return nil, fmt.Errorf("open %s: %w", be.Location(), backend.ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: read config: %w", be.Location(), err)
	}
	if err := r.unlockKeys(ctx, password); err != nil {
		return nil, err
	}
	plain, err := r.keys.OpenFile(kindConfig, cfgBytes)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	cfg, err := decodeConfig(plain)
	if err != nil {
		return nil, err
	}
	r.cfg = cfg
	r.compression = cfg.Compression
	if err := r.setup(); err != nil {
		return nil, err
	}
	if opts.NoIndex {
		return r, nil
	}
	if err := r.LoadIndex(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Repository) setup() error {
	c, err := newCodec()
	if err != nil {
		return err
	}
	r.codec = c
	r.idx = index.New()
	if r.opts.CacheDir != "" {
		r.cache = newCache(r.opts.CacheDir, r.cfg.ID, r.opts.Warn)
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
	}
	return 0, false
}
