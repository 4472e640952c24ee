package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// rawStream opens a stream on be's connection, for requests the client
// would never send.
func rawStream(t *testing.T, be *Backend) *yamux.Stream {
	t.Helper()
	s, err := be.session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	return st
}

// rawResponse writes b to a new stream and reads the server's response.
func rawResponse(t *testing.T, be *Backend, b []byte) response {
	t.Helper()
	st := rawStream(t, be)
	if _, err := st.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	p, err := readFrame(st, maxResponseFrame)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp, err := decodeResponse(p)
	if err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return resp
}

func TestStrangerRefused(t *testing.T) {
	t.Parallel()
	friend, stranger := newIdentity(t), newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{friend.PeerID(): ModeReadWrite}})
	_, err := Create(t.Context(), ts.loc("x"), stranger)
	if !errors.Is(err, ErrNotAllowed) || !backend.IsPermanent(err) {
		t.Fatalf("stranger: got %v, want a permanent ErrNotAllowed", err)
	}
	if !ts.log.logged("is not in the allow list") {
		t.Errorf("server did not log the refusal")
	}
	// Nothing was made for the stranger.
	if _, err := os.Stat(filepath.Join(ts.cfg.Root, stranger.PeerID().String())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stranger's folder: %v", err)
	}
	// The friend is served.
	be := ts.create(t, friend, "x")
	putBytes(t, be, handleOf(backend.KeyFile, []byte("k")), []byte("k"))
}

func TestWrongServerRefused(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	loc := ts.loc("x")
	loc.Peer = newIdentity(t).PeerID() // pin someone else
	_, err := Dial(t.Context(), loc, client)
	if !errors.Is(err, ErrPeerMismatch) || !backend.IsPermanent(err) {
		t.Fatalf("wrong server: got %v, want a permanent ErrPeerMismatch", err)
	}
	if !strings.Contains(err.Error(), ts.id.PeerID().String()) {
		t.Errorf("error does not name the key the server presented: %v", err)
	}
}

func TestDialAndCreate(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	if _, err := Dial(t.Context(), ts.loc("repo"), client); !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("dial an empty location: got %v, want ErrNoRepository", err)
	}
	be := ts.create(t, client, "repo")
	cfg := []byte("sealed config")
	putBytes(t, be, handleOf(backend.ConfigFile, cfg), cfg)
	if _, err := Create(t.Context(), ts.loc("repo"), client); !errors.Is(err, backend.ErrAlreadyExists) {
		t.Fatalf("create over a repository: got %v, want ErrAlreadyExists", err)
	}
	be2, err := Dial(t.Context(), ts.loc("repo"), client)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer be2.Close()
	if be2.Location() != ts.loc("repo").String() || be2.Mode() != ModeReadWrite {
		t.Errorf("location %q, mode %v", be2.Location(), be2.Mode())
	}
	// The repository lies in the client's folder under its name.
	if _, err := os.Stat(filepath.Join(ts.cfg.Root, client.PeerID().String(), "repo", "config")); err != nil {
		t.Errorf("config not where documented: %v", err)
	}
	// Another name is another repository.
	other := ts.create(t, client, "other")
	if _, err := other.Stat(t.Context(), handleOf(backend.ConfigFile, nil)); !backend.IsNotExist(err) {
		t.Errorf("config seen in another repository: %v", err)
	}
}

func TestAppendOnly(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly}})
	be := ts.create(t, client, "r")
	if be.Mode() != ModeAppendOnly || be.Properties().HasAtomicReplace {
		t.Errorf("mode %v, properties %+v", be.Mode(), be.Properties())
	}
	pack := []byte("a pack")
	h := handleOf(backend.PackFile, pack)
	putBytes(t, be, h, pack)
	cfg := handleOf(backend.ConfigFile, nil)
	putBytes(t, be, cfg, []byte("first config"))

	if err := be.Put(t.Context(), h, backend.NewByteReader(pack)); !errors.Is(err, backend.ErrAppendOnly) {
		t.Errorf("overwrite: got %v, want ErrAppendOnly", err)
	}
	if err := be.Put(t.Context(), cfg, backend.NewByteReader([]byte("evil config"))); !errors.Is(err, backend.ErrAppendOnly) {
		t.Errorf("replace config: got %v, want ErrAppendOnly", err)
	}
	if err := be.Delete(t.Context(), h); !errors.Is(err, backend.ErrAppendOnly) || !backend.IsPermanent(err) {
		t.Errorf("delete: got %v, want a permanent ErrAppendOnly", err)
	}
	got := getAll(t, be, cfg)
	if string(got) != "first config" {
		t.Errorf("config is %q after refused replace", got)
	}
	if _, err := be.Stat(t.Context(), h); err != nil {
		t.Errorf("pack after refused delete: %v", err)
	}
	// New files are welcome, and lock files may go.
	more := []byte("another pack")
	putBytes(t, be, handleOf(backend.PackFile, more), more)
	lock := []byte("lock")
	lh := handleOf(backend.LockFile, lock)
	putBytes(t, be, lh, lock)
	if err := be.Delete(t.Context(), lh); err != nil {
		t.Errorf("delete a lock: %v", err)
	}
}

