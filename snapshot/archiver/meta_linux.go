package archiver

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/snapshot"
)

// errNotUTF8 is reported for names the tree format cannot hold yet: trees
// are JSON, which would silently replace invalid UTF-8.
var errNotUTF8 = errors.New("name is not valid UTF-8 and cannot be stored")

// timespec converts a stat time to UTC, so the tree bytes do not depend
// on the time zone the backup runs in.
func timespec(ts syscall.Timespec) time.Time {
	return time.Unix(ts.Sec, ts.Nsec).UTC()
}

// nodeFromInfo builds the node of the item at path from its lstat (or,
// for directories above the targets, stat) result, with its symlink target
// and extended attributes.
func (r *run) nodeFromInfo(path, name string, fi os.FileInfo, follow bool) (*snapshot.Node, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("stat %s: no unix stat data", path)
	}
	node, err := r.nodeFromStat(path, name, fi, st)
	if err != nil {
		return nil, err
	}
	node.ExtendedAttributes = r.xattrs(path, follow)
	return node, nil
}

// nodeFromStat fills a node from stat data: type, mode, owner, times,
// inode, size, links, device and symlink target.
//
// DeviceID is recorded only for non-directories with more than one link,
// where a restorer needs it to group hard links; st_dev of other items
// can change across reboots (NFS, btrfs) and would make every tree differ.
// Links is not recorded for directories, whose count changes with every
// subdirectory added. The access time is the modification time unless
// Options.WithAtime asks for the real one.
func (r *run) nodeFromStat(path, name string, fi os.FileInfo, st *syscall.Stat_t) (*snapshot.Node, error) {
	mode := fi.Mode()
	n := &snapshot.Node{
		Name:       name,
		Mode:       mode,
		ModTime:    timespec(st.Mtim),
		AccessTime: timespec(st.Atim),
		ChangeTime: timespec(st.Ctim),
		UID:        st.Uid,
		GID:        st.Gid,
		User:       r.a.names.user(st.Uid),
		Group:      r.a.names.group(st.Gid),
		Inode:      st.Ino,
	}
	if !r.a.opts.WithAtime {
		n.AccessTime = n.ModTime
	}
	switch {
	case mode.IsRegular():
		n.Type = snapshot.NodeFile
		n.Size = uint64(st.Size)
	case mode.IsDir():
		n.Type = snapshot.NodeDir
	case mode&os.ModeSymlink != 0:
		n.Type = snapshot.NodeSymlink
		target, err := os.Readlink(path)
		if err != nil {
			return nil, err
		}
		if !utf8.ValidString(target) {
			return nil, fmt.Errorf("symlink target of %s: %w", path, errNotUTF8)
		}
		n.LinkTarget = target
	case mode&os.ModeDevice != 0 && mode&os.ModeCharDevice != 0:
		n.Type = snapshot.NodeCharDev
		n.Device = st.Rdev
	case mode&os.ModeDevice != 0:
		n.Type = snapshot.NodeDev
		n.Device = st.Rdev
	case mode&os.ModeNamedPipe != 0:
		n.Type = snapshot.NodeFifo
	case mode&os.ModeSocket != 0:
		n.Type = snapshot.NodeSocket
	default:
		return nil, fmt.Errorf("%s has an unsupported file type (mode %v)", path, mode)
	}
	if n.Type != snapshot.NodeDir {
		n.Links = st.Nlink
		if st.Nlink > 1 {
			n.DeviceID = st.Dev
		}
	}
	return n, nil
}

// The kernel's limits on an extended attribute list and value
// (XATTR_LIST_MAX, XATTR_SIZE_MAX); buffers never grow beyond them.
const (
	xattrListMax = 64 << 10
	xattrSizeMax = 64 << 10
)

// xattrs reads the extended attributes of path, sorted by name. One that
// cannot be read is left out with a warning; a file system without xattr
// support gives none.
func (r *run) xattrs(path string, follow bool) []snapshot.ExtendedAttribute {
	list, err := readXattr(func(b []byte) (int, error) {
		if follow {
			return unix.Listxattr(path, b)
		}
		return unix.Llistxattr(path, b)
	}, xattrListMax)
	if err != nil {
		if !ignorableXattrError(err) {
			r.warn(path, fmt.Errorf("list extended attributes: %w", err))
		}
		return nil
	}
	var attrs []snapshot.ExtendedAttribute
	for name := range strings.SplitSeq(string(list), "\x00") {
		if name == "" {
			continue
		}
		if !utf8.ValidString(name) {
			r.warn(path, fmt.Errorf("extended attribute %q: %w", name, errNotUTF8))
			continue
		}
		value, err := readXattr(func(b []byte) (int, error) {
			if follow {
				return unix.Getxattr(path, name, b)
			}
			return unix.Lgetxattr(path, name, b)
		}, xattrSizeMax)
		if err != nil {
			if !errors.Is(err, unix.ENODATA) { // removed since the listing
				r.warn(path, fmt.Errorf("read extended attribute %s: %w", name, err))
			}
			continue
		}
		attrs = append(attrs, snapshot.ExtendedAttribute{Name: name, Value: value})
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Name < attrs[j].Name })
	return attrs
}

func ignorableXattrError(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENODATA)
}

// readXattr calls get first to learn the size and then to read, retrying
// when the attribute grew in between.
func readXattr(get func([]byte) (int, error), limit int) ([]byte, error) {
	for range 3 {
		size, err := get(nil)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			return []byte{}, nil
		}
		if size > limit {
			return nil, fmt.Errorf("size %d above the kernel limit %d", size, limit)
		}
		buf := make([]byte, size)
		n, err := get(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, errors.New("attribute keeps changing size")
}

// nameCache caches user and group names by ID; a failed lookup is cached
// as "" too, so each ID is looked up once per Archiver.
type nameCache struct {
	mu     sync.Mutex // guards users and groups
	users  map[uint32]string
	groups map[uint32]string
}

func newNameCache() *nameCache {
	return &nameCache{users: map[uint32]string{}, groups: map[uint32]string{}}
}

func (c *nameCache) user(uid uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name, ok := c.users[uid]; ok {
		return name
	}
	name := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil && utf8.ValidString(u.Username) {
		name = u.Username
	}
	c.users[uid] = name
	return name
}

func (c *nameCache) group(gid uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name, ok := c.groups[gid]; ok {
		return name
	}
	name := ""
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil && utf8.ValidString(g.Name) {
		name = g.Name
	}
	c.groups[gid] = name
	return name
}
