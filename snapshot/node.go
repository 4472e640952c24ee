package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// NodeType says what kind of file system object a Node describes.
type NodeType string

// The node types. The strings are stored in trees; do not change them.
const (
	NodeFile    NodeType = "file"
	NodeDir     NodeType = "dir"
	NodeSymlink NodeType = "symlink"
	NodeDev     NodeType = "dev"     // block device
	NodeCharDev NodeType = "chardev" // character device
	NodeFifo    NodeType = "fifo"
	NodeSocket  NodeType = "socket"
)

func (t NodeType) valid() bool {
	switch t {
	case NodeFile, NodeDir, NodeSymlink, NodeDev, NodeCharDev, NodeFifo, NodeSocket:
		return true
	}
	return false
}

// ExtendedAttribute is one xattr of a file.
type ExtendedAttribute struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Node is one entry of a directory listing (a Tree). Field names follow
// restic's so people who know its JSON output recognise them.
type Node struct {
	Name       string      `json:"name"`
	Type       NodeType    `json:"type"`
	Mode       os.FileMode `json:"mode,omitempty"`
	ModTime    time.Time   `json:"mtime,omitempty"`
	AccessTime time.Time   `json:"atime,omitempty"`
	ChangeTime time.Time   `json:"ctime,omitempty"`
	UID        uint32      `json:"uid"`
	GID        uint32      `json:"gid"`
	User       string      `json:"user,omitempty"`
	Group      string      `json:"group,omitempty"`
	Inode      uint64      `json:"inode,omitempty"`
	DeviceID   uint64      `json:"device_id,omitempty"` // st_dev: hardlinks are grouped by (DeviceID, Inode)
	Size       uint64      `json:"size,omitempty"`
	Links      uint64      `json:"links,omitempty"`
	LinkTarget string      `json:"linktarget,omitempty"`
	// Device is st_rdev for block and character devices.
	Device             uint64              `json:"device,omitempty"`
	Content            []backend.ID        `json:"content,omitempty"`
	Subtree            *backend.ID         `json:"subtree,omitempty"`
	ExtendedAttributes []ExtendedAttribute `json:"extended_attributes,omitempty"`
}

// Tree is a directory listing: nodes sorted by name, names unique.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// ErrFormat is returned for a tree or snapshot whose bytes are malformed.
var ErrFormat = errors.New("malformed snapshot data")

// maxTreeSize caps a tree blob before it is parsed; a directory of a
// million entries encodes to far less.
const maxTreeSize = 512 << 20

// Insert adds n keeping the nodes sorted; a duplicate name is an error.
func (t *Tree) Insert(n *Node) error {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= n.Name })
	if i < len(t.Nodes) && t.Nodes[i].Name == n.Name {
		return fmt.Errorf("duplicate name %q in tree", n.Name)
	}
	t.Nodes = append(t.Nodes, nil)
	copy(t.Nodes[i+1:], t.Nodes[i:])
	t.Nodes[i] = n
	return nil
}

// Find returns the node named name, or nil.
func (t *Tree) Find(name string) *Node {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= name })
	if i < len(t.Nodes) && t.Nodes[i].Name == name {
		return t.Nodes[i]
	}
	return nil
}

// Sort orders the nodes by name.
func (t *Tree) Sort() {
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
}

// EncodeTree serialises t as the bytes of a tree blob; the blob's ID is the
// SHA-256 of these bytes. The nodes must already be sorted by name.
func EncodeTree(t *Tree) ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if t.Nodes == nil {
		t = &Tree{Nodes: []*Node{}}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode tree: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeTree parses a tree blob and checks that it is well formed: known
// node types, valid names, sorted and unique, content only on files and a
// subtree exactly on directories.
func DecodeTree(data []byte) (*Tree, error) {
	if len(data) > maxTreeSize {
		return nil, fmt.Errorf("%w: tree of %d bytes", ErrFormat, len(data))
	}
	t, err := decodeTreeFast(data)
	if err != nil {
		// Not the shape EncodeTree writes: encoding/json decides.
		return decodeTreeSlow(data)
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return t, nil
}

// treeDecoderMisses counts the tree blobs decoded with encoding/json
// although they are exactly what EncodeTree writes (see TreeDecoderMisses).
var treeDecoderMisses atomic.Uint64

// TreeDecoderMisses returns how many tree blobs this process decoded with
// the encoding/json fallback although each was byte for byte what
// EncodeTree writes for the tree it holds. The fast decoder
// (tree_decode.go) must take every such blob, so a count above 0 is a bug
// in cairn: the fast decoder has fallen behind Node (a field it does not
// know). The trees were decoded correctly, only several times slower;
// cmd/cairn warns on stderr so that the bug is reported rather than
// silently costing every restore its speed.
func TreeDecoderMisses() uint64 {
	return treeDecoderMisses.Load()
}

// decodeTreeSlow is DecodeTree for a blob the fast decoder refused: it
// decodes with encoding/json, and counts the blob in TreeDecoderMisses if
// it is in EncodeTree's exact form.
func decodeTreeSlow(data []byte) (*Tree, error) {
	t, err := decodeTreeJSON(data)
	if err != nil {
		return nil, err
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if isEncoding(t, data) {
		treeDecoderMisses.Add(1)
	}
	return t, nil
}

// isEncoding reports whether data is exactly EncodeTree(t). It encodes
// node by node and stops at the first difference, so that hand-made JSON
// (the usual reason for the fallback) costs it little. The framing is
// EncodeTree's (json.Marshal of Tree, then a newline);
// TestTreeIsEncoding holds the two together.
func isEncoding(t *Tree, data []byte) bool {
	rest, ok := bytes.CutPrefix(data, []byte(`{"nodes":[`))
	for i, n := range t.Nodes {
		if i > 0 && ok {
			rest, ok = bytes.CutPrefix(rest, []byte(","))
		}
		if !ok {
			return false
		}
		b, err := json.Marshal(n)
		if err != nil {
			return false
		}
		rest, ok = bytes.CutPrefix(rest, b)
	}
	return ok && string(rest) == "]}\n"
}

// decodeTreeJSON decodes a tree blob with encoding/json; it defines what
// decodeTreeFast must return (see tree_decode.go).
func decodeTreeJSON(data []byte) (*Tree, error) {
	var t Tree
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: tree: %v", ErrFormat, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after tree", ErrFormat)
	}
	return &t, nil
}

func (t *Tree) check() error {
	for i, n := range t.Nodes {
		if n == nil {
			return errors.New("nil node in tree")
		}
		if err := ValidName(n.Name); err != nil {
			return err
		}
		if i > 0 && t.Nodes[i-1].Name >= n.Name {
			return fmt.Errorf("tree not sorted or duplicate name at %q", n.Name)
		}
		if !n.Type.valid() {
			return fmt.Errorf("node %q has unknown type %q", n.Name, n.Type)
		}
		if n.Type != NodeFile && len(n.Content) > 0 {
			return fmt.Errorf("node %q of type %s has content", n.Name, n.Type)
		}
		if (n.Type == NodeDir) != (n.Subtree != nil) {
			return fmt.Errorf("node %q: subtree present iff directory", n.Name)
		}
	}
	return nil
}

// ValidName checks that a name from a tree is one path element that cannot
// escape the directory it is restored into.
func ValidName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || path.Clean(name) != name {
		return fmt.Errorf("invalid file name %q in tree", name)
	}
	return nil
}