// TestDevicesSeparated: two devices allowed on one server, under the
// same repository name, each reach only their own folder, chosen by the
// key they authenticated with: one device's files are neither listed,
// read, replaced nor deleted by the other, even a read-write one, and the
// same content put by the other is stored in the other's own folder.
// (docs/peers.md's threat model: a second device of yours, or a stolen
// one, cannot touch the copy another device keeps on a friend.)
func TestDevicesSeparated(t *testing.T) {
	t.Parallel()
	laptop, desktop := newIdentity(t), newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{
		laptop.PeerID():  ModeAppendOnly,
		desktop.PeerID(): ModeReadWrite,
	}})
	be := ts.create(t, laptop, "home")
	pack := []byte("the laptop's pack")
	h := handleOf(backend.PackFile, pack)
	putBytes(t, be, h, pack)
	cfg := handleOf(backend.ConfigFile, nil)
	putBytes(t, be, cfg, []byte("the laptop's config"))

	// The desktop finds no repository by that name: it is in the
	// laptop's folder, not the desktop's.
	if _, err := Dial(t.Context(), ts.loc("home"), desktop); !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("the desktop dials the laptop's repository name: got %v, want ErrNoRepository", err)
	}
	other := ts.create(t, desktop, "home")
	for _, ft := range []backend.FileType{backend.ConfigFile, backend.PackFile} {
		if err := other.List(t.Context(), ft, func(fi backend.FileInfo) error {
			return fmt.Errorf("the desktop lists %s", fi.Name)
		}); err != nil {
			t.Error(err)
		}
	}
	if _, err := other.Stat(t.Context(), h); !backend.IsNotExist(err) {
		t.Errorf("stat of the laptop's pack as the desktop: %v", err)
	}
	if err := other.Get(t.Context(), h, 0, 0, func(io.Reader) error { return nil }); !backend.IsNotExist(err) {
		t.Errorf("get of the laptop's pack as the desktop: %v", err)
	}
	if err := other.Delete(t.Context(), h); !backend.IsNotExist(err) {
		t.Errorf("delete of the laptop's pack as the desktop: %v", err)
	}
	// A config the desktop puts is its own: it replaces nothing of the
	// laptop's, and the same pack, put and deleted, is the desktop's.
	putBytes(t, other, cfg, []byte("the desktop's config"))
	putBytes(t, other, h, pack)
	if err := other.Delete(t.Context(), h); err != nil {
		t.Errorf("the desktop deletes its own pack: %v", err)
	}

	if got := getAll(t, be, h); !bytes.Equal(got, pack) {
		t.Errorf("the laptop's pack holds %q", got)
	}
	if got := getAll(t, be, cfg); string(got) != "the laptop's config" {
		t.Errorf("the laptop's config holds %q", got)
	}
	for _, id := range []*crypt.Identity{laptop, desktop} {
		if _, err := os.Stat(filepath.Join(ts.cfg.Root, id.PeerID().String(), "home", "config")); err != nil {
			t.Errorf("config of %s: %v", id.PeerID(), err)
		}
	}
}

