package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/backend/retry"
	"github.com/cairn-backup/cairn/backend/sftp/sftptest"
)

// testConfig reaches folder dir on srv with the server's own key files,
// keeping the user's agent and files (ssh config included) out.
func testConfig(srv *sftptest.Server, dir string) Config {
	return Config{
		Host:           srv.Host,
		Port:           srv.Port,
		User:           srv.User,
		Path:           dir,
		KnownHostsFile: srv.KnownHostsFile,
		IdentityFiles:  []string{srv.ClientKeyFile},
		DisableAgent:   true,
		SSHConfigFile:  NoSSHConfig,
	}
}

func createTest(t *testing.T, cfg Config) *Backend {
	t.Helper()
	be, err := Create(t.Context(), cfg)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

func handleOf(ft backend.FileType, data []byte) backend.Handle {
	return backend.Handle{Type: ft, Name: backend.Hash(data).String()}
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSuite(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	backendtest.RunTests(t, func(t *testing.T) backend.Backend {
		be, err := Create(t.Context(), testConfig(srv, filepath.Join(t.TempDir(), "repo")))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if !be.Properties().HasAtomicReplace {
			t.Errorf("OpenSSH offers posix-rename, but HasAtomicReplace is false")
		}
		return be
	})
}

func TestCreateOpen(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "a", "repo")
	cfg := testConfig(srv, dir)
	if _, err := Open(ctx, cfg); !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("open of a missing folder: %v, want ErrNoRepository", err)
	}
	be := createTest(t, cfg)
	for _, sub := range []string{".", "keys", "data", "data/00", "data/7a", "data/ff", "index", "log", "locks", "meta"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !fi.IsDir() {
			t.Errorf("folder %s: %v", sub, err)
		} else if fi.Mode().Perm() != backend.DirMode {
			t.Errorf("folder %s has mode %v, want %v", sub, fi.Mode().Perm(), fs.FileMode(backend.DirMode))
		}
	}
	if _, err := Open(ctx, cfg); !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("open without config: %v, want ErrNoRepository", err)
	}
	// Creating again before the config exists is harmless.
	be2 := createTest(t, cfg)
	_ = be2.Close()

	if err := be.Put(ctx, configHandle, backend.NewByteReader([]byte("config bytes"))); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "config")); err != nil || fi.Mode().Perm() != backend.FileMode {
		t.Errorf("config file: %v, %v; want mode %v", fi, err, fs.FileMode(backend.FileMode))
	}
	if _, err := Create(ctx, cfg); !errors.Is(err, backend.ErrAlreadyExists) {
		t.Fatalf("create over a repository: %v, want ErrAlreadyExists", err)
	}
	be3, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer be3.Close()
	if want := srv.Location(dir); be3.Location() != want {
		t.Errorf("location %q, want %q", be3.Location(), want)
	}
	if err := be3.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := be3.Stat(ctx, configHandle); err == nil || !backend.IsPermanent(err) {
		t.Errorf("stat after close: %v, want a permanent error", err)
	}
}

// TestRelativePath puts a repository in a folder given relative to the
// home folder.
func TestRelativePath(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	rel := "cairn-sftp-test-" + backend.Hash(randomData(t, 8)).Str()
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join(home, rel)) })
	cfg := testConfig(srv, rel)
	be := createTest(t, cfg)
	data := []byte("relative")
	h := handleOf(backend.LogFile, data)
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(home, rel, "log", h.Name))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file in the home folder: %q, %v", got, err)
	}
}

