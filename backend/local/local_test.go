package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
)

func newTestBackend(t *testing.T) *Backend {
	t.Helper()
	be, err := Create(t.Context(), filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func TestSuite(t *testing.T) {
	backendtest.RunTests(t, func(t *testing.T) backend.Backend { return newTestBackend(t) })
}

func packHandle(data []byte) backend.Handle {
	return backend.Handle{Type: backend.PackFile, Name: backend.Hash(data).String()}
}

func TestCreateOpen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "a", "repo")
	if _, err := Open(ctx, dir); !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("open of a missing folder: %v, want ErrNoRepository", err)
	}
	be, err := Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"keys", "data", "data/00", "data/ff", "data/7a", "index", "log", "locks", "meta"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !fi.IsDir() {
			t.Errorf("folder %s: %v", sub, err)
		} else if runtime.GOOS != "windows" && fi.Mode().Perm() != backend.DirMode {
			t.Errorf("folder %s has mode %v, want %v", sub, fi.Mode().Perm(), fs.FileMode(backend.DirMode))
		}
	}
	// Folders but no config: not a repository yet.
	if _, err := Open(ctx, dir); !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("open without config: %v, want ErrNoRepository", err)
	}
	// Creating again before the config exists is harmless.
	if _, err := Create(ctx, dir); err != nil {
		t.Fatalf("second create before the config: %v", err)
	}
	cfg := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	if err := be.Put(ctx, cfg, backend.NewByteReader([]byte("config bytes"))); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, dir); !errors.Is(err, backend.ErrAlreadyExists) {
		t.Fatalf("create over a repository: %v, want ErrAlreadyExists", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil || string(got) != "config bytes" {
		t.Fatalf("config after a refused create: %q, %v", got, err)
	}
	be2, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if be2.Location() != filepath.Clean(dir) {
		t.Errorf("location %q", be2.Location())
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Open(cancelled, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("open with a cancelled context: %v", err)
	}
	if _, err := Create(cancelled, filepath.Join(t.TempDir(), "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("create with a cancelled context: %v", err)
	}
}

func TestLayoutAndModes(t *testing.T) {
	ctx := t.Context()
	be := newTestBackend(t)
	data := []byte("pack content")
	h := packHandle(data)
	if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(be.dir, "data", h.Name[:2], h.Name)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("pack not at %s: %v", p, err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != backend.FileMode {
		t.Errorf("pack has mode %v, want %v", fi.Mode().Perm(), fs.FileMode(backend.FileMode))
	}
	idx := backend.Handle{Type: backend.IndexFile, Name: h.Name}
	if err := be.Put(ctx, idx, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(be.dir, "index", h.Name)); err != nil {
		t.Errorf("index file: %v", err)
	}
	// Replacing a read-only file works, and so does deleting it.
	if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Errorf("replace a read-only file: %v", err)
	}
	if err := be.Delete(ctx, h); err != nil {
		t.Errorf("delete a read-only file: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil || len(entries) != 0 {
		t.Errorf("pack folder after delete holds %v (%v): temporary files left behind?", entries, err)
	}
}

func TestListSkipsForeignFiles(t *testing.T) {
	ctx := t.Context()
	be := newTestBackend(t)
	data := []byte("a real pack")
	h := packHandle(data)
	if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	id := backend.Hash([]byte("other")).String()
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(be.dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("data/" + h.Name[:2] + "/.tmp-123456")            // a crashed write
	write("data/" + h.Name[:2] + "/" + strings.ToUpper(id)) // not canonical
	write("data/" + notPrefix(id) + "/" + id)               // wrong subfolder
	write("data/" + id)                                     // not in a subfolder
	write("data/zz/" + id)                                  // not a hex subfolder
	write("keys/.tmp-abc")
	write("keys/readme.txt")
	write(".tmp-999")
	if err := os.Mkdir(filepath.Join(be.dir, "index", id), 0o700); err != nil { // a folder, not a file
		t.Fatal(err)
	}
	for _, ft := range backend.AllTypes {
		var names []string
		err := be.List(ctx, ft, func(fi backend.FileInfo) error {
			names = append(names, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatalf("list %v: %v", ft, err)
		}
		want := 0
		if ft == backend.PackFile {
			want = 1
		}
		if len(names) != want || (want == 1 && names[0] != h.Name) {
			t.Errorf("list %v = %v", ft, names)
		}
	}
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.IndexFile, Name: id}); err == nil {
		t.Error("stat of a folder succeeded")
	}
}

// notPrefix returns a two-digit hex folder name id does not start with.
func notPrefix(id string) string {
	if id[:2] == "00" {
		return "01"
	}
	return "00"
}

func TestLostFolders(t *testing.T) {
	ctx := t.Context()
	be := newTestBackend(t)
	// A repository copied without its empty folders.
	for _, sub := range []string{"data", "index", "locks"} {
		if err := os.RemoveAll(filepath.Join(be.dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ft := range backend.AllTypes {
		if err := be.List(ctx, ft, func(backend.FileInfo) error { return nil }); err != nil {
			t.Errorf("list %v without its folder: %v", ft, err)
		}
	}
	data := []byte("pack")
	h := packHandle(data)
	if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("put without the data folder: %v", err)
	}
	if fi, err := be.Stat(ctx, h); err != nil || fi.Size != 4 {
		t.Errorf("stat: %+v, %v", fi, err)
	}
	// The config folder is the repository itself: never made by Put.
	gone := &Backend{dir: filepath.Join(t.TempDir(), "gone")}
	cfg := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	if err := gone.Put(ctx, cfg, backend.NewByteReader(data)); err == nil {
		t.Error("put of a config into a missing repository folder succeeded")
	}
}

// crashEnv tells a re-executed test binary to act as the writer that
// TestCrashDuringPut kills.
const crashEnv = "CAIRN_TEST_LOCAL_CRASH_DIR"

// crashMarker is what the child prints once half the large file is written.
const crashMarker = "half written"

func TestCrashDuringPut(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	if runtime.GOOS == "windows" {
		t.Skip("kill -9 is a Unix notion")
	}
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Create(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte("cfg"), 0o400); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringPut$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == crashMarker {
				ready <- nil
				return
			}
		}
		ready <- errors.New("child exited without reaching the middle of its put")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not reach the middle of its put in 30s")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed" is the expected outcome
	killed = true

	be, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	small, large := crashContent()
	var names []string
	for _, ft := range backend.AllTypes {
		err := be.List(ctx, ft, func(fi backend.FileInfo) error {
			names = append(names, ft.String()+" "+fi.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"pack " + packHandle(small).Name, "config config"}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("after the crash, listed:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	err = be.Get(ctx, packHandle(small), 0, 0, func(r io.Reader) error {
		got, err := io.ReadAll(r)
		if err == nil && string(got) != string(small) {
			err = errors.New("content differs")
		}
		return err
	})
	if err != nil {
		t.Errorf("get the file written before the crash: %v", err)
	}
	lh := packHandle(large)
	if _, err := be.Stat(ctx, lh); !backend.IsNotExist(err) {
		t.Errorf("stat the file being written at the crash: %v, want ErrNotExist", err)
	}
	// The interrupted write did reach the disk, under a temporary name.
	entries, err := os.ReadDir(filepath.Join(dir, "data", lh.Name[:2]))
	if err != nil {
		t.Fatal(err)
	}
	var partial int64
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), backend.TempPrefix) {
			if fi, err := e.Info(); err == nil {
				partial += fi.Size()
			}
		}
	}
	if partial == 0 || partial >= int64(len(large)) {
		t.Errorf("temporary files hold %d bytes; want a partial write of the %d-byte file", partial, len(large))
	}
}

// crashContent is what the child writes: a small file whole, then a large
// one that it is killed in the middle of.
func crashContent() (small, large []byte) {
	small = []byte("written before the crash")
	large = bytes.Repeat([]byte("cairn crash test"), 1<<20) // 16 MiB
	return small, large
}

// crashChild writes the small file, then starts on the large one and
// stalls in its middle, telling the parent it got there.
func crashChild(dir string) {
	ctx := context.Background()
	be, err := Open(ctx, dir)
	if err != nil {
		fail(err)
	}
	small, large := crashContent()
	if err := be.Put(ctx, packHandle(small), backend.NewByteReader(small)); err != nil {
		fail(err)
	}
	rd := &stallingReader{ByteReader: backend.NewByteReader(large), at: int64(len(large) / 2)}
	if err := be.Put(ctx, packHandle(large), rd); err != nil {
		fail(err)
	}
	fail(errors.New("the put was not interrupted"))
}

func fail(err error) {
	os.Stderr.WriteString("crash child: " + err.Error() + "\n")
	os.Exit(2)
}

// stallingReader announces on stdout that it reached byte at, then
// blocks until the process is killed.
type stallingReader struct {
	*backend.ByteReader
	at  int64
	pos int64
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.pos >= s.at {
		os.Stdout.WriteString(crashMarker + "\n")
		time.Sleep(time.Hour) // wait for SIGKILL
	}
	if rem := s.at - s.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := s.ByteReader.Read(p)
	s.pos += int64(n)
	return n, err
}

func TestListManyAndSymlinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	ctx := t.Context()
	be := newTestBackend(t)
	// More files than one folder read returns, written directly.
	const n = listBatch + 234
	want := map[string]bool{}
	for i := range n {
		data := []byte(fmt.Sprint("index ", i))
		name := backend.Hash(data).String()
		if err := os.WriteFile(filepath.Join(be.dir, "index", name), data, 0o400); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	got := map[string]bool{}
	err := be.List(ctx, backend.IndexFile, func(fi backend.FileInfo) error {
		if got[fi.Name] {
			return fmt.Errorf("%s listed twice", fi.Name)
		}
		got[fi.Name] = true
		return nil
	})
	if err != nil || len(got) != n {
		t.Fatalf("list: %d of %d files, %v", len(got), n, err)
	}

	// A pack that is a symbolic link, and a pack folder that is one.
	elsewhere := t.TempDir()
	data := []byte("linked pack")
	h := packHandle(data)
	target := filepath.Join(elsewhere, "pack")
	if err := os.WriteFile(target, data, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(be.dir, "data", h.Name[:2], h.Name)); err != nil {
		t.Fatal(err)
	}
	data2 := []byte("pack in a linked folder")
	h2 := packHandle(data2)
	sub := filepath.Join(be.dir, "data", h2.Name[:2])
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(elsewhere, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "sub"), sub); err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, h2, backend.NewByteReader(data2)); err != nil {
		t.Fatal(err)
	}
	// A dangling link is no file.
	dangling := packHandle([]byte("gone"))
	if err := os.Symlink(filepath.Join(elsewhere, "nothing"), filepath.Join(be.dir, "data", dangling.Name[:2], dangling.Name)); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	if err := be.List(ctx, backend.PackFile, func(fi backend.FileInfo) error { sizes[fi.Name] = fi.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 2 || sizes[h.Name] != int64(len(data)) || sizes[h2.Name] != int64(len(data2)) {
		t.Errorf("list of packs = %v", sizes)
	}
	for _, h := range []backend.Handle{h, h2} {
		if fi, err := be.Stat(ctx, h); err != nil || fi.Size != sizes[h.Name] {
			t.Errorf("stat %v: %+v, %v", h, fi, err)
		}
	}
}
