package fusefs

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// Repository is what the file system reads: blobs, and the index's
// record of them. *repo.Repository is one. Both methods must be safe for
// concurrent use: the kernel sends requests on many goroutines.
type Repository interface {
	snapshot.BlobSource
}

// The caches' default sizes. A chunk is at most 8 MiB (restic's chunker),
// 1 MiB on average, and the kernel reads 128 KiB at a time: caching the
// chunks read last spares loading and decrypting a chunk again for each
// piece of it, and a few sequential readers fit. Trees are cached
// decoded, since a folder's entries are each looked up in turn; the
// cost counted is the tree blob's size, which its decoded form matches
// closely (measured: 0.8 to 1.2 times, for folders of 5,000 files of 0
// to 4 chunks each; strings and IDs share one allocation per tree).
const (
	DefaultBlobCacheSize = 64 << 20
	DefaultTreeCacheSize = 32 << 20
)

// Options configure New; the zero value works.
type Options struct {
	// PathTemplates lay snapshots out in folders (nil means
	// DefaultPathTemplates); TimeTemplate names them by time ("" means
	// DefaultTimeTemplate). See the mount command's help.
	PathTemplates []string
	TimeTemplate  string
	// OwnerRoot shows every file as root's instead of its stored owner.
	OwnerRoot bool
	// UID and GID own the folders the templates make (the mounting
	// user's, typically).
	UID, GID uint32
	// Now is the time of folders that hold no snapshot.
	Now time.Time
	// Warn receives problems met while serving (a damaged blob): the
	// reader gets EIO, the user is told why. Nil discards them. It is
	// called on many goroutines.
	Warn func(msg string)
	// BlobCacheSize and TreeCacheSize bound the caches in bytes; 0
	// means the defaults.
	BlobCacheSize, TreeCacheSize int
}

// FS is a read-only view of a repository's snapshots.
type FS struct {
	repo  Repository
	opts  Options
	root  *entry
	trees *lru[backend.ID, *snapshot.Tree]
	blobs *lru[backend.ID, []byte]
}

// New lays snaps out by the templates. It returns an ErrTemplate error
// for a template it cannot use, and a warning for each snapshot path the
// templates made that it could not place (a path through a snapshot).
func New(repo Repository, snaps []*snapshot.Snapshot, opts Options) (*FS, []string, error) {
	if opts.PathTemplates == nil {
		opts.PathTemplates = DefaultPathTemplates
	}
	if opts.TimeTemplate == "" {
		opts.TimeTemplate = DefaultTimeTemplate
	}
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	if opts.BlobCacheSize == 0 {
		opts.BlobCacheSize = DefaultBlobCacheSize
	}
	if opts.TreeCacheSize == 0 {
		opts.TreeCacheSize = DefaultTreeCacheSize
	}
	templates, err := parseTemplates(opts.PathTemplates, opts.TimeTemplate)
	if err != nil {
		return nil, nil, err
	}
	root, warnings := buildLayout(snaps, templates, opts.TimeTemplate)
	f := &FS{
		repo: repo, opts: opts, root: root,
		trees: newLRU[backend.ID, *snapshot.Tree](opts.TreeCacheSize),
		blobs: newLRU[backend.ID, []byte](opts.BlobCacheSize),
	}
	return f, warnings, nil
}

// CheckTemplates reports whether New would accept the templates, so a
// command can refuse them before it opens the repository.
func CheckTemplates(paths []string, timeTemplate string) error {
	if paths == nil {
		paths = DefaultPathTemplates
	}
	if timeTemplate == "" {
		timeTemplate = DefaultTimeTemplate
	}
	_, err := parseTemplates(paths, timeTemplate)
	return err
}

// rootIno is the root folder's inode number (FUSE_ROOT_ID).
const rootIno = 1