// TestLocalCompat uses one folder through backend/local and through SFTP.
func TestLocalCompat(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	lb, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[backend.Handle][]byte{}
	for i, ft := range backend.AllTypes {
		data := randomData(t, 100+i)
		h := handleOf(ft, data)
		if ft == backend.ConfigFile {
			h = configHandle
		}
		files[h] = data
		if err := lb.Put(ctx, h, backend.NewByteReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := Open(ctx, testConfig(srv, dir))
	if err != nil {
		t.Fatalf("open a local repository over sftp: %v", err)
	}
	defer sb.Close()
	for h, data := range files {
		var got []byte
		err := sb.Get(ctx, h, 0, 0, func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		})
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("get %v over sftp: %d bytes, %v", h, len(got), err)
		}
		n := 0
		if err := sb.List(ctx, h.Type, func(fi backend.FileInfo) error {
			if fi.Name == h.Name && fi.Size == int64(len(data)) {
				n++
			}
			return nil
		}); err != nil || n != 1 {
			t.Errorf("list %v over sftp: found %d times, %v", h.Type, n, err)
		}
	}
	// And back: what sftp stores, local reads.
	data := randomData(t, 5000)
	h := handleOf(backend.PackFile, data)
	if err := sb.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	if fi, err := lb.Stat(ctx, h); err != nil || fi.Size != 5000 {
		t.Errorf("stat through local of a pack stored over sftp: %+v, %v", fi, err)
	}
}

// TestListSkipsJunk checks what List must not report: temporary files,
// names that are not hashes, packs in the wrong subfolder, folders; and
// that it follows symbolic links.
func TestListSkipsJunk(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	be := createTest(t, testConfig(srv, dir))
	data := []byte("a real pack")
	h := handleOf(backend.PackFile, data)
	if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	other := backend.Hash([]byte("other")).String()
	wrongSub := "00"
	if strings.HasPrefix(other, "00") {
		wrongSub = "01"
	}
	idx := backend.Hash([]byte("index")).String()
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("linked"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{
		"data/" + h.Name[:2] + "/" + backend.TempPrefix + "0123",
		"data/" + h.Name[:2] + "/" + strings.ToUpper(other),
		"data/" + wrongSub + "/" + other,
		"data/" + other,
		"index/" + backend.TempPrefix + idx[5:],
		"index/" + idx[:63],
		"keys/readme.txt",
	} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "zz"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "log", other), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "index", idx)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "keys", other)); err != nil {
		t.Fatal(err)
	}
	want := map[backend.FileType]map[string]int64{
		backend.PackFile:  {h.Name: int64(len(data))},
		backend.IndexFile: {idx: 6},
		backend.KeyFile:   {},
		backend.LogFile:   {},
	}
	for ft, w := range want {
		got := map[string]int64{}
		if err := be.List(ctx, ft, func(fi backend.FileInfo) error {
			got[fi.Name] = fi.Size
			return nil
		}); err != nil {
			t.Fatalf("list %v: %v", ft, err)
		}
		if len(got) != len(w) {
			t.Errorf("list %v = %v, want %v", ft, got, w)
		}
		for n, size := range w {
			if got[n] != size {
				t.Errorf("list %v: %s has size %d, want %d", ft, n, got[n], size)
			}
		}
	}
}

// TestHostKeyAlgorithms: a known_hosts file listing only one of the
// server's two keys must be enough, whichever it is.
func TestHostKeyAlgorithms(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	for _, k := range srv.HostKeys {
		t.Run(k.Type(), func(t *testing.T) {
			cfg := testConfig(srv, filepath.Join(t.TempDir(), "repo"))
			cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
			sftptest.WriteKnownHosts(t, cfg.KnownHostsFile, srv.Addr(), k)
			createTest(t, cfg)
		})
	}
}

func TestUnknownHost(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	for _, name := range []string{"empty", "missing", "other host"} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(srv, filepath.Join(t.TempDir(), "repo"))
			cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
			switch name {
			case "empty":
				sftptest.WriteKnownHosts(t, cfg.KnownHostsFile, srv.Addr())
			case "other host":
				sftptest.WriteKnownHosts(t, cfg.KnownHostsFile, "127.0.0.2:22", srv.HostKeys...)
			}
			_, err := Create(t.Context(), cfg)
			if !errors.Is(err, ErrHostKeyUnknown) || !backend.IsPermanent(err) {
				t.Fatalf("got %v, want a permanent ErrHostKeyUnknown", err)
			}
			msg := err.Error()
			for _, want := range []string{"ssh -p " + srvPort(srv), ssh.FingerprintSHA256(srv.HostKeys[0]), cfg.KnownHostsFile} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not mention %q", msg, want)
				}
			}
			if _, err := os.Stat(cfg.Path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("refused create made the folder: %v", err)
			}
		})
	}
}

