// Package miniotest runs a real MinIO server on 127.0.0.1 for tests of the
// s3 backend and of everything that runs over it. It is imported only
// from _test.go files.
//
// The server is one erasure-coded node with four drive folders
// (MINIO_CI_CD=1 lets it use folders of the root file system), so a test
// can remove a drive and see the data survive. Shared starts one server
// per test binary, on first use, and CloseShared (from TestMain) stops
// it; Start gives a test a server of its own, for the tests that kill or
// damage it.
//
// The minio binary is found as $CAIRN_MINIO, then "minio" on the PATH,
// then in the folder scripts/test-deps.sh installs it into
// ($(go env GOCACHE)/../cairn-minio). Without it the test is skipped,
// unless the comma- or space-separated list in CAIRN_TEST_REQUIRE names
// "s3" (as `make test` does): then it fails.
package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Drives is the number of drive folders of a server.
const Drives = 4

// Credentials of every test server: the root user.
const (
	AccessKey = "cairntest"
	SecretKey = "cairntest-secret-key"
)

// readyLimit bounds the wait for a server to answer its health check: a
// first start on a loaded 2-core machine takes a few seconds.
const readyLimit = 90 * time.Second

// Server is a running MinIO.
type Server struct {
	// Dir holds the drive folders d1...d4 and the log.
	Dir string
	// Addr is HOST:PORT of the S3 API.
	Addr string

	bin     string
	mu      sync.Mutex // guards cmd and done
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	logFile *os.File
}

// Required reports whether CAIRN_TEST_REQUIRE names s3.
func Required() bool {
	for _, r := range strings.FieldsFunc(os.Getenv("CAIRN_TEST_REQUIRE"), func(r rune) bool { return r == ',' || r == ' ' }) {
		if r == "s3" {
			return true
		}
	}
	return false
}

// FindMinio returns the path of the minio binary, or an error saying
// where it looked.
func FindMinio() (string, error) {
	if p := os.Getenv("CAIRN_MINIO"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	var tried []string
	if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
		if c := strings.TrimSpace(string(out)); c != "" {
			p := filepath.Join(filepath.Dir(c), "cairn-minio", "minio")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	return "", fmt.Errorf("no minio binary ($CAIRN_MINIO, the PATH, %s; scripts/test-deps.sh installs it)", strings.Join(tried, ", "))
}

// Launch starts a server with its drives in dir and waits until it
// answers.
func Launch(dir string) (*Server, error) {
	bin, err := FindMinio()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin}
	s.logFile, err = os.OpenFile(filepath.Join(dir, "minio.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// A port picked free may be taken before minio binds it: try again.
	for attempt := 0; ; attempt++ {
		s.Addr, err = freeAddr()
		if err == nil {
			err = s.start()
		}
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		_ = s.logFile.Close()
		return nil, err
	}
	return s, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Drive is the folder of drive i (1-based).
func (s *Server) Drive(i int) string { return filepath.Join(s.Dir, "d"+strconv.Itoa(i)) }

// start runs minio on s.Addr and waits until it is ready. A drive folder
// that is missing (removed by a test) is made again, empty, as a replaced
// disk would be: MinIO heals it.
func (s *Server) start() error {
	for i := 1; i <= Drives; i++ {
		if err := os.MkdirAll(s.Drive(i), 0o700); err != nil {
			return err
		}
	}
	console, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.Addr, "--console-address", console,
		filepath.Join(s.Dir, "d{1..."+strconv.Itoa(Drives)+"}"))
	cmd.Env = append(os.Environ(), "MINIO_CI_CD=1", "MINIO_BROWSER=off",
		"MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_UPDATE=off", "MINIO_CONFIG_ENV_FILE=")
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(done); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// waitReady polls, every 100 ms for at most readyLimit, until the
// server lists its buckets: its health check answers before the S3 API
// is initialised.
func (s *Server) waitReady(done <-chan struct{}) error {
	cl, err := s.Client()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(readyLimit)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("minio exited at start; log:\n%s", s.Log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cl.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("minio not ready within %v; log:\n%s", readyLimit, s.Log())
}

// Kill ends the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same address and drives, after
// Kill.
func (s *Server) Restart() error {
	s.Kill()
	return s.start()
}

// Close stops the server.
func (s *Server) Close() {
	s.Kill()
	_ = s.logFile.Close()
}

// Log is what the server wrote.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "minio.log"))
	return string(b)
}

// Client is a minio-go client with the root user's keys.
func (s *Server) Client() (*minio.Client, error) {
	return minio.New(s.Addr, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Region: "us-east-1"})
}

// Location is the s3: location of prefix in bucket.
func (s *Server) Location(bucket, prefix string) string {
	loc := "s3:http://" + s.Addr + "/" + bucket
	if prefix != "" {
		loc += "/" + prefix
	}
	return loc
}

// Env is the environment that gives the root user's keys to cairn, as the
// AWS tools read them.
func Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "AWS_DEFAULT_REGION=us-east-1"}
}

// SetEnv sets Env in the test's environment (restored when it ends).
func SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// NewBucket makes a bucket of a fresh name; with lock, object lock is on
// (without a default retention: see Retain).
func (s *Server) NewBucket(ctx context.Context, lock bool) (string, error) {
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := "t-" + hex.EncodeToString(r[:])
	cl, err := s.Client()
	if err != nil {
		return "", err
	}
	if err := cl.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: lock}); err != nil {
		return "", fmt.Errorf("make bucket %s: %w", name, err)
	}
	return name, nil
}

