// Package restorer writes the files of a snapshot tree back to disk.
//
// # Algorithm
//
// The tree is walked depth-first in name order on one goroutine. Files are
// planned as they are met, not written: every chunk is looked up in the
// index and filed under the pack that holds it. When a batch is full
// (BatchFiles descriptors held or BatchBlobs chunk references) or the walk
// ends, the batch is flushed. A file whose chunks all lie in one pack (any
// file of one chunk) is created, written, finished and closed by the one
// of Workers goroutines that reads that pack, so it holds a descriptor only
// meanwhile; the few other files (chunks in several packs, hardlinks) are
// created first, in parallel, and stay open until their last chunk is
// written. Each pack the batch needs is read once, at most 4 MiB of it at
// a time, and each of its blobs written to every place that needs it.
// Memory and open descriptors are bounded by the batch, not by the size of
// the snapshot; a pack needed by two batches is read twice, but only the
// blobs each batch needs.
//
// Depth costs memory linear in it and no more descriptors than a shallow
// tree. A node's path inside the snapshot is its name and a pointer to its
// folder's (one name per level, shared below), made into a string only
// to be reported or matched against patterns. The walker holds the
// descriptors of at most 32 folders of its path, the deepest; a folder
// whose descriptor it closed is opened again through ".." of its child on
// the way back up and must be the very folder it made (device and inode),
// or its rest is reported and skipped. A folder closed while entries of
// the batch name it stays open, owned by the batch, until the batch is
// flushed. A chain of 25,000 folders (paths of 50 KB, far beyond
// PATH_MAX) is restored with about 33 descriptors.
//
//	restore(tree, target):
//	    walk(tree, target)
//	    flush()
//
//	walk(tree, dir):
//	    if Delete and dir held things before: remove its entries tree lacks
//	    for node in tree (name order), if selected by --include/--exclude:
//	        not a dir, and dir held things before: look at what is there;
//	              Overwrite leaves it, keeps it (metadata only) or replaces it
//	        dir: mkdir (mode 0700 for now); walk(subtree); queue dir for metadata
//	        file, hardlink to a file restored before: link to it
//	        file with several links: create now (later names link to it)
//	        file: for each chunk: plan[pack of chunk][chunk] += (file, offset)
//	              queue file for creation and metadata
//	        symlink, fifo, device: create now; open it (O_PATH|O_NOFOLLOW),
//	              check its type is the one made; queue for metadata
//	        socket: skip
//	        if batch full: flush()
//
//	flush():
//	    parallel (Workers at a time) for file not in one pack:
//	        create (O_EXCL; only if something is in the way: look, remove)
//	        if it has no chunk to write: finish(file)
//	    parallel for pack in plan (Workers at a time):
//	        LoadPack(pack, its planned blobs in offset order, 4 MiB a call):
//	            per blob: verified plaintext, or an error reported for every
//	            file that needs the blob
//	            if not all zeros: for each target: create the file if not
//	            yet (with its final mode when the umask allows), pwrite
//	            after a target's last chunk: finish(file)
//	    metadata of symlinks and special files, in parallel; then of
//	    directories in queue order (post-order, so a directory's times
//	    and mode are set after its contents); close descriptors
//
//	finish(file):
//	    truncate to its full size if a chunk was not written (zeros kept
//	    as holes: sparse files; a failed blob)
//	    if Verify: re-read it, check each chunk's SHA-256
//	    if its content is not whole: set everything below but the times
//	    if its name no longer leads to it: report, set nothing (below)
//	    chown (as root, unless created with the node's owner and group),
//	    xattrs, chmod (after chown, so setuid bits stay; not if created
//	    with its mode), atime/mtime with nanoseconds (futimens); close
//
// # Safety of the target
//
// Every file system operation is relative to an open directory descriptor
// (openat, mkdirat, symlinkat...) and never follows a symlink inside the
// target: names come from trees decoded by snapshot.DecodeTree, which
// refuses "..", "/" and the like, and directories are opened with
// O_NOFOLLOW.
//
// Metadata is set through a descriptor of the node itself, never through
// a name that could meanwhile lead elsewhere: the descriptor a file was
// created with (O_EXCL), the one a directory was opened with, and for
// symlinks, fifos and devices an O_PATH|O_NOFOLLOW descriptor opened right
// after making them and checked to be of the type made (a symlink: with
// the link target made; a device: with its device number). Another user
// writing in the target, or a case-insensitive file system where a later
// name of the snapshot replaces an earlier one ("F" and "f"), could swap
// a name for a symlink to a file outside between the making and the
// metadata; before setting anything the restorer checks that the name
// still leads to its node (device and inode), and otherwise reports
// ErrChangedInTarget and sets nothing. See applyMetadata for the call
// used for each kind of node and each attribute. Restoring into a
// directory that already has content (a directory the restore made
// itself is known empty: its entries are not looked at):
//
//   - an existing directory where the snapshot has a directory is reused;
//   - an existing symlink where the snapshot has a directory is refused
//     (reported; that subtree is skipped), so it cannot redirect the restore;
//   - any other existing non-directory (a file, a symlink, a fifo) where the
//     snapshot has any node is dealt with as Options.Overwrite says: left
//     (never; if-newer unless the snapshot's is newer), kept with its
//     metadata set (always and if-changed, a file with the node's content
//     and no other link), or removed and replaced, never written through:
//     a file hardlinked from outside the target keeps its content;
//   - an existing directory where the snapshot has a non-directory is
//     refused (reported), unless Options.Delete: then Overwrite decides,
//     and it is removed with its contents to be replaced.
//
// Files not in the snapshot are left alone, unless Options.Delete: each
// directory of the target the walk enters is listed before its entries are
// restored, and the names its tree lacks, if the patterns select them,
// are removed (a directory with everything below it, never following a
// symlink, with two descriptors at a time however deep it is). A dry run (Options.DryRun)
// walks the same way, opening the existing directories and reading the
// existing files Overwrite compares, and writes nothing: a directory that
// does not exist is virtual, and everything below it new.
//
// # Errors
//
// A damaged or missing blob, a tree that cannot be loaded, a metadata
// call that fails and a node changed under the restore are passed to
// Options.Error with the path (inside the snapshot) they affect, and the
// restore goes on; Stats.Errors counts them. A file whose content could
// not be restored whole gets its mode, owner and xattrs but keeps the
// restore's time as its modification time, so it never passes for
// complete; Stats.Files counts only files restored whole.
//
// Lack of space is not passed over: the first write, or creation of a
// file, folder or link, that fails with ENOSPC or EDQUOT stops the
// restore with a *NoSpaceError (ErrNoSpace). Whenever a restore stops
// (no space, ctx, Options.Error), the files it was writing are emptied
// and their names removed, so that every file the restore leaves is
// either complete, with its metadata, or absent; the other names of a
// hardlinked file being written are left empty. Folders made keep mode
// 0700 and the restore's times. Only Linux is supported: the
// restorer relies on its *at system calls and O_PATH, and on /proc/self/fd
// to set the mode, times and xattrs of fifos and devices through their
// O_PATH descriptors (Linux has no fchmod for those before 6.6) and the
// xattrs of symlinks.
package restorer
