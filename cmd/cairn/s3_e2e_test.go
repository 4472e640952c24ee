package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/backend/s3/miniotest"
)

// End-to-end tests of s3: locations on a real MinIO on 127.0.0.1, one
// erasure-coded node with four drive folders (backend/s3/miniotest).
// Without minio they are skipped, unless CAIRN_TEST_REQUIRE names s3, as
// `make test` does. Tests share one server (stopped by TestMain) and take
// a bucket each; the fault tests run their own.

// s3Env gives e the server's keys in the environment, as the AWS tools
// read them.
func s3Env(e *testEnv) {
	e.env = append(e.env, miniotest.Env()...)
}

// wantCheckClean runs check --read-data on loc and fails unless it found
// no problem.
func wantCheckClean(t *testing.T, e *testEnv, loc string) {
	t.Helper()
	if r := e.must("-r", loc, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check --read-data of %s\n%s", loc, r)
	}
}

// TestS3Repository keeps a repository in a bucket from the start: init,
// backup, restore exactly, check --read-data, forget --prune, and the
// keys read from an AWS profile file as well as from the environment.
func TestS3Repository(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	srv := miniotest.Shared(t)
	s3Env(e)
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 61)
	loc := srv.Location(srv.Bucket(t, false), "backups/laptop")

	e.must("-r", loc, "init")
	e.must("-r", loc, "backup", "--host", "laptop", src)
	target := filepath.Join(e.dir, "restored")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	wantCheckClean(t, e, loc)

	e.writeFile(filepath.Join(src, "second.txt"), "in the second snapshot only\n")
	e.must("-r", loc, "backup", "--host", "laptop", src)
	e.must("-r", loc, "forget", "--keep-last", "1", "--prune")
	if snaps := e.run("-r", loc, "snapshots", "--json"); strings.Count(snaps.stdout, `"short_id"`) != 1 {
		t.Fatalf("after forget --keep-last 1\n%s", snaps)
	}
	target = filepath.Join(e.dir, "restored-2")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	wantCheckClean(t, e, loc)

	// The keys from a profile of ~/.aws/credentials, the region from
	// ~/.aws/config; nothing in the environment but AWS_PROFILE.
	p := newTestEnv(t)
	home := filepath.Join(p.dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	p.writeFile(filepath.Join(home, ".aws", "credentials"), "[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong-secret-7d1e\n[backup]\naws_access_key_id = "+
		miniotest.AccessKey+"\naws_secret_access_key = "+miniotest.SecretKey+"\n")
	p.writeFile(filepath.Join(home, ".aws", "config"), "[profile backup]\nregion = us-east-1\n")
	r := p.runWith(runOpts{env: []string{"AWS_PROFILE=backup"}}, "-r", loc, "snapshots", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"laptop"`) {
		t.Fatalf("snapshots with the keys of profile backup\n%s", r)
	}
	// The default profile's keys are refused: one line, no secret.
	r = p.run("-r", loc, "snapshots")
	if r.code != exitError {
		t.Fatalf("want exit %d with keys the server refuses\n%s", exitError, r)
	}
	checkOneErrorLine(t, r, `InvalidAccessKeyId|AccessDenied|access key`)
	if strings.Contains(r.stderr+r.stdout, "wrong-secret-7d1e") || strings.Contains(r.stderr+r.stdout, miniotest.SecretKey) {
		t.Errorf("a secret key appears in the output\n%s", r)
	}
}

// TestS3Mirror mirrors a local repository to a bucket, the bucket to a
// friend's peer server, and the friend's copy back to a new disk: each
// restores exactly and passes check --read-data.
func TestS3Mirror(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	srv := miniotest.Shared(t)
	s3Env(e)
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 62)
	e.init()
	e.backupJSON(0, "--host", "nas", src)
	loc := srv.Location(srv.Bucket(t, false), "")

	want := repoFiles(t, e.repo)
	checkMirrorSummary(t, mirrorSummary(t, e, loc), loc, want, nil)
	wantCheckClean(t, e, loc)
	target := filepath.Join(e.dir, "restored-s3")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	// Nothing new: every file is skipped, the meta record the first
	// mirror wrote too.
	skipped := repoFilesMeta(t, e.repo)
	checkMirrorSummary(t, mirrorSummary(t, e, loc), loc, nil, skipped)

	owner := peerID(t, e, "")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "friend-root"), "--allow", owner)
	peerLoc := friend.loc("nas")
	e.must("-r", loc, "mirror", peerLoc)
	if got := repoFiles(t, friend.folder(owner, "nas")); !sameSizes(got, want) {
		t.Fatalf("the friend holds %v\nthe source %v", got, want)
	}
	home := filepath.Join(e.dir, "new-disk", "repo")
	e.must("-r", peerLoc, "mirror", home)
	if got := repoFiles(t, home); !sameSizes(got, want) {
		t.Fatalf("the copy brought back holds %v\nthe source %v", got, want)
	}
	wantCheckClean(t, e, home)
	target = filepath.Join(e.dir, "restored-home")
	e.must("-r", home, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
}

// s3Objects counts the objects below prefix in bucket.
func s3Objects(t *testing.T, srv *miniotest.Server, bucket, prefix string) int {
	t.Helper()
	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return -1 // the server is down or busy: not yet
		}
		n++
	}
	return n
}

// TestS3Faults: a drive folder removed while a backup runs, then the
// server killed (kill -9) while the next one runs and started again. The
// backups complete (the second at its rerun), check --read-data finds
// nothing wrong, and the latest snapshot restores exactly.
func TestS3Faults(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	srv := miniotest.Start(t)
	s3Env(e)
	bucket := srv.Bucket(t, false)
	loc := srv.Location(bucket, "")
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 63)
	for i := range 6 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("big-%d.bin", i)), 3<<20, uint64(70+i))
	}
	e.must("-r", loc, "init")
	// Slowed to 4 MiB/s, the backup of ~18 MiB lasts a few seconds.
	slow := []string{envTestThrottle + "=4194304"}

	// A drive folder removed once the first pack is stored.
	bg := startCairn(t, e, slow, "-r", loc, "backup", "--host", "nas", src)
	waitFor(t, bg.limit, "a pack in the bucket", func() bool { return s3Objects(t, srv, bucket, "data/") > 0 || bg.exited() })
	if err := os.RemoveAll(srv.Drive(2)); err != nil {
		t.Fatal(err)
	}
	if r := bg.wait(); r.code != 0 {
		t.Fatalf("backup with a drive removed\n%s", r)
	}
	wantCheckClean(t, e, loc)

	// The server killed while the second backup stores its packs.
	for i := range 4 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("more-%d.bin", i)), 3<<20, uint64(80+i))
	}
	before := s3Objects(t, srv, bucket, "data/")
	bg = startCairn(t, e, slow, "-r", loc, "backup", "--host", "nas", src)
	waitFor(t, bg.limit, "a new pack in the bucket", func() bool { return s3Objects(t, srv, bucket, "data/") > before || bg.exited() })
	srv.Kill()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	first := bg.wait() // retried through the restart, or failed: the rerun settles it
	t.Logf("the backup the kill cut into: exit %d", first.code)
	e.must("-r", loc, "backup", "--host", "nas", src)
	wantCheckClean(t, e, loc)
	target := filepath.Join(e.dir, "restored")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
}

// bgRun is cairn running in the background.
type bgRun struct {
	t      *testing.T
	args   []string
	cmd    *exec.Cmd
	out    bytes.Buffer // stdout and stderr; read only after done
	done   chan struct{}
	code   int
	limit  time.Duration // how long a wait for it may last
	cancel context.CancelFunc
}

// startCairn runs cairn with args (and extra environment) in the
// background; it is killed at the end of the test if still running.
func startCairn(t *testing.T, e *testEnv, env []string, args ...string) *bgRun {
	t.Helper()
	const limit = 3 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	b := &bgRun{t: t, args: args, done: make(chan struct{}), limit: limit, cancel: cancel}
	b.cmd = exec.CommandContext(ctx, cairnBin, args...)
	b.cmd.Env = append(append([]string(nil), e.env...), env...)
	b.cmd.Dir = e.dir
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		err := b.cmd.Wait()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			b.code = exitErr.ExitCode()
		} else if err != nil {
			b.code = -1
		}
		close(b.done)
	}()
	t.Cleanup(func() { cancel(); <-b.done })
	return b
}

// exited reports whether the run has ended.
func (b *bgRun) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// wait waits for the run to end (at most its limit, then it is killed)
// and returns what it did.
func (b *bgRun) wait() result {
	<-b.done
	b.cancel()
	return result{args: b.args, code: b.code, stdout: b.out.String()}
}

// snapshotID backs up paths and returns the new snapshot's ID.
func snapshotID(t *testing.T, e *testEnv, args ...string) string {
	t.Helper()
	sum, _ := e.backupJSON(0, args...)
	id, _ := sum["snapshot_id"].(string)
	if id == "" {
		t.Fatalf("no snapshot_id in %v", sum)
	}
	return id
}

// TestS3ObjectLock: on a bucket whose default retention keeps new objects
// for a day, prune and mirror --prune delete what is not retained, name
// each object they keep (one warning line each), exit 0, and leave a
// repository that passes check --read-data and restores exactly.
func TestS3ObjectLock(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	srv := miniotest.Shared(t)
	s3Env(e)
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 64)
	later := func(name string, seed uint64) string {
		dir := filepath.Join(e.dir, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeRandom(t, filepath.Join(dir, "data.bin"), 300_000, seed)
		return dir
	}
	src2, src3 := later("src2", 91), later("src3", 92)

	// prune in a repository kept in the bucket: the second snapshot's
	// objects were stored before the retention was set, the third's after.
	bucket := srv.Bucket(t, true)
	loc := srv.Location(bucket, "repo")
	e.must("-r", loc, "init")
	e.must("-r", loc, "backup", "--host", "h", src)
	s2 := snapshotID(t, e, "-r", loc, "--host", "h", src2)
	srv.Retain(t, bucket)
	s3 := snapshotID(t, e, "-r", loc, "--host", "h", src3)
	r := e.must("-r", loc, "forget", "--prune", s2, s3)
	if !matches(`deleted [1-9]\d* pack`, r.stdout) {
		t.Errorf("prune deleted no pack\n%s", r)
	}
	kept := regexp.MustCompile(`(?m)^cairn: warning: (data|index)/[0-9a-f]{64}: the location refuses to delete it yet .*retained by object lock.*$`).FindAllString(r.stderr, -1)
	if !strings.Contains(strings.Join(kept, "\n"), "data/") || !strings.Contains(strings.Join(kept, "\n"), "index/") {
		t.Errorf("prune does not name the retained pack and index file\n%s", r)
	}
	wantCheckClean(t, e, loc)
	target := filepath.Join(e.dir, "restored")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)

	// mirror --prune to a bucket: the same, from a local repository.
	mb := srv.Bucket(t, true)
	mloc := srv.Location(mb, "")
	e.init()
	e.must("backup", "--host", "h", src)
	s2 = snapshotID(t, e, "--host", "h", src2)
	e.must("mirror", mloc)
	srv.Retain(t, mb)
	s3 = snapshotID(t, e, "--host", "h", src3)
	e.must("mirror", mloc)
	e.must("forget", "--prune", s2, s3)
	r = e.must("mirror", "--prune", mloc)
	if !matches(`(?m)^cairn: warning: s3:\S+: (data|index)/[0-9a-f]{64}: retained by object lock, not deletable yet; kept`, r.stderr) {
		t.Errorf("mirror --prune names no retained object\n%s", r)
	}
	if !matches(`removed [1-9]\d* files`, r.stdout) {
		t.Errorf("mirror --prune removed nothing\n%s", r)
	}
	wantCheckClean(t, e, mloc)
	target = filepath.Join(e.dir, "restored-mirror")
	e.must("-r", mloc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
}
