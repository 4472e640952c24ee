// Package sftp stores a repository in a folder on an SFTP server, such as a
// friend's machine running OpenSSH.
//
// By default it speaks SSH in-process with golang.org/x/crypto/ssh and
// SFTP with github.com/pkg/sftp; it does not run the system's ssh program.
// One binary then works the same under cron, on any system, and its
// failures (unknown host, refused key) are errors the CLI can explain,
// rather than prompts from a child process that cron cannot answer. It
// reads the same files OpenSSH does, ~/.ssh/config included, so a user who
// can `ssh host` can use the location. What the built-in client cannot do
// the system ssh does, on request (Config.Command, Config.SSHArgs).
//
// # Locations
//
//	sftp:[user@]host:/absolute/path
//	sftp:[user@]host:relative/path              relative to the home folder
//	sftp://[user[:password]@]host[:port]/absolute/path
//	sftp://[user[:password]@]host[:port]/~/relative/path
//
// The host may be a Host alias of ~/.ssh/config. ParseLocation reads them
// into a Config; Config.String and Backend.Location print them back
// without the password.
//
// # ssh_config
//
// The built-in client reads ~/.ssh/config, then /etc/ssh/ssh_config
// (Config.SSHConfigFile names another file, or none), with
// github.com/kevinburke/ssh_config, and applies to the location's host
// what ssh would: Host blocks (patterns, negation, first value wins),
// Include, HostName (%h), Port, User, IdentityFile (several; ~, ${VAR},
// %d %h %k %n %p %r %u), IdentitiesOnly, IdentityAgent,
// UserKnownHostsFile, GlobalKnownHostsFile and ProxyJump (a list of
// [user@]host[:port] or ssh:// entries, each itself looked up in the
// files, the first one's own ProxyJump followed, as ssh does; each jump
// host's key is checked and its login made as for the server). What the
// location says wins over the files. StrictHostKeyChecking is always
// "yes": an unknown key is refused, never added.
//
// A host to which ProxyCommand, HostKeyAlias, CertificateFile,
// PKCS11Provider, SecurityKeyProvider, KnownHostsCommand,
// CanonicalizeHostname, BindAddress or BindInterface applies, or a Match
// block other than "Match all" may apply (the library matches Match
// blocks differently from ssh), is refused with ErrSSHConfig and a message
// pointing at the system ssh: connecting some other way than ssh would is
// the surprise to avoid. So is a user's file the library cannot parse
// (Match exec, for one); a system file it cannot parse (Fedora's "Match
// final all") is skipped instead, since distributions keep algorithm and
// GSSAPI policy there, not hosts, and the messages that list the files
// read say so. Keywords about algorithms, multiplexing, forwarding,
// keep-alives, terminals and logging do not change where or as whom
// cairn logs in, and are ignored.
//
// # The system ssh
//
// Config.Command runs a command that carries SFTP on its standard input
// and output (restic's -o sftp.command); Config.SSHArgs runs
// `ssh [-p port] [-l user] ARGS -s -- host sftp` (restic's -o sftp.args):
// ssh keeps the first value it is given, so the location wins over ARGS,
// which win over ssh's config files. Everything ssh does then works
// (Match, ProxyCommand, certificates, ControlMaster), and ssh checks the
// host key itself. The command runs in a session of its own, without the
// terminal: it cannot prompt (load keys into ssh-agent), and Ctrl-C
// reaches cairn alone, which ends the command when it closes the backend
// (SIGTERM to its process group, SIGKILL five seconds later). The last
// lines it printed on its error output are quoted when it fails to start
// SFTP; OpenSSH's messages for refused host keys and logins and unknown
// names make that error permanent. A password in the location cannot be
// passed on and is refused.
//
// # Logging in
//
// The keys offered are those of ssh-agent (through SSH_AUTH_SOCK, or the
// socket IdentityAgent names), then the unencrypted private keys of
// IdentityFile, by default ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa and
// ~/.ssh/id_rsa, then a password given in the location. cairn never asks
// for a passphrase: an encrypted key must be loaded into ssh-agent, and a
// failed login says so, naming the file.
//
// # Host keys
//
// The server's key is checked against ~/.ssh/known_hosts and
// /etc/ssh/ssh_known_hosts, or the files UserKnownHostsFile and
// GlobalKnownHostsFile name (hashed entries included). The server is asked
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
// connection that stops answering for two minutes (over a command, the
// probe is an SFTP request for the current folder); a request on a broken
// connection fails, and the next request dials again. The backend does not
// retry by itself: stack backend/retry over it (authentication and host
// key errors are marked permanent, so they are not retried). A cancelled
// context is checked before each request and between the chunks of a
// transfer; a single request in flight cannot be interrupted.
package sftp
