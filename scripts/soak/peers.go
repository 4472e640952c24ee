package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cairn-backup/cairn/backend/sftp/sshd"
)

// location is a place that holds the repository or a copy of it.
type location struct {
	name string // "main", "sftp", "peer"
	url  string // as given to -r
	// dir is where its files lie on this machine, for damage.
	dir string
	// verifier is the config and cache dir the soak's own checks use,
	// apart from the hosts', so that their remembered log heads are this
	// location's own.
	verifier *host
	// proxy carries its connections, for remote locations.
	proxy *proxy
}

// setupSFTP starts sshd and a proxy in front of it, and returns the
// location of an SFTP mirror through the proxy. HOME must be home for the
// runs that use it: the client key and known_hosts lie there.
func (s *soak) setupSFTP() (*location, string, error) {
	dir := filepath.Join(s.dir, "sshd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	srv, err := sshd.Launch(dir)
	if err != nil {
		return nil, "", fmt.Errorf("sshd: %w", err)
	}
	s.cleanups = append(s.cleanups, srv.Close)
	px, err := newProxy(srv.Addr(), s.cfg.seed+1)
	if err != nil {
		return nil, "", err
	}
	s.cleanups = append(s.cleanups, px.close)
	// The client reaches sshd through the proxy: known_hosts must list
	// the host keys under the proxy's address too.
	var kh bytes.Buffer
	for _, addr := range []string{srv.Addr(), px.addr()} {
		for _, k := range srv.HostKeys {
			kh.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k) + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(srv.Home, ".ssh", "known_hosts"), kh.Bytes(), 0o600); err != nil {
		return nil, "", err
	}
	repoDir := filepath.Join(s.dir, "sftp-peer", "repo")
	if err := os.MkdirAll(filepath.Dir(repoDir), 0o700); err != nil {
		return nil, "", err
	}
	return &location{
		name:  "sftp",
		url:   fmt.Sprintf("sftp://%s@%s%s", srv.User, px.addr(), repoDir),
		dir:   repoDir,
		proxy: px,
	}, srv.Home, nil
}

// peerServer is a "cairn peer serve" process that the soak restarts.
type peerServer struct {
	s         *soak
	configDir string
	root      string
	listen    string
	allow     string
	id        string

	mu     sync.Mutex // guards the fields below
	cmd    *exec.Cmd
	log    *serverLog
	done   chan struct{}
	starts int
}

// serverLog keeps the last lines a server printed and notices panics.
type serverLog struct {
	mu       sync.Mutex // guards the fields below
	lines    []string
	panicked bool
}

func (l *serverLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if panicRE.MatchString(line) {
		l.panicked = true
	}
	l.lines = append(l.lines, line)
	if len(l.lines) > 400 && !l.panicked {
		l.lines = l.lines[len(l.lines)-200:]
	}
}

func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// setupPeer starts a peer server that allows client, with a proxy in
// front, and returns the location of a mirror on it.
func (s *soak) setupPeer(client *host) (*location, *peerServer, error) {
	ps := &peerServer{
		s:         s,
		configDir: filepath.Join(s.dir, "peer-server", "config"),
		root:      filepath.Join(s.dir, "peer-server", "root"),
	}
	id, err := s.peerID(ps.configDir)
	if err != nil {
		return nil, nil, err
	}
	ps.id = id
	clientID, err := s.peerID(client.configDir)
	if err != nil {
		return nil, nil, err
	}
	ps.allow = clientID + ":read-write"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	ps.listen = l.Addr().String()
	_ = l.Close()
	if err := ps.start(); err != nil {
		return nil, nil, err
	}
	s.cleanups = append(s.cleanups, func() { ps.stop(syscall.SIGTERM) })
	px, err := newProxy(ps.listen, s.cfg.seed+2)
	if err != nil {
		return nil, nil, err
	}
	s.cleanups = append(s.cleanups, px.close)
	return &location{
		name:  "peer",
		url:   fmt.Sprintf("peer://%s@%s/soak", id, px.addr()),
		dir:   filepath.Join(ps.root, clientID, "soak"),
		proxy: px,
	}, ps, nil
}

// peerID runs "cairn peer id" for a config dir (making its identity).
func (s *soak) peerID(configDir string) (string, error) {
	cmd := exec.Command(s.bin, "--config-dir", configDir, "peer", "id")
	cmd.Env = s.run.env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("peer id: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// start runs the server and waits until it listens.
func (ps *peerServer) start() error {
	var lastErr error
	for range 50 {
		cmd := exec.Command(ps.s.bin, "--config-dir", ps.configDir, "peer", "serve",
			"--listen", ps.listen, "--root", ps.root, "--allow", ps.allow)
		cmd.Env = ps.s.run.env
		pr, pw := io.Pipe()
		logs := &serverLog{}
		cmd.Stderr = pw
		if err := cmd.Start(); err != nil {
			return err
		}
		done := make(chan struct{})
		ready := make(chan bool, 1)
		scanned := make(chan struct{})
		go func() {
			defer close(scanned)
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				logs.add(line)
				if strings.HasPrefix(line, "serving peer ") {
					select {
					case ready <- true:
					default:
					}
				}
			}
			_, _ = io.Copy(io.Discard, pr) // a line too long for the scanner: keep the server unblocked
		}()
		go func() {
			_ = cmd.Wait()
			_ = pw.Close()
			<-scanned
			close(done)
		}()
		select {
		case <-ready:
			ps.mu.Lock()
			ps.cmd, ps.log, ps.done = cmd, logs, done
			ps.starts++
			ps.mu.Unlock()
			return nil
		case <-done:
			lastErr = fmt.Errorf("peer serve exited: %s", strings.TrimSpace(logs.String()))
			// The port may still be held by the process just killed.
			time.Sleep(100 * time.Millisecond)
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			return errors.New("peer serve did not start within 20s")
		}
	}
	return lastErr
}

// stop ends the server with sig and checks its log for panics.
func (ps *peerServer) stop(sig syscall.Signal) {
	ps.mu.Lock()
	cmd, done, logs := ps.cmd, ps.done, ps.log
	ps.cmd = nil
	ps.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		ps.s.mu.Lock()
		ps.s.failf("HANG: peer serve did not stop within 15s of %v", sig)
		ps.s.mu.Unlock()
		_ = cmd.Process.Kill()
		<-done
	}
	logs.mu.Lock()
	panicked := logs.panicked
	logs.mu.Unlock()
	if panicked {
		ps.s.mu.Lock()
		ps.s.st.panics++
		ps.s.failf("PANIC in peer serve:\n%s", logs.String())
		ps.s.mu.Unlock()
	}
}

// restart kills the server (SIGKILL or SIGTERM) and starts it again.
func (ps *peerServer) restart(sig syscall.Signal) error {
	ps.stop(sig)
	return ps.start()
}

// damage is one file of a copy that the soak damaged on purpose.
type damage struct {
	file string // "data/<id>", "index/<id>", "log/<id>"
	kind string // "bit-flip" or "delete"
}

// repoFiles lists a repository folder's pack, index and log files as
// repository paths ("data/<id>") with their paths on disk.
func repoFiles(dir string) (map[string]string, error) {
	files := map[string]string{}
	for _, sub := range []string{"data", "index", "log"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") && len(d.Name()) == 64 {
				files[sub+"/"+d.Name()] = p
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// injectDamage flips a bit in or deletes n random files of the copy at
// dir and returns what it did. Log damage spares the newest entries'
// place in the chain no more than any other: any entry may be hit.
func (s *soak) injectDamage(dir string, n int) ([]damage, error) {
	files, err := repoFiles(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	s.mu.Lock()
	for f := range files {
		if !s.junk[f] { // junk is nobody's data: damaging it hides nothing
			names = append(names, f)
		}
	}
	s.mu.Unlock()
	sort.Strings(names)
	var out []damage
	for range n {
		if len(names) == 0 {
			break
		}
		i := s.rng.IntN(len(names))
		name := names[i]
		names = append(names[:i], names[i+1:]...)
		p := files[name]
		if s.rng.IntN(2) == 0 {
			if err := os.Remove(p); err != nil {
				return out, err
			}
			out = append(out, damage{file: name, kind: "delete"})
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return out, err
		}
		if len(b) == 0 {
			continue
		}
		b[s.rng.IntN(len(b))] ^= 1 << s.rng.IntN(8)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return out, err
		}
		out = append(out, damage{file: name, kind: "bit-flip"})
	}
	return out, nil
}

// repairDamage removes the damaged files from the copy, as its owner
// would once check named them, so that the next mirror sends them again.
func repairDamage(dir string, dmg []damage) error {
	files, err := repoFiles(dir)
	if err != nil {
		return err
	}
	for _, d := range dmg {
		if p, ok := files[d.file]; ok {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}
