package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/backend"
)

var _ backend.Backend = (*Backend)(nil)

// PartSize is the size of the parts of a multipart upload, and so the
// threshold: a file of up to PartSize bytes goes up in one PUT, a larger
// one in parts of PartSize. cairn's packs are 16 MiB by default and may
// pass that by a MiB (repo's packSlack) and their header, so 32 MiB
// sends each of them in one request; a larger --pack-size uses multipart,
// holding one part in memory per upload.
const PartSize = 32 << 20

// Connections is how many requests may run at once: enough to fill a
// fast uplink with 16 MiB packs, few enough for a small self-hosted
// engine (restic uses 5).
const Connections = 8

// Backend stores a repository in an S3 bucket, under a prefix. Its
// objects are named as a local repository's files are: PREFIX/config,
// PREFIX/keys/NAME, PREFIX/data/NN/NAME, ...
type Backend struct {
	cl       *minio.Client
	core     minio.Core
	cfg      Config
	tr       *http.Transport
	region   string // the configured region, "" when the service is asked
	listPage int    // objects per listing request; 0: the service's default (1000)
	// clock reads the time for RemoveStaleTemp (a test moves it on).
	clock func() time.Time
}

// retries is minio-go's attempts per request: 1, none of its own, since
// the retry wrapper every remote backend gets (cmd/cairn remote) retries
// with backoff and reports each retry; stacking minio-go's ten under it
// would multiply the attempts.
const retries = 1

// connect makes the client, without a request.
func connect(cfg Config) (*Backend, error) {
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg, err)
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, backend.Permanent(fmt.Errorf("%s: s3.ca-file: %w", cfg, err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, backend.Permanent(fmt.Errorf("%s: s3.ca-file %s holds no PEM certificate", cfg, cfg.CAFile))
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	region := cfg.Region
	if region == "" {
		region = awsRegion()
	}
	lookup := minio.BucketLookupAuto
	switch cfg.Lookup {
	case LookupPath:
		lookup = minio.BucketLookupPath
	case LookupDNS:
		lookup = minio.BucketLookupDNS
	}
	cl, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        awsCredentials(),
		Secure:       cfg.Secure,
		Transport:    tr,
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   retries,
	})
	if err != nil {
		return nil, backend.Permanent(fmt.Errorf("%s: %w", cfg, err))
	}
	return &Backend{cl: cl, core: minio.Core{Client: cl}, cfg: cfg, tr: tr, region: region, clock: time.Now}, nil
}

var configHandle = backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}

// Open returns the backend of the repository at cfg. A bucket or prefix
// without a config gives an error wrapping backend.ErrNoRepository.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := OpenDir(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := b.Stat(ctx, configHandle); err != nil {
		if backend.IsNotExist(err) {
			return nil, fmt.Errorf("open %s: %w", cfg, backend.ErrNoRepository)
		}
		return nil, fmt.Errorf("open %s: %w", cfg, err)
	}
	return b, nil
}

// OpenDir returns the backend of cfg's bucket and prefix, whatever they
// hold; it creates nothing. A missing bucket gives an error wrapping
// backend.ErrNoRepository.
func OpenDir(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	ok, err := b.cl.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg, classify(err))
	}
	if !ok {
		return nil, fmt.Errorf("open %s: bucket %s does not exist: %w", cfg, cfg.Bucket, backend.ErrNoRepository)
	}
	return b, nil
}

// Create prepares cfg for a new repository: it makes the bucket when it is
// missing (in the configured region) and writes no object; the caller
// stores the config. It refuses, with an error wrapping
// backend.ErrAlreadyExists, a prefix that holds a config already.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	ok, err := b.cl.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg, classify(err))
	}
	if !ok {
		err := b.cl.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: b.region})
		if err != nil {
			code := minio.ToErrorResponse(err).Code
			if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return nil, fmt.Errorf("create %s: make bucket: %w", cfg, classify(err))
			}
		}
	}
	switch _, err := b.Stat(ctx, configHandle); {
	case err == nil:
		return nil, fmt.Errorf("create %s: a repository's config is there: %w", cfg, backend.ErrAlreadyExists)
	case !backend.IsNotExist(err):
		return nil, fmt.Errorf("create %s: %w", cfg, err)
	}
	return b, nil
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.cfg.String() }

