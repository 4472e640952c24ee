// Package fusefs serves a repository's snapshots as a read-only FUSE file
// system (github.com/hanwen/go-fuse/v2), for "cairn mount".
//
// The top of the tree is made once, at mount time, from path templates
// (layout.go): ids/<short id>, snapshots/<time> with a "latest" symlink,
// hosts/<host>/<time>, tags/<tag>/<time>, as restic lays its mount out.
// Below each snapshot's folder everything is lazy:
//
//	lookup or list a folder -> load its tree blob (through the tree
//	                           cache, and the repository's cache of tree
//	                           packs on disk)
//	open a file            -> look each chunk's plaintext length up in the
//	                           index: chunk i starts at starts[i]
//	read [off, off+n)      -> binary search starts for the chunk holding
//	                           off; load that chunk and the following ones
//	                           until n bytes are copied (through the blob
//	                           cache)
//
// Memory is bounded by the two caches (lru.go), whatever the number of
// snapshots, files or chunks looked at: a node keeps a copy of its own
// metadata and chunk IDs, never its folder's decoded tree, and the kernel
// decides how many nodes it keeps. Nothing is written anywhere: the mount
// is read-only, so the kernel refuses writes before they reach us.
package fusefs
