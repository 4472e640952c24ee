package snapshot

// A fast decoder for tree blobs. It accepts a subset of the JSON that
// encoding/json accepts for Tree: the shape EncodeTree writes, plus
// whitespace, any key order and string escapes. For anything else (a
// key it does not know or sees twice, a null where it is not sure what
// encoding/json would do, a number that is not a plain unsigned integer
// in range, invalid UTF-8, a syntax error, trailing bytes) it gives up with
// errSlowPath and DecodeTree decodes the blob again with encoding/json. So
// its result is, by construction, what encoding/json returns or nothing;
// FuzzTreeDecodeDifferential checks that claim.
//
// What EncodeTree writes must never take the slow way: that would make
// every tree several times slower to read, silently. So a field added to
// Node (or ExtendedAttribute, or Tree) must be taught to node() below, with
// a bit of its own: TestTreeDecodeFastPathEveryField sets every field by
// reflection and fails until it is. The differential tests and the fuzz
// target fail on a blob in EncodeTree's exact form that the fast path
// refuses, and at run time DecodeTree counts such blobs
// (TreeDecoderMisses), on which cairn warns.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"os"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/backend"
)

// errSlowPath is returned by decodeTreeFast for input it leaves to
// encoding/json. It never reaches DecodeTree's callers.
var errSlowPath = errors.New("tree decode: not on the fast path")

// maxFastPrealloc caps the nodes preallocated from a guess at their count,
// so a hostile blob cannot make the guess allocate much.
const maxFastPrealloc = 1 << 14

// strRef locates a decoded string in the decoder's string arena.
type strRef struct{ off, n int }

// nodeRefs holds what a decoded node points at until the arenas are final.
type nodeRefs struct {
	name, user, group, link strRef
	contentOff, contentN    int
	hasContent              bool
	subtree                 int // index into ids, or -1
}

type treeDecoder struct {
	data  []byte
	pos   int
	arena []byte       // unescaped bytes of the strings of all nodes
	ids   []backend.ID // content and subtree IDs of all nodes
	nodes []Node
	refs  []nodeRefs
	tmp   []byte // scratch for strings with escapes
	// the last user and group seen, so repeated owners share arena bytes
	lastUser, lastGroup strRef
}

// decodeTreeFast decodes data as encoding/json would decode it into a
// Tree (without Tree.check), or returns errSlowPath.
func decodeTreeFast(data []byte) (*Tree, error) {
	d := treeDecoder{data: data}
	if !d.tree() {
		return nil, errSlowPath
	}
	return d.finish(), nil
}

// finish turns the arenas into strings and slices shared by the nodes.
func (d *treeDecoder) finish() *Tree {
	s := string(d.arena)
	str := func(r strRef) string { return s[r.off : r.off+r.n] }
	ptrs := make([]*Node, len(d.nodes))
	for i := range d.nodes {
		n, r := &d.nodes[i], &d.refs[i]
		n.Name, n.User, n.Group, n.LinkTarget = str(r.name), str(r.user), str(r.group), str(r.link)
		if r.hasContent {
			if r.contentN == 0 {
				n.Content = []backend.ID{}
			} else {
				n.Content = d.ids[r.contentOff : r.contentOff+r.contentN : r.contentOff+r.contentN]
			}
		}
		if r.subtree >= 0 {
			n.Subtree = &d.ids[r.subtree]
		}
		ptrs[i] = n
	}
	return &Tree{Nodes: ptrs}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skip moves past whitespace and returns the next byte, or 0 at the end.
func (d *treeDecoder) skip() byte {
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if !isSpace(c) {
			return c
		}
		d.pos++
	}
	return 0
}

// eat consumes c after optional whitespace.
func (d *treeDecoder) eat(c byte) bool {
	if d.skip() != c {
		return false
	}
	d.pos++
	return true
}

// tree parses {"nodes":[...]} and requires nothing but whitespace after.
func (d *treeDecoder) tree() bool {
	if !d.eat('{') {
		return false
	}
	key, ok := d.key()
	if !ok || string(key) != "nodes" {
		return false
	}
	n := countNodesGuess(d.data)
	d.nodes = make([]Node, 0, n)
	d.refs = make([]nodeRefs, 0, n)
	if !d.array(d.node) || !d.eat('}') {
		return false
	}
	return d.skip() == 0 && d.pos == len(d.data)
}