// TestAppendOnlyReplacesDamaged: a file on the server's disk whose
// content no longer matches its name (truncated, grown, or bit-flipped
// at the same size) is damage, not history: an append-only client may put
// it again, the new content is checked against the name as every put's
// is, and the server logs the replacement. An intact file, and the
// config (whose name is no hash), still cannot be replaced.
func TestAppendOnlyReplacesDamaged(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly}})
	be := ts.create(t, client, "r")
	dir := filepath.Join(ts.cfg.Root, client.PeerID().String(), "r")
	path := func(h backend.Handle) string {
		if h.Type == backend.PackFile {
			return filepath.Join(dir, "data", h.Name[:2], h.Name)
		}
		return filepath.Join(dir, h.Type.Dir(), h.Name)
	}
	damage := map[string]func([]byte) []byte{
		"truncated":   func(b []byte) []byte { return b[:len(b)/2] },
		"emptied":     func([]byte) []byte { return nil },
		"grown":       func(b []byte) []byte { return append(b, "junk"...) },
		"bit-flipped": func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/3] ^= 0x10; return c },
	}
	for what, fn := range damage {
		for _, ft := range []backend.FileType{backend.PackFile, backend.LogFile} {
			data := bytes.Repeat([]byte(what+" "+ft.String()+" "), 5000)
			h := handleOf(ft, data)
			putBytes(t, be, h, data)
			if err := os.Chmod(path(h), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path(h), fn(data), 0o400); err != nil {
				t.Fatal(err)
			}
			// Content that does not hash to the name replaces nothing.
			wrong := bytes.Clone(data)
			wrong[0] ^= 1
			if err := be.Put(t.Context(), h, backend.NewByteReader(wrong)); !errors.Is(err, backend.ErrHashMismatch) {
				t.Errorf("%s %s: put of wrong content: %v, want ErrHashMismatch", what, ft, err)
			}
			if got, _ := os.ReadFile(path(h)); !bytes.Equal(got, fn(data)) {
				t.Errorf("%s %s: a refused put changed the file", what, ft)
			}
			if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
				t.Errorf("%s %s: put of the right content over a damaged file: %v", what, ft, err)
				continue
			}
			if got, err := os.ReadFile(path(h)); err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s %s: after the put the file holds %d bytes (%v), want the %d put", what, ft, len(got), err, len(data))
			}
			if got := getAll(t, be, h); !bytes.Equal(got, data) {
				t.Errorf("%s %s: get after the repair: %d bytes", what, ft, len(got))
			}
			if !ts.log.logged("replaced damaged file " + h.String()) {
				t.Errorf("%s %s: the server did not log the replacement", what, ft)
			}
			// Repaired, it is history again.
			if err := be.Put(t.Context(), h, backend.NewByteReader(data)); !errors.Is(err, backend.ErrAppendOnly) {
				t.Errorf("%s %s: put over the repaired file: %v, want ErrAppendOnly", what, ft, err)
			}
		}
	}
	// The config's name is no hash: the server cannot tell damage from a
	// change, so it keeps refusing.
	cfg := handleOf(backend.ConfigFile, nil)
	putBytes(t, be, cfg, []byte("the config"))
	if err := os.Chmod(filepath.Join(dir, "config"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte("the conf"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := be.Put(t.Context(), cfg, backend.NewByteReader([]byte("the config"))); !errors.Is(err, backend.ErrAppendOnly) {
		t.Errorf("put over a changed config: %v, want ErrAppendOnly", err)
	}
}

// TestJunkInClientFolder: junk a friend (or a disk fault) leaves in a
// client's log/ folder does not stop the server from serving it: files
// with names that are no hash, a hash-named file of junk, a folder, a
// link leading out, a stray temporary file. The listing skips what is not
// a file with a valid name, and puts and a new server's count go on.
func TestJunkInClientFolder(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	root := t.TempDir()
	cfg := ServerConfig{Root: root, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly}}
	ts := startServer(t, cfg)
	be := ts.create(t, client, "r")
	entry := []byte("a log entry")
	putBytes(t, be, handleOf(backend.LogFile, entry), entry)
	logDir := filepath.Join(root, client.PeerID().String(), "r", "log")
	junkName := handleOf(backend.LogFile, []byte("what the name promises")).Name
	for name, content := range map[string]string{
		"README":                "not an entry",
		junkName:                "not what the name promises",
		strings.Repeat("A", 64): "upper case",
		".tmp-leftover":         "half an upload",
	} {
		if err := os.WriteFile(filepath.Join(logDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(logDir, handleOf(backend.LogFile, []byte("dir")).Name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(logDir, "link")); err != nil {
		t.Fatal(err)
	}
	check := func(be *Backend, what string) {
		t.Helper()
		var names []string
		if err := be.List(t.Context(), backend.LogFile, func(fi backend.FileInfo) error {
			names = append(names, fi.Name)
			return nil
		}); err != nil {
			t.Fatalf("%s: list: %v", what, err)
		}
		if len(names) < 2 || !slices.Contains(names, junkName) || slices.Contains(names, "README") {
			t.Errorf("%s: listed %v", what, names)
		}
		more := []byte(what)
		putBytes(t, be, handleOf(backend.LogFile, more), more)
		// The hash-named junk is damage: the right content replaces it.
		right := []byte("what the name promises")
		if err := be.Put(t.Context(), handleOf(backend.LogFile, right), backend.NewByteReader(right)); err != nil &&
			!errors.Is(err, backend.ErrAppendOnly) {
			t.Errorf("%s: put over junk: %v", what, err)
		}
	}
	check(be, "running server")
	_ = be.Close()
	ts2 := startServer(t, cfg)
	check(ts2.create(t, client, "r"), "restarted server")
	if got, err := os.ReadFile(filepath.Join(logDir, junkName)); err != nil || string(got) != "what the name promises" {
		t.Errorf("the junk under a hash name: %q, %v", got, err)
	}
}

// TestRefusalsLogged: every refusal is one line of the server's log,
// naming the device, the request and the file, and why.
func TestRefusalsLogged(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Quota: 1 << 20, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly}})
	be := ts.create(t, client, "r")
	pack := []byte("a pack")
	h := handleOf(backend.PackFile, pack)
	putBytes(t, be, h, pack)
	big := make([]byte, 2<<20)
	bigH := handleOf(backend.PackFile, big)
	wrong := handleOf(backend.IndexFile, []byte("another content"))
	for _, c := range []struct {
		err  error
		want string
	}{
		{be.Put(t.Context(), h, backend.NewByteReader(pack)), "put " + h.String() + ": refused: append-only"},
		{be.Delete(t.Context(), h), "delete " + h.String() + ": refused: append-only"},
		{be.Put(t.Context(), bigH, backend.NewByteReader(big)), "put " + bigH.String() + ": refused: quota exceeded"},
		{be.Put(t.Context(), wrong, backend.NewByteReader(pack)), "put " + wrong.String() + ": refused: content does not match its name"},
	} {
		if c.err == nil {
			t.Errorf("%s: the request succeeded", c.want)
			continue
		}
		want := "peer server: peer " + client.PeerID().Short() + " (127.0.0.1:"
		if !ts.log.logged(c.want) || !ts.log.logged(want) {
			t.Errorf("no log line %q (client error: %v)", c.want, c.err)
		}
	}
}

// TestYamuxLogLines: the multiplexer's lines about a connection that
// ended are dropped, the rest are kept in words for the server's owner.
func TestYamuxLogLines(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"[ERR] yamux: Failed to read header: unexpected EOF", ""},
		{"[ERR] yamux: Failed to write header: write tcp 127.0.0.1:1->127.0.0.1:2: write: connection reset by peer", ""},
		{"[ERR] yamux: Failed to write body: write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe", ""},
		{"[ERR] yamux: Failed to read stream data: read tcp 127.0.0.1:1->127.0.0.1:2: use of closed network connection", ""},
		{"[WARN] yamux: failed to send ping reply: session shutdown", ""},
		{"[WARN] yamux: failed to send go away: connection reset", ""},
		{"[ERR] yamux: keepalive failed: i/o deadline reached", "the client stopped answering keep-alive pings; closing the connection"},
		{"[ERR] yamux: Invalid protocol version: 7", "multiplexer: Invalid protocol version: 7"},
		{"[WARN] yamux: backlog exceeded, forcing connection reset", "multiplexer: backlog exceeded, forcing connection reset"},
		{"[ERR] yamux: receive window exceeded (stream: 3, remain: 0, recv: 10)", "multiplexer: receive window exceeded (stream: 3, remain: 0, recv: 10)"},
		{"[ERR] yamux: Failed to read header: tls: bad record MAC", "multiplexer: Failed to read header: tls: bad record MAC"},
	} {
		var got []string
		l := &yamuxLogger{who: "peer X", logf: func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }}
		l.Printf("%s", c.in)
		switch {
		case c.want == "" && len(got) != 0:
			t.Errorf("%q: logged %q, want nothing", c.in, got)
		case c.want != "" && (len(got) != 1 || got[0] != "peer server: peer X: "+c.want):
			t.Errorf("%q: logged %q, want %q", c.in, got, c.want)
		}
	}
}

