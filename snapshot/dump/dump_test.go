package dump

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// fakeRepo holds blobs in memory; data loads wait a random moment, so
// they finish out of order, and may fail.
type fakeRepo struct {
	mu     sync.Mutex
	blobs  map[backend.ID][]byte
	broken map[backend.ID]bool
	rng    *rand.Rand

	active, maxActive, loads atomic.Int32
}

var errBroken = errors.New("blob damaged")

func newFakeRepo() *fakeRepo {
	return &fakeRepo{blobs: map[backend.ID][]byte{}, broken: map[backend.ID]bool{}, rng: rand.New(rand.NewPCG(1, 2))}
}

func (f *fakeRepo) add(b []byte) backend.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := backend.Hash(b)
	f.blobs[id] = b
	return id
}

func (f *fakeRepo) LoadBlob(ctx context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error) {
	n := f.active.Add(1)
	defer f.active.Add(-1)
	f.loads.Add(1)
	for {
		m := f.maxActive.Load()
		if n <= m || f.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	b, ok := f.blobs[id]
	broken := f.broken[id]
	wait := time.Duration(f.rng.IntN(300)) * time.Microsecond
	f.mu.Unlock()
	if t == pack.DataBlob {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch {
	case !ok:
		return nil, fmt.Errorf("blob %s not found", id.Str())
	case broken:
		return nil, errBroken
	}
	return append(buf[:0], b...), nil
}

// file stores content split into chunks of the given sizes and returns
// its node.
func (f *fakeRepo) file(name string, content []byte, chunk int) *snapshot.Node {
	n := &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o640, Size: uint64(len(content)), Links: 1,
		UID: 1000, GID: 100, User: "me", Group: "users", ModTime: time.Unix(1700000000, 123456789).UTC()}
	for off := 0; off < len(content); off += chunk {
		n.Content = append(n.Content, f.add(content[off:min(off+chunk, len(content))]))
	}
	return n
}

// tree stores a tree of nodes and returns its ID.
func (f *fakeRepo) tree(t *testing.T, nodes ...*snapshot.Node) backend.ID {
	t.Helper()
	tr := &snapshot.Tree{}
	for _, n := range nodes {
		if err := tr.Insert(n); err != nil {
			t.Fatal(err)
		}
	}
	b, err := snapshot.EncodeTree(tr)
	if err != nil {
		t.Fatal(err)
	}
	return f.add(b)
}

func dir(name string, sub backend.ID) *snapshot.Node {
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o750, Subtree: &sub,
		ModTime: time.Unix(1600000000, 42).UTC()}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestLoadInOrder checks that blobs reach fn in file order whatever order
// their loads finish in, with at most ahead loads at once.
func TestLoadInOrder(t *testing.T) {
	f := newFakeRepo()
	content := randomBytes(1<<20+17, 1)
	n := f.file("f", content, 4099)
	for _, ahead := range []int{1, 2, 4, 16, 1000} {
		f.maxActive.Store(0)
		var out bytes.Buffer
		written, err := writeContent(context.Background(), f, n, &out, ahead)
		if err != nil || written != int64(len(content)) || !bytes.Equal(out.Bytes(), content) {
			t.Fatalf("ahead %d: %d bytes, %v, equal %v", ahead, written, err, bytes.Equal(out.Bytes(), content))
		}
		if m := f.maxActive.Load(); m > int32(ahead) {
			t.Errorf("ahead %d: %d loads at once", ahead, m)
		}
	}
	// An empty file loads nothing.
	var out bytes.Buffer
	if _, err := writeContent(context.Background(), f, &snapshot.Node{Type: snapshot.NodeFile}, &out, 4); err != nil || out.Len() != 0 {
		t.Fatalf("empty file: %v, %d bytes", err, out.Len())
	}
}

// TestLoadInOrderStops checks that a damaged blob or a failing writer
// stops the copy, and that no load is left running when it returns.
func TestLoadInOrderStops(t *testing.T) {
	f := newFakeRepo()
	content := randomBytes(300*1000, 2)
	n := f.file("f", content, 1000)
	f.broken[n.Content[150]] = true
	var out bytes.Buffer
	_, err := writeContent(context.Background(), f, n, &out, 8)
	if !errors.Is(err, errBroken) || out.Len() != 150*1000 || !bytes.Equal(out.Bytes(), content[:150*1000]) {
		t.Fatalf("damaged blob: %v after %d bytes", err, out.Len())
	}
	if a := f.active.Load(); a != 0 {
		t.Errorf("%d loads still running after the error", a)
	}
	if l := f.loads.Load(); l > 150+8 {
		t.Errorf("%d loads for a copy that stopped at blob 150", l)
	}

	delete(f.broken, n.Content[150])
	w := &failAfter{n: 5000}
	if _, err := writeContent(context.Background(), f, n, w, 8); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("failing writer: %v", err)
	}
	if a := f.active.Load(); a != 0 {
		t.Errorf("%d loads still running after the write error", a)
	}

	// Content that does not add up to the recorded size.
	short := *n
	short.Size--
	if _, err := writeContent(context.Background(), f, &short, io.Discard, 4); !errors.Is(err, errSizeMismatch) {
		t.Errorf("size one less than the content: %v", err)
	}
	short.Size += 2
	if _, err := writeContent(context.Background(), f, &short, io.Discard, 4); !errors.Is(err, errSizeMismatch) {
		t.Errorf("size one more than the content: %v", err)
	}
}

