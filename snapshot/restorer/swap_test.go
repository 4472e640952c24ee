package restorer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

// outsideFile is a file outside the restore target that a symlink swapped
// in under the restore points at; nothing of the restore may reach it.
type outsideFile struct {
	path   string
	st     unix.Stat_t
	xattrs []string
}

func newOutsideFile(t *testing.T) *outsideFile {
	t.Helper()
	p := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(p, []byte("not yours\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	o := &outsideFile{path: p}
	o.st, o.xattrs = o.state(t)
	return o
}

func (o *outsideFile) state(t *testing.T) (unix.Stat_t, []string) {
	t.Helper()
	st := lstat(t, o.path)
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(o.path, buf)
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	slices.Sort(names)
	return st, names
}

// check fails the test if the outside file's mode, owner, times, xattrs
// or content changed.
func (o *outsideFile) check(t *testing.T) {
	t.Helper()
	st, xattrs := o.state(t)
	if st.Mode != o.st.Mode || st.Uid != o.st.Uid || st.Gid != o.st.Gid {
		t.Errorf("outside file: mode %o owner %d:%d, was %o %d:%d", st.Mode, st.Uid, st.Gid, o.st.Mode, o.st.Uid, o.st.Gid)
	}
	if st.Mtim != o.st.Mtim || st.Atim != o.st.Atim {
		t.Errorf("outside file: times changed to %v %v", time.Unix(st.Mtim.Unix()), time.Unix(st.Atim.Unix()))
	}
	if !slices.Equal(xattrs, o.xattrs) {
		t.Errorf("outside file: xattrs %q, were %q", xattrs, o.xattrs)
	}
	checkFile(t, o.path, []byte("not yours\n"))
}

// swapTree is a snapshot with one node of each kind a restore makes,
// each with a mode, owner, times and (where Linux allows) an xattr that
// would show on the outside file if set through a symlink.
func swapTree(t *testing.T, repo *fakeRepo) backend.ID {
	t.Helper()
	meta := func(n *snapshot.Node) *snapshot.Node {
		n.UID, n.GID, n.ModTime, n.AccessTime = 1234, 5678, t0, t1
		return n
	}
	// user.* xattrs are for files and folders only; trusted.* (root)
	// for any node.
	trusted := []snapshot.ExtendedAttribute{{Name: "trusted.cairn", Value: []byte("t")}}
	if os.Geteuid() != 0 {
		trusted = nil
	}
	user := []snapshot.ExtendedAttribute{{Name: "user.cairn", Value: []byte("u")}}
	file := meta(fileNode(repo, "file", []byte("content\n"), 100))
	file.Mode, file.ExtendedAttributes = os.ModeSetuid|0o777, user
	dir := meta(dirNode("dir", repo.addTree(t, fileNode(repo, "inner", []byte("inner\n"), 100))))
	dir.Mode, dir.ExtendedAttributes = os.ModeDir|os.ModeSetuid|0o777, user
	fifo := meta(&snapshot.Node{Name: "fifo", Type: snapshot.NodeFifo, Mode: os.ModeNamedPipe | os.ModeSetuid | 0o777,
		ExtendedAttributes: trusted})
	dev := meta(&snapshot.Node{Name: "null", Type: snapshot.NodeCharDev,
		Mode: os.ModeDevice | os.ModeCharDevice | os.ModeSetuid | 0o777, Device: unix.Mkdev(1, 3), ExtendedAttributes: trusted})
	link := meta(&snapshot.Node{Name: "link", Type: snapshot.NodeSymlink, LinkTarget: "elsewhere", ExtendedAttributes: trusted})
	return repo.addTree(t, file, dir, fifo, dev, link)
}

// TestRestoreSwappedForSymlink swaps each kind of node the restore makes
// for a symlink to a file outside the target, once right after the node
// was made and once right before its metadata is set (as another user
// writing in the target could): the outside file must keep its mode,
// owner, times and xattrs, and the node must be reported.
func TestRestoreSwappedForSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: devices, owners and trusted xattrs")
	}
	for _, name := range []string{"file", "dir", "fifo", "null", "link"} {
		for _, made := range []bool{true, false} {
			stage := "made"
			if !made {
				stage = "before-metadata"
			}
			t.Run(name+"/"+stage, func(t *testing.T) {
				repo := newFakeRepo()
				root := swapTree(t, repo)
				out := newOutsideFile(t)
				target := t.TempDir()
				var once sync.Once
				swapped := false
				opts := Options{TestOnlyBetween: func(p string, m bool) {
					if p != "/"+name || m != made {
						return
					}
					once.Do(func() {
						at := filepath.Join(target, name)
						if err := os.Rename(at, at+".moved"); err != nil {
							t.Error(err)
							return
						}
						if err := os.Symlink(out.path, at); err != nil {
							t.Error(err)
							return
						}
						swapped = true
					})
				}}
				st, rep := restoreT(t, repo, root, opts, target)
				if !swapped {
					t.Fatal("the seam never ran for the node")
				}
				out.check(t)
				if got := rep.paths(); !slices.Equal(got, []string{"/" + name}) {
					t.Fatalf("errors for %q, want only /%s: %v", got, name, rep.errs)
				}
				err := rep.errs["/"+name][0]
				if !errors.Is(err, ErrChangedInTarget) && !errors.Is(err, ErrSymlinkInTarget) {
					t.Errorf("error %v, want ErrChangedInTarget", err)
				}
				t.Logf("reported: %v", err)
				// The swapped-in symlink is left as it is.
				if dest, err := os.Readlink(filepath.Join(target, name)); err != nil || dest != out.path {
					t.Errorf("symlink in the target: %q %v", dest, err)
				}
				if st.Errors != 1 {
					t.Errorf("stats %+v", st)
				}
				// The other nodes are restored whole.
				for _, other := range []string{"file", "fifo", "null", "link"} {
					if other == name {
						continue
					}
					checkTimes(t, filepath.Join(target, other), t0, t1)
				}
				if name != "dir" {
					checkFile(t, filepath.Join(target, "dir", "inner"), []byte("inner\n"))
					if got := lstat(t, filepath.Join(target, "dir")).Mode &^ unix.S_IFMT; got != unix.S_ISUID|0o777 {
						t.Errorf("dir: mode %o", got)
					}
				}
			})
		}
	}
}