func getAll(t *testing.T, be backend.Backend, h backend.Handle) []byte {
	t.Helper()
	var got []byte
	err := be.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatalf("get %v: %v", h, err)
	}
	return got
}

// diskCost is what the files and folders under dir cost by the rule of
// docs/peer-protocol.md (section 9): their bytes, plus InodeCost for each
// file and each folder, dir included; temporary files are not counted.
func diskCost(t *testing.T, dir string) (cost, files, folders int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		if d.IsDir() {
			folders++
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		cost += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cost + InodeCost*(files+folders), files, folders
}

func TestQuota(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	root := t.TempDir()
	const quota = 45000
	cfg := ServerConfig{Root: root, Quota: quota, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}}
	ts := startServer(t, cfg)
	be := ts.create(t, client, "a")
	first := bytes.Repeat([]byte{1}, 6000)
	putBytes(t, be, handleOf(backend.PackFile, first), first)
	// The client's folder, a/, a/data/ and a/data/XX/, and the file.
	afterFirst := int64(4*InodeCost + InodeCost + 6000)
	clientDir := filepath.Join(root, client.PeerID().String())
	if cost, _, _ := diskCost(t, clientDir); cost != afterFirst {
		t.Fatalf("the first put costs %d on disk, want %d", cost, afterFirst)
	}

	// The quota spans the client's repositories: b/, b/data/ and
	// b/data/YY/ fit, the file then does not.
	be2 := ts.create(t, client, "b")
	second := bytes.Repeat([]byte{2}, 5000)
	h2 := handleOf(backend.PackFile, second)
	err := be2.Put(t.Context(), h2, backend.NewByteReader(second))
	if !errors.Is(err, backend.ErrQuota) || !backend.IsPermanent(err) {
		t.Fatalf("put over quota: got %v, want a permanent ErrQuota", err)
	}
	for _, s := range []string{"quota", "8.9 KiB", "46.7 KiB", "43.9 KiB", h2.String()} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("quota error %q does not mention %q", err, s)
		}
	}
	if _, err := be2.Stat(t.Context(), h2); !backend.IsNotExist(err) {
		t.Errorf("refused file: %v", err)
	}
	// Deleting frees room: the file's bytes and its inode.
	if err := be.Delete(t.Context(), handleOf(backend.PackFile, first)); err != nil {
		t.Fatal(err)
	}
	putBytes(t, be2, h2, second)
	if q, used := be2.Usage(); q != quota || used != afterFirst {
		t.Errorf("usage at connection: quota %d, used %d; want %d, %d", q, used, quota, afterFirst)
	}

	// A new server on the same root counts what is on disk, and drops
	// the temporary file of a put cut short by a crash.
	stale := filepath.Join(clientDir, "b", "data", h2.Name[:2], ".tmp-123")
	if err := os.WriteFile(stale, make([]byte, 3000), 0o600); err != nil {
		t.Fatal(err)
	}
	onDisk, _, _ := diskCost(t, clientDir)
	ts2 := startServer(t, cfg)
	be3 := ts2.create(t, client, "c")
	if _, used := be3.Usage(); used != onDisk {
		t.Errorf("usage counted after restart: %d, want %d", used, onDisk)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file: %v", err)
	}
	// Room for c/ and c/index/ and a file, once the second file is gone.
	be4 := ts2.create(t, client, "b")
	if err := be4.Delete(t.Context(), h2); err != nil {
		t.Fatal(err)
	}
	room := quota - (onDisk - 5000 - InodeCost) - 3*InodeCost
	third := bytes.Repeat([]byte{3}, int(room)+1)
	if err := be3.Put(t.Context(), handleOf(backend.IndexFile, third), backend.NewByteReader(third)); !errors.Is(err, backend.ErrQuota) {
		t.Errorf("put over quota after restart: %v", err)
	}
	putBytes(t, be3, handleOf(backend.IndexFile, third[:room]), third[:room])
	if cost, _, _ := diskCost(t, clientDir); cost != quota {
		t.Errorf("the client's folder costs %d, want the quota %d", cost, quota)
	}
}

