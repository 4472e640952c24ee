package sftp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/sftp/sftptest"
)

// roundTrip stores a file through be and reads it back.
func roundTrip(t *testing.T, be *Backend) {
	t.Helper()
	data := randomData(t, 300<<10)
	h := handleOf(backend.PackFile, data)
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("put: %v", err)
	}
	var got []byte
	if err := be.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
}

// sshHome is a home folder holding .ssh/config (text, with {HOME}
// replaced by the folder), for the servers' keys a known_hosts file and
// their client keys as .ssh/key0, .ssh/key1, ... HOME points at it and
// SSH_AUTH_SOCK is unset.
func sshHome(t *testing.T, text string, srvs ...*sftptest.Server) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var known []byte
	for i, srv := range srvs {
		key, err := os.ReadFile(srv.ClientKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("key%d", i)), key, 0o600); err != nil {
			t.Fatal(err)
		}
		kh, err := os.ReadFile(srv.KnownHostsFile)
		if err != nil {
			t.Fatal(err)
		}
		known = append(known, kh...)
	}
	if err := os.WriteFile(filepath.Join(dir, "test_known_hosts"), known, 0o600); err != nil {
		t.Fatal(err)
	}
	text = strings.ReplaceAll(text, "{HOME}", home)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

// TestSSHConfigAlias reaches a server through a Host alias of
// ~/.ssh/config that gives its address, port, user, key and known_hosts
// file, none of which is in the location or in the default files.
func TestSSHConfigAlias(t *testing.T) {
	srv := sftptest.Start(t)
	sshHome(t, fmt.Sprintf(`Host backup-box
    HostName %s
    Port %d
    User %s
    IdentityFile ~/.ssh/key0
    UserKnownHostsFile ~/.ssh/test_known_hosts
`, srv.Host, srv.Port, srv.User), srv)
	dir := filepath.Join(t.TempDir(), "repo")
	cfg, err := ParseLocation("sftp:backup-box:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	be := createTest(t, cfg)
	if be.Location() != "sftp:backup-box:"+dir {
		t.Errorf("location %q, want it as given", be.Location())
	}
	roundTrip(t, be)

	// Without the ssh config, the alias is no host name.
	cfg.SSHConfigFile = NoSSHConfig
	cfg.IdentityFiles = []string{srv.ClientKeyFile}
	_, err = Create(t.Context(), cfg)
	if err == nil || !backend.IsPermanent(err) || !strings.Contains(err.Error(), "no Host alias") {
		t.Fatalf("alias without the ssh config: %v, want a permanent error saying it is no alias", err)
	}
}

// TestSSHConfigProxyJump reaches a server through a jump host named by
// ProxyJump, both Host aliases with their own keys; the jump host's log
// shows the login and the forwarding to the server.
func TestSSHConfigProxyJump(t *testing.T) {
	srv := sftptest.Start(t)
	jump := sftptest.StartWith(t, sftptest.Options{AllowTCPForwarding: true, LogLevel: "DEBUG1"})
	sshHome(t, fmt.Sprintf(`Host repo-box
    HostName %s
    Port %d
    IdentityFile ~/.ssh/key0
    ProxyJump gate

Host gate
    HostName %s
    Port %d
    IdentityFile ~/.ssh/key1

Host *
    User %s
    UserKnownHostsFile ~/.ssh/test_known_hosts
`, srv.Host, srv.Port, jump.Host, jump.Port, srv.User), srv, jump)
	dir := filepath.Join(t.TempDir(), "repo")
	cfg, err := ParseLocation("sftp:repo-box:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	be := createTest(t, cfg)
	roundTrip(t, be)
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	jumpKey := keyFingerprint(t, jump.ClientKeyFile)
	waitForLog(t, jump, "Accepted publickey for "+srv.User, jumpKey)
	waitForLog(t, jump, "server_request_direct_tcpip", fmt.Sprintf("target %s port %d", srv.Host, srv.Port))

	// A jump host that forwards nothing: a permanent error naming it.
	noFwd := filepath.Join(os.Getenv("HOME"), ".ssh", "config_no_forwarding")
	if err := os.WriteFile(noFwd, []byte(fmt.Sprintf("Host repo-box\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile ~/.ssh/key0\n"+
		"  UserKnownHostsFile ~/.ssh/test_known_hosts\n  ProxyJump %s@%s:%d\n"+
		"Host %s\n  IdentityFile ~/.ssh/key0\n  UserKnownHostsFile ~/.ssh/test_known_hosts\n",
		srv.Host, srv.Port, srv.User, srv.User, srv.Host, srv.Port, srv.Host)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgNoFwd := cfg
	cfgNoFwd.SSHConfigFile = noFwd
	_, err = Create(t.Context(), cfgNoFwd)
	if err == nil || !backend.IsPermanent(err) || !strings.Contains(err.Error(), "through jump host "+srv.Host) {
		t.Fatalf("jump host without forwarding: %v, want a permanent error naming it", err)
	}

	// The jump host's key is checked too.
	known := filepath.Join(os.Getenv("HOME"), ".ssh", "test_known_hosts")
	sftptest.WriteKnownHosts(t, known, srv.Addr(), srv.HostKeys...)
	_, err = Create(t.Context(), cfg)
	if !errors.Is(err, ErrHostKeyUnknown) || !strings.Contains(err.Error(), "jump host gate") || !strings.Contains(err.Error(), "ssh gate") {
		t.Fatalf("unknown jump host key: %v, want ErrHostKeyUnknown naming jump host gate and `ssh gate`", err)
	}
}

// keyFingerprint is the SHA256 fingerprint of the public key of the
// private key file.
func keyFingerprint(t *testing.T, file string) string {
	t.Helper()
	signer, err := readKey(file)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(signer.PublicKey())
}

// waitForLog waits (a bounded number of short polls: sshd writes its log
// from another process) until srv's log has a line holding all of parts.
func waitForLog(t *testing.T, srv *sftptest.Server, parts ...string) {
	t.Helper()
	for range 100 {
		for _, line := range strings.Split(srv.Log(), "\n") {
			found := true
			for _, p := range parts {
				found = found && strings.Contains(line, p)
			}
			if found {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no line of the server's log holds %q:\n%s", parts, srv.Log())
}

// TestSSHConfigAgent: IdentityAgent names the agent's socket, and
// IdentitiesOnly keeps the agent's other keys out.
func TestSSHConfigAgent(t *testing.T) {
	srv := sftptest.Start(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	authorize(t, srv, pub, "")
	sock := startAgent(t, priv)
	base := fmt.Sprintf("Host box\n  HostName %s\n  Port %d\n  User %s\n  UserKnownHostsFile ~/.ssh/test_known_hosts\n  IdentityAgent %s\n",
		srv.Host, srv.Port, srv.User, sock)
	dir := filepath.Join(t.TempDir(), "repo")
	cfg, err := ParseLocation("sftp:box:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	// No key file, SSH_AUTH_SOCK unset: the agent of IdentityAgent logs in.
	sshHome(t, base, srv)
	be := createTest(t, cfg)
	roundTrip(t, be)

	// IdentitiesOnly with another key file: the agent's key is not
	// offered, and the message says why.
	other := filepath.Join(t.TempDir(), "other")
	sftptest.NewKey(t, other)
	sshHome(t, base+"  IdentityFile "+other+"\n  IdentitiesOnly yes\n", srv)
	_, err = Create(t.Context(), cfg)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "IdentitiesOnly") || !strings.Contains(err.Error(), "0 key(s) from ssh-agent") {
		t.Fatalf("IdentitiesOnly: %v, want ErrAuth with no agent key offered", err)
	}
	// Naming the agent's key by its .pub file lets it in.
	if err := os.WriteFile(other+".pub", ssh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}
	createTest(t, cfg)
}

// wrapper writes a script that appends its arguments to a log file, one
// per line, then runs the system ssh with them; it returns the script
// and the log's name.
func wrapper(t *testing.T) (script, logFile string) {
	t.Helper()
	dir := t.TempDir()
	script = filepath.Join(dir, "ssh-wrapper")
	logFile = filepath.Join(dir, "invocations")
	text := "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '" + logFile + "'\necho --- >> '" + logFile + "'\nexec ssh \"$@\"\n"
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, logFile
}

// systemSSHArgs are the ssh arguments that keep the system ssh on srv's
// files: ssh reads the passwd database's home, not $HOME.
func systemSSHArgs(srv *sftptest.Server) []string {
	return []string{"-F", "/dev/null", "-i", srv.ClientKeyFile, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + srv.KnownHostsFile, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes"}
}

// TestCommand runs the repository over a command (sftp.command), a
// wrapper script that logs how it was called, and over the system ssh
// (sftp.args).
func TestCommand(t *testing.T) {
	if _, err := os.Stat("/usr/bin/ssh"); err != nil {
		t.Skip("no /usr/bin/ssh")
	}
	srv := sftptest.Start(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	script, logFile := wrapper(t)
	dir := filepath.Join(t.TempDir(), "repo")
	cfg := Config{Host: "name-only-in-messages", Path: dir,
		Command: append(append([]string{script}, systemSSHArgs(srv)...), "-p", srvPort(srv), "-l", srv.User, "-s", srv.Host, "sftp")}
	be := createTest(t, cfg)
	roundTrip(t, be)
	cl, err := be.current()
	if err != nil || cl == nil || cl.proc == nil {
		t.Fatalf("connection: %v, %v; want one over a command", cl, err)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cl.proc.exited:
	default:
		t.Error("the command still runs after Close")
	}
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(cfg.Command[1:], "\n") + "\n---\n"; string(logged) != want {
		t.Errorf("the wrapper was called with\n%s\nwant\n%s", logged, want)
	}

	// sftp.args: the system ssh, with the location's port and user.
	cfg = Config{Host: srv.Host, Port: srv.Port, User: srv.User, Path: dir, SSHArgs: systemSSHArgs(srv)}
	be2 := createTest(t, cfg)
	roundTrip(t, be2)

	// A refused host key is a permanent error that says what ssh said.
	cfg.SSHArgs = append(systemSSHArgs(srv), "-o", "UserKnownHostsFile=/dev/null")
	cfg.SSHArgs[5] = "UserKnownHostsFile=/dev/null"
	_, err = Create(t.Context(), cfg)
	if err == nil || !backend.IsPermanent(err) || !strings.Contains(err.Error(), "Host key verification failed") {
		t.Fatalf("unknown host over the system ssh: %v, want a permanent error quoting ssh", err)
	}
	// A command that is not there.
	cfg = Config{Host: "x", Path: dir, Command: []string{filepath.Join(t.TempDir(), "absent")}}
	if _, err := Create(t.Context(), cfg); err == nil || !backend.IsPermanent(err) {
		t.Fatalf("missing command: %v, want a permanent error", err)
	}
}

// TestCommandStalled: over a command too, a connection that goes silent
// is closed by the keep-alive probe (an SFTP request), and the next
// request starts the command again.
func TestCommandStalled(t *testing.T) {
	if _, err := os.Stat("/usr/bin/ssh"); err != nil {
		t.Skip("no /usr/bin/ssh")
	}
	srv := sftptest.Start(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	p := newProxy(t, srv.Addr())
	known := filepath.Join(t.TempDir(), "known_hosts")
	sftptest.WriteKnownHosts(t, known, p.addr(), srv.HostKeys...)
	args := systemSSHArgs(srv)
	args[5] = "UserKnownHostsFile=" + known
	cfg := Config{Host: srv.Host, Port: p.port(), User: srv.User, Path: filepath.Join(t.TempDir(), "repo"), SSHArgs: args,
		keepAlive: 200 * time.Millisecond}
	be := createTest(t, cfg)
	data := []byte("stall")
	h := handleOf(backend.LockFile, data)
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	p.freeze()
	start := time.Now()
	if _, err := be.Stat(t.Context(), h); err == nil {
		t.Fatal("stat over a frozen connection succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stat over a frozen connection took %v", d)
	}
	if fi, err := be.Stat(t.Context(), h); err != nil || fi.Size != int64(len(data)) {
		t.Fatalf("stat after reconnecting: %+v, %v", fi, err)
	}
}