// childIno gives the entry name of the folder parent a stable inode
// number: a lookup after the kernel forgot the entry gets the same one.
// The numbers of two paths collide with probability 2^-64.
func childIno(parent uint64, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(parent >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(name))
	ino := h.Sum64()
	if ino <= rootIno || ino == ^uint64(0) { // reserved by FUSE and go-fuse
		ino = 2
	}
	return ino
}

// Root returns the root folder's node, to mount.
func (f *FS) Root() fs.InodeEmbedder {
	return &metaDir{f: f, e: f.root, ino: rootIno}
}

// dirAttr is the attributes of a folder the templates made (or of a
// snapshot's own folder).
func (f *FS) dirAttr(ino uint64, t time.Time) fuse.Attr {
	if t.IsZero() {
		t = f.opts.Now
	}
	a := fuse.Attr{Ino: ino, Mode: syscall.S_IFDIR | 0o555, Nlink: 2}
	a.Owner = f.owner(f.opts.UID, f.opts.GID)
	a.SetTimes(&t, &t, &t)
	return a
}

func (f *FS) owner(uid, gid uint32) fuse.Owner {
	if f.opts.OwnerRoot {
		return fuse.Owner{}
	}
	return fuse.Owner{Uid: uid, Gid: gid}
}

// errno turns a failed load into what the reader gets: EINTR when the
// reader was interrupted, EIO otherwise, with a warning that names the
// path (relative to the mountpoint) and says why.
func (f *FS) errno(ctx context.Context, in *fs.Inode, err error) syscall.Errno {
	if ctx.Err() != nil || isCancel(err) {
		return syscall.EINTR
	}
	f.opts.Warn(fmt.Sprintf("%s: %v", in.Path(nil), err))
	return syscall.EIO
}

// loadTree returns a decoded tree, from the cache when it is there.
func (f *FS) loadTree(ctx context.Context, id backend.ID) (*snapshot.Tree, error) {
	return f.trees.get(ctx, id, func() (*snapshot.Tree, int, error) {
		buf, err := f.repo.LoadBlob(ctx, pack.TreeBlob, id, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("load tree %s: %w", id.Str(), err)
		}
		t, err := snapshot.DecodeTree(buf)
		if err != nil {
			return nil, 0, fmt.Errorf("tree %s: %w", id.Str(), err)
		}
		return t, len(buf), nil
	})
}

// loadBlob returns a data blob's plaintext, from the cache when it is
// there. The caller must not change it.
func (f *FS) loadBlob(ctx context.Context, id backend.ID) ([]byte, error) {
	return f.blobs.get(ctx, id, func() ([]byte, int, error) {
		b, err := f.repo.LoadBlob(ctx, pack.DataBlob, id, nil)
		return b, len(b), err
	})
}

// metaDir is a folder the path templates made: ids/, hosts/HOST/, ...
type metaDir struct {
	fs.Inode
	f   *FS
	e   *entry
	ino uint64
}

var (
	_ fs.NodeGetattrer = (*metaDir)(nil)
	_ fs.NodeLookuper  = (*metaDir)(nil)
	_ fs.NodeReaddirer = (*metaDir)(nil)
)

func (d *metaDir) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Attr = d.f.dirAttr(d.ino, d.e.time)
	return 0
}

func (d *metaDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	e, ok := d.e.children[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	ino := childIno(d.ino, name)
	var node fs.InodeEmbedder
	switch {
	case e.isDir():
		node = &metaDir{f: d.f, e: e, ino: ino}
		out.Attr = d.f.dirAttr(ino, e.time)
	case e.link != "":
		l := &link{target: e.link, meta: meta{attr: d.f.dirAttr(ino, e.time)}}
		l.attr.Mode = syscall.S_IFLNK | 0o777
		l.attr.Nlink = 1
		l.attr.Size = uint64(len(e.link))
		node = l
		out.Attr = l.attr
	default:
		node = &treeDir{f: d.f, tree: e.sn.Tree, attr: d.f.dirAttr(ino, e.time)}
		out.Attr = d.f.dirAttr(ino, e.time)
	}
	return d.NewInode(ctx, node, fs.StableAttr{Mode: out.Attr.Mode & syscall.S_IFMT, Ino: ino}), 0
}

func (d *metaDir) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	list := make([]fuse.DirEntry, 0, len(d.e.names))
	for _, name := range d.e.names {
		e := d.e.children[name]
		mode := uint32(syscall.S_IFDIR)
		if e.link != "" {
			mode = syscall.S_IFLNK
		}
		list = append(list, fuse.DirEntry{Name: name, Mode: mode, Ino: childIno(d.ino, name)})
	}
	return fs.NewListDirStream(list), 0
}

