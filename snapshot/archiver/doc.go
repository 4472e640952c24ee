// Package archiver is cairn's backup pipeline: it turns file system paths
// into chunks, data blobs and tree blobs in a repository, and returns the
// root tree of the new snapshot.
//
// # Use
//
//	a, err := archiver.New(repo, archiver.Options{Parent: parentRoot, Error: onError})
//	root, summary, err := a.Snapshot(ctx, []string{"/home/u/docs", "/etc"})
//
// The root tree mirrors the absolute paths from "/": backing up
// /home/u/docs and /etc gives root → home → u → docs and root → etc.
// Directories above the targets carry the metadata of the real directories
// (taken with stat, so a symlinked component such as /home → /usr/home is
// recorded as the directory it points to) and list only the children
// leading to targets. Relative paths are made absolute; a path inside
// another given path is backed up once, as part of its ancestor.
//
// # Pipeline
//
//	walker ──fileCh──▶ readers ──blobCh──▶ blob savers ──▶ Repository.SaveBlob
//	  │                   (open, chunk)       (SHA-256)
//	  └──treeCh──▶ tree savers (wait for children, encode, SaveBlob) ──▶ root ID
//
// The stages:
//
//   - The walker (one goroutine, the caller's) visits the targets in name
//     order, depth first. For each directory it lists the names, sorts
//     them, and for windows of 64 entries has up to four goroutines lstat
//     each entry, apply the exclusions and build its node (system calls
//     are most of an unchanged backup's work):
//     mode (os.FileMode with setuid, setgid and sticky bits), uid, gid and
//     names (looked up once per ID), mtime, atime (the mtime unless
//     Options.WithAtime) and ctime with nanoseconds in UTC, inode, size, link count, device number, symlink
//     target and extended attributes. Symlinks are never followed.
//   - A regular file whose type, size, mtime, ctime and inode equal its node
//     in the parent snapshot, and whose content blobs are all still in the
//     repository, is recorded with the parent's content without being
//     opened (unless Options.Force). The parent's trees are loaded lazily,
//     one directory at a time as the walk enters it, and dropped when it
//     leaves: memory follows the depth of the tree, not the file count.
//   - Other files are queued to the readers. A reader opens the file
//     (O_NOFOLLOW, O_NONBLOCK, and O_NOATIME when allowed), checks with
//     fstat that it is still a regular file (taking fresh metadata if it was
//     replaced), and either reads a small file (under chunker.MinSize, so one
//     chunk either way) whole into a pooled buffer, or streams a large one
//     through its own content-defined chunker (restic/chunker with the
//     repository's polynomial, reset per file, reusing its buffer). Each
//     chunk goes to the blob savers; the reader moves on to the next file
//     without waiting for them.
//   - A blob saver hashes a chunk (SHA-256, the blob ID) and calls SaveBlob,
//     which compresses, seals and packs on the repository's own workers.
//     When a file's last chunk is saved, the file's node is complete.
//   - Every item the walker queues gets a future. After its entries, the
//     walker queues the directory itself to the tree savers with its
//     children's futures in name order. A tree saver waits for those, drops
//     the ones skipped after an error, encodes the tree, saves it and
//     completes the directory's future with the subtree ID: trees are
//     written bottom-up, and the root's future yields the snapshot's root.
//     A tree whose nodes all equal the parent snapshot's tree for the same
//     directory is that tree's blob (when the repository still has it) and
//     is neither encoded nor hashed again.
//     Directories are queued after their children and taken in order, so
//     a tree saver only ever waits on work that is already queued: a fixed
//     number of them cannot deadlock.
//
// # Bounds
//
// Readers: Options.ReadConcurrency, default GOMAXPROCS clamped to [2, 8].
// Blob savers and tree savers: Options.SaveConcurrency each, default
// GOMAXPROCS. The reasons are on the Options fields. Queues are bounded:
// fileCh holds 64 files (metadata only), blobCh and treeCh nothing (a
// reader holding its filled chunk is the queue in front of the savers).
// Chunk buffers in flight are at most savers + 1 (a reader takes a token
// from the buffer pool before it reads a chunk, and the saver gives it
// back), each at most chunker.MaxSize (8 MiB), and the buffer pool keeps
// at most as many idle ones; a large or sparse file streams through
// in chunks and never sits in memory whole (zero chunks of a sparse file
// dedupe like any others). Every channel send and receive also selects on
// the context; the first fatal error cancels the run's context with that
// cause, every goroutine returns, and Snapshot waits for all of them
// before it returns the error.
//
// # Errors
//
// An item that cannot be read (vanished, unreadable, a failed read, a name
// that is not valid UTF-8 and so cannot be stored in a JSON tree) goes to
// Options.Error: nil skips the item, which is left out of the snapshot and
// counted in the summary's ErrorCount (the CLI's exit status 3); an error
// aborts the backup. Problems that leave the item recorded (an unreadable
// extended attribute, a parent tree that cannot be loaded, a file that
// changed size while being read) go to Progress.Warn. Repository errors
// are fatal.
//
// # Exclusions
//
// Patterns (Options.Excludes, and IExcludes matched case-insensitively
// after lowercasing both sides) follow restic's, checked against the
// absolute path of every item the walk meets, including the targets
// themselves but not the directories above them:
//
//   - A pattern is split at "/" into components, each a filepath.Match glob
//     ("*", "?", "[a-z]", "\" escapes) matched against one path component;
//     "*" never crosses a "/".
//   - "**" as a whole component matches any number of components, zero
//     included: "/a/**/c" matches /a/c and /a/b/d/c; "/a/**" matches /a
//     itself and everything below it.
//   - A leading "/" anchors the pattern to the whole absolute path:
//     "/home/u/cache" matches only that path.
//   - Without a leading "/" the pattern matches any trailing run of
//     components, at any depth: "*.o" matches /src/x.o, "u/cache" matches
//     /home/u/cache. (It is "**/" plus the pattern.)
//   - A trailing "/" restricts the pattern to directories: "cache/" leaves
//     out directories named cache but keeps files of that name. restic
//     ignores a trailing "/"; this follows .gitignore instead.
//   - A leading "!" negates: within one list (Excludes, or IExcludes) the
//     last pattern that matches a path decides, so "*.log" then "!keep.log"
//     keeps keep.log. As in .gitignore, nothing below an excluded directory
//     can be re-included: the walk never enters it.
//   - Patterns are cleaned ("a//b", "./a" and "a/../b" become "a/b", "a",
//     "b"); an empty pattern, one that is only "/", or a malformed glob is
//     ErrPattern from New. ReadPatterns reads an exclude file: one pattern
//     a line, trimmed, "#" comments and blank lines ignored.
//
// An excluded directory is left out whole. ExcludeIfPresent "NAME" (or
// "NAME:HEADER", the file must then start with HEADER) and ExcludeCaches
// (a CACHEDIR.TAG starting with "Signature:
// 8a477f597d28d172789f06886806bc55") work as in restic: the directory that
// holds the tag file is kept with the tag file alone in it, so the
// snapshot shows why it is empty; a tag file whose header does not match
// excludes nothing and causes a warning. ExcludeLargerThan leaves out
// regular files above the size. OneFileSystem does not enter directories
// on another device than one of the given paths (every path given counts,
// also one inside another: "-x / /home" enters /home); a mount point is
// recorded as an empty directory.
//
// # Nodes
//
// Hard links are recorded with their Inode, Links and DeviceID, and each
// link carries the full content, so a restorer can link them again or
// restore each alone. DeviceID is recorded only for non-directories with
// more than one link, and Links not for directories: both would otherwise
// change trees between runs for no restorable gain (st_dev of NFS and btrfs
// varies across reboots; a directory's link count changes with every
// subdirectory). Devices record st_rdev in Device. Extended attributes are
// read with llistxattr/lgetxattr, sorted by name; a file system without
// them gives none. Times are UTC so tree bytes do not depend on the time
// zone a backup runs in.
//
// # Summary
//
// The summary is snapshot.Summary, restic's fields, the type the snapshot
// stores. Files and directories are "new" when the parent has no node of
// that name and type, "unmodified" when the new node equals the parent's in
// every field, else "changed". DataBlobs, TreeBlobs and DataAdded count
// blobs SaveBlob reported as not known, with their plaintext sizes; Backup
// adds DataAddedPacked, the size of the packs the repository uploaded
// meanwhile. With Options.DryRun a wrapper discards SaveBlob's data but
// remembers the IDs, so the summary says what a real run would add.
//
// Only Linux is supported (stat fields, O_NOATIME, xattr calls).
package archiver