// Retain gives a bucket made with object lock a default retention: every
// object stored from then on is kept for a day, in governance mode.
func (s *Server) Retain(t testing.TB, bucket string) {
	t.Helper()
	cl, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	mode, validity, unit := minio.Governance, uint(1), minio.Days
	if err := cl.SetObjectLockConfig(context.Background(), bucket, &mode, &validity, &unit); err != nil {
		t.Fatalf("default retention on %s: %v", bucket, err)
	}
}

// skipOrFail skips t for lack of minio, or fails it when s3 is required.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("CAIRN_TEST_REQUIRE names s3, but: %v", err)
	}
	t.Skipf("%v; set CAIRN_TEST_REQUIRE=s3 to make this a failure", err)
}

// Start runs a server of the test's own and stops it in t.Cleanup. It
// skips or fails the test when minio is missing; see the package doc.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := FindMinio(); err != nil {
		skipOrFail(t, err)
	}
	s, err := Launch(t.TempDir())
	if err != nil {
		t.Fatalf("miniotest: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Logf("minio log:\n%s", s.Log())
		}
	})
	return s
}

var shared struct {
	mu  sync.Mutex // guards the fields below
	srv *Server
	dir string
	err error
}

// Shared returns the test binary's shared server, started on first use
// (call CloseShared from TestMain to stop it). It skips or fails the test
// when minio is missing. Tests share it: each takes a bucket of its own.
func Shared(t testing.TB) *Server {
	t.Helper()
	if _, err := FindMinio(); err != nil {
		skipOrFail(t, err)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.dir, shared.err = os.MkdirTemp("", "cairn-minio-")
		if shared.err == nil {
			shared.srv, shared.err = Launch(shared.dir)
		}
	}
	if shared.err != nil {
		t.Fatalf("miniotest: %v", shared.err)
	}
	return shared.srv
}

// CloseShared stops the shared server, if one was started, and removes
// its drives.
func CloseShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Close()
		shared.srv = nil
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// Bucket makes a fresh bucket on s for t (see NewBucket, Retain).
func (s *Server) Bucket(t testing.TB, lock bool) string {
	t.Helper()
	name, err := s.NewBucket(context.Background(), lock)
	if err != nil {
		t.Fatal(err)
	}
	return name
}
