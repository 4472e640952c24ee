package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writeRandomFast writes n pseudo-random bytes (ChaCha8, seeded) to name.
func writeRandomFast(t *testing.T, name string, n int, seed byte) {
	t.Helper()
	var key [32]byte
	key[0] = seed
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// dumpRun runs cairn with stdout hashed as it streams and returns the
// SHA-256 and length of stdout, the exit code, stderr and the peak RSS
// in MiB (GNU time, as runRSS).
func (e *testEnv) dumpRun(args ...string) (sum string, n int64, code int, stderr string, rssMiB int64) {
	e.t.Helper()
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		e.t.Fatalf("GNU time is needed to measure peak memory (scripts/test-deps.sh installs it): %v", err)
	}
	out := filepath.Join(e.dir, "rss")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-f", "%M", "-o", out, cairnBin}, args...)...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	h := sha256.New()
	counter := &countWriter{w: h}
	var errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = counter, &errBuf
	_ = cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("cairn %q did not finish", args)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		e.t.Fatal(err)
	}
	f := strings.Fields(string(b))
	kib, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		e.t.Fatalf("GNU time wrote %q: %v", b, err)
	}
	return hex.EncodeToString(h.Sum(nil)), counter.n, cmd.ProcessState.ExitCode(), errBuf.String(), kib >> 10
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func fileSHA256(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestDumpFile dumps a file of many chunks to stdout and to --target and
// compares it byte for byte with the original, with peak memory far
// below the file's size; and checks the errors around it.
func TestDumpFile(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	data := filepath.Join(e.dir, "data")
	mkdirAll(t, filepath.Join(data, "sub"))
	const size = 160 << 20
	big := filepath.Join(data, "sub", "big.bin")
	writeRandomFast(t, big, size, 1)
	e.writeFile(filepath.Join(data, "small.txt"), "small\n")
	if err := os.Symlink("small.txt", filepath.Join(data, "link")); err != nil {
		t.Fatal(err)
	}
	e.must("backup", data)
	want := fileSHA256(t, big)

	// Many chunks: the file's node lists them.
	var tree struct{ Nodes []struct{ Content []string } }
	if err := json.Unmarshal([]byte(e.must("cat", "tree", "latest:"+data+"/sub").stdout), &tree); err != nil {
		t.Fatal(err)
	}
	if n := len(tree.Nodes[0].Content); n < 20 {
		t.Fatalf("big.bin has %d chunks, want many", n)
	}

	sum, n, code, stderr, rss := e.dumpRun("dump", "latest", big)
	t.Logf("dump of a %d MiB file in %d chunks: peak RSS %d MiB", size>>20, len(tree.Nodes[0].Content), rss)
	if code != 0 || stderr != "" || sum != want || n != size {
		t.Fatalf("dump: exit %d, %d bytes, sha %s (want %s)\n%s", code, n, sum, want, stderr)
	}
	// Streamed: memory is bounded by a few chunks, not the file.
	if rss > 100 {
		t.Errorf("dump of a %d MiB file peaked at %d MiB", size>>20, rss)
	}
	// Through SNAPSHOT:SUBPATH, and into --target.
	if sum, _, code, stderr, _ := e.dumpRun("dump", "latest:"+data, "sub/big.bin"); code != 0 || sum != want {
		t.Fatalf("dump latest:%s sub/big.bin: exit %d, sha %s\n%s", data, code, sum, stderr)
	}
	target := filepath.Join(e.dir, "out.bin")
	e.writeFile(target, "old content\n")
	e.must("dump", "--target", target, "latest", big)
	if got := fileSHA256(t, target); got != want {
		t.Fatalf("--target: sha %s, want %s", got, want)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("--target file: %v, %v", fi.Mode(), err)
	}
	if got := e.must("dump", "latest", data+"/small.txt").stdout; got != "small\n" {
		t.Errorf("dump small.txt: %q", got)
	}

	for _, row := range []struct {
		args []string
		want string
	}{
		{[]string{"dump", "latest", data + "/nope"}, `path not found in snapshot`},
		{[]string{"dump", "latest", data + "/link"}, `/link is a symlink: not a file or a folder`},
		{[]string{"dump", "latest", data + "/../x"}, `"\.\." is not allowed`},
		{[]string{"dump", "--archive", "rar", "latest", "/"}, `invalid archive format "rar" \(want tar or zip\)`},
		{[]string{"dump", "latest"}, `missing argument`},
		{[]string{"dump", "--target", filepath.Join(e.dir, "no", "such", "dir", "f"), "latest", big}, `no such file or directory`},
	} {
		r := e.run(row.args...)
		if r.code != exitError || r.stdout != "" {
			t.Errorf("want exit 1, no output\n%s", r)
			continue
		}
		checkOneErrorLine(t, r, row.want)
	}

	// A damaged pack stops the dump; --target is left as it was and no
	// temporary file stays beside it.
	e.writeFile(target, "old content\n")
	for _, p := range packPaths(t, e.repo) {
		flipByte(t, filepath.Join(e.repo, p), 0)
	}
	r := e.run("--no-cache", "dump", "--target", target, "latest", big)
	if r.code != exitError {
		t.Fatalf("dump from a damaged repository: want exit 1\n%s", r)
	}
	if b, _ := os.ReadFile(target); string(b) != "old content\n" {
		t.Errorf("a failed dump changed --target: %d bytes", len(b))
	}
	if left, _ := filepath.Glob(filepath.Join(e.dir, ".cairn-dump-*")); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// TestDumpTarRoundTrip dumps a folder with every kind of file as tar,
// unpacks it with GNU tar and compares it with the original: content,
// modes, owners, times to the nanosecond, symlinks, hardlinks, a device,
// a fifo and extended attributes; and checks owner names in the stream.
func TestDumpTarRoundTrip(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a device node and files of another owner")
	}
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 11)
	if err := unix.Mknod(filepath.Join(src, "sub", "null"), unix.S_IFCHR|0o640, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "run.sh"), 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	if err := os.Lchown(filepath.Join(src, "sub", "c.txt"), uid, gid); err != nil {
		t.Fatal(err)
	}
	group, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Fatal(err)
	}
	e.must("backup", src)

	archive := filepath.Join(e.dir, "src.tar")
	r := e.must("dump", "--target", archive, "latest", src)
	if r.stderr != "" {
		t.Fatalf("dump warned\n%s", r)
	}
	dst := filepath.Join(e.dir, "dst")
	mkdirAll(t, dst)
	if out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "-xpf", archive, "-C", dst).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	got := filepath.Join(dst, strings.TrimPrefix(src, "/"))
	compareTrees(t, src, got, xattrs)
	// The dumped folder is an entry: its own mode and mtime too.
	var sa, sb unix.Stat_t
	if err := unix.Lstat(src, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(got, &sb); err != nil {
		t.Fatal(err)
	}
	if sa.Mode != sb.Mode || sa.Mtim != sb.Mtim {
		t.Errorf("dumped folder: mode %o mtime %v, unpacked %o %v", sa.Mode, sa.Mtim, sb.Mode, sb.Mtim)
	}
	if err := unix.Lstat(filepath.Join(got, "sub", "null"), &sb); err != nil || sb.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device: rdev %x, %v", sb.Rdev, err)
	}

	// The stream names owners, and the second name of a hardlinked file
	// is a link entry to the first.
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	prefix := strings.TrimPrefix(src, "/") + "/"
	seen := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[strings.TrimPrefix(h.Name, prefix)] = h
	}
	if h := seen["sub/c.txt"]; h == nil || h.Uname != nobody.Username || h.Gname != group.Name || h.Uid != uid {
		t.Errorf("sub/c.txt header: %+v, want owner %s:%s", h, nobody.Username, group.Name)
	}
	if h := seen["sub/hard1"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != prefix+"hard2" {
		t.Errorf("sub/hard1 header: %+v, want a link to %shard2", h, prefix)
	}
	if h := seen[""]; h == nil || h.Typeflag != tar.TypeDir {
		t.Errorf("no entry for the dumped folder itself: %v", h)
	}
}

