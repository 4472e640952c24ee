package sftp

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cairn-backup/cairn/backend"
)

// Errors that stop a connection before any file is touched. They are
// wrapped with backend.Permanent: retrying cannot fix them.
var (
	// ErrHostKeyUnknown: the server's host key is in no known_hosts file.
	ErrHostKeyUnknown = errors.New("host key is not known")
	// ErrHostKeyChanged: known_hosts lists other keys for the server, or
	// marks its key as revoked. Someone may be intercepting the connection.
	ErrHostKeyChanged = errors.New("host key has changed")
	// ErrAuth: the server accepted none of the keys (or the password).
	ErrAuth = errors.New("ssh authentication failed")
)

const (
	// dialTimeout bounds connecting, the SSH handshake, logging in and
	// starting SFTP together.
	dialTimeout = 30 * time.Second
	// keepAliveInterval is how often an idle or busy connection is
	// probed. keepAliveTimeout is how long a probe may go unanswered
	// before the connection is declared dead and closed, failing every
	// request on it: generous, because the probe queues behind up to a
	// few MiB of upload data, which takes half a minute on a slow uplink.
	keepAliveInterval = 30 * time.Second
	keepAliveTimeout  = 2 * time.Minute
	// maxKeyFileSize caps a private key file read (a 16384-bit RSA key is
	// about 12 KiB).
	maxKeyFileSize = 1 << 20
	// maxConcurrentRequests is how many 32 KiB SFTP requests one upload
	// or download keeps in flight: 2 MiB, which also fills the SSH
	// channel window, enough for 100 Mbit/s at a 160 ms round trip.
	maxConcurrentRequests = 64
)

// dialer holds what connecting needs, resolved once at Open.
type dialer struct {
	cfg Config // as given
	ssh *sshConfig
	// hops are the servers to log in to, in order: the jump hosts, then
	// the repository's server. Nil when command is set.
	hops []*hop
	// command, when set, is run in place of the built-in client.
	command     []string
	keepAlive   time.Duration
	keepAliveTO time.Duration
}

// hop is one server to log in to, with what logging in to it needs.
type hop struct {
	ep           endpoint
	password     string // the location's, for the repository's server only
	hostKey      ssh.HostKeyCallback
	hostKeyAlgos []string
	keyFiles     []string  // the private key files looked at
	signers      []keyFile // unencrypted keys read from them
	// wantKeys, with IdentitiesOnly, are the public keys of keyFiles: the
	// only agent keys offered.
	wantKeys  map[string]bool
	skipped   []string // why key files were not used, for messages
	agentSock string   // "" when ssh-agent is not used
	sshCmd    string   // the ssh command that reaches this server
	// jump says this is a jump host, not the repository's server.
	jump bool
}

type keyFile struct {
	name   string
	signer ssh.Signer
}

// newDialer resolves cfg with the ssh_config files and reads the user's
// SSH files for each server on the way.
func newDialer(cfg Config) (*dialer, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	d := &dialer{cfg: cfg, keepAlive: keepAliveInterval, keepAliveTO: keepAliveTimeout}
	if cfg.keepAlive != 0 {
		d.keepAlive, d.keepAliveTO = cfg.keepAlive, cfg.keepAlive
	}
	cmd, err := cfg.sshCommand()
	if err != nil {
		return nil, err
	}
	if cmd != nil {
		d.command = cmd
		return d, nil
	}
	sc, err := loadSSHConfig(cfg.SSHConfigFile, cfg.systemSSHConfig)
	if err != nil {
		return nil, err
	}
	d.ssh = sc
	target, err := sc.resolve(cfg.Host, cfg.User, cfg.Port)
	if err != nil {
		return nil, err
	}
	eps, err := sc.chain(target)
	if err != nil {
		return nil, err
	}
	for i, ep := range eps {
		h := &hop{ep: ep, sshCmd: sshCommandFor(ep), jump: i < len(eps)-1}
		if !h.jump {
			h.password = cfg.Password
		}
		if err := h.setUp(cfg); err != nil {
			return nil, err
		}
		d.hops = append(d.hops, h)
	}
	return d, nil
}

// sshCommandFor is the ssh command that logs in to ep as cairn does:
// through the alias when an ssh_config file applies (ssh reads it too),
// else with the host, port and user spelt out.
func sshCommandFor(ep endpoint) string {
	cmd := "ssh "
	if ep.fromConfig || len(ep.jumps) > 0 {
		if ep.givenPort != 0 {
			cmd += "-p " + strconv.Itoa(ep.givenPort) + " "
		}
		if ep.givenUser != "" {
			cmd += ep.givenUser + "@"
		}
		return cmd + ep.alias
	}
	if ep.port != DefaultPort {
		cmd += "-p " + strconv.Itoa(ep.port) + " "
	}
	return cmd + ep.user + "@" + ep.host
}

