package restorer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

// dirFlags open a directory without following a symlink in its place.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openTarget opens the restore target itself. A symlink naming the target
// is followed: the user chose that path.
func openTarget(target string) (int, error) {
	return unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

func closeFD(fd int) { _ = unix.Close(fd) } // read-only or already synced by the kernel: nothing to lose

// lstatAt stats name in dirfd without following a symlink; exists is false
// if there is nothing there.
func lstatAt(dirfd int, name string) (st unix.Stat_t, exists bool, err error) {
	err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("lstat: %w", err)
	}
	return st, true, nil
}

// makeDir creates directory name in dirfd (mode 0700 until its metadata is
// applied), or reuses an existing one, and opens it; made says it was
// created. An existing symlink is refused; another non-directory is
// replaced. between, if not nil, runs between creating and opening it (a
// test seam).
func makeDir(dirfd int, name string, between func()) (fd int, made bool, err error) {
	st, exists, err := lstatAt(dirfd, name)
	if err != nil {
		return -1, false, err
	}
	if exists {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
		case unix.S_IFLNK:
			return -1, false, ErrSymlinkInTarget
		default:
			if err := unix.Unlinkat(dirfd, name, 0); err != nil {
				return -1, false, fmt.Errorf("remove existing file: %w", err)
			}
			exists = false
		}
	}
	if !exists {
		if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
			return -1, false, fmt.Errorf("mkdir: %w", err)
		}
		if between != nil {
			between()
		}
	}
	fd, err = unix.Openat(dirfd, name, dirFlags, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, false, ErrSymlinkInTarget // swapped in since the lstat or the mkdir
	}
	if err != nil {
		return -1, false, fmt.Errorf("open directory: %w", err)
	}
	return fd, !exists, nil
}

// openExistingDir opens the directory name in dirfd if there is one,
// without following a symlink; ok is false if there is none (nothing, or
// a non-directory, there).
func openExistingDir(dirfd int, name string) (fd int, ok bool, err error) {
	fd, err = unix.Openat(dirfd, name, dirFlags, 0)
	switch {
	case err == nil:
		return fd, true, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return -1, false, nil
	}
	return -1, false, fmt.Errorf("open directory: %w", err)
}

// openExistingFile opens the regular file name in dirfd read-only, without
// following a symlink, and checks that it is the file id (as lstat saw
// it): a restore that keeps a file sets its metadata through this
// descriptor.
func openExistingFile(dirfd int, name string, id nodeID) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open: %w", err)
	}
	st, err := fdStat(fd)
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFREG || idOf(&st) != id) {
		err = fmt.Errorf("%w: the name now holds a %s", ErrChangedInTarget, typeName(st.Mode))
	}
	if err != nil {
		closeFD(fd)
		return -1, err
	}
	return fd, nil
}

// readDirNames lists the names in the directory open as fd (not "." and
// "..").
func readDirNames(fd int) ([]string, error) {
	dfd, err := unix.Openat(fd, ".", dirFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", err)
	}
	f := os.NewFile(uintptr(dfd), ".")
	defer f.Close() // read-only
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	return names, nil
}

