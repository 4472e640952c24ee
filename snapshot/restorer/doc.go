// Package restorer writes the files of a snapshot tree back to disk.
//
// # Algorithm
//
// The tree is walked depth-first in name order on one goroutine. Files are
// planned as they are met, not written: every chunk is looked up in the
// index and filed under the pack that holds it. When a batch is full
// (BatchFiles descriptors or BatchBlobs chunk references) or the walk
// ends, the batch is flushed: its files are created by Workers goroutines
// (creating a file costs the kernel 50-200 µs, too much for one thread on
// a tree of small files), each pack it needs is read once, by one of
// Workers goroutines, and each of its blobs is written to every place that
// needs it. Memory and open descriptors are bounded by
// the batch, not by the size of the snapshot; a pack needed by two batches
// is read twice, but only the blobs each batch needs.
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
//	    parallel for file queued for creation (Workers at a time):
//	        create (O_EXCL; only if something is in the way: look, remove)
//	    parallel for pack in plan (Workers at a time):
//	        LoadPack(pack, its planned blobs in offset order):
//	            per blob: verified plaintext, or an error reported for every
//	            file that needs the blob
//	            if not all zeros: pwrite(file, plaintext, offset) for each target
//	    truncate to its full size each file with a chunk not written (zeros
//	    kept as holes: sparse files; a failed blob)
//	    if Verify: re-read each file, check each chunk's SHA-256
//	    apply metadata, in parallel for everything but directories, then
//	    to directories in queue order (post-order, so a directory's times
//	    and mode are set after its contents): chown (as root), xattrs,
//	    chmod (after chown, so setuid bits stay), atime/mtime with
//	    nanoseconds; close descriptors
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
