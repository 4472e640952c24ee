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
//	restore(tree, target):
//	    walk(tree, target)
//	    flush()
//
//	walk(tree, dir):
//	    for node in tree (name order), if selected by --include/--exclude:
//	        dir: mkdir (mode 0700 for now); walk(subtree); queue dir for metadata
//	        file, hardlink to a file restored before: link to it
//	        file with several links: create now (later names link to it)
//	        file: for each chunk: plan[pack of chunk][chunk] += (file, offset)
//	              queue file for creation and metadata
//	        symlink, fifo, device: create now; queue for metadata
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
// O_NOFOLLOW. Restoring into a directory that already has content:
//
//   - an existing directory where the snapshot has a directory is reused;
//   - an existing symlink where the snapshot has a directory is refused
//     (reported; that subtree is skipped), so it cannot redirect the restore;
//   - any other existing non-directory (a file, a symlink, a fifo) where the
//     snapshot has any node is removed and replaced, never written through:
//     a file hardlinked from outside the target keeps its content;
//   - an existing directory where the snapshot has a non-directory is
//     refused (reported).
//
// Files not in the snapshot are left alone.
//
// # Errors
//
// A damaged or missing blob, a tree that cannot be loaded and a metadata
// call that fails are passed to Options.Error with the path (inside the
// snapshot) they affect, and the restore goes on; Stats.Errors counts them.
// Only Linux is supported: the restorer relies on its *at system calls and
// on /proc/self/fd for the xattrs of symlinks and special files.
package restorer
