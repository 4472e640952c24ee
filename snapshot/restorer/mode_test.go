package restorer

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/snapshot"
)

// TestRestoreModesAndOwners covers the shortcuts of createPerm: a file
// created with its final mode or owner gets no chmod or chown, and every
// other combination (a mode the umask would cut, a read-only file with
// xattrs, another owner, a setgid folder) still ends exact.
func TestRestoreModesAndOwners(t *testing.T) {
	repo := newFakeRepo()
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	const otherGID = 4321
	type want struct {
		mode     uint32
		uid, gid uint32
	}
	wants := map[string]want{}
	var files []*snapshot.Node
	add := func(name string, mode os.FileMode, u, g uint32, xattr bool) {
		n := fileNode(repo, name, []byte("content of "+name), 8)
		n.Mode, n.UID, n.GID = mode, u, g
		if xattr {
			n.ExtendedAttributes = []snapshot.ExtendedAttribute{{Name: "user.k", Value: []byte("v")}}
		}
		files = append(files, n)
		wants[name] = want{unixMode(mode), u, g}
	}
	add("own-644", 0o644, uid, gid, false)
	add("own-666", 0o666, uid, gid, false) // the umask would cut it
	add("own-400-xattr", 0o400, uid, gid, true)
	add("own-000", 0, uid, gid, false)
	add("other-640", 0o640, 1234, 5678, false)
	add("own-other-group", 0o644, uid, otherGID, false)
	add("setuid", os.ModeSetuid|0o755, uid, gid, false)
	root := repo.addTree(t, files...)

	old := unix.Umask(0o022)
	defer unix.Umask(old)
	target := t.TempDir()
	// A setgid target: new files get its group, not egid.
	if err := unix.Chmod(target, 0o2755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(target, -1, otherGID); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	_, rep := restoreT(t, repo, root, Options{}, target)
	if len(rep.errs) > 0 && os.Geteuid() == 0 {
		t.Fatal(rep.errs)
	}
	for name, w := range wants {
		st := lstat(t, filepath.Join(target, name))
		if got := st.Mode &^ unix.S_IFMT; got != w.mode {
			t.Errorf("%s: mode %o, want %o", name, got, w.mode)
		}
		if os.Geteuid() == 0 && (st.Uid != w.uid || st.Gid != w.gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", name, st.Uid, st.Gid, w.uid, w.gid)
		}
	}
}
