// Package sftp stores a repository in a folder on an SFTP server, such as a
// friend's machine running OpenSSH.
//
// It speaks SSH in-process with golang.org/x/crypto/ssh and SFTP with
// github.com/pkg/sftp; it does not run the system's ssh program. One binary
// then works the same under cron, on any system, and its failures (unknown
// host, refused key) are errors the CLI can explain, rather than prompts
// from a child process that cron cannot answer. It reads the same files
// OpenSSH does, so a user who can `ssh user@host` can use the location.
//
// # Locations
//
//	sftp:[user@]host:/absolute/path
//	sftp:[user@]host:relative/path              relative to the home folder
//	sftp://[user[:password]@]host[:port]/absolute/path
//	sftp://[user[:password]@]host[:port]/~/relative/path
//
// ParseLocation reads them into a Config; Config.String and
// Backend.Location print them back without the password.
//
// # Logging in
//
// The keys offered are those of ssh-agent (through SSH_AUTH_SOCK), then
// the unencrypted private keys in ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa and
// ~/.ssh/id_rsa, then a password given in the location. cairn never asks
// for a passphrase: an encrypted key must be loaded into ssh-agent, and a
// failed login says so, naming the file. ~/.ssh/config is not read: its
// Host aliases, Match blocks, Include and ProxyJump cannot be honoured
// partly without surprising someone, so the location must name the real
// host, port and user.
//
// # Host keys
//
// The server's key is checked against ~/.ssh/known_hosts and
// /etc/ssh/ssh_known_hosts (hashed entries included). The server is asked
// first for a key of a type those files know for it. A host listed nowhere
// is refused with ErrHostKeyUnknown and a message giving the fingerprint
// and the ssh command that records it; a host listed with other keys, or
// with a key marked @revoked, is refused with ErrHostKeyChanged and a
// warning that the connection may be intercepted. cairn never adds to
// known_hosts itself. @cert-authority lines are not used.
//
// # Layout and writes
//
// The folder is laid out exactly as backend/local lays it out (config,
// keys/, data/XX/ by the first two hex digits, index/, log/, locks/), so a
// repository folder copied between a disk and a server works on both.
// Put writes a temporary file named ".tmp-<random>" in the destination
// folder (never a valid name, so List skips it), made private (0600)
// before any content goes in since an SFTP open leaves the mode to the
// server's umask, flushes it with
// fsync@openssh.com where offered, makes it read-only and renames it over
// the final name with posix-rename@openssh.com, which replaces atomically
// (plain SFTP rename, which cannot replace, on servers without it; then
// Properties().HasAtomicReplace is false). A failed Put removes its
// temporary file; if the connection broke, it is removed after the next
// connection is made. One left by a killed process is removed by
// RemoveStaleTemp (backend.TempCleaner) once it is old enough. The folder
// itself cannot be synced over SFTP.
//
// # Connections
//
// All requests share one SSH connection and one SFTP session; pkg/sftp
// keeps up to 64 requests of 32 KiB in flight per file, so one transfer
// fills a long fat link. A keep-alive probe every 30 seconds closes a
// connection that stops answering for two minutes; a request on a broken
// connection fails, and the next request dials again. The backend does not
// retry by itself: stack backend/retry over it (authentication and host
// key errors are marked permanent, so they are not retried). A cancelled
// context is checked before each request and between the chunks of a
// transfer; a single request in flight cannot be interrupted.
package sftp