// setUp reads the host keys and the private keys for h.
func (h *hop) setUp(cfg Config) error {
	if err := h.loadHostKeys(cfg); err != nil {
		return err
	}
	if err := h.loadIdentities(cfg); err != nil {
		return err
	}
	switch {
	case cfg.DisableAgent || h.ep.agentSock == NoSSHConfig:
	case h.ep.agentSock != "":
		h.agentSock = h.ep.agentSock
	default:
		h.agentSock = os.Getenv("SSH_AUTH_SOCK")
	}
	if len(h.signers) == 0 && h.agentSock == "" && h.password == "" {
		msg := "no SSH key to log in with: SSH_AUTH_SOCK is not set (no ssh-agent)"
		if cfg.DisableAgent || h.ep.agentSock == NoSSHConfig {
			msg = "no SSH key to log in with: ssh-agent is not used"
		}
		if len(h.keyFiles) > 0 {
			msg += " and none of " + strings.Join(h.keyFiles, ", ") + " holds a usable key"
		}
		if len(h.skipped) > 0 {
			msg += "; " + strings.Join(h.skipped, "; ")
		}
		return backend.Permanent(fmt.Errorf("%w%s: %s", ErrAuth, h.where(), msg))
	}
	return nil
}

// where names a jump host in messages: " (jump host X)", or "" for the
// repository's server.
func (h *hop) where() string {
	if h.jump {
		return " (jump host " + h.ep.alias + ")"
	}
	return ""
}

func localUser() (string, error) {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	if name := os.Getenv("USER"); name != "" {
		return name, nil
	}
	return "", errors.New("sftp: the location names no user and the local user name is unknown")
}

func homeFile(name string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the home folder for %s: %w", name, err)
	}
	return filepath.Join(home, ".ssh", name), nil
}

// systemKnownHosts is the system-wide known_hosts file.
const systemKnownHosts = "/etc/ssh/ssh_known_hosts"

// loadHostKeys sets up the host key check from known_hosts files.
func (h *hop) loadHostKeys(cfg Config) error {
	if cfg.HostKeyCallback != nil {
		h.hostKey = cfg.HostKeyCallback
		return nil
	}
	var candidates []string
	switch {
	case cfg.KnownHostsFile != "":
		candidates = []string{cfg.KnownHostsFile}
	case h.ep.knownHosts != nil:
		candidates = h.ep.knownHosts
	default:
		if f, err := homeFile("known_hosts"); err == nil {
			candidates = append(candidates, f)
		}
		candidates = append(candidates, systemKnownHosts)
	}
	var files []string
	for _, f := range candidates {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	var check ssh.HostKeyCallback
	if len(files) > 0 {
		var err error
		check, err = knownhosts.New(files...)
		if err != nil {
			return backend.Permanent(fmt.Errorf("read known_hosts: %w", err))
		}
	}
	searched := strings.Join(candidates, " and ")
	if searched == "" {
		searched = "no known_hosts file (the ssh config names none)"
	}
	addr := knownhosts.Normalize(h.ep.addr())
	h.hostKey = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if check == nil {
			return h.unknownHost(key, searched)
		}
		err := check(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &revoked):
			return fmt.Errorf("%w: the key %s %s of %s%s is marked @revoked in %s:%d; refusing to connect",
				ErrHostKeyChanged, key.Type(), ssh.FingerprintSHA256(key), addr, h.where(), revoked.Revoked.Filename, revoked.Revoked.Line)
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			return h.unknownHost(key, searched)
		case errors.As(err, &keyErr):
			var known []string
			for _, k := range keyErr.Want {
				known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
			}
			return fmt.Errorf("%w: WARNING: %s%s now presents %s %s, but known_hosts lists %s. "+
				"Someone may be intercepting the connection (man-in-the-middle), or the server was reinstalled. "+
				"Refusing to connect. If you know why the key changed, remove the old entry with `ssh-keygen -R %s` "+
				"and connect once with ssh to check and accept the new key",
				ErrHostKeyChanged, addr, h.where(), key.Type(), ssh.FingerprintSHA256(key), strings.Join(known, ", "), addr)
		default:
			return fmt.Errorf("check host key: %w", err)
		}
	}
	// The algorithms of the keys known for the host come first, so the
	// server is asked for a key that can be checked; then OpenSSH's order,
	// so the fingerprint an "unknown host" message shows is the one `ssh`
	// shows on a first connection.
	if check != nil {
		h.hostKeyAlgos = knownAlgorithms(check, h.ep.addr())
	}
	for _, a := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256} {
		if !contains(h.hostKeyAlgos, a) {
			h.hostKeyAlgos = append(h.hostKeyAlgos, a)
		}
	}
	return nil
}

