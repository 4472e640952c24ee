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
	cfg          Config // defaults filled
	hostKey      ssh.HostKeyCallback
	hostKeyAlgos []string
	keyFiles     []string  // the private key files looked at
	signers      []keyFile // unencrypted keys read from them
	skipped      []string  // why key files were not used, for messages
	agentSock    string    // "" when ssh-agent is not used
	keepAlive    time.Duration
	keepAliveTO  time.Duration
}

type keyFile struct {
	name   string
	signer ssh.Signer
}

// newDialer fills cfg's defaults and reads the user's SSH files.
func newDialer(cfg Config) (*dialer, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.User == "" {
		name, err := localUser()
		if err != nil {
			return nil, err
		}
		cfg.User = name
	}
	d := &dialer{cfg: cfg, keepAlive: keepAliveInterval, keepAliveTO: keepAliveTimeout}
	if cfg.keepAlive != 0 {
		d.keepAlive, d.keepAliveTO = cfg.keepAlive, cfg.keepAlive
	}
	if err := d.loadHostKeys(); err != nil {
		return nil, err
	}
	if err := d.loadIdentities(); err != nil {
		return nil, err
	}
	if !cfg.DisableAgent {
		d.agentSock = os.Getenv("SSH_AUTH_SOCK")
	}
	if len(d.signers) == 0 && d.agentSock == "" && cfg.Password == "" {
		msg := "no SSH key to log in with: SSH_AUTH_SOCK is not set (no ssh-agent)"
		if cfg.DisableAgent {
			msg = "no SSH key to log in with: ssh-agent is not used"
		}
		if len(d.keyFiles) > 0 {
			msg += " and none of " + strings.Join(d.keyFiles, ", ") + " holds a usable key"
		}
		if len(d.skipped) > 0 {
			msg += "; " + strings.Join(d.skipped, "; ")
		}
		return nil, backend.Permanent(fmt.Errorf("%w: %s", ErrAuth, msg))
	}
	return d, nil
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

// loadHostKeys sets up the host key check from known_hosts files.
func (d *dialer) loadHostKeys() error {
	if d.cfg.HostKeyCallback != nil {
		d.hostKey = d.cfg.HostKeyCallback
		return nil
	}
	var candidates []string
	if d.cfg.KnownHostsFile != "" {
		candidates = []string{d.cfg.KnownHostsFile}
	} else {
		if f, err := homeFile("known_hosts"); err == nil {
			candidates = append(candidates, f)
		}
		candidates = append(candidates, "/etc/ssh/ssh_known_hosts")
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
	d.hostKey = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if check == nil {
			return d.unknownHost(key, searched)
		}
		err := check(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &revoked):
			return fmt.Errorf("%w: the key %s %s of %s is marked @revoked in %s:%d; refusing to connect",
				ErrHostKeyChanged, key.Type(), ssh.FingerprintSHA256(key), knownhosts.Normalize(d.cfg.addr()), revoked.Revoked.Filename, revoked.Revoked.Line)
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			return d.unknownHost(key, searched)
		case errors.As(err, &keyErr):
			var known []string
			for _, k := range keyErr.Want {
				known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
			}
			return fmt.Errorf("%w: WARNING: %s now presents %s %s, but known_hosts lists %s. "+
				"Someone may be intercepting the connection (man-in-the-middle), or the server was reinstalled. "+
				"Refusing to connect. If you know why the key changed, remove the old entry with `ssh-keygen -R %s` "+
				"and connect once with ssh to check and accept the new key",
				ErrHostKeyChanged, knownhosts.Normalize(d.cfg.addr()), key.Type(), ssh.FingerprintSHA256(key), strings.Join(known, ", "), knownhosts.Normalize(d.cfg.addr()))
		default:
			return fmt.Errorf("check host key: %w", err)
		}
	}
	// The algorithms of the keys known for the host come first, so the
	// server is asked for a key that can be checked; then OpenSSH's order,
	// so the fingerprint an "unknown host" message shows is the one `ssh`
	// shows on a first connection.
	if check != nil {
		d.hostKeyAlgos = knownAlgorithms(check, d.cfg.addr())
	}
	for _, a := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256} {
		if !contains(d.hostKeyAlgos, a) {
			d.hostKeyAlgos = append(d.hostKeyAlgos, a)
		}
	}
	return nil
}

