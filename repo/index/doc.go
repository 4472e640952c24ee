// Package index holds the index file format and the in-memory index: which
// pack holds each blob, at which offset.
//
// An index file's plaintext (the repo layer compresses and seals it) lists
// packs and their blobs in a canonical binary form: Encode writes it and
// Decode accepts nothing else, so a decoded file re-encodes to the same
// bytes. docs/design.md has the byte layout. Every parser error wraps
// ErrFormat.
//
// The Index keeps every entry in about 55 bytes (a sorted slice of 48-byte
// entries plus interned pack IDs) and answers concurrent lookups, the hot
// path of a backup, while packs are being added.
package index