// TestDumpArchiveOfSnapshots checks which snapshot "latest" is with
// --host, --path and --tag, the whole snapshot ("/") and a folder named
// by SNAPSHOT:SUBPATH, a socket left out with a warning, and that an
// archive is not written to a terminal.
func TestDumpArchiveOfSnapshots(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	a, b := filepath.Join(e.dir, "a"), filepath.Join(e.dir, "b")
	mkdirAll(t, a)
	mkdirAll(t, b)
	e.writeFile(filepath.Join(a, "f"), "first\n")
	e.must("backup", "--tag", "one", a)
	e.writeFile(filepath.Join(a, "f"), "second\n")
	e.must("backup", "--host", "other", a)
	e.writeFile(filepath.Join(b, "g"), "bee\n")
	sock, err := net.Listen("unix", filepath.Join(b, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	e.must("backup", b)

	for _, row := range []struct {
		args []string
		want string
	}{
		{[]string{"dump", "--path", a, "latest", a + "/f"}, "second\n"},
		{[]string{"dump", "--tag", "one", "latest", a + "/f"}, "first\n"},
		{[]string{"dump", "--host", "other", "latest", a + "/f"}, "second\n"},
		{[]string{"dump", "--host", "other", "latest:" + a, "f"}, "second\n"},
	} {
		if got := e.must(row.args...).stdout; got != row.want {
			t.Errorf("cairn %q: %q, want %q", row.args, got, row.want)
		}
	}

	names := func(r result) []string {
		t.Helper()
		var out []string
		tr := tar.NewReader(strings.NewReader(r.stdout))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, r)
			}
			out = append(out, h.Name)
		}
	}
	r := e.must("dump", "latest", "/")
	rel := strings.TrimPrefix(b, "/")
	if n := names(r); !slices.Contains(n, rel+"/g") || !slices.Contains(n, rel+"/") || slices.Contains(n, rel+"/sock") || n[0] == "/" {
		t.Errorf("dump latest /: %q", n)
	}
	checkOneErrorLine(t, result{stderr: r.stderr}, `warning: `+regexpQuote(rel)+`/sock: left out: a socket: tar cannot hold it`)
	r = e.must("dump", "latest:"+b, "/")
	if n := names(r); !slices.Equal(n, []string{"g"}) {
		t.Errorf("dump latest:%s /: %q", b, n)
	}

	// An archive is not written to a terminal; a file is.
	if _, err := os.Stat("/usr/bin/script"); err == nil {
		out, _ := exec.Command("/usr/bin/script", "-qec", shellQuote(append([]string{"env"}, append(e.env, cairnBin, "dump", "latest", "/")...)...), "/dev/null").CombinedOutput()
		if !strings.Contains(string(out), "stdout is a terminal") {
			t.Errorf("dump of a folder to a terminal:\n%s", out)
		}
	}
}