func (h *hop) unknownHost(key ssh.PublicKey, searched string) error {
	return fmt.Errorf("%w: %s%s is not listed in %s. Connect once with `%s`, check that the key's fingerprint is %s %s "+
		"and accept it; or add the server's public key to known_hosts yourself",
		ErrHostKeyUnknown, knownhosts.Normalize(h.ep.addr()), h.where(), searched, h.sshCmd, key.Type(), ssh.FingerprintSHA256(key))
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts
// holds for addr: a server with ECDSA and Ed25519 keys whose Ed25519 key
// alone was recorded would otherwise present its ECDSA key (the library's
// first choice) and fail the check. Nil when no plain key is known.
func knownAlgorithms(check ssh.HostKeyCallback, addr string) []string {
	// A key that is in no file makes the check list the known ones.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(check(addr, &net.TCPAddr{IP: net.IPv4zero}, probe), &keyErr) || len(keyErr.Want) == 0 {
		return nil
	}
	var algos []string
	add := func(a ...string) {
		for _, s := range a {
			if !contains(algos, s) {
				algos = append(algos, s)
			}
		}
	}
	for _, k := range keyErr.Want {
		if k.Key.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(k.Key.Type())
		}
	}
	return algos
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// loadIdentities reads the private key files. Missing default files are
// skipped silently; encrypted or unreadable ones are noted for the
// message shown if logging in fails.
func (h *hop) loadIdentities(cfg Config) error {
	files := cfg.IdentityFiles
	explicit := files != nil
	if files == nil && h.ep.identityFiles != nil {
		files, explicit = h.ep.identityFiles, true
	}
	if files == nil {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			f, err := homeFile(name)
			if err != nil {
				h.skipped = append(h.skipped, err.Error())
				break
			}
			files = append(files, f)
		}
	}
	h.keyFiles = files
	if h.ep.identitiesOnly {
		h.wantKeys = map[string]bool{}
	}
	for _, name := range files {
		signer, err := readKey(name)
		switch {
		case err == nil:
			h.signers = append(h.signers, keyFile{name: name, signer: signer})
			if h.wantKeys != nil {
				h.wantKeys[string(signer.PublicKey().Marshal())] = true
			}
			continue
		case errors.Is(err, fs.ErrNotExist):
			if explicit {
				h.skipped = append(h.skipped, fmt.Sprintf("key file %s does not exist", name))
			}
		default:
			h.skipped = append(h.skipped, err.Error())
		}
		if h.wantKeys != nil {
			// An encrypted key may be in the agent: its .pub file says
			// which agent key is meant, as in ssh.
			if data, err := readSmallFile(name+".pub", maxKeyFileSize); err == nil {
				if pub, _, _, _, err := ssh.ParseAuthorizedKey(data); err == nil {
					h.wantKeys[string(pub.Marshal())] = true
				}
			}
		}
	}
	return nil
}

func readKey(name string) (ssh.Signer, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close() // read-only
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", name, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("key file %s is larger than %d bytes, not a private key", name, maxKeyFileSize)
	}
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("key file %s is encrypted with a passphrase, which cairn cannot ask for: add it to ssh-agent with `ssh-add %s` (and make sure SSH_AUTH_SOCK is set where cairn runs)", name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", name, err)
	}
	return signer, nil
}

// conn is one SSH connection carrying one SFTP session: the built-in
// client's, or a command's (Config.Command).
type conn struct {
	ssh         *ssh.Client   // the repository server's; nil when a command runs
	jumps       []*ssh.Client // the jump hosts', in order
	proc        *process      // the command; nil with the built-in client
	sftp        *sftp.Client
	posixRename bool // posix-rename@openssh.com: rename replaces atomically
	fsync       bool // fsync@openssh.com
	dead        chan struct{}
	deadOnce    sync.Once
}

