package dump

import (
	"archive/zip"
	"encoding/binary"
	"io"

	"github.com/klauspost/compress/flate"

	"github.com/cairn-backup/cairn/snapshot"
)

// zipWriter writes a zip archive, streamed (sizes and checksums follow
// each entry's data, zip64 where needed).
type zipWriter struct {
	zw    *zip.Writer
	flate *flate.Writer // reused for every entry
}

func newZipWriter(w io.Writer) *zipWriter {
	z := &zipWriter{zw: zip.NewWriter(w)}
	// One compressor for the whole archive, reset for each entry (the
	// zip writer closes an entry's before it opens the next): a new one
	// per entry costs more than compressing a small file.
	z.zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		if z.flate == nil {
			fw, err := flate.NewWriter(w, zipLevel)
			if err != nil {
				return nil, err
			}
			z.flate = fw
		} else {
			z.flate.Reset(w)
		}
		return z.flate, nil
	})
	return z
}

func (z *zipWriter) skip(n *snapshot.Node) string {
	switch n.Type {
	case snapshot.NodeDev, snapshot.NodeCharDev:
		return "a device: zip cannot hold it (use --archive tar)"
	case snapshot.NodeFifo:
		return "a fifo: zip cannot hold it (use --archive tar)"
	case snapshot.NodeSocket:
		return "a socket: zip cannot hold it"
	}
	return ""
}

// zipLevel is the deflate level of zip entries.
const zipLevel = 5

// uxExtraID is Info-ZIP's "ux" extra field: owner IDs, which "unzip -X"
// restores.
const uxExtraID = 0x7875

// uxExtra encodes the "ux" field: version 1, then the UID and the GID,
// each as a size byte and that many little-endian bytes.
func uxExtra(uid, gid uint32) []byte {
	b := make([]byte, 0, 4+11)
	b = binary.LittleEndian.AppendUint16(b, uxExtraID)
	b = binary.LittleEndian.AppendUint16(b, 11)
	b = append(b, 1, 4)
	b = binary.LittleEndian.AppendUint32(b, uid)
	b = append(b, 4)
	return binary.LittleEndian.AppendUint32(b, gid)
}

func (z *zipWriter) add(name string, n *snapshot.Node) (io.Writer, error) {
	fh := &zip.FileHeader{Name: name, Modified: n.ModTime, Method: zip.Store, Extra: uxExtra(n.UID, n.GID)}
	// The mode carries the type (folder, symlink) and the setuid,
	// setgid and sticky bits into the external attributes.
	fh.SetMode(n.Mode)
	switch n.Type {
	case snapshot.NodeDir:
		fh.Name += "/"
	case snapshot.NodeFile:
		fh.Method = zip.Deflate
	}
	w, err := z.zw.CreateHeader(fh)
	if err != nil {
		return nil, err
	}
	switch n.Type {
	case snapshot.NodeFile:
		return w, nil
	case snapshot.NodeSymlink:
		// Info-ZIP's convention: a symlink's target is its content.
		_, err = io.WriteString(w, n.LinkTarget)
	}
	return nil, err
}

func (z *zipWriter) Close() error { return z.zw.Close() }