func srvPort(srv *sftptest.Server) string {
	_, p, _ := net.SplitHostPort(srv.Addr())
	return p
}

func TestChangedHostKey(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv, filepath.Join(t.TempDir(), "repo"))
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	sftptest.WriteKnownHosts(t, cfg.KnownHostsFile, srv.Addr(), impostor)
	_, err = Create(t.Context(), cfg)
	if !errors.Is(err, ErrHostKeyChanged) || !backend.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent ErrHostKeyChanged", err)
	}
	msg := err.Error()
	for _, want := range []string{"WARNING", "ssh-keygen -R", ssh.FingerprintSHA256(impostor), cfg.KnownHostsFile + ":1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not mention %q", msg, want)
		}
	}

	// A revoked key is refused as loudly.
	f, err := os.OpenFile(cfg.KnownHostsFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range srv.HostKeys {
		if _, err := f.WriteString("@revoked * " + string(ssh.MarshalAuthorizedKey(k))); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err = Create(t.Context(), cfg); !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked key: got %v, want ErrHostKeyChanged saying revoked", err)
	}
}

func TestWrongUserKey(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	const pw = "not-the-password-42"
	cfg := testConfig(srv, filepath.Join(t.TempDir(), "repo"))
	stranger := filepath.Join(t.TempDir(), "id_ed25519")
	key := sftptest.NewKey(t, stranger)
	cfg.IdentityFiles = []string{stranger, filepath.Join(t.TempDir(), "absent")}
	cfg.Password = pw
	_, err := Create(t.Context(), cfg)
	if !errors.Is(err, ErrAuth) || !backend.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent ErrAuth", err)
	}
	msg := err.Error()
	for _, want := range []string{stranger, ssh.FingerprintSHA256(key), "authorized_keys", "absent does not exist", srv.User} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, pw) {
		t.Errorf("message holds the password: %s", msg)
	}
}

func writeEncryptedKey(t *testing.T, file string) (ed25519.PrivateKey, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, p
}

// authorize adds key to the server's authorized_keys, after options
// when they are not empty.
func authorize(t *testing.T, srv *sftptest.Server, key ssh.PublicKey, options string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(filepath.Dir(srv.ClientKeyFile), "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	line := ssh.MarshalAuthorizedKey(key)
	if options != "" {
		line = append([]byte(options+" "), line...)
	}
	if _, err := f.Write(line); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// startAgent serves an ssh-agent holding keys on a socket in a temporary
// folder and returns the socket's path.
func startAgent(t *testing.T, keys ...any) string {
	t.Helper()
	ring := agent.NewKeyring()
	for _, k := range keys {
		if err := ring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _ = agent.ServeAgent(ring, c) })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return sock
}

func TestEncryptedKey(t *testing.T) {
	srv := sftptest.Start(t)
	file := filepath.Join(t.TempDir(), "id_ed25519")
	priv, pub := writeEncryptedKey(t, file)
	authorize(t, srv, pub, "")

	cfg := testConfig(srv, filepath.Join(t.TempDir(), "repo"))
	cfg.IdentityFiles = []string{file}
	_, err := Create(t.Context(), cfg)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "ssh-add") || !strings.Contains(err.Error(), file) {
		t.Fatalf("encrypted key without agent: got %v, want ErrAuth naming the file and ssh-add", err)
	}

	// With the key in the agent, it logs in.
	t.Setenv("SSH_AUTH_SOCK", startAgent(t, priv))
	cfg.DisableAgent = false
	createTest(t, cfg)
}

func TestAgentOnly(t *testing.T) {
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
	t.Setenv("SSH_AUTH_SOCK", startAgent(t, priv))
	cfg := testConfig(srv, filepath.Join(t.TempDir(), "repo"))
	cfg.IdentityFiles = []string{}
	cfg.DisableAgent = false
	createTest(t, cfg)

	// An agent that holds a key the server does not know is refused
	// with a message that says the agent was asked.
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", startAgent(t, other))
	_, err = Create(t.Context(), cfg)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "1 key(s) from ssh-agent") {
		t.Fatalf("got %v, want ErrAuth mentioning the agent's key", err)
	}
}

