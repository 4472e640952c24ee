package restorer

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// Overwrite says what a restore does where the target already holds
// something at the place of a node of the snapshot that is not a
// directory (an existing directory where the snapshot has one is always
// reused). The names and meanings are restic's (restore --overwrite).
type Overwrite uint8

const (
	// OverwriteAlways replaces what is there, unless it is a file with
	// the snapshot's content already (read and compared chunk by
	// chunk), whose metadata alone is then set. The zero value.
	OverwriteAlways Overwrite = iota
	// OverwriteIfChanged is OverwriteAlways, but a file whose size and
	// modification time are the snapshot's is taken to have its content
	// without reading it.
	OverwriteIfChanged
	// OverwriteIfNewer replaces what is there only if the snapshot's
	// node has a later modification time; otherwise it is left as it
	// is, metadata included.
	OverwriteIfNewer
	// OverwriteNever leaves whatever is there as it is.
	OverwriteNever
)

var overwriteNames = []string{"always", "if-changed", "if-newer", "never"}

// String gives the mode as --overwrite spells it.
func (o Overwrite) String() string {
	if int(o) < len(overwriteNames) {
		return overwriteNames[o]
	}
	return fmt.Sprintf("Overwrite(%d)", uint8(o))
}

// ParseOverwrite parses always, if-changed, if-newer or never.
func ParseOverwrite(s string) (Overwrite, error) {
	if i := slices.Index(overwriteNames, s); i >= 0 {
		return Overwrite(i), nil
	}
	return 0, fmt.Errorf("invalid overwrite mode %q (want %s)", s, strings.Join(overwriteNames, ", "))
}