type failAfter struct{ n int }

func (w *failAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// sample builds /home/me with a file in two chunks, an empty file, a
// hardlink pair, a symlink, a fifo, a device and a socket.
func sample(t *testing.T, f *fakeRepo) (root backend.ID, big []byte) {
	big = randomBytes(10000, 3)
	hard1 := f.file("hard1", []byte("linked\n"), 100)
	hard1.Links, hard1.DeviceID, hard1.Inode = 2, 7, 99
	hard2 := *hard1
	hard2.Name = "hard2"
	other := f.file("other", []byte("linked\n"), 100) // same content, not a link
	other.Links, other.DeviceID, other.Inode = 2, 8, 99
	xattr := f.file("x", []byte("x\n"), 100)
	xattr.ExtendedAttributes = []snapshot.ExtendedAttribute{{Name: "user.note", Value: []byte("v\x00al")}}
	me := f.tree(t,
		f.file("big", big, 4000),
		f.file("empty", nil, 1),
		hard1, &hard2, other, xattr,
		&snapshot.Node{Name: "link", Type: snapshot.NodeSymlink, LinkTarget: "../elsewhere", Mode: os.ModeSymlink | 0o777},
		&snapshot.Node{Name: "fifo", Type: snapshot.NodeFifo, Mode: os.ModeNamedPipe | 0o600},
		&snapshot.Node{Name: "null", Type: snapshot.NodeCharDev, Mode: os.ModeDevice | os.ModeCharDevice | 0o666, Device: 1<<8 | 3},
		&snapshot.Node{Name: "sock", Type: snapshot.NodeSocket, Mode: os.ModeSocket | 0o600},
	)
	home := f.tree(t, dir("me", me))
	return f.tree(t, dir("home", home)), big
}

// TestDumpTar checks a tar of a sample folder entry by entry.
func TestDumpTar(t *testing.T) {
	f := newFakeRepo()
	root, big := sample(t, f)
	var out bytes.Buffer
	var warned []string
	err := Dump(context.Background(), f, root, "/home/me/", &out, Options{Warn: func(name, why string) { warned = append(warned, name+": "+why) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 || !strings.HasPrefix(warned[0], "home/me/sock: a socket") {
		t.Errorf("warnings %q", warned)
	}
	tr := tar.NewReader(&out)
	got := map[string]*tar.Header{}
	var order []string
	contents := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, h.Name)
		got[h.Name] = h
		contents[h.Name], _ = io.ReadAll(tr)
	}
	want := []string{"home/me/", "home/me/big", "home/me/empty", "home/me/fifo", "home/me/hard1", "home/me/hard2", "home/me/link", "home/me/null", "home/me/other", "home/me/x"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("entries %q\nwant %q", order, want)
	}
	if h := got["home/me/"]; h.Typeflag != tar.TypeDir || h.Mode != 0o750 || !h.ModTime.Equal(time.Unix(1600000000, 42)) {
		t.Errorf("folder: %+v", h)
	}
	if h := got["home/me/big"]; h.Typeflag != tar.TypeReg || !bytes.Equal(contents[h.Name], big) || h.Uname != "me" || h.Gname != "users" ||
		h.Uid != 1000 || h.Gid != 100 || h.Mode != 0o640 || !h.ModTime.Equal(time.Unix(1700000000, 123456789)) {
		t.Errorf("big: %+v, %d bytes", h, len(contents[h.Name]))
	}
	if h := got["home/me/hard2"]; h.Typeflag != tar.TypeLink || h.Linkname != "home/me/hard1" {
		t.Errorf("hard2: %+v", h)
	}
	if h := got["home/me/other"]; h.Typeflag != tar.TypeReg || string(contents[h.Name]) != "linked\n" {
		t.Errorf("other (another device): %+v", h)
	}
	if h := got["home/me/link"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "../elsewhere" {
		t.Errorf("link: %+v", h)
	}
	if h := got["home/me/null"]; h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("null: %+v", h)
	}
	if h := got["home/me/fifo"]; h.Typeflag != tar.TypeFifo || h.Mode != 0o600 {
		t.Errorf("fifo: %+v", h)
	}
	if h := got["home/me/x"]; h.PAXRecords["SCHILY.xattr.user.note"] != "v\x00al" {
		t.Errorf("x: xattrs %q", h.PAXRecords)
	}

	// A file is written as it is, whatever the format; the whole tree
	// is named from the root.
	out.Reset()
	if err := Dump(context.Background(), f, root, "home/me/big", &out, Options{Format: Zip}); err != nil || !bytes.Equal(out.Bytes(), big) {
		t.Fatalf("dump of a file: %v", err)
	}
	out.Reset()
	if err := Dump(context.Background(), f, root, "/", &out, Options{}); err != nil {
		t.Fatal(err)
	}
	if h, err := tar.NewReader(&out).Next(); err != nil || h.Name != "home/" {
		t.Errorf("first entry of the whole tree: %v, %v", h, err)
	}
	for _, row := range []struct {
		path string
		want error
	}{
		{"/home/you", snapshot.ErrPathNotFound},
		{"/home/me/big/x", snapshot.ErrPathNotFound},
		{"/home/me/link", ErrNotDumpable},
		{"/home/me/fifo", ErrNotDumpable},
	} {
		if err := Dump(context.Background(), f, root, row.path, io.Discard, Options{}); !errors.Is(err, row.want) {
			t.Errorf("dump %s: %v, want %v", row.path, err, row.want)
		}
	}
	if err := Dump(context.Background(), f, root, "/home/../etc", io.Discard, Options{}); err == nil {
		t.Error("dump of a path with .. accepted")
	}
	refused := errors.New("refused")
	if err := Dump(context.Background(), f, root, "/home", io.Discard, Options{BeforeArchive: func() error { return refused }}); !errors.Is(err, refused) {
		t.Errorf("BeforeArchive's error: %v", err)
	}
}

// TestDumpZipEntries checks a zip of the sample folder entry by entry.
func TestDumpZipEntries(t *testing.T) {
	f := newFakeRepo()
	root, big := sample(t, f)
	var out bytes.Buffer
	var warned []string
	if err := Dump(context.Background(), f, root, "/home/me", &out, Options{Format: Zip, Warn: func(name, why string) { warned = append(warned, name) }}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(warned, " ") != "home/me/fifo home/me/null home/me/sock" {
		t.Errorf("left out %q", warned)
	}
	zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*zip.File{}
	for _, zf := range zr.File {
		got[zf.Name] = zf
	}
	read := func(name string) []byte {
		t.Helper()
		rc, err := got[name].Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if zf := got["home/me/"]; zf == nil || zf.Mode() != os.ModeDir|0o750 {
		t.Errorf("folder: %v", zf)
	}
	if zf := got["home/me/big"]; zf == nil || zf.Mode() != 0o640 || !bytes.Equal(read("home/me/big"), big) || !zf.Modified.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("big: %+v", zf)
	}
	if zf := got["home/me/hard2"]; zf == nil || string(read("home/me/hard2")) != "linked\n" {
		t.Errorf("hard2 (a copy in a zip): %+v", zf)
	}
	if zf := got["home/me/link"]; zf == nil || zf.Mode() != os.ModeSymlink|0o777 || string(read("home/me/link")) != "../elsewhere" {
		t.Errorf("link: %+v", zf)
	}
	if zf := got["home/me/big"]; !bytes.Contains(zf.Extra, uxExtra(1000, 100)) {
		t.Errorf("big: no ux owner field in %x", zf.Extra)
	}
	if len(got) != 8 {
		t.Errorf("%d entries, want 8", len(got))
	}
}

// TestFormat checks the --archive values.
func TestFormat(t *testing.T) {
	var f Format
	for _, s := range []string{"zip", "tar"} {
		if err := f.Set(s); err != nil || f.String() != s {
			t.Errorf("Set(%q): %v, %v", s, f, err)
		}
	}
	if err := f.Set("rar"); err == nil {
		t.Error("rar accepted")
	}
}
