// Package sshd runs a real OpenSSH sshd on 127.0.0.1 for the tests of the
// SFTP backend and of everything that runs over it, and for the test
// programs (the soak test, scripts/soak). It is test infrastructure, kept
// out of the release binary: only _test.go files, test helpers
// (backend/sftp/sftptest wraps it for tests) and the programs under
// scripts/ import it, as scripts/layers checks.
//
// Launch makes, in a folder it is given, the server's own host keys (one
// Ed25519, one ECDSA), a client key in authorized_keys, a known_hosts file
// listing the host keys and an sshd_config (127.0.0.1 on a free high port,
// public keys only, no PAM, internal-sftp), runs `sshd -D -e -f config`
// and waits until the port answers with an SSH banner. The caller stops
// the server and its session processes with Close.
//
// LaunchWith takes Options: a server that forwards TCP connections (a
// jump host for ProxyJump tests) and its log level.
package sshd

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
	opts Options
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

// Required reports whether CAIRN_TEST_REQUIRE (a comma- or
// space-separated list) names "sftp", as `make test` does: then a
// missing sshd must fail a test rather than skip it.
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

// Options change the server LaunchWith sets up. The zero value is
// the default server.
type Options struct {
	// AllowTCPForwarding lets clients open TCP connections through the
	// server, so it can serve as a jump host (ssh -J, ProxyJump). The
	// default server refuses them.
	AllowTCPForwarding bool
	// LogLevel is sshd's LogLevel; "" means INFO. At DEBUG1 the log shows
	// each forwarded connection (server_request_direct_tcpip).
	LogLevel string
}

// Launch runs an sshd whose keys, configuration and home folder lie in
// dir, which must exist and should be empty. The caller must Close the
// server.
func Launch(dir string) (*Server, error) {
	return LaunchWith(dir, Options{})
}

// LaunchWith is Launch with options.
func LaunchWith(dir string, opts Options) (*Server, error) {
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

	s := &Server{Host: "127.0.0.1", User: u.Username, dir: dir, Home: filepath.Join(dir, "home"), opts: opts}
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
	if s.ClientKey, err = NewKey(s.ClientKeyFile); err != nil {
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
	err = WriteKnownHosts(s.KnownHostsFile, s.Addr(), s.HostKeys...)
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
		err = WriteKnownHosts(filepath.Join(sshDir, "known_hosts"), s.Addr(), s.HostKeys...)
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

// WaitSessionsEnded waits, at most timeout, until every session process
// of sshd has exited, and returns an error otherwise. After a client is
// killed its session goes on for a moment with what it had received:
// whoever looks at or changes the files a killed client was writing calls
// this first, or the server may still write to them afterwards.
func (s *Server) WaitSessionsEnded(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := s.sessions()
		if err != nil {
			return fmt.Errorf("sshd sessions: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sshd session process(es) still running after %v", n, timeout)
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
	logLevel := "INFO"
	if s.opts.LogLevel != "" {
		logLevel = s.opts.LogLevel
	}
	forwarding := "no"
	if s.opts.AllowTCPForwarding {
		forwarding = "local"
	}
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
		"AllowTcpForwarding " + forwarding,
		"PrintMotd no",
		"Subsystem sftp internal-sftp",
		"LogLevel " + logLevel,
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
func NewKey(file string) (ssh.PublicKey, error) {
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
func WriteKnownHosts(file, addr string, keys ...ssh.PublicKey) error {
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
