package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tree is a folder that changes between backups the way a home folder
// does: files added, edited in place, appended, renamed and deleted,
// permissions, owners, times and extended attributes changed, folders
// made and removed, symlinks and a hard link, and a large file rewritten
// in the middle.
type tree struct {
	root string
	rng  *rand.Rand
	// minFiles and maxFiles keep the file count in a band: below it adds
	// win, above it deletes do.
	minFiles, maxFiles int
	// big is the large file rewritten in the middle; "" for none.
	big     string
	bigSize int
	// ops counts the changes made, by kind.
	ops map[string]int
}

// words make compressible file content.
var words = strings.Fields(`the quick brown fox jumps over a lazy dog backup restore snapshot
cron nightly hourly pack index tree blob chunk prune forget mirror peer friend disk full
kill crash retry verify hash seal key log entry head checkpoint month year week day hour`)

// content returns n bytes: random, or text made of words (compressible).
func (t *tree) content(n int) []byte {
	b := make([]byte, 0, n)
	if t.rng.IntN(2) == 0 {
		for len(b) < n {
			b = append(b, words[t.rng.IntN(len(words))]...)
			b = append(b, " \n"[t.rng.IntN(2)])
		}
		return b[:n]
	}
	b = b[:n]
	for i := 0; i+8 <= n; i += 8 {
		v := t.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(t.rng.Uint32())
	}
	return b
}

// fileSize draws a file size: mostly small, some medium, a few large.
func (t *tree) fileSize() int {
	switch r := t.rng.IntN(100); {
	case r < 5:
		return 0
	case r < 70:
		return t.rng.IntN(16 << 10)
	case r < 96:
		return 16<<10 + t.rng.IntN(176<<10)
	default:
		return 192<<10 + t.rng.IntN(576<<10)
	}
}

// randomTime is a time in the last few years, with nanoseconds.
func (t *tree) randomTime() time.Time {
	return time.Unix(1500000000+t.rng.Int64N(250000000), t.rng.Int64N(1e9))
}

// populate fills an empty tree with n files in nested folders, a large
// file of bigSize bytes (none if 0), symlinks, a hard link, a fifo and
// an empty folder.
func (t *tree) populate(n, bigSize int) error {
	for _, d := range []string{"docs", "docs/notes", "src", "src/lib", "photos", "empty"} {
		if err := os.MkdirAll(filepath.Join(t.root, d), 0o755); err != nil {
			return err
		}
	}
	for range n {
		if err := t.addFile(); err != nil {
			return err
		}
	}
	if bigSize > 0 {
		t.big, t.bigSize = filepath.Join(t.root, "photos", "big.raw"), bigSize
		if err := os.WriteFile(t.big, t.content(bigSize), 0o644); err != nil {
			return err
		}
	}
	files, _ := t.list()
	if len(files) > 2 {
		_ = os.Symlink(files[0], filepath.Join(t.root, "link-abs"))
		_ = os.Symlink("docs/../"+files[1], filepath.Join(t.root, "link-rel"))
		_ = os.Symlink("no/such/target", filepath.Join(t.root, "link-dangling"))
		_ = os.Link(filepath.Join(t.root, files[2]), filepath.Join(t.root, "hardlink"))
	}
	return unix.Mkfifo(filepath.Join(t.root, "fifo"), 0o640)
}

// list returns the tree's regular files and folders (not the root) as
// paths relative to the root, sorted.
func (t *tree) list() (files, dirs []string) {
	_ = filepath.WalkDir(t.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == t.root {
			return nil
		}
		rel, _ := filepath.Rel(t.root, p)
		switch {
		case d.IsDir():
			dirs = append(dirs, rel)
		case d.Type().IsRegular():
			files = append(files, rel)
		}
		return nil
	})
	return files, dirs
}

func (t *tree) pick(list []string) string { return list[t.rng.IntN(len(list))] }

// addFile writes a new file in a random folder.
func (t *tree) addFile() error {
	_, dirs := t.list()
	dir := t.root
	if len(dirs) > 0 && t.rng.IntN(5) > 0 {
		dir = filepath.Join(t.root, t.pick(dirs))
	}
	name := fmt.Sprintf("f%06d%s", t.rng.IntN(1000000), []string{".txt", ".bin", ".dat", "", ".md"}[t.rng.IntN(5)])
	if t.rng.IntN(20) == 0 {
		name = "spaced name ü " + name // a name with spaces and non-ASCII
	}
	p := filepath.Join(dir, name)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.WriteFile(p, t.content(t.fileSize()), 0o644); err != nil {
		return err
	}
	t.ops["add"]++
	return nil
}