// removeAt removes name in dirfd, with everything below it if it is a
// directory (removeTree), never following a symlink.
func removeAt(dirfd int, name string, isDir bool) error {
	var err error
	if isDir {
		err = removeTree(dirfd, name)
	} else if err = unix.Unlinkat(dirfd, name, 0); errors.Is(err, unix.ENOENT) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// removeLevel is a directory removeTree is in: its name in its parent,
// what it is, and the subdirectories still to remove.
type removeLevel struct {
	name string
	id   nodeID
	dirs []string
}

// removeTree removes the directory name in dirfd and everything below it
// with two descriptors at a time, however deep it is (os.RemoveAll holds
// one per level): down through a subdirectory (opened with O_NOFOLLOW, so
// a symlink is removed, never followed), removing the other entries of
// each level on the way, and back up through "..", which must be the
// directory it came from (device and inode), or it stops with
// ErrChangedInTarget. Memory is the names of the subdirectories left on
// the levels of its path.
func removeTree(dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, dirFlags, 0)
	if err != nil {
		return err
	}
	st, err := fdStat(fd)
	if err != nil {
		closeFD(fd)
		return err
	}
	path := []removeLevel{{name: name, id: idOf(&st)}}
	for {
		top := &path[len(path)-1]
		if top.dirs == nil {
			if top.dirs, err = clearFiles(fd); err != nil {
				closeFD(fd)
				return err
			}
		}
		if n := len(top.dirs); n > 0 {
			sub := top.dirs[n-1]
			top.dirs = top.dirs[:n-1]
			next, err := unix.Openat(fd, sub, dirFlags, 0)
			if errors.Is(err, unix.ENOENT) {
				continue // gone meanwhile
			}
			if err == nil {
				st, err = fdStat(next)
			}
			if err != nil {
				closeFD(fd)
				return err
			}
			closeFD(fd)
			fd = next
			path = append(path, removeLevel{name: sub, id: idOf(&st)})
			continue
		}
		// Empty: remove it from its parent.
		done := path[len(path)-1]
		path = path[:len(path)-1]
		if len(path) == 0 {
			closeFD(fd)
			return unix.Unlinkat(dirfd, done.name, unix.AT_REMOVEDIR)
		}
		parent, err := reopenDir(fd, "..", path[len(path)-1].id)
		closeFD(fd)
		if err != nil {
			return err
		}
		fd = parent
		if err := unix.Unlinkat(fd, done.name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
			closeFD(fd)
			return err
		}
	}
}

// clearFiles removes the entries of the directory open as fd that are not
// directories, and returns the names of those that are (an empty, non-nil
// slice if none).
func clearFiles(fd int) ([]string, error) {
	names, err := readDirNames(fd)
	if err != nil {
		return nil, err
	}
	dirs := []string{}
	for _, name := range names {
		st, exists, err := lstatAt(fd, name)
		if err != nil {
			return nil, err
		}
		if !exists {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			dirs = append(dirs, name)
			continue
		}
		if err := unix.Unlinkat(fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, err
		}
	}
	return dirs, nil
}

// sameFileContent reports whether the regular file open as fd holds
// exactly the chunks of n (their IDs are SHA-256 of their plaintext;
// lengths gives each chunk's length, false if one is unknown), reading
// it once with buf.
func sameFileContent(fd int, size uint64, ids []backend.ID, lengths func(int) (uint32, bool), buf []byte) (bool, error) {
	var total uint64
	for i := range ids {
		n, ok := lengths(i)
		if !ok {
			return false, nil
		}
		total += uint64(n)
	}
	if total != size {
		return false, nil
	}
	h := sha256.New()
	var off uint64
	for i, id := range ids {
		n, _ := lengths(i)
		h.Reset()
		if err := hashRange(h, fd, off, uint64(n), buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return false, nil // shorter than its stat said: changed meanwhile
			}
			return false, err
		}
		if !bytes.Equal(h.Sum(nil), id[:]) {
			return false, nil
		}
		off += uint64(n)
	}
	return true, nil
}

// nodeID identifies a file system object: a descriptor re-opened by name
// must name the same one.
type nodeID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) nodeID { return nodeID{st.Dev, st.Ino} }

// fdStat stats the object open as fd, an O_PATH descriptor included
// (plain fstat refuses those before Linux 3.6).
func fdStat(fd int) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, "", &st, unix.AT_EMPTY_PATH); err != nil {
		return st, fmt.Errorf("stat: %w", err)
	}
	return st, nil
}

// typeName names a file type for messages.
func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "file of unknown type"
}

// sameNode checks that name in dirfd still is the object open as fd, so
// its metadata may be set: a name another process swapped for something
// else (a symlink, another file) during the restore is refused.
func sameNode(dirfd int, name string, fd int) error {
	own, err := fdStat(fd)
	if err != nil {
		return err
	}
	st, exists, err := lstatAt(dirfd, name)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%w: the name is gone", ErrChangedInTarget)
	}
	if idOf(&st) != idOf(&own) {
		return fmt.Errorf("%w: the name now holds a %s", ErrChangedInTarget, typeName(st.Mode))
	}
	return nil
}