// alive reports whether the connection has not been seen to end.
func (c *conn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// close ends the connection; it is safe to call more than once and from
// any goroutine.
func (c *conn) close() {
	c.deadOnce.Do(func() { close(c.dead) })
	// The transport first: closing the SFTP session waits for its
	// reader, which a stalled connection would hold up. The connection
	// is being dropped: there is nothing to report.
	if c.proc != nil {
		c.proc.stop()
	} else {
		_ = c.ssh.Close()
		for i := len(c.jumps) - 1; i >= 0; i-- {
			_ = c.jumps[i].Close()
		}
	}
	_ = c.sftp.Close()
}

// wait returns when the connection has ended.
func (c *conn) wait() {
	if c.proc != nil {
		<-c.proc.exited
		return
	}
	_ = c.ssh.Wait() // the reason is seen by the requests that fail
}

// probe asks the server for an answer: an SSH keep-alive request with the
// built-in client; with a command, whose SSH connection cairn cannot
// reach, a cheap SFTP request (the current folder).
func (c *conn) probe() error {
	if c.proc != nil {
		_, err := c.sftp.Getwd()
		return err
	}
	// OpenSSH answers this unknown request with a failure, which is a
	// reply all the same.
	_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
	return err
}

// dial connects, checks the host keys, logs in and starts SFTP.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	if d.command != nil {
		return d.dialCommand(ctx)
	}
	first := d.hops[0]
	addr := first.ep.addr()
	nd := net.Dialer{Timeout: dialTimeout}
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("connect: %w", cerr)
		}
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			hint := fmt.Sprintf("%s is no Host alias with a HostName in %s either", first.ep.alias, d.sshConfigNames())
			if first.ep.host != strings.ToLower(first.ep.alias) {
				hint = fmt.Sprintf("the HostName of %s in the ssh config", first.ep.alias)
			}
			return nil, backend.Permanent(fmt.Errorf("connect%s: %w (%s)", first.where(), err, hint))
		}
		return nil, fmt.Errorf("connect%s: %w", first.where(), err)
	}
	// Everything up to a working SFTP session shares one deadline, and a
	// cancelled ctx cuts it short. The connections to servers behind
	// jump hosts are channels inside raw, so they end with it.
	if err := raw.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	c, err := d.login(raw)
	if !stop() {
		if err == nil {
			c.close()
		}
		return nil, fmt.Errorf("connect: %w", ctx.Err())
	}
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		c.close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// sshConfigNames names the ssh_config files read, for messages.
func (d *dialer) sshConfigNames() string {
	if d.cfg.SSHConfigFile == NoSSHConfig {
		return "the ssh config (not read: sftp.config=none)"
	}
	return d.ssh.names()
}

// login logs in to each hop in turn over raw, each next one through the
// one before, and starts SFTP on the last.
func (d *dialer) login(raw net.Conn) (*conn, error) {
	var clients []*ssh.Client
	closeAll := func() {
		for i := len(clients) - 1; i >= 0; i-- {
			_ = clients[i].Close()
		}
	}
	nc := raw
	for i, h := range d.hops {
		if i > 0 {
			var err error
			nc, err = clients[i-1].Dial("tcp", h.ep.addr())
			if err != nil {
				closeAll()
				err = fmt.Errorf("connect to %s through jump host %s: %w", h.ep.addr(), d.hops[i-1].ep.alias, err)
				var oce *ssh.OpenChannelError
				if errors.As(err, &oce) && oce.Reason == ssh.Prohibited {
					// The jump host forwards nothing (AllowTcpForwarding
					// no); asking again will not change that.
					return nil, backend.Permanent(err)
				}
				return nil, err
			}
		}
		cl, err := h.login(nc)
		if err != nil {
			if i > 0 {
				_ = nc.Close()
			}
			closeAll()
			return nil, err
		}
		clients = append(clients, cl)
	}
	target := clients[len(clients)-1]
	s, err := sftp.NewClient(target,
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(maxConcurrentRequests))
	if err != nil {
		closeAll()
		err = fmt.Errorf("start sftp: %w", err)
		if strings.Contains(err.Error(), "subsystem request failed") {
			// The server has no SFTP; asking again will not add it.
			return nil, backend.Permanent(err)
		}
		return nil, err
	}
	c := &conn{ssh: target, jumps: clients[:len(clients)-1], sftp: s, dead: make(chan struct{})}
	c.setExtensions()
	return c, nil
}

// setExtensions notes the OpenSSH extensions the server offers.
func (c *conn) setExtensions() {
	_, c.posixRename = c.sftp.HasExtension("posix-rename@openssh.com")
	v, ok := c.sftp.HasExtension("fsync@openssh.com")
	c.fsync = ok && v == "1"
}