// mutate makes about n changes of random kinds.
func (t *tree) mutate(n int) error {
	for range n {
		if err := t.change(); err != nil {
			return err
		}
	}
	if t.big != "" && t.rng.IntN(8) == 0 {
		return t.rewriteBig()
	}
	return nil
}

// change makes one random change.
func (t *tree) change() error {
	files, dirs := t.list()
	if len(files) < t.minFiles {
		return t.addFile()
	}
	regular := slices.DeleteFunc(slices.Clone(files), func(f string) bool {
		return filepath.Join(t.root, f) == t.big
	})
	if len(regular) == 0 {
		return t.addFile()
	}
	f := filepath.Join(t.root, t.pick(regular))
	kind := t.rng.IntN(15)
	if len(files) > t.maxFiles && kind < 4 {
		kind = 4 // delete
	}
	switch kind {
	case 0, 1:
		return t.addFile()
	case 2: // edit in place, same size
		return t.editInPlace(f, false)
	case 3: // edit in place and put the old mtime back, as rsync -t would
		return t.editInPlace(f, true)
	case 4:
		t.ops["delete"]++
		return os.Remove(f)
	case 5:
		t.ops["append"]++
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = fh.Write(t.content(1 + t.rng.IntN(32<<10)))
		return errors.Join(err, fh.Close())
	case 6: // rename, maybe into another folder
		t.ops["rename"]++
		dir := filepath.Dir(f)
		if len(dirs) > 0 && t.rng.IntN(2) == 0 {
			dir = filepath.Join(t.root, t.pick(dirs))
		}
		return os.Rename(f, filepath.Join(dir, fmt.Sprintf("r%06d-%s", t.rng.IntN(1000000), filepath.Base(f))))
	case 7:
		t.ops["chmod"]++
		modes := []os.FileMode{0o600, 0o644, 0o640, 0o755, 0o444, 0o700, 0o604}
		return os.Chmod(f, modes[t.rng.IntN(len(modes))])
	case 8:
		t.ops["chown"]++
		ids := []int{0, 1000, 65534}
		return os.Lchown(f, ids[t.rng.IntN(len(ids))], ids[t.rng.IntN(len(ids))])
	case 9:
		t.ops["xattr"]++
		name := fmt.Sprintf("user.soak%d", t.rng.IntN(3))
		if t.rng.IntN(3) == 0 {
			if err := unix.Removexattr(f, name); err != nil && !errors.Is(err, unix.ENODATA) {
				return err
			}
			return nil
		}
		return unix.Setxattr(f, name, t.content(t.rng.IntN(64)), 0)
	case 10:
		t.ops["touch"]++
		mt := t.randomTime()
		return os.Chtimes(f, mt, mt)
	case 11: // a new folder with a file, or a folder removed with its content
		if len(dirs) > 3 && t.rng.IntN(2) == 0 {
			d := filepath.Join(t.root, t.pick(dirs))
			if d != filepath.Dir(t.big) && !strings.HasPrefix(filepath.Dir(t.big)+"/", d+"/") {
				t.ops["rmdir"]++
				return os.RemoveAll(d)
			}
		}
		t.ops["mkdir"]++
		d := filepath.Join(t.root, fmt.Sprintf("d%04d", t.rng.IntN(10000)))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(d, "first"), t.content(t.fileSize()), 0o644)
	case 12: // a symlink made or pointed elsewhere
		t.ops["symlink"]++
		link := filepath.Join(t.root, fmt.Sprintf("link-%d", t.rng.IntN(4)))
		_ = os.Remove(link)
		rel, _ := filepath.Rel(t.root, f)
		return os.Symlink(rel, link)
	case 13: // truncate
		t.ops["truncate"]++
		fi, err := os.Stat(f)
		if err != nil {
			return err
		}
		return os.Truncate(f, t.rng.Int64N(fi.Size()+1))
	default: // rewrite whole
		t.ops["rewrite"]++
		return os.WriteFile(f, t.content(t.fileSize()), 0o644)
	}
}

