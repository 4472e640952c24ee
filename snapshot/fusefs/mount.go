package fusefs

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// MountOptions say how the kernel exposes the mount.
type MountOptions struct {
	// AllowOther lets other users than the one mounting see the files
	// (for a user other than root, /etc/fuse.conf must say
	// user_allow_other).
	AllowOther bool
	// DefaultPermissions has the kernel check each file's stored mode
	// and owner against the user reading it. Without it, whoever may
	// see the mount may read every file in it.
	DefaultPermissions bool
	// FsName is the source column of /proc/mounts and df.
	FsName string
	// Log receives go-fuse's own diagnostics; nil discards them.
	Log io.Writer
}

// cacheTimeout is how long the kernel may keep names and attributes:
// nothing in the mount ever changes while it is mounted.
const cacheTimeout = time.Hour

// Server is a mounted file system.
type Server struct {
	s   *fuse.Server
	dir string
}

// Mount mounts the file system read-only at dir and serves it on other
// goroutines until it is unmounted. As root it calls mount(2) itself;
// any other user needs the fusermount3 (or fusermount) helper of the
// fuse3 package. The kernel refuses every write with EROFS.
func (f *FS) Mount(dir string, o MountOptions) (*Server, error) {
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	logger := log.New(logw, "fuse: ", 0)
	timeout := cacheTimeout
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther: o.AllowOther,
			// "ro" for fusermount; DirectMountFlags for mount(2).
			Options:          []string{"ro"},
			DirectMount:      true,
			DirectMountFlags: syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
			FsName:           o.FsName,
			Name:             "cairn",
			Logger:           logger,
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		UID:             f.opts.UID,
		GID:             f.opts.GID,
		Logger:          logger,
		RootStableAttr:  &fs.StableAttr{Ino: rootIno},
	}
	if o.DefaultPermissions {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "default_permissions")
	}
	if os.Geteuid() != 0 {
		if _, err := fusermount(); err != nil {
			return nil, fmt.Errorf("mount %s: a user other than root needs fusermount3 (Debian and Ubuntu: the fuse3 package): %w", dir, err)
		}
	}
	s, err := fs.Mount(dir, f.Root(), opts)
	if err != nil {
		// go-fuse's message for a failed fusermount ends in a newline;
		// fusermount has said why on stderr.
		return nil, fmt.Errorf("mount %s: %s", dir, strings.TrimSpace(err.Error()))
	}
	return &Server{s: s, dir: dir}, nil
}

// Wait returns when the file system has been unmounted: by Unmount, or
// from outside (umount, fusermount3 -u).
func (s *Server) Wait() { s.s.Wait() }

// ErrBusy is returned by Unmount when the mount was in use: it is
// detached (gone from the mountpoint) but programs that still have files
// open in it get errors from them.
var ErrBusy = errors.New("the mount was in use: detached it; programs still using it get errors")

// Unmount unmounts the file system. A mount still in use (a shell in
// it, an open file) is detached lazily, and ErrBusy returned: the
// mountpoint is free at once, and the process may exit.
func (s *Server) Unmount() error {
	err := s.s.Unmount()
	if err == nil {
		return nil
	}
	if lerr := lazyUnmount(s.dir); lerr != nil {
		return fmt.Errorf("unmount %s: %v; lazy unmount: %v", s.dir, err, lerr)
	}
	return ErrBusy
}

// lazyUnmount detaches the mount at dir even though it is busy.
func lazyUnmount(dir string) error {
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err == nil {
		return nil
	}
	bin, err := fusermount()
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, "-u", "-z", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -u -z: %v: %s", bin, err, out)
	}
	return nil
}

// fusermount finds the helper that mounts FUSE file systems for users
// other than root, as go-fuse does.
func fusermount() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		if p, err := exec.LookPath("/bin/" + name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("neither fusermount3 nor fusermount is installed")
}