// Set parses s, so that an Overwrite can be a flag's value.
func (o *Overwrite) Set(s string) error {
	v, err := ParseOverwrite(s)
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// Action is what a restore does, or would do (DryRun), with one path of
// the snapshot or of the target; Options.Report receives it. The words
// are restic's (restore --verbose=2, and its JSON "verbose_status").
type Action uint8

const (
	// ActionRestored: the node is made (a directory that exists is
	// reused and its metadata set; restic says "restored" for those
	// too).
	ActionRestored Action = iota + 1
	// ActionUpdated: a file (or other node) in the target is replaced
	// by the snapshot's.
	ActionUpdated
	// ActionUnchanged: a file in the target has the snapshot's content
	// already; only its metadata is set.
	ActionUnchanged
	// ActionSkipped: what the target holds there is left as it is
	// (Options.Overwrite).
	ActionSkipped
	// ActionDeleted: something in the target that the snapshot does not
	// have is removed (Options.Delete), with all it holds if it is a
	// directory.
	ActionDeleted
)

// String gives the action's word.
func (a Action) String() string {
	switch a {
	case ActionRestored:
		return "restored"
	case ActionUpdated:
		return "updated"
	case ActionUnchanged:
		return "unchanged"
	case ActionSkipped:
		return "skipped"
	case ActionDeleted:
		return "deleted"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// reportAction passes an action to Options.Report, if set.
func (rs *restore) reportAction(a Action, p string, size uint64) {
	if rs.opts.Report != nil {
		rs.opts.Report(a, p, size)
	}
}

// verdict is what to do where a non-directory node goes.
type verdict uint8

const (
	verdictNew     verdict = iota // nothing there: make the node
	verdictReplace                // something there: replace it
	verdictKeep                   // a file with the node's content: set its metadata only
	verdictSkip                   // leave what is there (Overwrite)
)

// mtimeOf is the modification time lstat found.
func mtimeOf(st *unix.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }

// existing looks at what the target holds where n goes in directory d
// (open as pfd) and says what to do. For verdictKeep it returns a
// read-only descriptor of the file, for its metadata. An existing
// directory where n, not a directory, goes is refused (ErrDirInTarget)
// unless Options.Delete allows it to be removed; existing removes it
// then, unless in a dry run.
func (rs *restore) existing(d *dirCtx, pfd int, n *snapshot.Node) (verdict, int, error) {
	if d.fresh || d.virtual {
		return verdictNew, -1, nil // made by this restore (or, in a dry run, to be): empty
	}
	st, exists, err := lstatAt(pfd, n.Name)
	if err != nil || !exists {
		return verdictNew, -1, err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && !rs.opts.Delete {
		return 0, -1, ErrDirInTarget
	}
	switch rs.opts.Overwrite {
	case OverwriteNever:
		return verdictSkip, -1, nil
	case OverwriteIfNewer:
		if !n.ModTime.After(mtimeOf(&st)) {
			return verdictSkip, -1, nil
		}
	default:
		if n.Type == snapshot.NodeFile && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1 && !hardlinked(n) {
			if fd, same, err := rs.sameFile(pfd, n, &st); err != nil || same {
				return verdictKeep, fd, err
			}
		}
	}
	if isDir && !rs.opts.DryRun {
		if err := removeAt(pfd, n.Name, true); err != nil {
			return 0, -1, err
		}
	}
	return verdictReplace, -1, nil
}

// hardlinked says n is one name of a file with several: such files are
// always made anew (their names linked to the first), never kept.
func hardlinked(n *snapshot.Node) bool { return n.Links > 1 && n.Inode != 0 }

// sameFile says whether the regular file st at n's place in pfd has n's
// content: with OverwriteIfChanged, if its size and modification time are
// n's; otherwise by reading it and comparing each chunk's hash. If so it
// returns the file open read-only. A file that has other names (perhaps
// outside the target) is never kept: replacing it leaves them alone.
func (rs *restore) sameFile(pfd int, n *snapshot.Node, st *unix.Stat_t) (int, bool, error) {
	if uint64(st.Size) != n.Size {
		return -1, false, nil
	}
	fd, err := openExistingFile(pfd, n.Name, idOf(st))
	if err != nil {
		return -1, false, err
	}
	if rs.opts.Overwrite == OverwriteIfChanged && mtimeOf(st).Equal(n.ModTime) {
		return fd, true, nil
	}
	if rs.cmpBuf == nil {
		rs.cmpBuf = make([]byte, 256<<10)
	}
	lengths := func(i int) (uint32, bool) {
		pb, ok := rs.repo.Lookup(pack.DataBlob, n.Content[i])
		return pb.Blob.PlaintextLength(), ok && pb.Blob.ID == n.Content[i]
	}
	same, err := sameFileContent(fd, n.Size, n.Content, lengths, rs.cmpBuf)
	if err != nil || !same {
		closeFD(fd)
		return -1, false, err
	}
	return fd, true, nil
}

// deleteExtra removes (Options.Delete) the entries of the target
// directory d, open as fd, that tree does not have and that the include
// and exclude patterns select, everything below them included; in a dry
// run it only reports them. It returns only errors that stop the restore.
func (rs *restore) deleteExtra(d *dirCtx, fd int, tree *snapshot.Tree) error {
	names, err := readDirNames(fd)
	if err != nil {
		return rs.report(d.path(), err)
	}
	slices.Sort(names)
	filtering := len(rs.include)+len(rs.exclude) > 0
	for _, name := range names {
		if _, found := slices.BinarySearchFunc(tree.Nodes, name, func(n *snapshot.Node, name string) int {
			return strings.Compare(n.Name, name)
		}); found {
			continue
		}
		st, exists, err := lstatAt(fd, name)
		if err != nil {
			if err := rs.report(d.elem.path(name), err); err != nil {
				return err
			}
			continue
		}
		if !exists {
			continue // removed meanwhile
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		p := d.elem.path(name)
		if filtering {
			if self, _ := rs.selected(p, isDir); !self {
				continue
			}
		}
		if !rs.opts.DryRun {
			if err := removeAt(fd, name, isDir); err != nil {
				if err := rs.report(p, err); err != nil {
					return err
				}
				continue
			}
		}
		rs.st.deleted.Add(1)
		size := uint64(0)
		if !isDir {
			size = uint64(st.Size)
		}
		rs.reportAction(ActionDeleted, p, size)
	}
	return nil
}

// ErrDeleteRoot refuses Options.Delete into "/" without an include or
// exclude pattern: it would delete everything the snapshot does not hold.
var ErrDeleteRoot = errors.New("refusing to delete what the snapshot does not hold from / without --include or --exclude")

// isFSRoot says whether target is the root of the file system.
func isFSRoot(target string) bool {
	abs, err := filepath.Abs(target)
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return abs == "/"
}

// fileSizeOf is n's size if it is a file, else 0.
func fileSizeOf(n *snapshot.Node) uint64 {
	if n.Type == snapshot.NodeFile {
		return n.Size
	}
	return 0
}

// keepFile sets only the metadata of a file the target holds with n's
// content already, open as fd (in a dry run it only counts it).
func (rs *restore) keepFile(d *dirCtx, e *entry, fd int) error {
	rs.st.unchanged.Add(1)
	rs.reportAction(ActionUnchanged, e.path(), e.node.Size)
	if rs.opts.DryRun {
		closeFD(fd)
		return nil
	}
	e.kind, e.keep, e.fd = kindFile, true, fd
	rs.b.add(e) // owns fd from here on
	d.usedBy = rs.b
	return rs.maybeFlush()
}

// dryLeaf counts and reports what a restore would do with the
// non-directory n at p, made anew or replacing what is there.
func (rs *restore) dryLeaf(n *snapshot.Node, p string, replacing bool) {
	action := ActionRestored
	switch n.Type {
	case snapshot.NodeFile:
		key := linkKey{n.DeviceID, n.Inode}
		if _, ok := rs.links[key]; ok && hardlinked(n) {
			rs.st.hardlinks.Add(1)
			rs.reportAction(ActionRestored, p, 0)
			return
		}
		if hardlinked(n) {
			rs.links[key] = linkRef{}
		}
		rs.st.files.Add(1)
		rs.st.bytes.Add(n.Size)
		if replacing {
			rs.st.updated.Add(1)
			action = ActionUpdated
		}
		rs.reportAction(action, p, n.Size)
		return
	case snapshot.NodeSymlink:
		rs.st.symlinks.Add(1)
	default:
		rs.st.special.Add(1)
	}
	rs.reportAction(action, p, 0)
}

// dirInTheWay looks at what is where directory d goes (in pfd, which held
// things before the restore): a non-directory there that Overwrite does
// not let the restore replace is left, and d skipped (errReported). A
// symlink is refused later, by makeDir.
func (rs *restore) dirInTheWay(d *dirCtx, pfd int) error {
	st, exists, err := lstatAt(pfd, d.elem.name)
	if err != nil {
		return rs.skip(d.path(), err)
	}
	if !exists {
		return nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR, unix.S_IFLNK:
		return nil
	}
	leave := rs.opts.Overwrite == OverwriteNever ||
		rs.opts.Overwrite == OverwriteIfNewer && !d.node.ModTime.After(mtimeOf(&st))
	if !leave {
		return nil
	}
	rs.st.skipped.Add(1)
	rs.reportAction(ActionSkipped, d.path(), 0)
	return errReported
}

// probeDir is ensureDir's last step in a dry run: d is opened if it
// exists, and marked virtual (to be made) if not.
func (rs *restore) probeDir(d *dirCtx, pfd int) (int, error) {
	fd, ok, err := openExistingDir(pfd, d.elem.name)
	if err != nil {
		d.failed = true
		return -1, rs.skip(d.path(), err)
	}
	if ok {
		if err := rs.adopt(d, fd); err != nil {
			return -1, err
		}
		return fd, nil
	}
	st, exists, err := lstatAt(pfd, d.elem.name)
	if err == nil && exists && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		err = ErrSymlinkInTarget
	}
	if err != nil {
		d.failed = true
		return -1, rs.skip(d.path(), err)
	}
	d.virtual = true
	rs.st.dirs.Add(1)
	return -1, nil
}

// existingDir returns the descriptor of the directory of the target at
// d's place if there is one that held things before the restore: -1 if
// there is none, or if the restore made it (empty then). One found
// there that the walk had not opened yet becomes d's, reused: its
// metadata will be set.
func (rs *restore) existingDir(d *dirCtx) (int, error) {
	switch {
	case d.fresh || d.virtual || d.failed:
		return -1, nil
	case d.fd >= 0:
		return d.fd, nil
	case d.created:
		return rs.reopen(d)
	}
	pfd, err := rs.existingDir(d.parent)
	if err != nil || pfd < 0 {
		return -1, err
	}
	fd, ok, err := openExistingDir(pfd, d.elem.name)
	if err != nil {
		return -1, rs.report(d.path(), err)
	}
	if !ok {
		return -1, nil
	}
	if err := rs.adopt(d, fd); err != nil {
		return -1, err
	}
	return fd, nil
}