// regularFiles lists the regular files under dir.
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestHashMismatchRefused(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	h := handleOf(backend.PackFile, []byte("what the name says"))
	err := be.Put(t.Context(), h, backend.NewByteReader([]byte("something else")))
	if !errors.Is(err, backend.ErrHashMismatch) {
		t.Fatalf("put with content not matching its name: got %v, want ErrHashMismatch", err)
	}
	if _, err := be.Stat(t.Context(), h); !backend.IsNotExist(err) {
		t.Errorf("stat after refused put: %v", err)
	}
	if files := regularFiles(t, ts.cfg.Root); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}

	// A commit that does not match what was sent is refused too.
	data := []byte("content")
	h = handleOf(backend.ConfigFile, data)
	st := rawStream(t, be)
	var bad commit
	msg := frame(request{Op: opPut, Type: h.Type, Name: h.Name, Length: int64(len(data))}.encode())
	msg = append(msg, data...)
	msg = append(msg, frame(bad.encode())...)
	if _, err := st.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := readResponse(st); !errors.Is(err, backend.ErrHashMismatch) {
		t.Errorf("put with a wrong commit: got %v, want ErrHashMismatch", err)
	}
	if files := regularFiles(t, ts.cfg.Root); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	secret := []byte("another client's file")
	// A file outside the client's folder that a traversal would reach.
	if err := os.WriteFile(filepath.Join(ts.cfg.Root, "secret"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	id := backend.Hash(secret).String()
	for _, c := range []struct {
		name string
		in   []byte
		want code
	}{
		{"oversized header", append([]byte{0, 1, 0, 0}, make([]byte, 100)...), codeFrameTooLarge},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, codeFrameTooLarge},
		{"empty frame", []byte{0, 0, 0, 0}, codeBadRequest},
		{"not a request", frame(response{}.encode()), codeBadRequest},
		{"unknown op", frame(request{Op: 77, Type: backend.PackFile, Name: id}.encode()), codeBadRequest},
		{"trailing bytes", frame(append(request{Op: opStat, Type: backend.PackFile, Name: id}.encode(), 0)), codeBadRequest},
		{"traversal", frame(request{Op: opGet, Type: backend.PackFile, Name: "../../../secret"}.encode()), codeInvalidName},
		{"traversal in stat", frame(request{Op: opStat, Type: backend.KeyFile, Name: "../../secret"}.encode()), codeInvalidName},
		{"absolute", frame(request{Op: opGet, Type: backend.IndexFile, Name: "/etc/passwd"}.encode()), codeInvalidName},
		{"config by another name", frame(request{Op: opGet, Type: backend.ConfigFile, Name: "../secret"}.encode()), codeInvalidName},
		{"slash", frame(request{Op: opDelete, Type: backend.LogFile, Name: id[:32] + "/" + id[33:]}.encode()), codeInvalidName},
		{"upper case", frame(request{Op: opStat, Type: backend.PackFile, Name: strings.ToUpper(id)}.encode()), codeInvalidName},
		{"bad type", frame(request{Op: opList, Type: 0}.encode()), codeInvalidName},
		{"bad type 99", frame(request{Op: opStat, Type: 99, Name: id}.encode()), codeInvalidName},
		{"put traversal", frame(request{Op: opPut, Type: backend.PackFile, Name: "../x", Length: 1}.encode()), codeInvalidName},
		{"missing", frame(request{Op: opStat, Type: backend.PackFile, Name: id}.encode()), codeNotExist},
	} {
		resp := rawResponse(t, be, c.in)
		if resp.Status != c.want {
			t.Errorf("%s: status %v (%q), want %v", c.name, resp.Status, resp.Message, c.want)
		}
		// The connection stays and serves the next request.
		if _, err := be.Stat(t.Context(), handleOf(backend.PackFile, secret)); !backend.IsNotExist(err) {
			t.Fatalf("%s: stat afterwards: %v", c.name, err)
		}
	}
	got, err := os.ReadFile(filepath.Join(ts.cfg.Root, "secret"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Errorf("file outside the folder changed: %v", err)
	}
}

func TestRepositoryNamesRefused(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	conf, err := newTLSConfig(client, func(crypt.PeerID) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"..", ".", "../other", "a/b", "/abs", "", "UPPER", strings.Repeat("a", 65)} {
		conn, err := tls.Dial("tcp", ts.addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := writeFrame(conn, clientHello{MinVersion: 1, MaxVersion: 1, Repo: name}.encode()); err != nil {
			t.Fatal(err)
		}
		p, err := readFrame(conn, maxHelloFrame)
		_ = conn.Close()
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		sh, err := decodeServerHello(p)
		if err != nil || sh.Status != codeInvalidName {
			t.Errorf("repository %q: hello %+v, %v; want codeInvalidName", name, sh, err)
		}
	}
	if entries, err := os.ReadDir(ts.cfg.Root); err != nil || len(entries) != 0 {
		t.Errorf("root holds %v (%v), want nothing", entries, err)
	}
}

// TestOnlyTLS13: the server speaks TLS 1.3 only, so no one between a
// client and the server can make them settle for an older version. An
// allowed client offering at most TLS 1.2 is refused in the handshake and
// never reaches a repository; the same client with TLS 1.3 is served.
func TestOnlyTLS13(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	conf, err := newTLSConfig(client, func(crypt.PeerID) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS11, tls.VersionTLS10} {
		old := conf.Clone()
		old.MinVersion, old.MaxVersion = v, v
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ts.addr, old)
		if err == nil {
			_ = conn.Close()
			t.Errorf("a handshake at %s succeeded", tls.VersionName(v))
		}
	}
	if ts.log.has("connected to repository") {
		t.Error("a client on an old TLS version reached a repository")
	}
	ts.create(t, client, "r")
}

func TestVersionMismatch(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	conf, err := newTLSConfig(client, func(crypt.PeerID) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", ts.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(conn, clientHello{MinVersion: 2, MaxVersion: 5, Repo: "r"}.encode()); err != nil {
		t.Fatal(err)
	}
	p, err := readFrame(conn, maxHelloFrame)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := decodeServerHello(p)
	if err != nil || sh.Status != codeVersion || sh.Version != ProtocolVersion {
		t.Errorf("hello %+v, %v; want codeVersion naming version %d", sh, err, ProtocolVersion)
	}
}

// TestHostileConnections runs a good client while others send random
// bytes, stop half way through the TLS handshake, connect and say
// nothing, or finish TLS and send a bad hello. The good client must not
// notice, and the server must drop the others after its handshake timeout.
func TestHostileConnections(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{
		Allow:            map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		HandshakeTimeout: 500 * time.Millisecond,
	})
	be := ts.create(t, client, "r")

	ctx, cancel := context.WithCancel(t.Context())
	var good sync.WaitGroup
	var puts atomic.Int64
	good.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			data := binary.BigEndian.AppendUint64([]byte("file "), uint64(i))
			h := handleOf(backend.LogFile, data)
			if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
				t.Errorf("good client: put: %v", err)
				return
			}
			if got := getAll(t, be, h); !bytes.Equal(got, data) {
				t.Errorf("good client: got %q, want %q", got, data)
				return
			}
			puts.Add(1)
		}
	})

	dial := func() net.Conn {
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Errorf("dial: %v", err)
			return nil
		}
		return conn
	}
	// waitClosed checks that the server closes conn within limit.
	waitClosed := func(what string, conn net.Conn, limit time.Duration) {
		_ = conn.SetReadDeadline(time.Now().Add(limit))
		_, err := io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: server did not close the connection within %v", what, limit)
		}
		_ = conn.Close()
	}

	// Four of these and four below: the server's per-host limit is 8, and
	// the hostile connections all come from 127.0.0.1.
	var hostile sync.WaitGroup
	for i := range 4 {
		hostile.Go(func() {
			conn := dial()
			if conn == nil {
				return
			}
			junk := make([]byte, 1<<16)
			_, _ = rand.Read(junk)
			if i%2 == 0 {
				junk[0] = 0x16 // looks like a TLS handshake record
			}
			_, _ = conn.Write(junk) // the server may hang up mid-way
			waitClosed("random bytes", conn, 5*time.Second)
		})
	}
	hostile.Go(func() { // connects and sends nothing
		if conn := dial(); conn != nil {
			waitClosed("silent connection", conn, 5*time.Second)
		}
	})
	hostile.Go(func() { // half a TLS handshake: a ClientHello cut short
		conn := dial()
		if conn == nil {
			return
		}
		rec := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
		_, _ = conn.Write(rec)
		waitClosed("half handshake", conn, 5*time.Second)
	})
	hostile.Go(func() { // TLS done, then a hello that is not one
		conf, err := newTLSConfig(client, func(crypt.PeerID) error { return nil })
		if err != nil {
			t.Error(err)
			return
		}
		conn, err := tls.Dial("tcp", ts.addr, conf)
		if err != nil {
			t.Errorf("tls dial: %v", err)
			return
		}
		_, _ = conn.Write([]byte{0, 0, 0, 3, 0xde, 0xad, 0xbe})
		waitClosed("bad hello", conn, 5*time.Second)
	})
	hostile.Go(func() { // TLS done, then silence
		conf, err := newTLSConfig(client, func(crypt.PeerID) error { return nil })
		if err != nil {
			t.Error(err)
			return
		}
		conn, err := tls.Dial("tcp", ts.addr, conf)
		if err != nil {
			t.Errorf("tls dial: %v", err)
			return
		}
		waitClosed("silent after TLS", conn, 5*time.Second)
	})
	hostile.Wait()
	cancel()
	good.Wait()
	if puts.Load() == 0 {
		t.Errorf("the good client stored nothing while under attack")
	}
	t.Logf("good client: %d puts during the attack", puts.Load())
	// And it goes on working afterwards.
	putBytes(t, be, handleOf(backend.KeyFile, []byte("after")), []byte("after"))
}