// openNode opens name in dirfd with O_PATH, without following a symlink,
// and checks that it is of type ifmt: the node the restore just made, not
// one swapped in since. A descriptor of the node itself is what its
// metadata is then set through.
func openNode(dirfd int, name string, ifmt uint32) (int, unix.Stat_t, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, unix.Stat_t{}, fmt.Errorf("open: %w", err)
	}
	st, err := fdStat(fd)
	if err == nil && st.Mode&unix.S_IFMT != ifmt {
		err = fmt.Errorf("%w: a %s where a %s was made", ErrChangedInTarget, typeName(st.Mode), typeName(ifmt))
	}
	if err != nil {
		closeFD(fd)
		return -1, st, err
	}
	return fd, st, nil
}

// reopenDir opens the directory name in dirfd ("..": the parent of the
// directory open as dirfd) again after its descriptor was closed, and
// checks that it is the directory id.
func reopenDir(dirfd int, name string, id nodeID) (int, error) {
	fd, err := unix.Openat(dirfd, name, dirFlags, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, fmt.Errorf("%w: the name no longer holds a directory", ErrChangedInTarget)
	}
	if err != nil {
		return -1, fmt.Errorf("open directory: %w", err)
	}
	st, err := fdStat(fd)
	if err == nil && idOf(&st) != id {
		err = fmt.Errorf("%w: the name now holds another directory", ErrChangedInTarget)
	}
	if err != nil {
		closeFD(fd)
		return -1, err
	}
	return fd, nil
}

// clearLeaf removes whatever non-directory is at name, so a new node can be
// created there without writing through the old one.
func clearLeaf(dirfd int, name string) error {
	st, exists, err := lstatAt(dirfd, name)
	if err != nil || !exists {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return ErrDirInTarget
	}
	if err := unix.Unlinkat(dirfd, name, 0); err != nil {
		return fmt.Errorf("remove existing file: %w", err)
	}
	return nil
}

// createFile creates a new regular file with permission bits perm (less
// the umask), readable and writable (verify reads it back) whatever perm
// says. O_EXCL refuses whatever is already there (a symlink included)
// without following it; only then is it looked at and cleared, so
// restoring into an empty folder costs one system call per file.
func createFile(dirfd int, name string, perm uint32) (int, error) {
	const flags = unix.O_RDWR | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags, perm)
	if errors.Is(err, unix.EEXIST) {
		if err := clearLeaf(dirfd, name); err != nil {
			return -1, err
		}
		fd, err = unix.Openat(dirfd, name, flags, perm)
	}
	if err != nil {
		return -1, fmt.Errorf("create: %w", err)
	}
	return fd, nil
}