// countNodesGuess estimates the number of nodes from the keys EncodeTree
// writes first in every node (an over-estimate if there are xattrs).
func countNodesGuess(data []byte) int {
	n := 0
	for n < maxFastPrealloc {
		i := bytes.Index(data, []byte(`{"name":`))
		if i < 0 {
			break
		}
		n++
		data = data[i+8:]
	}
	return n
}

// key parses a string without escapes followed by a colon; keys with
// escapes are left to encoding/json, which also matches them ignoring case.
func (d *treeDecoder) key() ([]byte, bool) {
	if d.skip() != '"' {
		return nil, false
	}
	start := d.pos + 1
	for i := start; i < len(d.data); i++ {
		c := d.data[i]
		if c == '"' {
			d.pos = i + 1
			if !d.eat(':') {
				return nil, false
			}
			return d.data[start:i], true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return nil, false
		}
	}
	return nil, false
}

// Bits for the keys of a node, to refuse duplicates (encoding/json merges
// a repeated key into the value decoded so far; the fast path does not).
const (
	kName = 1 << iota
	kType
	kMode
	kMtime
	kAtime
	kCtime
	kUID
	kGID
	kUser
	kGroup
	kInode
	kDeviceID
	kSize
	kLinks
	kLinkTarget
	kDevice
	kContent
	kSubtree
	kXattrs
)

// node parses one node object and appends it to d.nodes.
func (d *treeDecoder) node() bool {
	if !d.eat('{') {
		return false
	}
	d.nodes = append(d.nodes, Node{})
	d.refs = append(d.refs, nodeRefs{subtree: -1})
	n, r := &d.nodes[len(d.nodes)-1], &d.refs[len(d.refs)-1]
	if d.skip() == '}' {
		d.pos++
		return true
	}
	seen := 0
	for {
		key, ok := d.key()
		if !ok {
			return false
		}
		var bit int
		switch string(key) {
		case "name":
			bit = kName
			ok = d.arenaString(&r.name)
		case "type":
			bit = kType
			ok = d.nodeType(&n.Type)
		case "mode":
			bit = kMode
			var v uint32
			ok = d.uint32(&v)
			n.Mode = os.FileMode(v)
		case "mtime":
			bit = kMtime
			ok = d.time(n, kMtime)
		case "atime":
			bit = kAtime
			ok = d.time(n, kAtime)
		case "ctime":
			bit = kCtime
			ok = d.time(n, kCtime)
		case "uid":
			bit = kUID
			ok = d.uint32(&n.UID)
		case "gid":
			bit = kGID
			ok = d.uint32(&n.GID)
		case "user":
			bit = kUser
			ok = d.owner(&r.user, &d.lastUser)
		case "group":
			bit = kGroup
			ok = d.owner(&r.group, &d.lastGroup)
		case "inode":
			bit = kInode
			n.Inode, ok = d.uint(math.MaxUint64)
		case "device_id":
			bit = kDeviceID
			n.DeviceID, ok = d.uint(math.MaxUint64)
		case "size":
			bit = kSize
			n.Size, ok = d.uint(math.MaxUint64)
		case "links":
			bit = kLinks
			n.Links, ok = d.uint(math.MaxUint64)
		case "linktarget":
			bit = kLinkTarget
			ok = d.arenaString(&r.link)
		case "device":
			bit = kDevice
			n.Device, ok = d.uint(math.MaxUint64)
		case "content":
			bit = kContent
			ok = d.content(r)
		case "subtree":
			bit = kSubtree
			ok = d.subtree(r)
		case "extended_attributes":
			bit = kXattrs
			ok = d.xattrs(n)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		c := d.skip()
		d.pos++
		if c == '}' {
			return true
		}
		if c != ',' {
			return false
		}
	}
}

// uint parses a JSON number that is a plain unsigned integer no larger
// than max. encoding/json refuses fractions, exponents, signs and
// overflow for unsigned fields, so all of those go the slow way.
func (d *treeDecoder) uint(max uint64) (uint64, bool) {
	d.skip()
	i := d.pos
	if i >= len(d.data) {
		return 0, false
	}
	c := d.data[i]
	if c == '0' {
		i++
		if i < len(d.data) && isNumberCont(d.data[i]) {
			return 0, false
		}
		d.pos = i
		return 0, true
	}
	if c < '1' || c > '9' {
		return 0, false
	}
	var v uint64
	for ; i < len(d.data); i++ {
		c = d.data[i]
		if c < '0' || c > '9' {
			break
		}
		digit := uint64(c - '0')
		if v > (max-digit)/10 {
			return 0, false
		}
		v = v*10 + digit
	}
	if i < len(d.data) && isNumberCont(d.data[i]) {
		return 0, false
	}
	d.pos = i
	return v, true
}

// uint32 parses, as uint does, a number that fits 32 bits into *v.
func (d *treeDecoder) uint32(v *uint32) bool {
	u, ok := d.uint(math.MaxUint32)
	*v = uint32(u)
	return ok
}

// isNumberCont reports whether c could continue a JSON number after its
// integer digits (a leading zero followed by a digit is a syntax error).
func isNumberCont(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E'
}

// rawString returns the bytes of the string literal at the current
// position, quotes included, and whether it holds escapes or non-ASCII
// bytes. It fails on control bytes, which JSON forbids in strings.
func (d *treeDecoder) rawString() (raw []byte, escaped, nonASCII, ok bool) {
	if d.skip() != '"' {
		return nil, false, false, false
	}
	start := d.pos
	for i := start + 1; i < len(d.data); i++ {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return d.data[start : i+1], escaped, nonASCII, true
		case c == '\\':
			escaped = true
			i++ // the escaped byte is checked by unescape
		case c < 0x20:
			return nil, false, false, false
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
	}
	return nil, false, false, false
}

// stringBytes returns the decoded bytes of the string at the current
// position; they may alias d.tmp and are valid until the next call.
func (d *treeDecoder) stringBytes() ([]byte, bool) {
	raw, escaped, nonASCII, ok := d.rawString()
	if !ok {
		return nil, false
	}
	body := raw[1 : len(raw)-1]
	if nonASCII && !utf8.Valid(body) {
		return nil, false // encoding/json substitutes U+FFFD byte by byte
	}
	if !escaped {
		return body, true
	}
	d.tmp, ok = unescape(d.tmp[:0], body)
	return d.tmp, ok
}

// unescape appends the JSON string body s, with escapes resolved as
// encoding/json resolves them, to b. s must be valid UTF-8.
func unescape(b, s []byte) ([]byte, bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return nil, false
		}
		switch s[i+1] {
		case '"', '\\', '/':
			b = append(b, s[i+1])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(s[i+2:])
			if !ok {
				return nil, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				// A valid pair is one rune; anything else is U+FFFD and
				// the next escape is decoded on its own.
				if r2, ok := hex4After(s[i:]); ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			return nil, false
		}
		i += 2
	}
	return b, true
}

