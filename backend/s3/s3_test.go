package s3

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/s3/miniotest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	miniotest.CloseShared()
	os.Exit(code)
}

// newTestBackend creates a repository location in a fresh bucket of the
// shared server, under a prefix.
func newTestBackend(t *testing.T, srv *miniotest.Server) *Backend {
	t.Helper()
	miniotest.SetEnv(t)
	cfg, err := ParseLocation(srv.Location(srv.Bucket(t, false), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSuite runs the conformance suite on MinIO: one node, four drives,
// erasure-coded.
func TestSuite(t *testing.T) {
	srv := miniotest.Shared(t)
	backendtest.RunTests(t, func(t *testing.T) backend.Backend { return newTestBackend(t, srv) })
}

func putBytes(t *testing.T, be backend.Backend, ft backend.FileType, data []byte) backend.Handle {
	t.Helper()
	h := backend.Handle{Type: ft, Name: backend.Hash(data).String()}
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestListPages lists more objects than fit in a page of the listing.
func TestListPages(t *testing.T) {
	srv := miniotest.Shared(t)
	b := newTestBackend(t, srv)
	b.listPage = 3
	want := map[string]bool{}
	for i := range 10 {
		h := putBytes(t, b, backend.IndexFile, fmt.Appendf(nil, "index %d", i))
		want[h.Name] = true
	}
	got := map[string]bool{}
	err := b.List(t.Context(), backend.IndexFile, func(fi backend.FileInfo) error {
		if got[fi.Name] {
			return fmt.Errorf("%s listed twice", fi.Name)
		}
		got[fi.Name] = true
		return nil
	})
	if err != nil || len(got) != len(want) {
		t.Fatalf("list in pages of 3: %d of %d names, %v", len(got), len(want), err)
	}
	for n := range want {
		if !got[n] {
			t.Errorf("%s not listed", n)
		}
	}
}

// TestMultipart stores a file over the part size, which goes up in parts,
// and one at it, which goes up in one PUT; both read back whole, and no
// upload is left incomplete.
func TestMultipart(t *testing.T) {
	srv := miniotest.Shared(t)
	b := newTestBackend(t, srv)
	for _, n := range []int{PartSize, PartSize + PartSize/2 + 7} {
		data := bytes.Repeat([]byte{byte(n)}, n)
		copy(data, fmt.Appendf(nil, "%d", n))
		h := putBytes(t, b, backend.PackFile, data)
		var got []byte
		err := b.Get(t.Context(), h, 0, 0, func(r io.Reader) (err error) { got, err = io.ReadAll(r); return err })
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: read back %d, %v", n, len(got), err)
		}
		oi, err := b.cl.StatObject(t.Context(), b.cfg.Bucket, b.key(h), minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// An object of several parts has an ETag ending "-PARTS".
		multi := strings.Contains(oi.ETag, "-")
		if multi != (n > PartSize) {
			t.Errorf("%d bytes: ETag %q, multipart %v, want %v", n, oi.ETag, multi, n > PartSize)
		}
	}
	for u := range b.cl.ListIncompleteUploads(t.Context(), b.cfg.Bucket, "", true) {
		t.Errorf("incomplete upload left: %+v", u)
	}
}

// TestOpenErrors: a missing bucket and an empty prefix are no repository;
// a config there makes Create refuse.
func TestOpenErrors(t *testing.T) {
	srv := miniotest.Shared(t)
	miniotest.SetEnv(t)
	cfg, err := ParseLocation(srv.Location("no-such-bucket", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), cfg); !errors.Is(err, backend.ErrNoRepository) {
		t.Errorf("open a missing bucket: %v, want ErrNoRepository", err)
	}
	b := newTestBackend(t, srv)
	if _, err := Open(t.Context(), b.cfg); !errors.Is(err, backend.ErrNoRepository) {
		t.Errorf("open an empty prefix: %v, want ErrNoRepository", err)
	}
	if err := b.Put(t.Context(), configHandle, backend.NewByteReader([]byte("config"))); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), b.cfg); err != nil {
		t.Errorf("open with a config: %v", err)
	}
	if _, err := Create(t.Context(), b.cfg); !errors.Is(err, backend.ErrAlreadyExists) {
		t.Errorf("create over a config: %v, want ErrAlreadyExists", err)
	}
}

// TestCredentials: wrong keys are refused with a permanent error that
// does not hold the secret; keys from a profile of a credentials file
// work.
func TestCredentials(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := srv.Bucket(t, false)
	cfg, err := ParseLocation(srv.Location(bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	const wrong = "wrong-secret-do-not-print"
	t.Setenv("AWS_ACCESS_KEY_ID", miniotest.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", wrong)
	t.Setenv("AWS_DEFAULT_REGION", "us-east-1")
	_, err = Create(t.Context(), cfg)
	if err == nil || !backend.IsPermanent(err) || strings.Contains(err.Error(), wrong) {
		t.Errorf("wrong secret: %v (permanent %v), want a permanent error without the secret", err, backend.IsPermanent(err))
	}

	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	body := "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[cairn]\naws_access_key_id = " +
		miniotest.AccessKey + "\naws_secret_access_key = " + miniotest.SecretKey + "\n"
	if err := os.WriteFile(creds, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "config")
	if err := os.WriteFile(conf, []byte("[default]\nregion = eu-west-9\n[profile cairn]\nregion = us-east-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_CONFIG_FILE", conf)
	t.Setenv("AWS_PROFILE", "cairn")
	if got := awsRegion(); got != "us-east-1" {
		t.Errorf("region of profile cairn: %q", got)
	}
	b, err := Create(t.Context(), cfg)
	if err != nil {
		t.Fatalf("keys from profile cairn: %v", err)
	}
	putBytes(t, b, backend.KeyFile, []byte("key"))
}

// TestPutStorageClass: data packs go in the configured class, other files
// in the standard one.
func TestPutStorageClass(t *testing.T) {
	srv := miniotest.Shared(t)
	b := newTestBackend(t, srv)
	// MinIO knows STANDARD and REDUCED_REDUNDANCY.
	if err := b.cfg.SetOption("storage-class", "REDUCED_REDUNDANCY"); err != nil {
		t.Fatal(err)
	}
	pack := putBytes(t, b, backend.PackFile, []byte("pack"))
	index := putBytes(t, b, backend.IndexFile, []byte("index"))
	for _, c := range []struct {
		h    backend.Handle
		want string
	}{{pack, "REDUCED_REDUNDANCY"}, {index, "STANDARD"}} {
		var got string
		for oi := range b.cl.ListObjects(t.Context(), b.cfg.Bucket, minio.ListObjectsOptions{Prefix: b.key(c.h)}) {
			if oi.Err != nil {
				t.Fatal(oi.Err)
			}
			got = oi.StorageClass
		}
		if got == "" {
			got = "STANDARD"
		}
		if got != c.want {
			t.Errorf("%v: storage class %q, want %q", c.h, got, c.want)
		}
	}
}

// TestRetainedDelete: on a bucket whose default retention holds objects,
// Delete is refused with backend.ErrRetained (and ErrAppendOnly), and the object
// stays.
func TestRetainedDelete(t *testing.T) {
	srv := miniotest.Shared(t)
	miniotest.SetEnv(t)
	bucket := srv.Bucket(t, true)
	srv.Retain(t, bucket)
	cfg, err := ParseLocation(srv.Location(bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := putBytes(t, b, backend.PackFile, []byte("retained"))
	err = b.Delete(t.Context(), h)
	if !errors.Is(err, backend.ErrRetained) || !errors.Is(err, backend.ErrAppendOnly) {
		t.Fatalf("delete a retained object: %v, want ErrRetained and ErrAppendOnly", err)
	}
	if _, err := b.Stat(t.Context(), h); err != nil {
		t.Errorf("the retained object after the refused delete: %v", err)
	}
}

// TestRemoveStaleUploads: a multipart upload left incomplete (as by a
// put killed mid-way) is aborted once it is older than the age asked
// (plus the clock skew margin), not before; an upload to a name that is
// not the repository's is left alone.
func TestRemoveStaleUploads(t *testing.T) {
	srv := miniotest.Shared(t)
	b := newTestBackend(t, srv)
	data := []byte("a pack")
	h := backend.Handle{Type: backend.PackFile, Name: backend.Hash(data).String()}
	mine, err := b.core.NewMultipartUpload(t.Context(), b.cfg.Bucket, b.key(h), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.core.PutObjectPart(t.Context(), b.cfg.Bucket, b.key(h), mine, 1, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	other := b.cfg.Prefix + "/notes/todo.txt"
	if _, err := b.core.NewMultipartUpload(t.Context(), b.cfg.Bucket, other, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	uploads := func() map[string]bool {
		m := map[string]bool{}
		for u := range b.cl.ListIncompleteUploads(t.Context(), b.cfg.Bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			m[u.Key] = true
		}
		return m
	}
	if n, _, err := b.RemoveStaleTemp(t.Context(), time.Hour); n != 0 || err != nil {
		t.Fatalf("fresh uploads: removed %d, %v; want none", n, err)
	}
	b.clock = func() time.Time { return time.Now().Add(time.Hour + maxSkew + time.Minute) }
	n, _, err := b.RemoveStaleTemp(t.Context(), time.Hour)
	if n != 1 || err != nil {
		t.Fatalf("stale uploads: removed %d, %v; want 1", n, err)
	}
	if got := uploads(); got[b.key(h)] || !got[other] {
		t.Errorf("incomplete uploads left: %v; want only %s", got, other)
	}
}