func truncateFD(fd int, size uint64) error {
	if size > 1<<62 {
		return fmt.Errorf("truncate: size %d too large", size)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	return nil
}

// makeSymlink creates a symlink and returns an O_PATH descriptor of it,
// after checking that the name holds a symlink with linkTarget (not one
// swapped in since). between, if not nil, runs between creating and
// opening it (a test seam).
func makeSymlink(dirfd int, name, linkTarget string, between func()) (int, error) {
	if err := clearLeaf(dirfd, name); err != nil {
		return -1, err
	}
	if err := unix.Symlinkat(linkTarget, dirfd, name); err != nil {
		return -1, fmt.Errorf("symlink: %w", err)
	}
	if between != nil {
		between()
	}
	fd, _, err := openNode(dirfd, name, unix.S_IFLNK)
	if err != nil {
		return -1, err
	}
	buf := make([]byte, len(linkTarget)+1)
	n, err := unix.Readlinkat(fd, "", buf)
	if err == nil && (n != len(linkTarget) || string(buf[:n]) != linkTarget) {
		err = fmt.Errorf("%w: a symlink to something else", ErrChangedInTarget)
	} else if err != nil {
		err = fmt.Errorf("readlink: %w", err)
	}
	if err != nil {
		closeFD(fd)
		return -1, err
	}
	return fd, nil
}

// makeSpecial creates a fifo or device node (mode 0600 until its metadata
// is applied) and returns an O_PATH descriptor of it, after checking that
// the name holds a node of that type (and device number), not one swapped
// in since. Creating a device needs CAP_MKNOD; without it the error is
// reported like any other. between, if not nil, runs between creating and
// opening it (a test seam).
func makeSpecial(dirfd int, n *snapshot.Node, between func()) (int, error) {
	var mode uint32
	switch n.Type {
	case snapshot.NodeFifo:
		mode = unix.S_IFIFO
	case snapshot.NodeDev:
		mode = unix.S_IFBLK
	case snapshot.NodeCharDev:
		mode = unix.S_IFCHR
	default:
		panic("restorer: makeSpecial called for " + string(n.Type) + " (a bug in the restorer)")
	}
	if err := clearLeaf(dirfd, n.Name); err != nil {
		return -1, err
	}
	if err := unix.Mknodat(dirfd, n.Name, mode|0o600, int(n.Device)); err != nil {
		return -1, fmt.Errorf("mknod: %w", err)
	}
	if between != nil {
		between()
	}
	fd, st, err := openNode(dirfd, n.Name, mode)
	if err != nil {
		return -1, err
	}
	if mode != unix.S_IFIFO && st.Rdev != n.Device {
		closeFD(fd)
		return -1, fmt.Errorf("%w: another device", ErrChangedInTarget)
	}
	return fd, nil
}

// openDirBeneath opens the directory reached from rootfd through the
// names elems, one at a time, never following a symlink.
func openDirBeneath(rootfd int, elems []string) (int, error) {
	fd, err := unix.Openat(rootfd, ".", dirFlags, 0)
	if err != nil {
		return -1, err
	}
	for _, elem := range elems {
		next, err := unix.Openat(fd, elem, dirFlags, 0)
		closeFD(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// linkFile makes name in dirfd a hardlink to the file first (reached from
// rootfd through the directories dirs), which must still be the regular
// file id the restore created there.
func linkFile(rootfd int, dirs []string, first string, id nodeID, dirfd int, name string) error {
	ofd, err := openDirBeneath(rootfd, dirs)
	if err != nil {
		return fmt.Errorf("open %s: %w", strings.Join(dirs, "/"), err)
	}
	defer closeFD(ofd)
	st, exists, err := lstatAt(ofd, first)
	if err != nil {
		return err
	}
	if !exists || st.Mode&unix.S_IFMT != unix.S_IFREG || idOf(&st) != id {
		return fmt.Errorf("%w: the first name of the file", ErrChangedInTarget)
	}
	if err := clearLeaf(dirfd, name); err != nil {
		return err
	}
	// flags 0: link the name itself, do not follow it.
	if err := unix.Linkat(ofd, first, dirfd, name, 0); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	return nil
}

func pwriteAll(fd int, p []byte, off uint64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, int64(off))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
		off += uint64(n)
	}
	return nil
}

func fileSize(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return uint64(st.Size), nil
}

// hashRange feeds n bytes of fd from off into h.
func hashRange(h hash.Hash, fd int, off, n uint64, buf []byte) error {
	for n > 0 {
		m, err := unix.Pread(fd, buf[:min(uint64(len(buf)), n)], int64(off))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if m == 0 {
			return fmt.Errorf("read at %d: %w", off, io.ErrUnexpectedEOF)
		}
		h.Write(buf[:m])
		off += uint64(m)
		n -= uint64(m)
	}
	return nil
}

// unixMode converts the permission and special bits of m.
func unixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// futimens sets the times of the file open as fd: utimensat with a nil
// path, which x/sys/unix does not offer (it passes "" for an empty path).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// newFileGID is the group a file created in the directory open as fd
// gets: the directory's own if it has the setgid bit, else egid.
func newFileGID(fd int, egid uint32) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("stat directory: %w", err)
	}
	if st.Mode&unix.S_ISGID != 0 {
		return st.Gid, nil
	}
	return egid, nil
}

// processUmask reads the umask from /proc/self/status (setting it to read
// it back would race with other goroutines creating files); ok is false
// if it cannot be read.
func processUmask() (mask uint32, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		v, found := strings.CutPrefix(line, "Umask:")
		if !found {
			continue
		}
		m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
		if err != nil {
			return 0, false
		}
		return uint32(m), true
	}
	return 0, false
}

