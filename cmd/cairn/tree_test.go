package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// makeTree builds a sample tree under root with every kind of thing a
// backup must keep: text and binary files, an empty file, odd modes, a
// large random file spanning many chunks, a sparse file, a symlink and a
// dangling one, a hardlink pair, a fifo, names with spaces and non-ASCII
// letters, an extended attribute where the file system takes one, and
// mtimes with nanoseconds on everything (directories last). It returns
// whether xattrs are supported here.
func makeTree(t *testing.T, root string, seed uint64) (xattrs bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logf("makeTree %s seed %d", root, seed)
	mkdir := func(p string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, data []byte, mode os.FileMode) {
		name := filepath.Join(root, p)
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(name, mode); err != nil {
			t.Fatal(err)
		}
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	mkdir("", 0o755)
	mkdir("sub/deeper", 0o755)
	mkdir("private", 0o700)
	mkdir("empty dir", 0o755)
	write("a.txt", []byte("hello, cairn\n"), 0o644)
	write("b.txt", bytes.Repeat([]byte("some text that repeats\n"), 1000), 0o640)
	write("empty", nil, 0o644)
	write("run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	write("sub/c.txt", []byte("in a sub folder\n"), 0o600)
	write("sub/deeper/random.bin", random(3<<20+12345), 0o644)
	write("private/secret", []byte("s3cret\n"), 0o400)
	write("name with spaces ü ñ 日本", []byte("unicode\n"), 0o644)
	write("sub/hard1", []byte("hardlinked content\n"), 0o644)
	if err := os.Link(filepath.Join(root, "sub/hard1"), filepath.Join(root, "hard2")); err != nil {
		t.Fatal(err)
	}
	// Sparse: 8 MiB with 64 KiB of data in the middle.
	sparse, err := os.Create(filepath.Join(root, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sparse.WriteAt(random(64<<10), 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	if err := sparse.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../nowhere/at/all", filepath.Join(root, "sub/dangling")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	err = unix.Setxattr(filepath.Join(root, "a.txt"), "user.cairn.test", []byte("xattr value"), 0)
	switch {
	case err == nil:
		xattrs = true
	case errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM):
		t.Logf("no user xattrs here: %v", err)
	default:
		t.Fatal(err)
	}
	// Times with nanoseconds, children before their folders.
	base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	var paths []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(paths)
	for i, p := range paths {
		mt := base.Add(time.Duration(i)*time.Hour + time.Duration(rng.IntN(1e9)))
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	return xattrs
}

// compareTrees checks that dst holds exactly what src holds: the same
// names, types, permission bits, owners, mtimes (nanoseconds), file bytes,
// symlink targets, extended attributes (when checkXattrs) and hardlink
// groups. The roots' own metadata is not compared.
func compareTrees(t *testing.T, src, dst string, checkXattrs bool) {
	t.Helper()
	srcNames := treeNames(t, src)
	dstNames := treeNames(t, dst)
	if !slices.Equal(srcNames, dstNames) {
		t.Fatalf("restored tree has other names\nsource:   %q\nrestored: %q", srcNames, dstNames)
	}
	srcLinks := map[uint64]string{} // source inode -> first name
	inTree := map[uint64]int{}      // source inode -> names in the tree
	for _, rel := range srcNames {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, rel), &st); err != nil {
			t.Fatal(err)
		}
		inTree[st.Ino]++
	}
	dstLinks := map[uint64]string{}
	for _, rel := range srcNames {
		a, b := filepath.Join(src, rel), filepath.Join(dst, rel)
		var sa, sb unix.Stat_t
		if err := unix.Lstat(a, &sa); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(b, &sb); err != nil {
			t.Fatal(err)
		}
		if sa.Mode != sb.Mode {
			t.Errorf("%s: mode %o, restored %o", rel, sa.Mode, sb.Mode)
		}
		if sa.Uid != sb.Uid || sa.Gid != sb.Gid {
			t.Errorf("%s: owner %d:%d, restored %d:%d", rel, sa.Uid, sa.Gid, sb.Uid, sb.Gid)
		}
		if sa.Mtim != sb.Mtim {
			t.Errorf("%s: mtime %v, restored %v", rel, time.Unix(sa.Mtim.Unix()), time.Unix(sb.Mtim.Unix()))
		}
		switch sa.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if sa.Size != sb.Size {
				t.Errorf("%s: size %d, restored %d", rel, sa.Size, sb.Size)
			} else if !sameContent(t, a, b) {
				t.Errorf("%s: content differs", rel)
			}
			if sa.Nlink > 1 {
				if first, ok := srcLinks[sa.Ino]; ok {
					if dstLinks[sb.Ino] != first {
						t.Errorf("%s: hardlinked to %s in the source, not in the restored tree", rel, first)
					}
				} else {
					srcLinks[sa.Ino] = rel
					if other, ok := dstLinks[sb.Ino]; ok {
						t.Errorf("%s: restored as a hardlink of %s", rel, other)
					}
					dstLinks[sb.Ino] = rel
				}
			}
			// Links to names outside the compared tree are not restored.
			if want := uint64(inTree[sa.Ino]); sb.Nlink != want {
				t.Errorf("%s: %d links in the tree, restored %d", rel, want, sb.Nlink)
			}
		case unix.S_IFLNK:
			ta, _ := os.Readlink(a)
			tb, _ := os.Readlink(b)
			if ta != tb {
				t.Errorf("%s: symlink to %q, restored to %q", rel, ta, tb)
			}
		}
		if checkXattrs && sa.Mode&unix.S_IFMT != unix.S_IFLNK {
			if xa, xb := xattrList(t, a), xattrList(t, b); !slices.Equal(xa, xb) {
				t.Errorf("%s: xattrs %q, restored %q", rel, xa, xb)
			}
		}
	}
}

// treeNames lists the paths under root, relative, sorted; root excluded.
func treeNames(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func sameContent(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}

// xattrList returns "name=value" for every xattr of a file, sorted.
func xattrList(t *testing.T, p string) []string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		t.Fatal(err)
	}
	var out []string
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, string(name), v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(name)+"="+string(v[:m]))
	}
	slices.Sort(out)
	return out
}

// chownTree gives every file under root to uid:gid (for runs as an
// unprivileged user).
func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}
