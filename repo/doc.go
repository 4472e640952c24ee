// Package repo is the repository: its config and keys, blobs packed into
// packs, the index that finds them, the local cache, and locks.
//
// Saving a blob compresses it (zstd, kept only when it shrinks), seals it
// with XChaCha20-Poly1305 bound to its type and ID, and adds it to the pack
// being assembled for its type; full packs are uploaded by a fixed set of
// workers and then indexed. Flush finishes the partly filled packs and
// writes an index file. Loading a blob finds its pack in the in-memory
// index, reads its byte range, opens it and checks its hash.
//
// The formats are specified in docs/design.md.
package repo