func regexpQuote(s string) string {
	return strings.NewReplacer(".", `\.`, "+", `\+`, "(", `\(`, ")", `\)`, "[", `\[`, "]", `\]`).Replace(s)
}

// TestDumpZip dumps a folder as zip, reads it back with archive/zip and
// with unzip, and compares it with the original: names, content, modes,
// symlinks, times to the second and owner IDs; a fifo is left out with a
// warning.
func TestDumpZip(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	makeTree(t, src, 5)
	e.must("backup", src)
	r := e.must("dump", "--archive", "zip", "latest", src)
	prefix := strings.TrimPrefix(src, "/") + "/"
	checkOneErrorLine(t, result{stderr: r.stderr}, `warning: `+regexpQuote(prefix)+`fifo: left out: a fifo: zip cannot hold it`)

	zr, err := zip.NewReader(strings.NewReader(r.stdout), int64(len(r.stdout)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		name := strings.TrimSuffix(strings.TrimPrefix(f.Name, prefix), "/")
		if f.Name == prefix {
			continue
		}
		names = append(names, name)
		p := filepath.Join(src, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if f.Mode() != fi.Mode() {
			t.Errorf("%s: mode %v, source %v", name, f.Mode(), fi.Mode())
		}
		if !f.Modified.Equal(fi.ModTime().Truncate(time.Second)) {
			t.Errorf("%s: modified %v, source %v", name, f.Modified, fi.ModTime())
		}
		st := fi.Sys().(*syscall.Stat_t)
		if uid, gid, ok := uxIDs(f.Extra); !ok || uid != st.Uid || gid != st.Gid {
			t.Errorf("%s: ux owner %d:%d (%v), source %d:%d", name, uid, gid, ok, st.Uid, st.Gid)
		}
		if fi.IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want []byte
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			want = []byte(target)
		} else if want, err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(content, want) {
			t.Errorf("%s: content differs (%d bytes, source %d)", name, len(content), len(want))
		}
	}
	wantNames := slices.DeleteFunc(treeNames(t, src), func(n string) bool { return n == "fifo" })
	slices.Sort(names)
	if !slices.Equal(names, wantNames) {
		t.Errorf("zip names %q\nwant %q", names, wantNames)
	}

	// unzip -X restores the files, modes, symlinks and owners.
	if _, err := exec.LookPath("unzip"); err != nil {
		t.Skip("unzip not installed")
	}
	archive := filepath.Join(e.dir, "src.zip")
	e.must("dump", "--archive", "zip", "--target", archive, "latest", src)
	dst := filepath.Join(e.dir, "dst")
	if out, err := exec.Command("unzip", "-X", "-q", archive, "-d", dst).CombinedOutput(); err != nil {
		t.Fatalf("unzip: %v\n%s", err, out)
	}
	got := filepath.Join(dst, strings.TrimPrefix(src, "/"))
	for _, name := range wantNames {
		a, b := filepath.Join(src, name), filepath.Join(got, name)
		fa, err := os.Lstat(a)
		if err != nil {
			t.Fatal(err)
		}
		fb, err := os.Lstat(b)
		if err != nil {
			t.Errorf("%s: not unzipped: %v", name, err)
			continue
		}
		sa, sb := fa.Sys().(*syscall.Stat_t), fb.Sys().(*syscall.Stat_t)
		if fa.Mode() != fb.Mode() || sa.Uid != sb.Uid || sa.Gid != sb.Gid {
			t.Errorf("%s: mode %v owner %d:%d, unzipped %v %d:%d", name, fa.Mode(), sa.Uid, sa.Gid, fb.Mode(), sb.Uid, sb.Gid)
		}
		if fa.Mode().IsRegular() && !sameContent(t, a, b) {
			t.Errorf("%s: unzipped content differs", name)
		}
		if fa.Mode().IsRegular() && !fb.ModTime().Equal(fa.ModTime().Truncate(time.Second)) {
			t.Errorf("%s: unzipped mtime %v, source %v", name, fb.ModTime(), fa.ModTime())
		}
	}
}

// uxIDs reads Info-ZIP's "ux" extra field (0x7875) out of extra.
func uxIDs(extra []byte) (uid, gid uint32, ok bool) {
	for len(extra) >= 4 {
		id, size := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		if len(extra) < 4+size {
			return 0, 0, false
		}
		body := extra[4 : 4+size]
		extra = extra[4+size:]
		if id != 0x7875 || len(body) != 11 || body[0] != 1 || body[1] != 4 || body[6] != 4 {
			continue
		}
		return binary.LittleEndian.Uint32(body[2:]), binary.LittleEndian.Uint32(body[7:]), true
	}
	return 0, 0, false
}
