package dump

import (
	"archive/tar"
	"fmt"
	"io"
	"math"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/snapshot"
)

// tarWriter writes a PAX tar stream: the one tar format that holds
// nanosecond times, long names and extended attributes.
type tarWriter struct {
	tw *tar.Writer
	// links maps a multiply-linked file (device, inode) to the archive
	// name it was first written under: later names become link entries.
	// It grows with the hardlinked files only.
	links map[[2]uint64]string
}

func newTarWriter(w io.Writer) *tarWriter {
	return &tarWriter{tw: tar.NewWriter(w), links: make(map[[2]uint64]string)}
}

func (t *tarWriter) skip(n *snapshot.Node) string {
	if n.Type == snapshot.NodeSocket {
		return "a socket: tar cannot hold it"
	}
	return ""
}

// The tar header's mode bits beyond the permissions (POSIX ustar).
const (
	tarSetuid = 0o4000
	tarSetgid = 0o2000
	tarSticky = 0o1000
)

func tarMode(m os.FileMode) int64 {
	mode := int64(m.Perm())
	if m&os.ModeSetuid != 0 {
		mode |= tarSetuid
	}
	if m&os.ModeSetgid != 0 {
		mode |= tarSetgid
	}
	if m&os.ModeSticky != 0 {
		mode |= tarSticky
	}
	return mode
}

// xattrRecords are n's extended attributes as PAX records, the form GNU
// tar (--xattrs) and bsdtar read.
func xattrRecords(n *snapshot.Node) map[string]string {
	if len(n.ExtendedAttributes) == 0 {
		return nil
	}
	recs := make(map[string]string, len(n.ExtendedAttributes))
	for _, x := range n.ExtendedAttributes {
		recs["SCHILY.xattr."+x.Name] = string(x.Value)
	}
	return recs
}

func (t *tarWriter) add(name string, n *snapshot.Node) (io.Writer, error) {
	h := &tar.Header{
		Name:       name,
		Mode:       tarMode(n.Mode),
		Uid:        int(n.UID),
		Gid:        int(n.GID),
		Uname:      n.User,
		Gname:      n.Group,
		ModTime:    n.ModTime,
		AccessTime: n.AccessTime,
		ChangeTime: n.ChangeTime,
		PAXRecords: xattrRecords(n),
		Format:     tar.FormatPAX,
	}
	content := false
	switch n.Type {
	case snapshot.NodeDir:
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case snapshot.NodeSymlink:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = n.LinkTarget
	case snapshot.NodeDev, snapshot.NodeCharDev:
		h.Typeflag = tar.TypeBlock
		if n.Type == snapshot.NodeCharDev {
			h.Typeflag = tar.TypeChar
		}
		h.Devmajor, h.Devminor = int64(unix.Major(n.Device)), int64(unix.Minor(n.Device))
	case snapshot.NodeFifo:
		h.Typeflag = tar.TypeFifo
	case snapshot.NodeFile:
		key := [2]uint64{n.DeviceID, n.Inode}
		if first, ok := t.links[key]; ok && n.Links > 1 {
			h.Typeflag = tar.TypeLink
			h.Linkname = first
			break
		}
		if n.Links > 1 {
			t.links[key] = name
		}
		if n.Size > math.MaxInt64 {
			return nil, fmt.Errorf("size %d too large for tar", n.Size)
		}
		h.Typeflag = tar.TypeReg
		h.Size = int64(n.Size)
		content = true
	default:
		return nil, fmt.Errorf("%w: %s", ErrNotDumpable, n.Type)
	}
	if err := t.tw.WriteHeader(h); err != nil {
		return nil, err
	}
	if !content {
		return nil, nil
	}
	return t.tw, nil
}

func (t *tarWriter) Close() error { return t.tw.Close() }