// TestUserFiles reaches the server with nothing but a home folder's
// ~/.ssh/id_ed25519 and ~/.ssh/known_hosts, as a user would.
func TestUserFiles(t *testing.T) {
	srv := sftptest.Start(t)
	t.Setenv("HOME", srv.Home)
	t.Setenv("SSH_AUTH_SOCK", "")
	loc := srv.Location(filepath.Join(t.TempDir(), "repo"))
	cfg, err := ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	createTest(t, cfg)

	// An empty home and no agent: a clear error before connecting.
	t.Setenv("HOME", t.TempDir())
	_, err = Create(t.Context(), cfg)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "no SSH key") {
		t.Fatalf("no keys: got %v, want ErrAuth saying there is no key", err)
	}
}

// proxied is cfg reaching srv through p: the known_hosts file names the
// proxy's port.
func proxied(t *testing.T, srv *sftptest.Server, p *proxy, dir string) Config {
	cfg := testConfig(srv, dir)
	cfg.Port = p.port()
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	sftptest.WriteKnownHosts(t, cfg.KnownHostsFile, p.addr(), srv.HostKeys...)
	return cfg
}

// tempFiles lists the temporary files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), backend.TempPrefix) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestInterruptedPut cuts the connection in the middle of an upload: the
// file must not appear, and the next Put reconnects and succeeds, removing
// the temporary file the broken one left.
func TestInterruptedPut(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	p := newProxy(t, srv.Addr())
	dir := filepath.Join(t.TempDir(), "repo")
	be := createTest(t, proxied(t, srv, p, dir))
	ctx := t.Context()

	data := randomData(t, 2<<20)
	h := handleOf(backend.PackFile, data)
	p.cutAfter(512 << 10)
	err := be.Put(ctx, h, backend.NewByteReader(data))
	if err == nil {
		t.Fatal("put through a cut connection succeeded")
	}
	if backend.IsPermanent(err) {
		t.Errorf("a cut connection gave a permanent error: %v", err)
	}
	if p.cuts.Load() != 1 {
		t.Fatalf("the proxy cut %d connections, want 1", p.cuts.Load())
	}
	t.Logf("put through a cut connection: %v", err)

	// Nothing a reader could take for the file: not on disk under its
	// name, not through a fresh backend.
	if _, err := os.Stat(filepath.Join(dir, "data", h.Name[:2], h.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file after a cut upload: %v", err)
	}
	direct := createTest(t, testConfig(srv, dir))
	if _, err := direct.Stat(ctx, h); !backend.IsNotExist(err) {
		t.Errorf("stat after a cut upload: %v, want ErrNotExist", err)
	}
	n := 0
	if err := direct.List(ctx, backend.PackFile, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("list after a cut upload: %d files, %v", n, err)
	}

	if tmp := tempFiles(t, dir); len(tmp) != 1 {
		t.Errorf("temporary files after the cut: %v, want the one the cut upload left", tmp)
	}

	// The same backend reconnects on its next request, and removes that
	// temporary file.
	if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("put after the cut: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "data", h.Name[:2], h.Name))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file after the second put: %d bytes, %v", len(got), err)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left after reconnecting: %v", tmp)
	}
}

