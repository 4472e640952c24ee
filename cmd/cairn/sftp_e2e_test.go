package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend/sftp/sftptest"
)

// End-to-end tests of sftp: locations through a real OpenSSH sshd on
// 127.0.0.1 (backend/sftp/sftptest). Without sshd they are skipped,
// unless CAIRN_TEST_REQUIRE names sftp, as `make test` does.

// sftpServer starts sshd and points the environment's HOME at a home
// folder whose ~/.ssh holds a key sshd accepts and its host keys.
func sftpServer(t *testing.T, e *testEnv) *sftptest.Server {
	t.Helper()
	s := sftptest.Start(t)
	e.env = append(e.env, "HOME="+s.Home) // the last value of a variable wins
	return s
}

// TestSFTPRepository keeps a repository on an sftp server from the start:
// init, backup, restore exactly, check, and no plaintext on the server.
func TestSFTPRepository(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	s := sftpServer(t, e)
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 51)
	const host = "bob-desktop-e2e-19ad"
	sec := plainSecrets(t, e, src, host)
	server := filepath.Join(e.dir, "on-server")
	dir := filepath.Join(server, "backups", "repo")
	loc := s.Location(dir)

	e.must("-r", loc, "init")
	e.must("-r", loc, "backup", "--host", host, src)
	target := filepath.Join(e.dir, "restored")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	if r := e.must("-r", loc, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check\n%s", r)
	}

	// Forget and prune on the server too, then the rest still restores.
	e.writeFile(filepath.Join(src, "second.txt"), "in the second snapshot only\n")
	e.must("-r", loc, "backup", "--host", host, src)
	e.must("-r", loc, "forget", "--keep-last", "1", "--prune")
	if snaps := e.run("-r", loc, "snapshots", "--json"); strings.Count(snaps.stdout, `"short_id"`) != 1 {
		t.Fatalf("after forget --keep-last 1\n%s", snaps)
	}
	target = filepath.Join(e.dir, "restored-2")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	if r := e.must("-r", loc, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check after prune\n%s", r)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("repository folder on the server: %v %v, want mode 0700", fi.Mode(), err)
	}
	checkHashNames(t, dir)
	checkNoPlaintext(t, server, sec)
}

// TestSFTPMirror mirrors a local repository to an sftp server, restores
// from it exactly and checks it; a mirror with nothing new reads no file;
// the server holds no plaintext; and once another device has written to
// the copy, a mirror is refused with what each side holds.
func TestSFTPMirror(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	s := sftpServer(t, e)
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 52)
	const host = "carol-nas-e2e-5b21"
	sec := plainSecrets(t, e, src, host)
	e.init()
	e.backupJSON(0, "--host", host, src)
	server := filepath.Join(e.dir, "on-server")
	dir := filepath.Join(server, "mirror")
	loc := s.Location(dir)

	want := repoFiles(t, e.repo)
	checkMirrorSummary(t, mirrorSummary(t, e, loc), loc, want, nil)
	if got := repoFiles(t, dir); !sameSizes(got, want) {
		t.Fatalf("the server holds %v\nthe source %v", got, want)
	}
	checkHashNames(t, dir)
	target := filepath.Join(e.dir, "restored")
	e.must("-r", loc, "restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	if r := e.must("-r", loc, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check\n%s", r)
	}

	held := repoFilesMeta(t, e.repo) // with the mirror record the first mirror kept
	flipFiles(t, e.repo)
	sum := mirrorSummary(t, e, loc)
	flipFiles(t, e.repo)
	checkMirrorSummary(t, sum, loc, nil, held)
	checkNoPlaintext(t, server, sec)

	// Another device, with its own identity, backs up into the copy.
	otherCfg := filepath.Join(e.dir, "desktop-config")
	other := peerID(t, e, otherCfg)
	e.must("--config-dir", otherCfg, "-r", loc, "backup", "--host", "desktop", src)
	e.writeFile(filepath.Join(src, "later.txt"), "made after the mirror\n")
	e.must("backup", "--host", host, src)
	before := withoutLocks(listing(t, dir))
	r := e.run("mirror", loc)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `diverged.*it holds 2 log entries the source does not \(newest: sequence 4 from device `+
		regexp.QuoteMeta(other[:7])+`.*the source holds 3 entries up to sequence 3`)
	if after := withoutLocks(listing(t, dir)); after != before {
		t.Fatal("the refused mirror changed the server's folder")
	}
}

// TestSFTPKillResume kills a mirror to an sftp server half way with
// SIGKILL, then runs it again: only the rest is copied, the temporary file
// the kill left behind is never taken for a repository file, and the
// result restores.
func TestSFTPKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a mirror slowed down to be killed")
	}
	e := newTestEnv(t)
	t.Parallel()
	s := sftpServer(t, e)
	data := killResumeFixture(t, e)
	dir := filepath.Join(e.dir, "on-server", "mirror")
	loc := s.Location(dir)
	killMirrorHalfway(t, e, loc, filepath.Join(dir, "data"))
	t.Logf("temporary files left by the kill: %q", tempFiles(t, dir))
	checkHashNames(t, dir)
	checkResumed(t, e, loc, data)
}

// TestSFTPHostKeyRefused checks that a server whose host key is not in
// known_hosts, or differs from the one listed there, is refused with a
// message that says what to do, and that nothing is written to it.
func TestSFTPHostKeyRefused(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	s := sftptest.Start(t)
	home := filepath.Join(e.dir, "home-elsewhere")
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(s.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sshDir, "id_ed25519"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(sshDir, "known_hosts"), "")
	dir := filepath.Join(e.dir, "on-server")
	loc := s.Location(dir)
	env := runOpts{env: []string{"HOME=" + home}}

	e.init()
	for _, args := range [][]string{{"-r", loc, "init"}, {"mirror", loc}} {
		r := e.runWith(env, args...)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, `host key is not known: \[127\.0\.0\.1\]:`+strconv.Itoa(s.Port)+` is not listed in .*known_hosts.*fingerprint is ssh-ed25519 SHA256:`)
	}

	sftptest.WriteKnownHosts(t, filepath.Join(sshDir, "known_hosts"), s.Addr(), sftptest.NewKey(t, filepath.Join(e.dir, "impostor")))
	r := e.runWith(env, "mirror", loc)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `WARNING: .* now presents ssh-ed25519 SHA256:.*, but known_hosts lists .*Refusing to connect`)
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("something was written to a server whose host key did not check")
	}
}
