// Package sftptest starts a real OpenSSH sshd on 127.0.0.1 for tests of
// the SFTP backend and of everything that runs over it. It is imported
// only from _test.go files and from test programs (the soak test,
// scripts/soak), which use Launch, the part that needs no testing.TB.
//
// Start makes a temporary folder holding the server's own host keys (one
// Ed25519, one ECDSA), a client key in authorized_keys, a known_hosts file
// listing the host keys and an sshd_config (127.0.0.1 on a free high port,
// public keys only, no PAM, internal-sftp), runs `sshd -D -e -f config`,
// waits until the port answers with an SSH banner, and stops the server
// and its session processes when the test ends.
//
// Without an sshd binary the test is skipped, unless the comma- or
// space-separated list in CAIRN_TEST_REQUIRE names "sftp" (as `make test`
// does): then it fails. Debian's package is openssh-server.
package sftptest

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Server is a running sshd.
type Server struct {
	// Host and Port are where sshd listens.
	Host string
	Port int
	// User is the account sshd lets in: the user running the test.
	User string
	// HostKeys are the server's public host keys: Ed25519, then ECDSA.
	HostKeys []ssh.PublicKey
	// KnownHostsFile lists HostKeys for the server's address.
	KnownHostsFile string
	// ClientKeyFile is an unencrypted Ed25519 private key that
	// authorized_keys accepts; ClientKey is its public key.
	ClientKeyFile string
	ClientKey     ssh.PublicKey
	// Home is a folder laid out as a home folder for programs that read
	// the user's SSH files: .ssh/id_ed25519 is the client key and
	// .ssh/known_hosts lists the host keys. Run them with HOME=Home and
	// SSH_AUTH_SOCK unset.
	Home string

	dir  string
	logs *syncBuffer
	stop func() // ends sshd and its session processes
	pid  int    // the listening sshd; its session processes share its process group
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Location is the sftp:// location of the absolute folder dir.
func (s *Server) Location(dir string) string {
	u := url.URL{Scheme: "sftp", User: url.User(s.User), Host: s.Addr(), Path: filepath.ToSlash(dir)}
	return u.String()
}

// Required reports whether CAIRN_TEST_REQUIRE names sftp, so that a
// missing sshd must fail the test rather than skip it.
func Required() bool {
	for _, f := range strings.FieldsFunc(os.Getenv("CAIRN_TEST_REQUIRE"), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t'
	}) {
		if f == "sftp" {
			return true
		}
	}
	return false
}

// FindSSHD returns the path of the sshd binary: /usr/sbin/sshd or the
// first on PATH. sshd must be run by absolute path.
func FindSSHD() (string, error) {
	if fi, err := os.Stat("/usr/sbin/sshd"); err == nil && !fi.IsDir() {
		return "/usr/sbin/sshd", nil
	}
	p, err := exec.LookPath("sshd")
	if err != nil {
		return "", errors.New("sshd not found (Debian: apt-get install openssh-server)")
	}
	return filepath.Abs(p)
}

// Start runs an sshd for the test and stops it in t.Cleanup. It skips or
// fails the test when sshd is missing; see the package doc.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := FindSSHD(); err != nil {
		if Required() {
			t.Fatalf("CAIRN_TEST_REQUIRE names sftp, but: %v", err)
		}
		t.Skipf("%v; set CAIRN_TEST_REQUIRE=sftp to make this a failure", err)
	}
	s, err := Launch(t.TempDir())
	if err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	return s
}