// Properties implements backend.Backend. A PUT replaces an object
// atomically.
func (b *Backend) Properties() backend.Properties {
	return backend.Properties{Connections: Connections, HasAtomicReplace: true}
}

// key is the object name of h.
func (b *Backend) key(h backend.Handle) string {
	if b.cfg.Prefix == "" {
		return backend.FilePath(h)
	}
	return b.cfg.Prefix + "/" + backend.FilePath(h)
}

// dir is the key prefix of the objects of type t, ending in "/".
func (b *Backend) dir(t backend.FileType) string {
	if b.cfg.Prefix == "" {
		return t.Dir() + "/"
	}
	return b.cfg.Prefix + "/" + t.Dir() + "/"
}

// List implements backend.Backend. It pages through the listing (1000
// objects a request on most services) and skips objects whose names are
// not valid for t, or, for packs, lie in the wrong subfolder.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := backend.CheckType(ctx, t); err != nil {
		return err
	}
	if t == backend.ConfigFile {
		fi, err := b.Stat(ctx, configHandle)
		if backend.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return fn(fi)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing goroutine when fn stops early
	dir := b.dir(t)
	objs := b.cl.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true, MaxKeys: b.listPage})
	for o := range objs {
		if o.Err != nil {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %s: %w", t, err)
			}
			return fmt.Errorf("list %s: %w", t, classify(o.Err))
		}
		rel := strings.TrimPrefix(o.Key, dir)
		sub, name := "", rel
		if t == backend.PackFile {
			var ok bool
			if sub, name, ok = strings.Cut(rel, "/"); !ok || !backend.IsPackDir(sub) {
				continue
			}
		}
		if strings.Contains(name, "/") || !backend.Lists(t, sub, name) {
			continue
		}
		if err := fn(backend.FileInfo{Name: name, Size: o.Size}); err != nil {
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
	oi, err := b.cl.StatObject(ctx, b.cfg.Bucket, b.key(h), minio.StatObjectOptions{})
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, classify(err))
	}
	return backend.FileInfo{Name: h.Name, Size: oi.Size}, nil
}

// Get implements backend.Backend with one ranged GET. A range that starts
// at or past the end (the service answers 416) yields no bytes.
func (b *Backend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) (err error) {
	if err := backend.CheckHandle(ctx, "get", h); err != nil {
		return err
	}
	if length < 0 || offset < 0 {
		return backend.Permanent(fmt.Errorf("get %s: invalid range: offset %d, length %d", h, offset, length))
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+int64(length)-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return backend.Permanent(fmt.Errorf("get %s: %w", h, err))
	}
	body, _, _, err := b.core.GetObject(ctx, b.cfg.Bucket, b.key(h), opts)
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode == http.StatusRequestedRangeNotSatisfiable {
			// The object is there: the range lies past its end.
			return fn(strings.NewReader(""))
		}
		return fmt.Errorf("get %s: %w", h, classify(err))
	}
	defer func() { _ = body.Close() }() // a read body's close has nothing to report
	if err := fn(body); err != nil {
		return fmt.Errorf("get %s: %w", h, err)
	}
	return nil
}

// Put implements backend.Backend: one PUT up to PartSize bytes, a
// multipart upload above (which minio-go aborts when it fails). The
// service makes the object visible only once it is whole. The content is
// checked as it goes: a reader that ends early, holds more than its
// length or fails makes the request fail before its last byte is sent, so
// nothing is stored.
func (b *Backend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	size, err := backend.CheckPut(ctx, h, rd)
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{
		PartSize:    PartSize,
		ContentType: "application/octet-stream",
		NumThreads:  1,
	}
	if h.Type == backend.PackFile {
		opts.StorageClass = b.cfg.StorageClass
	}
	src := &exactReader{r: backend.NewContextReader(ctx, rd), left: size}
	_, err = b.cl.PutObject(ctx, b.cfg.Bucket, b.key(h), src, size, opts)
	if err != nil {
		if src.err != nil {
			return fmt.Errorf("put %s: %w", h, src.err)
		}
		return fmt.Errorf("put %s: %w", h, classify(err))
	}
	if src.left != 0 || src.err != nil {
		// minio-go returned without reading it all: refuse to call
		// that stored.
		return fmt.Errorf("put %s: content not sent whole (%d bytes left)", h, src.left)
	}
	return nil
}