// treeDir is a folder of a snapshot (or a snapshot's own folder): its
// tree is loaded when it is listed or looked in, through the tree cache,
// and not kept by the node.
type treeDir struct {
	fs.Inode
	f    *FS
	tree backend.ID
	attr fuse.Attr
}

var (
	_ fs.NodeGetattrer = (*treeDir)(nil)
	_ fs.NodeLookuper  = (*treeDir)(nil)
	_ fs.NodeReaddirer = (*treeDir)(nil)
)

func (d *treeDir) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Attr = d.attr
	return 0
}

func (d *treeDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, err := d.f.loadTree(ctx, d.tree)
	if err != nil {
		return nil, d.f.errno(ctx, d.EmbeddedInode(), err)
	}
	n := t.Find(name)
	if n == nil {
		return nil, syscall.ENOENT
	}
	ino := childIno(d.attr.Ino, name)
	node := d.f.newNode(n, ino)
	if node == nil {
		return nil, syscall.ENOENT
	}
	out.Attr = nodeAttrOf(node)
	return d.NewInode(ctx, node, fs.StableAttr{Mode: out.Attr.Mode & syscall.S_IFMT, Ino: ino}), 0
}

func (d *treeDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	t, err := d.f.loadTree(ctx, d.tree)
	if err != nil {
		return nil, d.f.errno(ctx, d.EmbeddedInode(), err)
	}
	list := make([]fuse.DirEntry, 0, len(t.Nodes))
	for _, n := range t.Nodes {
		mode, ok := typeBits(n.Type)
		if !ok || (n.Type == snapshot.NodeDir && n.Subtree == nil) {
			continue
		}
		list = append(list, fuse.DirEntry{Name: n.Name, Mode: mode, Ino: childIno(d.attr.Ino, n.Name)})
	}
	return fs.NewListDirStream(list), 0
}

// newNode makes the node of a tree entry. It copies what it needs from
// n: n's strings and IDs share memory with its whole tree, which the
// tree cache must be free to drop. It returns nil for a folder without
// a subtree (a malformed tree).
func (f *FS) newNode(n *snapshot.Node, ino uint64) fs.InodeEmbedder {
	m := meta{attr: f.nodeAttr(n, ino), xattrs: cloneXattrs(n.ExtendedAttributes)}
	switch n.Type {
	case snapshot.NodeDir:
		if n.Subtree == nil {
			return nil
		}
		return &treeDir{f: f, tree: *n.Subtree, attr: m.attr}
	case snapshot.NodeFile:
		return &file{f: f, meta: m, content: append([]backend.ID(nil), n.Content...)}
	case snapshot.NodeSymlink:
		return &link{target: strings.Clone(n.LinkTarget), meta: m}
	}
	return &special{meta: m}
}

// nodeAttrOf returns the attributes a node made by newNode holds.
func nodeAttrOf(n fs.InodeEmbedder) fuse.Attr {
	switch n := n.(type) {
	case *treeDir:
		return n.attr
	case *file:
		return n.attr
	case *link:
		return n.attr
	case *special:
		return n.attr
	}
	return fuse.Attr{}
}