// TestStreamFlood opens far more streams than the server serves at once,
// none of which sends a request: the excess is reset, a good client on
// another connection is served meanwhile, and once the stalled streams
// time out the flooding connection is served again.
func TestStreamFlood(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	const maxStreams = 4
	ts := startServer(t, ServerConfig{
		Allow:         map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		MaxStreams:    maxStreams,
		StreamTimeout: 500 * time.Millisecond,
	})
	flooder := ts.create(t, client, "r")
	good := ts.create(t, client, "r")
	s, err := flooder.session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	streams := make([]*yamux.Stream, 0, n)
	var resets, ended atomic.Int64
	for range n {
		st, err := s.mux.OpenStream()
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		// The open reaches the server with the first byte: half a
		// length prefix, then nothing. On a loaded machine the server may
		// already have reset this stream (its backlog is full) by the
		// time the byte goes out: that is the refusal under test.
		if _, err := st.Write([]byte{0, 0}); err != nil {
			if !errors.Is(err, yamux.ErrConnectionReset) && !errors.Is(err, yamux.ErrStreamClosed) {
				t.Fatalf("write: %v", err)
			}
			resets.Add(1)
			continue
		}
		streams = append(streams, st)
	}
	data := []byte("served during the flood")
	putBytes(t, good, handleOf(backend.IndexFile, data), data)

	var wg sync.WaitGroup
	for _, st := range streams {
		wg.Go(func() {
			_ = st.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err := io.Copy(io.Discard, st)
			switch {
			case errors.Is(err, yamux.ErrConnectionReset):
				resets.Add(1)
			case err == nil:
				ended.Add(1) // timed out by the server
			default:
				t.Errorf("flood stream: %v", err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d streams reset, %d timed out by the server", resets.Load(), ended.Load())
	// At most MaxStreams served plus MaxStreams waiting; the rest reset.
	if resets.Load() < n-2*maxStreams {
		t.Errorf("%d of %d streams reset, want at least %d", resets.Load(), n, n-2*maxStreams)
	}
	if _, err := flooder.Stat(t.Context(), handleOf(backend.IndexFile, data)); err != nil {
		t.Errorf("flooding connection after the flood: %v", err)
	}
}

// TestSlowClient stalls mid-request: the server gives up the stream
// after its stream timeout, and a put cut short stores nothing.
func TestSlowClient(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{
		Allow:         map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		StreamTimeout: 300 * time.Millisecond,
	})
	be := ts.create(t, client, "r")
	data := bytes.Repeat([]byte("x"), 100000)
	h := handleOf(backend.PackFile, data)
	st := rawStream(t, be)
	msg := frame(request{Op: opPut, Type: h.Type, Name: h.Name, Length: int64(len(data))}.encode())
	if _, err := st.Write(append(msg, data[:1000]...)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = st.SetReadDeadline(start.Add(10 * time.Second))
	_, err := io.Copy(io.Discard, st)
	if err != nil {
		t.Fatalf("stalled put: %v, want the server to end the stream", err)
	}
	t.Logf("server ended the stalled stream after %v", time.Since(start))
	if files := regularFiles(t, ts.cfg.Root); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}
	if _, err := be.Stat(t.Context(), h); !backend.IsNotExist(err) {
		t.Errorf("stat: %v", err)
	}
}

// TestHangupDuringGet: a client that stops reading a large body and
// closes its stream frees the server's handler at once, not after the
// stream timeout.
func TestHangupDuringGet(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{
		Allow:         map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		MaxStreams:    1,
		StreamTimeout: time.Minute,
	})
	be := ts.create(t, client, "r")
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data)
	h := handleOf(backend.PackFile, data)
	putBytes(t, be, h, data)
	for range 3 {
		errStop := errors.New("enough")
		err := be.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
			_, err := io.ReadFull(r, make([]byte, 10))
			if err != nil {
				return err
			}
			return errStop
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("get: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := be.Stat(ctx, h); err != nil {
		t.Fatalf("stat after abandoned gets with one stream allowed: %v", err)
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{
		Allow:       map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		IdleTimeout: 200 * time.Millisecond,
	})
	be := ts.create(t, client, "r")
	data := []byte("survives reconnects")
	h := handleOf(backend.KeyFile, data)
	putBytes(t, be, h, data)
	first, err := be.session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The server closes the idle connection; the next request reconnects.
	select {
	case <-first.mux.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("server kept an idle connection open")
	}
	if !ts.log.logged("idle for") {
		t.Errorf("server did not log the idle close")
	}
	if got := getAll(t, be, h); !bytes.Equal(got, data) {
		t.Errorf("after idle close: got %q", got)
	}
	// A broken connection: the next request reconnects.
	s, err := be.session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s == first {
		t.Fatal("no new connection after the idle close")
	}
	_ = s.mux.Close()
	if _, err := be.Stat(t.Context(), h); err != nil {
		t.Errorf("after a broken connection: %v", err)
	}
	// A closed backend stays closed.
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(t.Context(), h); !errors.Is(err, errClosed) {
		t.Errorf("stat on a closed backend: %v", err)
	}
}

// TestHandshakeEviction: with every handshake place taken by silent
// connections from one host, a new connection from another host is
// admitted and served, and the place it took is the oldest silent one's;
// a lone silent connection from a third host is not the one closed; and
// the places come back when the connections end.
func TestHandshakeEviction(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	const max = 8
	ts := startServer(t, ServerConfig{
		Allow:              map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		MaxHandshakes:      max,
		ClientHelloTimeout: time.Minute,
		HandshakeTimeout:   time.Minute,
	})
	dialFrom := func(host byte) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, host)}}
		conn, err := d.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	waitAdmitted := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ts.srv.preauthCount() != n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections admitted, want %d", ts.srv.preauthCount(), n)
			}
		}
	}
	// closed reports whether the server has closed conn (within d).
	closed := func(conn net.Conn, d time.Duration) bool {
		_ = conn.SetReadDeadline(time.Now().Add(d))
		_, err := conn.Read(make([]byte, 1))
		return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	}
	lone := dialFrom(3)
	waitAdmitted(1)
	var flood []net.Conn
	for i := range max - 1 {
		flood = append(flood, dialFrom(2))
		waitAdmitted(2 + i)
	}
	// Full: each newcomer closes the flooding host's oldest.
	for i := range 3 {
		flood = append(flood, dialFrom(2))
		if !closed(flood[i], 10*time.Second) {
			t.Fatalf("flood connection %d was not closed to make room", i)
		}
		waitAdmitted(max)
	}
	// An allowed client from another host is served at once.
	be, err := Create(t.Context(), ts.loc("r"), client)
	if err != nil {
		t.Fatalf("client with every place taken: %v", err)
	}
	_ = be.Close()
	if !closed(flood[3], 10*time.Second) {
		t.Error("the client's place was not the flooding host's oldest")
	}
	if closed(lone, 100*time.Millisecond) {
		t.Error("the lone connection of another host was closed")
	}
	for _, c := range flood {
		_ = c.Close()
	}
	_ = lone.Close()
	waitAdmitted(0)
}