// hex4After parses `\uXXXX` at the start of s.
func hex4After(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	return hex4(s[2:])
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// arenaString decodes a string into the arena.
func (d *treeDecoder) arenaString(ref *strRef) bool {
	b, ok := d.stringBytes()
	if !ok {
		return false
	}
	*ref = strRef{off: len(d.arena), n: len(b)}
	d.arena = append(d.arena, b...)
	return true
}

// owner decodes a user or group name, sharing the arena bytes with the
// previous node's if they are the same.
func (d *treeDecoder) owner(ref, last *strRef) bool {
	b, ok := d.stringBytes()
	if !ok {
		return false
	}
	if string(d.arena[last.off:last.off+last.n]) == string(b) {
		*ref = *last
		return true
	}
	*ref = strRef{off: len(d.arena), n: len(b)}
	d.arena = append(d.arena, b...)
	*last = *ref
	return true
}

// nodeType decodes a type, sharing the constants' strings.
func (d *treeDecoder) nodeType(t *NodeType) bool {
	b, ok := d.stringBytes()
	if !ok {
		return false
	}
	switch NodeType(b) {
	case NodeFile:
		*t = NodeFile
	case NodeDir:
		*t = NodeDir
	case NodeSymlink:
		*t = NodeSymlink
	case NodeDev:
		*t = NodeDev
	case NodeCharDev:
		*t = NodeCharDev
	case NodeFifo:
		*t = NodeFifo
	case NodeSocket:
		*t = NodeSocket
	default:
		*t = NodeType(b)
	}
	return true
}

// time hands the raw string literal to time.Time.UnmarshalJSON, as
// encoding/json does (escapes included, which that method refuses).
func (d *treeDecoder) time(n *Node, which int) bool {
	raw, _, _, ok := d.rawString()
	if !ok {
		return false
	}
	t := &n.ModTime
	switch which {
	case kAtime:
		t = &n.AccessTime
	case kCtime:
		t = &n.ChangeTime
	}
	return t.UnmarshalJSON(raw) == nil
}

// id decodes an ID written as 64 lowercase hex digits without escapes,
// the only form backend.ID's UnmarshalText accepts.
func (d *treeDecoder) id() (backend.ID, bool) {
	var id backend.ID
	if d.skip() != '"' || len(d.data)-d.pos < 2*backend.IDSize+2 || d.data[d.pos+2*backend.IDSize+1] != '"' {
		return id, false
	}
	h := d.data[d.pos+1 : d.pos+1+2*backend.IDSize]
	bad := byte(0)
	for i := range id {
		hi, lo := hexVal[h[2*i]], hexVal[h[2*i+1]]
		bad |= hi | lo
		id[i] = hi<<4 | lo&0xf
	}
	if bad&0xf0 != 0 {
		return id, false
	}
	d.pos += 2*backend.IDSize + 2
	return id, true
}

// hexVal maps lowercase hex digits to their value and every other byte
// to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

// array parses a JSON array, calling elem at each element; elem consumes
// the element. It reports false for anything but '[' (null included: the
// slow path decides what that means) and for malformed lists.
func (d *treeDecoder) array(elem func() bool) bool {
	if !d.eat('[') {
		return false
	}
	if d.skip() == ']' {
		d.pos++
		return true
	}
	for {
		if !elem() {
			return false
		}
		c := d.skip()
		d.pos++
		if c == ']' {
			return true
		}
		if c != ',' {
			return false
		}
	}
}

// content decodes a list of IDs into the ID arena.
func (d *treeDecoder) content(r *nodeRefs) bool {
	// Set before parsing: on false the whole tree goes the slow way.
	r.hasContent = true
	r.contentOff = len(d.ids)
	return d.array(func() bool {
		id, ok := d.id()
		if ok {
			d.ids = append(d.ids, id)
			r.contentN++
		}
		return ok
	})
}

func (d *treeDecoder) subtree(r *nodeRefs) bool {
	id, ok := d.id()
	if !ok {
		return false
	}
	r.subtree = len(d.ids)
	d.ids = append(d.ids, id)
	return true
}

// xattrs decodes a list of {"name":..., "value":...} objects; they are
// rare, so each gets its own allocations.
func (d *treeDecoder) xattrs(n *Node) bool {
	n.ExtendedAttributes = []ExtendedAttribute{}
	return d.array(func() bool {
		a, ok := d.xattr()
		if ok {
			n.ExtendedAttributes = append(n.ExtendedAttributes, a)
		}
		return ok
	})
}

func (d *treeDecoder) xattr() (ExtendedAttribute, bool) {
	var a ExtendedAttribute
	if !d.eat('{') {
		return a, false
	}
	if d.skip() == '}' {
		d.pos++
		return a, true
	}
	var haveName, haveValue bool
	for {
		key, ok := d.key()
		if !ok {
			return a, false
		}
		switch string(key) {
		case "name":
			if haveName {
				return a, false
			}
			haveName = true
			b, ok := d.stringBytes()
			if !ok {
				return a, false
			}
			a.Name = string(b)
		case "value":
			if haveValue {
				return a, false
			}
			haveValue = true
			if !d.bytesValue(&a.Value) {
				return a, false
			}
		default:
			return a, false
		}
		c := d.skip()
		d.pos++
		if c == '}' {
			return a, true
		}
		if c != ',' {
			return a, false
		}
	}
}

// bytesValue decodes base64 as encoding/json does for a []byte field,
// including null (a nil slice) and its tolerance of CR and LF.
func (d *treeDecoder) bytesValue(v *[]byte) bool {
	if d.skip() == 'n' {
		if len(d.data)-d.pos < 4 || string(d.data[d.pos:d.pos+4]) != "null" {
			return false
		}
		d.pos += 4
		*v = nil
		return true
	}
	b, ok := d.stringBytes()
	if !ok {
		return false
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	if err != nil {
		return false
	}
	*v = out[:n]
	return true
}
