// Package sftptest starts a real OpenSSH sshd on 127.0.0.1 for tests of
// the SFTP backend and of everything that runs over it. It is imported
// only from _test.go files; it wraps backend/sftp/sshd, which does the
// work without a testing.TB and which test programs (the soak test,
// scripts/soak) use directly.
//
// Start runs sshd.Launch in a temporary folder and stops the server and
// its session processes when the test ends. Without an sshd binary the
// test is skipped, unless the comma- or space-separated list in
// CAIRN_TEST_REQUIRE names "sftp" (as `make test` does): then it fails.
// Debian's package is openssh-server.
package sftptest

import (
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cairn-backup/cairn/backend/sftp/sshd"
)

// Server is a running sshd, stopped when the test that started it ends.
type Server struct {
	*sshd.Server
}

// Options change the server StartWith sets up; see sshd.Options.
type Options = sshd.Options

// Start runs an sshd for the test and stops it in t.Cleanup. It skips or
// fails the test when sshd is missing; see the package doc.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := sshd.FindSSHD(); err != nil {
		if sshd.Required() {
			t.Fatalf("CAIRN_TEST_REQUIRE names sftp, but: %v", err)
		}
		t.Skipf("%v; set CAIRN_TEST_REQUIRE=sftp to make this a failure", err)
	}
	s, err := sshd.LaunchWith(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	return &Server{s}
}

// WaitSessionsEnded waits, at most a minute, until every session process
// of sshd has exited, and fails t otherwise; see
// sshd.Server.WaitSessionsEnded for when a test needs it.
func (s *Server) WaitSessionsEnded(t testing.TB) {
	t.Helper()
	if err := s.Server.WaitSessionsEnded(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// NewKey writes a new unencrypted Ed25519 private key to file (mode 0600)
// and returns its public key.
func NewKey(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	p, err := sshd.NewKey(file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteKnownHosts writes a known_hosts file listing keys for addr
// (host:port).
func WriteKnownHosts(t testing.TB, file, addr string, keys ...ssh.PublicKey) {
	t.Helper()
	if err := sshd.WriteKnownHosts(file, addr, keys...); err != nil {
		t.Fatal(err)
	}
}
