// Package crypt holds cairn's cryptography: data keys and their AEAD
// (XChaCha20-Poly1305), the key ring that is a repository's master key,
// sealed files, password-derived wrapping keys (argon2id or scrypt with
// capped parameters), key files, ed25519 device identities with their
// human-readable peer IDs, and the signed envelope of snapshot-log entries.
//
// It is a leaf: it imports nothing of cairn's, so repo, snapshot and the peer
// server can all use it. Byte formats are specified in docs/design.md
// (sections "Encryption", "Key files", "Device identities and peer IDs" and
// "Log envelope") and pinned by the vectors under testdata/.
//
// Every parser here treats its input as hostile: sizes are capped before
// anything is allocated, trailing bytes are refused, and each failure is one
// of the sentinels in errors.go wrapped with context. Secrets never appear in
// errors or in the String, GoString or Format output of any type.
package crypt