// TestRestoreCaseCollision reproduces what a case-insensitive target does
// to a tree holding a fifo "F" and a symlink "f" to a file outside: the
// symlink, made after the fifo, takes the fifo's place, so the name "F"
// whose metadata is still to be set leads outside. Linux file systems
// here fold no case (and trees may not hold one name twice), so the seam
// plays the file system: once "f" is made, "F" becomes a second name of
// the symlink. The fifo's mode 4777 must not reach the outside file.
func TestRestoreCaseCollision(t *testing.T) {
	repo := newFakeRepo()
	out := newOutsideFile(t)
	fifo := &snapshot.Node{Name: "F", Type: snapshot.NodeFifo, Mode: os.ModeNamedPipe | os.ModeSetuid | 0o777,
		UID: 1234, GID: 5678, ModTime: t0, AccessTime: t1}
	link := &snapshot.Node{Name: "f", Type: snapshot.NodeSymlink, LinkTarget: out.path, ModTime: t0, AccessTime: t1}
	root := repo.addTree(t, fifo, link)
	target := t.TempDir()
	var once sync.Once
	folded := false
	opts := Options{TestOnlyBetween: func(p string, made bool) {
		if p != "/f" || !made {
			return
		}
		once.Do(func() {
			dir, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer unix.Close(dir)
			if err := unix.Unlinkat(dir, "F", 0); err != nil {
				t.Error(err)
				return
			}
			// flags 0: a hardlink to the symlink itself.
			if err := unix.Linkat(dir, "f", dir, "F", 0); err != nil {
				t.Error(err)
				return
			}
			folded = true
		})
	}}
	_, rep := restoreT(t, repo, root, opts, target)
	if !folded {
		t.Fatal("the seam never ran")
	}
	out.check(t)
	if got := rep.paths(); !slices.Equal(got, []string{"/F"}) {
		t.Fatalf("errors for %q, want only /F: %v", got, rep.errs)
	}
	if err := rep.errs["/F"][0]; !errors.Is(err, ErrChangedInTarget) {
		t.Errorf("/F: %v, want ErrChangedInTarget", err)
	}
	if dest, err := os.Readlink(filepath.Join(target, "f")); err != nil || dest != out.path {
		t.Errorf("symlink f: %q %v", dest, err)
	}
}