// TestRetryOverCut: stacked under backend/retry, a Put whose connection is
// cut succeeds on the next attempt.
func TestRetryOverCut(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	p := newProxy(t, srv.Addr())
	dir := filepath.Join(t.TempDir(), "repo")
	inner := createTest(t, proxied(t, srv, p, dir))
	var reports []string
	be, err := retry.New(inner, retry.Options{
		Sleep:  func(context.Context, time.Duration) error { return nil },
		Report: func(op string, err error, _ time.Duration) { reports = append(reports, op+": "+err.Error()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(t, 1<<20)
	h := handleOf(backend.PackFile, data)
	p.cutAfter(100 << 10)
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("put with retries: %v", err)
	}
	if len(reports) != 1 {
		t.Errorf("retries reported: %q, want one", reports)
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

// TestStalledConnection: a connection that goes silent is closed by the
// keep-alive probe, the request on it fails, and the next one reconnects.
func TestStalledConnection(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	p := newProxy(t, srv.Addr())
	dir := filepath.Join(t.TempDir(), "repo")
	cfg := proxied(t, srv, p, dir)
	cfg.keepAlive = 200 * time.Millisecond
	be := createTest(t, cfg)
	data := []byte("stall")
	h := handleOf(backend.LockFile, data)
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	p.freeze()
	start := time.Now()
	_, err := be.Stat(t.Context(), h)
	if err == nil {
		t.Fatal("stat over a frozen connection succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stat over a frozen connection took %v", d)
	}
	if fi, err := be.Stat(t.Context(), h); err != nil || fi.Size != int64(len(data)) {
		t.Fatalf("stat after reconnecting: %+v, %v", fi, err)
	}
}

// TestCancelledDial: a cancelled context stops a dial too.
func TestCancelledDial(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Create(ctx, testConfig(srv, filepath.Join(t.TempDir(), "repo"))); !errors.Is(err, context.Canceled) {
		t.Fatalf("create with a cancelled context: %v", err)
	}
}

// TestSFTPOnlyKey logs in with a key that authorized_keys restricts to
// SFTP, as docs/sftp.md suggests for backup keys.
func TestSFTPOnlyKey(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	file := filepath.Join(t.TempDir(), "id_ed25519")
	authorize(t, srv, sftptest.NewKey(t, file), `restrict,command="internal-sftp"`)
	cfg := testConfig(srv, filepath.Join(t.TempDir(), "repo"))
	cfg.IdentityFiles = []string{file}
	be := createTest(t, cfg)
	data := []byte("sftp only")
	h := handleOf(backend.KeyFile, data)
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
}

// pausingReader hands out the first half of its content, then waits for
// resume before it hands out the rest, signalling paused once.
type pausingReader struct {
	data   []byte
	pos    int
	paused chan struct{}
	resume chan struct{}
	once   bool
}

func (r *pausingReader) Read(p []byte) (int, error) {
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	if half := len(r.data) / 2; r.pos >= half && !r.once {
		r.once = true
		close(r.paused)
		<-r.resume
	}
	end := len(r.data)
	if !r.once {
		end = len(r.data) / 2
	}
	n := copy(p, r.data[r.pos:end])
	r.pos += n
	return n, nil
}

func (r *pausingReader) Rewind() error { r.pos = 0; return nil }
func (r *pausingReader) Length() int64 { return int64(len(r.data)) }

// TestTempFileMode: the temporary file of an upload is private (0600)
// while its content arrives, whatever the server's umask makes of a new
// file, and the stored file is read-only (0400), as backend/local's are.
func TestTempFileMode(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t)
	dir := filepath.Join(t.TempDir(), "repo")
	be := createTest(t, testConfig(srv, dir))
	data := randomData(t, 1<<20)
	h := handleOf(backend.PackFile, data)
	rd := &pausingReader{data: data, paused: make(chan struct{}), resume: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- be.Put(t.Context(), h, rd) }()
	select {
	case <-rd.paused:
	case err := <-done:
		t.Fatalf("put ended before half its content was read: %v", err)
	}
	tmp := tempFiles(t, dir)
	if len(tmp) != 1 {
		close(rd.resume)
		t.Fatalf("temporary files during the upload: %v, want one", tmp)
	}
	// The first half is on its way: wait until some of it has landed.
	var fi os.FileInfo
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var err error
		fi, err = os.Stat(tmp[0])
		if err != nil {
			close(rd.resume)
			t.Fatal(err)
		}
		if fi.Size() > 0 || time.Now().After(deadline) {
			break
		}
	}
	close(rd.resume)
	if fi.Size() == 0 {
		t.Errorf("no content reached the temporary file within 10 s")
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("temporary file %s has mode %#o with %d bytes in it, want 0600", filepath.Base(tmp[0]), m, fi.Size())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "data", h.Name[:2], h.Name))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o400 {
		t.Errorf("stored file has mode %#o, want 0400", m)
	}
}