// typeBits is the S_IFMT bits of a node type.
func typeBits(t snapshot.NodeType) (uint32, bool) {
	switch t {
	case snapshot.NodeFile:
		return syscall.S_IFREG, true
	case snapshot.NodeDir:
		return syscall.S_IFDIR, true
	case snapshot.NodeSymlink:
		return syscall.S_IFLNK, true
	case snapshot.NodeDev:
		return syscall.S_IFBLK, true
	case snapshot.NodeCharDev:
		return syscall.S_IFCHR, true
	case snapshot.NodeFifo:
		return syscall.S_IFIFO, true
	case snapshot.NodeSocket:
		return syscall.S_IFSOCK, true
	}
	return 0, false
}

// nodeAttr gives a tree entry's stored metadata as FUSE attributes.
func (f *FS) nodeAttr(n *snapshot.Node, ino uint64) fuse.Attr {
	typ, _ := typeBits(n.Type)
	mode := typ | uint32(n.Mode.Perm())
	if n.Mode&os.ModeSetuid != 0 {
		mode |= syscall.S_ISUID
	}
	if n.Mode&os.ModeSetgid != 0 {
		mode |= syscall.S_ISGID
	}
	if n.Mode&os.ModeSticky != 0 {
		mode |= syscall.S_ISVTX
	}
	a := fuse.Attr{Ino: ino, Mode: mode, Nlink: 1, Blksize: 4096}
	if n.Links > 1 && n.Links <= 1<<31 {
		a.Nlink = uint32(n.Links)
	}
	switch n.Type {
	case snapshot.NodeDir:
		a.Nlink = 2
	case snapshot.NodeFile:
		a.Size = n.Size
	case snapshot.NodeSymlink:
		a.Size = uint64(len(n.LinkTarget))
	case snapshot.NodeDev, snapshot.NodeCharDev:
		a.Rdev = encodeDev(n.Device)
	}
	a.Blocks = (a.Size + 511) / 512
	a.Owner = f.owner(n.UID, n.GID)
	atime, mtime, ctime := n.AccessTime, n.ModTime, n.ChangeTime
	if atime.IsZero() {
		atime = mtime // atime is not stored unless asked for
	}
	if ctime.IsZero() {
		ctime = mtime
	}
	a.SetTimes(&atime, &mtime, &ctime)
	return a
}

// encodeDev turns a stored st_rdev (glibc's 64-bit encoding) into the
// kernel's 32-bit one that FUSE carries.
func encodeDev(dev uint64) uint32 {
	major := uint32((dev>>8)&0xfff) | uint32(dev>>32)&^0xfff
	minor := uint32(dev&0xff) | uint32(dev>>12)&^0xff
	return (minor & 0xff) | (major&0xfff)<<8 | (minor&^0xff)<<12
}

func cloneXattrs(in []snapshot.ExtendedAttribute) []snapshot.ExtendedAttribute {
	if len(in) == 0 {
		return nil
	}
	out := make([]snapshot.ExtendedAttribute, len(in))
	for i, x := range in {
		out[i] = snapshot.ExtendedAttribute{Name: strings.Clone(x.Name), Value: append([]byte(nil), x.Value...)}
	}
	return out
}

// xattrs serves a node's stored extended attributes.
type xattrs []snapshot.ExtendedAttribute

func (x xattrs) get(attr string, dest []byte) (uint32, syscall.Errno) {
	for _, a := range x {
		if a.Name == attr {
			if len(dest) < len(a.Value) {
				return uint32(len(a.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, a.Value)), 0
		}
	}
	return 0, syscall.ENODATA
}

func (x xattrs) list(dest []byte) (uint32, syscall.Errno) {
	n := 0
	for _, a := range x {
		n += len(a.Name) + 1
	}
	if len(dest) < n {
		return uint32(n), syscall.ERANGE
	}
	off := 0
	for _, a := range x {
		off += copy(dest[off:], a.Name)
		dest[off] = 0
		off++
	}
	return uint32(n), 0
}

// meta is what a node of a snapshot serves from its stored metadata:
// its attributes and its extended attributes. link, special and file
// embed it for their Getattr, Getxattr and Listxattr.
type meta struct {
	attr   fuse.Attr
	xattrs xattrs
}

func (m *meta) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Attr = m.attr
	return 0
}