// login checks the host key of the server at the other end of nc and
// logs in to it.
func (h *hop) login(nc net.Conn) (*ssh.Client, error) {
	var hostErr error
	checkHost := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		hostErr = h.hostKey(hostname, remote, key)
		return hostErr
	}
	auth := &authState{h: h}
	defer auth.close()
	methods := []ssh.AuthMethod{ssh.PublicKeysCallback(auth.signers)}
	if h.password != "" {
		pw := h.password
		methods = append(methods, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	config := &ssh.ClientConfig{
		User:              h.ep.user,
		Auth:              methods,
		HostKeyCallback:   checkHost,
		HostKeyAlgorithms: h.hostKeyAlgos,
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, h.ep.addr(), config)
	if err != nil {
		switch {
		case hostErr != nil:
			return nil, backend.Permanent(hostErr)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, backend.Permanent(auth.failure())
		}
		return nil, fmt.Errorf("ssh%s: %w", h.where(), err)
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// authState offers the agent's keys, then the key files' keys, and
// remembers what it offered for the message if none is accepted.
type authState struct {
	h            *hop
	agentTried   bool
	agentConn    net.Conn
	agentSigners []ssh.Signer
	notes        []string
}

func (a *authState) signers() ([]ssh.Signer, error) {
	var out []ssh.Signer
	seen := map[string]bool{}
	if a.h.agentSock != "" && !a.agentTried {
		a.agentTried = true
		c, err := net.DialTimeout("unix", a.h.agentSock, 5*time.Second)
		if err != nil {
			a.notes = append(a.notes, fmt.Sprintf("ssh-agent at %s could not be reached: %v", a.agentName(), err))
		} else {
			a.agentConn = c
			keys, err := agent.NewClient(c).Signers()
			if err != nil {
				a.notes = append(a.notes, fmt.Sprintf("ssh-agent: %v", err))
			}
			for _, k := range keys {
				// IdentitiesOnly: only the agent keys of the key files.
				if a.h.wantKeys == nil || a.h.wantKeys[string(k.PublicKey().Marshal())] {
					a.agentSigners = append(a.agentSigners, k)
				}
			}
		}
	}
	for _, k := range a.agentSigners {
		seen[string(k.PublicKey().Marshal())] = true
		out = append(out, k)
	}
	for _, k := range a.h.signers {
		if !seen[string(k.signer.PublicKey().Marshal())] {
			seen[string(k.signer.PublicKey().Marshal())] = true
			out = append(out, k.signer)
		}
	}
	return out, nil
}

// agentName says where the agent was looked for.
func (a *authState) agentName() string {
	if a.h.ep.agentSock != "" {
		return a.h.agentSock + " (IdentityAgent)"
	}
	return "SSH_AUTH_SOCK"
}

func (a *authState) close() {
	if a.agentConn != nil {
		_ = a.agentConn.Close() // only used for signing during the handshake
	}
}

// failure explains a refused login.
func (a *authState) failure() error {
	var offered []string
	if a.h.agentSock != "" {
		offered = append(offered, fmt.Sprintf("%d key(s) from ssh-agent", len(a.agentSigners)))
	}
	for _, k := range a.h.signers {
		offered = append(offered, fmt.Sprintf("%s (%s %s)", k.name, k.signer.PublicKey().Type(), ssh.FingerprintSHA256(k.signer.PublicKey())))
	}
	if a.h.password != "" {
		offered = append(offered, "the password in the location")
	}
	msg := "offered nothing"
	if len(offered) > 0 {
		msg = "the server accepted none of: " + strings.Join(offered, ", ")
	}
	notes := append(append([]string(nil), a.notes...), a.h.skipped...)
	if a.h.wantKeys != nil {
		notes = append(notes, "IdentitiesOnly is set: only the agent keys of the key files were offered")
	}
	if len(notes) > 0 {
		msg += "; " + strings.Join(notes, "; ")
	}
	return fmt.Errorf("%w as %s at %s%s: %s. Add one of your public keys to ~/.ssh/authorized_keys of %s on the server",
		ErrAuth, a.h.ep.user, knownhosts.Normalize(a.h.ep.addr()), a.h.where(), msg, a.h.ep.user)
}

// keepAliveLoop probes c until it ends, closing it when a probe goes
// unanswered for d.keepAliveTO or fails.
func (d *dialer) keepAliveLoop(c *conn) {
	t := time.NewTicker(d.keepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() { replied <- c.probe() }()
		timer := time.NewTimer(d.keepAliveTO)
		select {
		case err := <-replied:
			timer.Stop()
			if err != nil {
				c.close()
				return
			}
		case <-timer.C:
			c.close()
			<-replied // closing the connection ends the request
			return
		case <-c.dead:
			timer.Stop()
			<-replied
			return
		}
	}
}
