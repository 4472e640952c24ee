// Package snapshot turns files into trees and trees back into files.
//
// A snapshot is a root Tree plus metadata (time, host, paths, tags),
// recorded as an entry of the repository's signed snapshot log. A Tree is a
// directory listing of Nodes; a file node lists the IDs of its content
// chunks, a directory node names its subtree. Trees are stored as blobs,
// written bottom-up by the archiver (package snapshot/archiver) and read
// top-down by the restorer (package snapshot/restorer).
//
// The log's own upkeep lives here too, so that every command gets it by
// calling one function: [Log.CompactLog] writes a checkpoint after
// [LogCheckpointAfter] entries and deletes what a checkpoint at least
// [LogRetention] old covers (the retention mirror's divergence check
// relies on), and [Log.PlanCompaction] says what it would do. [PlanPrune]
// and [ExecutePrune] are a whole prune: they refuse a log that cannot be
// trusted to say which snapshots are live, then plan and carry out
// repo's prune and the log's compaction. Which snapshots a forget
// retires is decided by PlanForget in package snapshot/policy.
package snapshot