// editInPlace overwrites a random range of f without changing its size;
// with keepMTime the old modification time is put back, so only ctime
// (and the content) tell the change.
func (t *tree) editInPlace(f string, keepMTime bool) error {
	fi, err := os.Stat(f)
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	if keepMTime {
		t.ops["edit-keep-mtime"]++
	} else {
		t.ops["edit"]++
	}
	fh, err := os.OpenFile(f, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	n := 1 + t.rng.Int64N(min(fi.Size(), 4096))
	off := t.rng.Int64N(fi.Size() - n + 1)
	_, err = fh.WriteAt(t.content(int(n)), off)
	err = errors.Join(err, fh.Close())
	if err == nil && keepMTime {
		err = os.Chtimes(f, fi.ModTime(), fi.ModTime())
	}
	return err
}

// rewriteBig rewrites up to 256 KiB in the middle of the large file.
func (t *tree) rewriteBig() error {
	t.ops["big-rewrite"]++
	fh, err := os.OpenFile(t.big, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	n := 1 + t.rng.IntN(256<<10)
	off := t.bigSize/4 + t.rng.IntN(t.bigSize/2)
	_, err = fh.WriteAt(t.content(n), int64(off))
	return errors.Join(err, fh.Close())
}

// entry is what a manifest records of one item of a tree.
type entry struct {
	Type   byte // 'f' file, 'd' folder, 'l' symlink, 'p' fifo
	Mode   os.FileMode
	UID    uint32
	GID    uint32
	Size   int64
	MTime  int64 // ns since the epoch
	Hash   [32]byte
	Target string
	Xattrs string
	Nlink  uint64
}

// manifest is a tree's state: its items by path relative to the root
// ("." is the root itself).
type manifest map[string]entry

// takeManifest records the tree under root.
func takeManifest(root string) (manifest, int64, error) {
	m := manifest{}
	var bytes int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{
			Mode:  fs.FileMode(st.Mode & 0o7777),
			UID:   st.Uid,
			GID:   st.Gid,
			MTime: st.Mtim.Nano(),
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e.Type, e.Size, e.Nlink = 'f', st.Size, uint64(st.Nlink)
			h, err := hashFile(p)
			if err != nil {
				return err
			}
			e.Hash = h
			bytes += st.Size
		case unix.S_IFDIR:
			e.Type = 'd'
		case unix.S_IFLNK:
			e.Type = 'l'
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFIFO:
			e.Type = 'p'
		default:
			return fmt.Errorf("%s: unexpected file type %o", p, st.Mode&unix.S_IFMT)
		}
		if e.Type != 'l' {
			if e.Xattrs, err = xattrs(p); err != nil {
				return err
			}
		}
		m[rel] = e
		return nil
	})
	return m, bytes, err
}

func hashFile(p string) ([32]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}

// xattrs lists p's extended attributes as "name=hex;..." sorted by name.
func xattrs(p string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return "", nil
		}
		return "", err
	}
	var parts []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 4096)
		vn, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return "", fmt.Errorf("%s: xattr %s: %w", p, name, err)
		}
		parts = append(parts, name+"="+hex.EncodeToString(v[:vn]))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";"), nil
}

// key names a manifest by its content, for the snapshot's tag.
func (m manifest) key() string {
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%q %+v\n", p, m[p])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// diff lists how got differs from m, at most limit lines. The root's own
// metadata is left out: restore makes the target folder.
func (m manifest) diff(got manifest, limit int) []string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < limit {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if p == "." {
			continue
		}
		g, ok := got[p]
		if !ok {
			add("%s: missing", p)
			continue
		}
		if w := m[p]; g != w {
			add("%s: got %s, want %s", p, g, w)
		}
	}
	for p := range got {
		if _, ok := m[p]; !ok && p != "." {
			add("%s: not in the snapshot's tree", p)
		}
	}
	return out
}

func (e entry) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%c %v uid %d gid %d", e.Type, e.Mode, e.UID, e.GID)
	if e.Type == 'f' {
		fmt.Fprintf(&b, " size %d links %d sha256 %x", e.Size, e.Nlink, e.Hash[:6])
	}
	if e.Type == 'l' {
		fmt.Fprintf(&b, " -> %q", e.Target)
	}
	fmt.Fprintf(&b, " mtime %s", time.Unix(0, e.MTime).UTC().Format(time.RFC3339Nano))
	if e.Xattrs != "" {
		fmt.Fprintf(&b, " xattrs %s", e.Xattrs)
	}
	return b.String()
}

// dirSize is the bytes of regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// statfsFree is the bytes free on the file system holding dir.
func statfsFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}
