// Package dump writes what a snapshot holds at one path to a stream: a
// file's content as it is, or a folder as a tar or zip archive, as
// "cairn dump" prints it.
//
// Content is streamed blob by blob in file order: a few blobs are loaded
// ahead (Options.Ahead) and each is written and dropped, so memory is
// bounded by that window and the largest blob, whatever the size of the
// file or the folder. Trees are walked depth-first in name order
// (snapshot.Walk), a folder before its contents, which is the order tar
// and unzip need to restore it.
//
// Archive entries are named by their path in the snapshot (or in the
// SNAPSHOT:SUBPATH folder dumped from) without the leading slash, as
// restic names them, so "tar -x" rebuilds that path under the current
// folder. The dumped folder itself is an entry, carrying its metadata;
// its parents are not.
//
// A tar stream (PAX format) keeps everything a restore keeps but
// sockets, which tar cannot hold: modes with setuid, setgid and sticky
// bits, owners by ID and name, times to the nanosecond (mtime, atime,
// ctime), symlinks, hardlinks (the second and later names of a file with
// several links, same device and inode, are link entries to the first
// name dumped), block and character devices, fifos and extended
// attributes (SCHILY.xattr records, which "tar --xattrs -x" restores). A
// zip keeps file and folder modes, symlinks, modification times to the
// second and owner IDs (Info-ZIP's "ux" field, which "unzip -X"
// restores); it cannot hold owner names, hardlinks (each name gets the
// content), devices, fifos or sockets (left out with a warning).
package dump
