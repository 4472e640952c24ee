// Package snapshot turns files into trees and trees back into files.
//
// A snapshot is a root Tree plus metadata (time, host, paths, tags),
// recorded as an entry of the repository's signed snapshot log. A Tree is a
// directory listing of Nodes; a file node lists the IDs of its content
// chunks, a directory node names its subtree. Trees are stored as blobs,
// written bottom-up by the archiver (package snapshot/archiver) and read
// top-down by the restorer (package snapshot/restorer).
package snapshot