func (m *meta) Getxattr(_ context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return m.xattrs.get(attr, dest)
}

func (m *meta) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return m.xattrs.list(dest)
}

// link is a symlink: a snapshot's or a "latest" link.
type link struct {
	fs.Inode
	meta
	target string
}

var (
	_ fs.NodeGetattrer   = (*link)(nil)
	_ fs.NodeReadlinker  = (*link)(nil)
	_ fs.NodeGetxattrer  = (*link)(nil)
	_ fs.NodeListxattrer = (*link)(nil)
)

func (l *link) Readlink(context.Context) ([]byte, syscall.Errno) { return []byte(l.target), 0 }

// special is a device, FIFO or socket: metadata only.
type special struct {
	fs.Inode
	meta
}

var (
	_ fs.NodeGetattrer   = (*special)(nil)
	_ fs.NodeGetxattrer  = (*special)(nil)
	_ fs.NodeListxattrer = (*special)(nil)
)

// file is a regular file of a snapshot.
type file struct {
	fs.Inode
	meta
	f       *FS
	content []backend.ID
}

var (
	_ fs.NodeGetattrer   = (*file)(nil)
	_ fs.NodeOpener      = (*file)(nil)
	_ fs.NodeReader      = (*file)(nil)
	_ fs.NodeGetxattrer  = (*file)(nil)
	_ fs.NodeListxattrer = (*file)(nil)
)

// Open looks the sizes of the file's chunks up in the index, so that a
// read finds the chunks it needs by binary search. The content never
// changes, so the kernel may keep what it read in its page cache.
func (n *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	c, err := newContent(n.f.repo, n.content)
	if err != nil {
		return nil, 0, n.f.errno(ctx, n.EmbeddedInode(), err)
	}
	return c, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *file) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	c, ok := fh.(*content)
	if !ok {
		return nil, syscall.EBADF
	}
	got, err := c.read(ctx, n.f.loadBlob, dest, off)
	if err != nil {
		return nil, n.f.errno(ctx, n.EmbeddedInode(), err)
	}
	return fuse.ReadResultData(dest[:got]), 0
}

// content is an open file: its chunks and where each starts.
type content struct {
	ids []backend.ID
	// starts[i] is the offset of chunk i; starts[len(ids)] the size.
	starts []uint64
}

// newContent places a file's chunks by their plaintext lengths from the
// index. A chunk the index lacks is an error (the file cannot be read).
func newContent(r Repository, ids []backend.ID) (*content, error) {
	c := &content{ids: ids, starts: make([]uint64, len(ids)+1)}
	var off uint64
	for i, id := range ids {
		pb, ok := r.Lookup(pack.DataBlob, id)
		if !ok {
			return nil, fmt.Errorf("data blob %s is not in the index", id.Str())
		}
		c.starts[i] = off
		off += uint64(pb.PlaintextLength())
	}
	c.starts[len(ids)] = off
	return c, nil
}

// read copies the content at off into dest, loading only the chunks it
// covers; it returns how many bytes it copied, less than len(dest) only
// at the end of the content.
func (c *content) read(ctx context.Context, load func(context.Context, backend.ID) ([]byte, error), dest []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	pos := uint64(off)
	// The first chunk that ends after pos.
	i := sort.Search(len(c.ids), func(i int) bool { return c.starts[i+1] > pos })
	n := 0
	for ; i < len(c.ids) && n < len(dest); i++ {
		b, err := load(ctx, c.ids[i])
		if err != nil {
			return n, err
		}
		if want := c.starts[i+1] - c.starts[i]; uint64(len(b)) != want {
			return n, fmt.Errorf("data blob %s holds %d bytes, the index says %d", c.ids[i].Str(), len(b), want)
		}
		n += copy(dest[n:], b[pos-c.starts[i]:])
		pos = c.starts[i+1]
	}
	return n, nil
}