func TestConnectionsPerClient(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{
		Allow:             map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		MaxConnsPerClient: 1,
	})
	be := ts.create(t, client, "r")
	_, err := Create(t.Context(), ts.loc("r"), client)
	if err == nil || backend.IsPermanent(err) || !strings.Contains(err.Error(), "too many connections") {
		t.Fatalf("second connection: got %v, want a retryable refusal", err)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	// The slot is given back when the first connection ends.
	deadline := time.Now().Add(5 * time.Second)
	for {
		be2, err := Create(t.Context(), ts.loc("r"), client)
		if err == nil {
			_ = be2.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection after the first closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewServerChecks(t *testing.T) {
	t.Parallel()
	id := newIdentity(t)
	allow := map[crypt.PeerID]Mode{newIdentity(t).PeerID(): ModeReadWrite}
	for name, cfg := range map[string]ServerConfig{
		"no identity": {Root: t.TempDir(), Allow: allow},
		"no root":     {Identity: id, Allow: allow},
		"no allow":    {Identity: id, Root: t.TempDir()},
		"bad mode":    {Identity: id, Root: t.TempDir(), Allow: map[crypt.PeerID]Mode{id.PeerID(): 7}},
		"negative":    {Identity: id, Root: t.TempDir(), Allow: allow, Quota: -1},
		"streams":     {Identity: id, Root: t.TempDir(), Allow: allow, MaxStreams: 1 << 16},
	} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("%s: NewServer succeeded", name)
		}
	}
}
