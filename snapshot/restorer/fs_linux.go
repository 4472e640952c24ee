package restorer

import (
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
// applied), or reuses an existing one, and opens it. An existing symlink is
// refused; another non-directory is replaced.
func makeDir(dirfd int, name string) (int, error) {
	st, exists, err := lstatAt(dirfd, name)
	if err != nil {
		return -1, err
	}
	if exists {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
		case unix.S_IFLNK:
			return -1, ErrSymlinkInTarget
		default:
			if err := unix.Unlinkat(dirfd, name, 0); err != nil {
				return -1, fmt.Errorf("remove existing file: %w", err)
			}
			exists = false
		}
	}
	if !exists {
		if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
			return -1, fmt.Errorf("mkdir: %w", err)
		}
	}
	fd, err := unix.Openat(dirfd, name, dirFlags, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, ErrSymlinkInTarget // swapped in since the lstat
	}
	if err != nil {
		return -1, fmt.Errorf("open directory: %w", err)
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

func makeSymlink(dirfd int, name, linkTarget string) error {
	if err := clearLeaf(dirfd, name); err != nil {
		return err
	}
	if err := unix.Symlinkat(linkTarget, dirfd, name); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return nil
}

// makeSpecial creates a fifo or device node (mode 0600 until its metadata
// is applied). Creating a device needs CAP_MKNOD; without it the error is
// reported like any other.
func makeSpecial(dirfd int, n *snapshot.Node) error {
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
		return err
	}
	if err := unix.Mknodat(dirfd, n.Name, mode|0o600, int(n.Device)); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return nil
}

// openDirBeneath opens the directory rel (slash-separated, relative to
// rootfd) one element at a time, never following a symlink.
func openDirBeneath(rootfd int, rel string) (int, error) {
	fd, err := unix.Openat(rootfd, ".", dirFlags, 0)
	if err != nil {
		return -1, err
	}
	if rel == "" || rel == "." {
		return fd, nil
	}
	for elem := range strings.SplitSeq(rel, "/") {
		next, err := unix.Openat(fd, elem, dirFlags, 0)
		closeFD(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// linkFile makes name in dirfd a hardlink to the file rel (relative to
// rootfd).
func linkFile(rootfd int, rel string, dirfd int, name string) error {
	dir, base := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, base = rel[:i], rel[i+1:]
	}
	ofd, err := openDirBeneath(rootfd, dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer closeFD(ofd)
	if err := clearLeaf(dirfd, name); err != nil {
		return err
	}
	// flags 0: link the name itself, do not follow it.
	if err := unix.Linkat(ofd, base, dirfd, name, 0); err != nil {
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

// applyMetadata sets owner (as root), xattrs, mode and times of e, in that
// order: chown clears setuid bits, and a read-only mode would forbid
// setting xattrs as a normal user. Every step is tried; the failures are
// returned joined.
func (rs *restore) applyMetadata(e *entry) error {
	n := e.node
	var errs []error
	if rs.chown && !e.ownerSet {
		var err error
		if e.fd >= 0 {
			err = unix.Fchown(e.fd, int(n.UID), int(n.GID))
		} else {
			err = unix.Fchownat(e.dirfd, e.name, int(n.UID), int(n.GID), unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("chown: %w", err))
		}
	}
	for _, x := range n.ExtendedAttributes {
		var err error
		if e.fd >= 0 {
			err = unix.Fsetxattr(e.fd, x.Name, x.Value, 0)
		} else {
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
		err = unix.Fchmodat(e.dirfd, e.name, unixMode(n.Mode), 0)
	case kindSymlink:
		// Linux symlinks have no mode of their own.
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("chmod: %w", err))
	}
	atime := n.AccessTime
	if atime.IsZero() {
		atime = n.ModTime
	}
	ts := [2]unix.Timespec{timespec(atime), timespec(n.ModTime)}
	if e.fd >= 0 {
		err = futimens(e.fd, &ts)
	} else {
		err = unix.UtimesNanoAt(e.dirfd, e.name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("set times: %w", err))
	}
	return errors.Join(errs...)
}