func (d *dialer) unknownHost(key ssh.PublicKey, searched string) error {
	sshCmd := "ssh "
	if d.cfg.Port != DefaultPort {
		sshCmd += "-p " + strconv.Itoa(d.cfg.Port) + " "
	}
	sshCmd += d.cfg.User + "@" + d.cfg.Host
	return fmt.Errorf("%w: %s is not listed in %s. Connect once with `%s`, check that the key's fingerprint is %s %s "+
		"and accept it; or add the server's public key to known_hosts yourself",
		ErrHostKeyUnknown, knownhosts.Normalize(d.cfg.addr()), searched, sshCmd, key.Type(), ssh.FingerprintSHA256(key))
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
func (d *dialer) loadIdentities() error {
	files := d.cfg.IdentityFiles
	if files == nil {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			f, err := homeFile(name)
			if err != nil {
				d.skipped = append(d.skipped, err.Error())
				break
			}
			files = append(files, f)
		}
	}
	d.keyFiles = files
	for _, name := range files {
		signer, err := readKey(name)
		switch {
		case err == nil:
			d.signers = append(d.signers, keyFile{name: name, signer: signer})
		case errors.Is(err, fs.ErrNotExist):
			if d.cfg.IdentityFiles != nil {
				d.skipped = append(d.skipped, fmt.Sprintf("key file %s does not exist", name))
			}
		default:
			d.skipped = append(d.skipped, err.Error())
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

// conn is one SSH connection carrying one SFTP session.
type conn struct {
	ssh         *ssh.Client
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
	// The TCP connection first: closing the SFTP session waits for its
	// reader, which a stalled connection would hold up.
	_ = c.ssh.Close() // the connection is being dropped; nothing to report
	_ = c.sftp.Close()
}

// dial connects, checks the host key, logs in and starts SFTP.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	addr := d.cfg.addr()
	nd := net.Dialer{Timeout: dialTimeout}
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("connect: %w", cerr)
		}
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, backend.Permanent(fmt.Errorf("connect: %w (cairn does not read ~/.ssh/config: write the real host name, port and user in the location)", err))
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	// Everything up to a working SFTP session shares one deadline, and a
	// cancelled ctx cuts it short.
	if err := raw.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	c, err := d.handshake(raw, addr)
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

func (d *dialer) handshake(raw net.Conn, addr string) (*conn, error) {
	var hostErr error
	checkHost := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		hostErr = d.hostKey(hostname, remote, key)
		return hostErr
	}
	auth := &authState{d: d}
	defer auth.close()
	methods := []ssh.AuthMethod{ssh.PublicKeysCallback(auth.signers)}
	if d.cfg.Password != "" {
		pw := d.cfg.Password
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
		User:              d.cfg.User,
		Auth:              methods,
		HostKeyCallback:   checkHost,
		HostKeyAlgorithms: d.hostKeyAlgos,
	}
	sc, chans, reqs, err := ssh.NewClientConn(raw, addr, config)
	if err != nil {
		switch {
		case hostErr != nil:
			return nil, backend.Permanent(hostErr)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, backend.Permanent(auth.failure())
		}
		return nil, fmt.Errorf("ssh: %w", err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	s, err := sftp.NewClient(client,
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(maxConcurrentRequests))
	if err != nil {
		_ = client.Close()
		err = fmt.Errorf("start sftp: %w", err)
		if strings.Contains(err.Error(), "subsystem request failed") {
			// The server has no SFTP; asking again will not add it.
			return nil, backend.Permanent(err)
		}
		return nil, err
	}
	c := &conn{ssh: client, sftp: s, dead: make(chan struct{})}
	_, c.posixRename = s.HasExtension("posix-rename@openssh.com")
	v, ok := s.HasExtension("fsync@openssh.com")
	c.fsync = ok && v == "1"
	return c, nil
}

// authState offers the agent's keys, then the key files' keys, and
// remembers what it offered for the message if none is accepted.
type authState struct {
	d            *dialer
	agentTried   bool
	agentConn    net.Conn
	agentSigners []ssh.Signer
	notes        []string
}

func (a *authState) signers() ([]ssh.Signer, error) {
	var out []ssh.Signer
	seen := map[string]bool{}
	if a.d.agentSock != "" && !a.agentTried {
		a.agentTried = true
		c, err := net.DialTimeout("unix", a.d.agentSock, 5*time.Second)
		if err != nil {
			a.notes = append(a.notes, fmt.Sprintf("ssh-agent at SSH_AUTH_SOCK could not be reached: %v", err))
		} else {
			a.agentConn = c
			keys, err := agent.NewClient(c).Signers()
			if err != nil {
				a.notes = append(a.notes, fmt.Sprintf("ssh-agent: %v", err))
			}
			a.agentSigners = keys
		}
	}
	for _, k := range a.agentSigners {
		seen[string(k.PublicKey().Marshal())] = true
		out = append(out, k)
	}
	for _, k := range a.d.signers {
		if !seen[string(k.signer.PublicKey().Marshal())] {
			seen[string(k.signer.PublicKey().Marshal())] = true
			out = append(out, k.signer)
		}
	}
	return out, nil
}

func (a *authState) close() {
	if a.agentConn != nil {
		_ = a.agentConn.Close() // only used for signing during the handshake
	}
}

// failure explains a refused login.
func (a *authState) failure() error {
	var offered []string
	if a.d.agentSock != "" {
		offered = append(offered, fmt.Sprintf("%d key(s) from ssh-agent", len(a.agentSigners)))
	}
	for _, k := range a.d.signers {
		offered = append(offered, fmt.Sprintf("%s (%s %s)", k.name, k.signer.PublicKey().Type(), ssh.FingerprintSHA256(k.signer.PublicKey())))
	}
	if a.d.cfg.Password != "" {
		offered = append(offered, "the password in the location")
	}
	msg := "offered nothing"
	if len(offered) > 0 {
		msg = "the server accepted none of: " + strings.Join(offered, ", ")
	}
	notes := append(append([]string(nil), a.notes...), a.d.skipped...)
	if len(notes) > 0 {
		msg += "; " + strings.Join(notes, "; ")
	}
	return fmt.Errorf("%w as %s at %s: %s. Add one of your public keys to ~/.ssh/authorized_keys of %s on the server",
		ErrAuth, a.d.cfg.User, knownhosts.Normalize(a.d.cfg.addr()), msg, a.d.cfg.User)
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
		go func() {
			// OpenSSH answers this unknown request with a failure, which
			// is a reply all the same.
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
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
