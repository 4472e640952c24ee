// Package pack encodes and decodes pack files: many sealed blobs followed by
// a sealed header that lists them. It is pure encode/decode; the only I/O is
// the read callback that ReadHeader is given.
//
// A pack file is
//
//	sealed blob 1 || ... || sealed blob n || sealed header || header length (uint32 LE)
//
// Each sealed blob is crypt's nonce(24) || ciphertext || tag(16) of the
// blob's stored plaintext (zstd-compressed or raw), with the blob's type byte
// and ID as associated data, so a blob cannot be passed off as another. The
// sealed header is version(1) || KeyID(8) || nonce || ciphertext || tag; its
// plaintext lists every blob's type, lengths and ID in pack order (offsets
// are implicit) followed by a random amount of zero padding. All blobs of one
// pack are sealed with the key the header names, and every Blob this package
// returns carries that KeyID, so a blob found through the index opens with
// the right key of a rotated key ring. docs/design.md has the byte layout.
//
// The Writer assembles a pack in memory. Sealing is the caller's job
// (SealBlob, in parallel workers); the Writer places the blobs in random
// order and pads the header, so that neither blob order nor blob count
// (beyond a coarse bound) is visible to the storage: this is the mitigation
// restic 0.18 adopted against recovering the secret chunker polynomial from
// chunk sizes.
//
// Every parser error wraps ErrFormat; a header that fails to authenticate
// wraps crypt.ErrAuth; a header sealed by a key the ring lacks wraps
// ErrUnknownKey.
package pack