// Delete implements backend.Backend. The object is looked up first,
// since S3 answers a delete of a missing object with success. On a
// versioned bucket the current version itself is removed, so that prune
// frees the space; a version that object lock retains is refused by the
// service, and the error wraps backend.ErrRetained (which matches
// backend.ErrAppendOnly too).
func (b *Backend) Delete(ctx context.Context, h backend.Handle) error {
	if err := backend.CheckHandle(ctx, "delete", h); err != nil {
		return err
	}
	key := b.key(h)
	oi, err := b.cl.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("delete %s: %w", h, classify(err))
	}
	err = b.cl.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: oi.VersionID})
	if err != nil {
		if isRetained(err) {
			return fmt.Errorf("delete %s: %w (%s)", h, backend.ErrRetained, minio.ToErrorResponse(err).Message)
		}
		return fmt.Errorf("delete %s: %w", h, classify(err))
	}
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error {
	b.tr.CloseIdleConnections()
	return nil
}

// isRetained reports whether a delete was refused by object lock: MinIO
// answers 400 InvalidRequest "Object is WORM protected and cannot be
// overwritten", AWS 403 AccessDenied with a message about retention or
// object lock (neither has a code of its own for it).
func isRetained(err error) bool {
	e := minio.ToErrorResponse(err)
	if e.StatusCode < 400 || e.StatusCode >= 500 {
		return false
	}
	m := strings.ToLower(e.Message)
	return e.Code == "ObjectLocked" || strings.Contains(m, "worm") || strings.Contains(m, "retention") || strings.Contains(m, "object lock")
}

// classify maps an error of minio-go to the backend's: a missing object
// wraps ErrNotExist, a missing bucket ErrNoRepository, refused credentials
// and other request errors are marked permanent; throttling (503 SlowDown,
// 429), 5xx and connection errors are left for the retry wrapper. The
// message is the service's, without the request's headers or keys.
func classify(err error) error {
	e := minio.ToErrorResponse(err)
	if e.Code == "" && e.StatusCode == 0 {
		return err
	}
	msg := e.Code
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.StatusCode != 0 {
		msg = fmt.Sprintf("%s (HTTP %d)", msg, e.StatusCode)
	}
	plain := errors.New(msg)
	switch {
	case e.Code == "NoSuchKey" || e.Code == "NotFound" || e.StatusCode == http.StatusNotFound && e.Code != "NoSuchBucket":
		return fmt.Errorf("%w (%s)", backend.ErrNotExist, msg)
	case e.Code == "NoSuchBucket":
		return fmt.Errorf("%w (%s)", backend.ErrNoRepository, msg)
	case e.StatusCode == http.StatusForbidden || e.StatusCode == http.StatusUnauthorized:
		return backend.Permanent(plain)
	case e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500:
		return plain
	case e.StatusCode >= 400:
		return backend.Permanent(plain)
	}
	return plain
}

// exactReader hands on exactly left bytes of r and checks, before handing
// on the last of them, that r ends there: a reader with more bytes than
// its length, or fewer, fails the upload while it is still incomplete.
type exactReader struct {
	r    io.Reader
	left int64
	err  error // the first error, sticky
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err != nil && err != io.EOF:
		e.err = err
		return 0, err
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("content ended %d bytes short of its length", e.left)
		return 0, e.err
	case e.left == 0:
		var one [1]byte
		m, err := io.ReadFull(e.r, one[:])
		if m > 0 {
			e.err = errors.New("content is longer than its length")
			return 0, e.err
		}
		if err != io.EOF {
			e.err = fmt.Errorf("reading past the end: %w", err)
			return 0, e.err
		}
	}
	return n, nil
}