// defaultBatchFiles is Options.BatchFiles' default: a quarter of the soft
// limit on open files (Go raises it to the hard limit at start-up), so two
// batches and the rest of the process stay well below it.
func defaultBatchFiles() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 256
	}
	return int(min(max(rl.Cur/4, 256), 4096))
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// procPath names name in the directory open as dirfd without resolving
// anything but that descriptor, for calls that take only a path.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// procFD names the object open as fd (an O_PATH descriptor of a fifo or
// device) for calls that take only a path and follow it: /proc/self/fd/N
// leads to that object itself, not to whatever its name holds now.
func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// applyMetadata sets owner (as root), xattrs, mode and times of e, in that
// order: chown clears setuid bits, and a read-only mode would forbid
// setting xattrs as a normal user. It first checks that e's name still is
// the node the restore made (sameNode); nothing is set through a name
// that changed. Every call then goes through e's own descriptor, never a
// name that could have become a symlink meanwhile:
//
//   - files and directories: fchown, fsetxattr, fchmod, futimens;
//   - fifos and devices (O_PATH descriptors, checked to be of their type
//     when made): fchownat(AT_EMPTY_PATH), and setxattr, chmod and
//     utimensat on /proc/self/fd/N, which leads to the node itself (Linux
//     has no fchmod for O_PATH descriptors before fchmodat2 in 6.6);
//   - symlinks: fchownat(AT_EMPTY_PATH); xattrs and times by name, with
//     lsetxattr and AT_SYMLINK_NOFOLLOW, right after the name was checked:
//     Linux has no call that sets them through an O_PATH descriptor of a
//     symlink, and these never follow one.
//
// Every step is tried; the failures are returned joined.
func (rs *restore) applyMetadata(e *entry) error {
	if e.dirfd >= 0 {
		if err := sameNode(e.dirfd, e.name, e.fd); err != nil {
			return err
		}
	}
	n := e.node
	var errs []error
	if rs.chown && !e.ownerSet {
		var err error
		switch e.kind {
		case kindDir, kindFile:
			err = unix.Fchown(e.fd, int(n.UID), int(n.GID))
		case kindSpecial, kindSymlink:
			err = unix.Fchownat(e.fd, "", int(n.UID), int(n.GID), unix.AT_EMPTY_PATH)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("chown: %w", err))
		}
	}
	for _, x := range n.ExtendedAttributes {
		var err error
		switch e.kind {
		case kindDir, kindFile:
			err = unix.Fsetxattr(e.fd, x.Name, x.Value, 0)
		case kindSpecial:
			err = unix.Setxattr(procFD(e.fd), x.Name, x.Value, 0)
		case kindSymlink:
			err = unix.Lsetxattr(procPath(e.dirfd, e.name), x.Name, x.Value, 0)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("set xattr %q: %w", x.Name, err))
		}
	}
	var err error
	switch e.kind {
	case kindDir, kindFile:
		if !e.modeSet {
			err = unix.Fchmod(e.fd, unixMode(n.Mode))
		}
	case kindSpecial:
		err = unix.Fchmodat(unix.AT_FDCWD, procFD(e.fd), unixMode(n.Mode), 0)
	case kindSymlink:
		// Linux symlinks have no mode of their own.
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("chmod: %w", err))
	}
	if e.keepTimes {
		return errors.Join(errs...)
	}
	atime := n.AccessTime
	if atime.IsZero() {
		atime = n.ModTime
	}
	ts := [2]unix.Timespec{timespec(atime), timespec(n.ModTime)}
	switch e.kind {
	case kindDir, kindFile:
		err = futimens(e.fd, &ts)
	case kindSpecial:
		err = unix.UtimesNanoAt(unix.AT_FDCWD, procFD(e.fd), ts[:], 0)
	case kindSymlink:
		err = unix.UtimesNanoAt(e.dirfd, e.name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("set times: %w", err))
	}
	return errors.Join(errs...)
}