// Launch runs an sshd whose keys, configuration and home folder lie in
// dir, which must exist and should be empty; it is Start without a test,
// for programs. The caller must Close the server.
func Launch(dir string) (*Server, error) {
	sshd, err := FindSSHD()
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation folder.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}

	s := &Server{Host: "127.0.0.1", User: u.Username, dir: dir, Home: filepath.Join(dir, "home")}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	for _, k := range []struct {
		name string
		priv crypto.PrivateKey
		pub  crypto.PublicKey
	}{{"host_ed25519", edPriv, edPub}, {"host_ecdsa", ecPriv, &ecPriv.PublicKey}} {
		if err := writePrivateKey(filepath.Join(dir, k.name), k.priv); err != nil {
			return nil, err
		}
		pub, err := ssh.NewPublicKey(k.pub)
		if err != nil {
			return nil, err
		}
		s.HostKeys = append(s.HostKeys, pub)
	}
	s.ClientKeyFile = filepath.Join(dir, "client_ed25519")
	if s.ClientKey, err = newKey(s.ClientKeyFile); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(s.ClientKey), 0o600); err != nil {
		return nil, err
	}

	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.Port = port
		if lastErr = s.run(sshd); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return nil, fmt.Errorf("start sshd: %w", lastErr)
	}

	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	err = writeKnownHosts(s.KnownHostsFile, s.Addr(), s.HostKeys...)
	sshDir := filepath.Join(s.Home, ".ssh")
	if err == nil {
		err = os.MkdirAll(sshDir, 0o700)
	}
	var key []byte
	if err == nil {
		key, err = os.ReadFile(s.ClientKeyFile)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(sshDir, "id_ed25519"), key, 0o600)
	}
	if err == nil {
		err = writeKnownHosts(filepath.Join(sshDir, "known_hosts"), s.Addr(), s.HostKeys...)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops sshd and its session processes. It may be called more
// than once.
func (s *Server) Close() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// WaitSessionsEnded waits, at most a minute, until every session process
// of sshd has exited, and fails t otherwise. After a client is killed its
// session goes on for a moment with what it had received: a test that
// looks at or changes the files a killed client was writing calls this
// first, or the server may still write to them afterwards.
func (s *Server) WaitSessionsEnded(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := s.sessions()
		if err != nil {
			t.Fatalf("sshd sessions: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sshd session process(es) still running after a minute", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sessions counts the processes in sshd's process group other than the
// listener itself.
func (s *Server) sessions() (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == s.pid {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// Fields after the command name, which is in parentheses and
		// may hold spaces: state, ppid, pgrp, ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(s.pid) {
			n++
		}
	}
	return n, nil
}

// Log returns what sshd has logged so far.
func (s *Server) Log() string { return s.logs.String() }

// run starts sshd on s.Port and waits for its banner.
func (s *Server) run(sshd string) error {
	config := filepath.Join(s.dir, "sshd_config")
	err := os.WriteFile(config, []byte(strings.Join([]string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(s.dir, "host_ed25519"),
		"HostKey " + filepath.Join(s.dir, "host_ecdsa"),
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(s.dir, "authorized_keys"),
		"StrictModes no",
		"UsePAM no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + s.User,
		"UseDNS no",
		"MaxStartups 100",
		"MaxSessions 20",
		"X11Forwarding no",
		"AllowTcpForwarding no",
		"PrintMotd no",
		"Subsystem sftp internal-sftp",
		"LogLevel INFO",
		"",
	}, "\n")), 0o600)
	if err != nil {
		return err
	}

	logs := &syncBuffer{}
	cmd := exec.Command(sshd, "-D", "-e", "-f", config)
	cmd.Stdout = logs
	cmd.Stderr = logs
	// Its own process group, so stopping it ends its session processes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit is reported through exited and the log
		close(exited)
	}()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited: %s", strings.TrimSpace(logs.String()))
		default:
		}
		if err := banner(s.Addr()); err == nil {
			break
		} else if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("sshd did not answer on %s: %v; log: %s", s.Addr(), err, strings.TrimSpace(logs.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.logs, s.stop, s.pid = logs, stop, cmd.Process.Pid
	return nil
}

// banner checks that an SSH server answers on addr.
func banner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("not an SSH server: %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// NewKey writes a new unencrypted Ed25519 private key to file (mode 0600)
// and returns its public key.
func NewKey(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	p, err := newKey(file)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(file string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writePrivateKey(file, priv); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

// WriteKnownHosts writes a known_hosts file listing keys for addr
// (host:port).
func WriteKnownHosts(t testing.TB, file, addr string, keys ...ssh.PublicKey) {
	t.Helper()
	if err := writeKnownHosts(file, addr, keys...); err != nil {
		t.Fatal(err)
	}
}

func writeKnownHosts(file, addr string, keys ...ssh.PublicKey) error {
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k))
		b.WriteByte('\n')
	}
	return os.WriteFile(file, b.Bytes(), 0o600)
}

func writePrivateKey(file string, key crypto.PrivateKey) error {
	block, err := ssh.MarshalPrivateKey(key, "cairn-test")
	if err != nil {
		return err
	}
	return os.WriteFile(file, pem.EncodeToMemory(block), 0o600)
}

// syncBuffer collects sshd's log from the goroutines exec starts.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
