// Package peer is cairn's own protocol for keeping a repository on a
// friend's machine: the server behind `cairn peer serve` and the client
// backend for locations of the form
//
//	peer://PEERID@host:port/NAME
//
// docs/peer-protocol.md specifies the wire format; testdata/messages pins
// it with vectors.
//
// # Security
//
// Both sides are devices with an ed25519 identity (crypt.Identity) and
// know each other by peer ID, the SHA-256 of the public key. A connection
// is TCP, then TLS 1.3 in which each side presents a self-signed
// certificate for its identity key; no certificate authority is involved.
// The client refuses a server whose key does not hash to the PEERID of the
// location (ErrPeerMismatch); the server refuses a client that is not in
// its allow list (the client sees ErrNotAllowed). The friend's machine
// sees only what the repository holds: encrypted files named by their
// hashes.
//
// # Server
//
// The server keeps one folder per client under its root, named by the
// client's peer ID, and in it one repository per NAME, in the layout of
// backend/local (which stores the files):
//
//	ROOT/<client peer ID>/<NAME>/{config,keys,data,index,log,locks}
//
// Each client is append-only (the default: it may add files and remove
// its locks, nothing else) or read-write. The server checks every name
// (a file type and a 64-digit hash, or "config"), so no request reaches
// outside the client's folder; it hashes a put's content as it arrives
// and makes the file visible only when the hash is the file's name; it
// enforces a per-client quota over what the client's files and folders
// cost the disk (bytes plus InodeCost each), making folders only when a
// file goes in them, and bounds the client's repositories; and it lets an
// append-only client put again a file whose stored content no longer
// hashes to its name.
// It bounds everything a client can make it hold: handshakes in progress,
// connections per client, requests per connection, frame sizes, and the
// time any read or write may wait. See ServerConfig for the limits.
//
// # Client
//
// The client (Backend) holds one TLS connection multiplexed by yamux, one
// stream per request, so up to Properties().Connections requests run at
// once. A broken connection is made again at the next request; errors
// that describe the request rather than the connection (a missing file,
// the quota, append-only) map to the backend sentinels and are permanent
// for the retry wrapper. A server found stuck (it takes a connection or a
// request and does not answer, while the connection is alive) fails the
// request with ErrNoAnswer, permanent too, and every later one at once;
// Dialer sets the timeouts that decide it.
package peer
