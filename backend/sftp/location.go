package sftp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrLocation is wrapped by every error ParseLocation returns.
var ErrLocation = errors.New("invalid sftp location")

// ErrOption is wrapped by the errors about backend options (-o sftp.*):
// an unknown key, a value that does not parse, options that conflict.
var ErrOption = errors.New("invalid sftp option")

// DefaultPort is the SSH port used when a location names none.
const DefaultPort = 22

// Config says where a repository lies and how to reach it. Only Host and
// Path are required; Open fills the rest from the user's SSH set-up: the
// ssh_config files first (Host aliases, HostName, Port, User,
// IdentityFile, ProxyJump, ...; see the package doc), then the defaults.
// What the location says wins over the ssh_config files.
type Config struct {
	// Host is the server's name or IP address (an IPv6 address without
	// brackets), or a Host alias of the ssh_config files.
	Host string
	// Port is the server's SSH port; 0 means the ssh_config's Port, else
	// 22.
	Port int
	// User is the account to log in as; "" means the ssh_config's User,
	// else the local user's name.
	User string
	// Password, when set, is tried after the keys. It is never printed:
	// String and GoString leave it out.
	Password string
	// Path is the repository folder on the server. A path that does not
	// start with "/" is relative to the account's home folder.
	Path string

	// SSHConfigFile is the ssh_config file the built-in client reads
	// (-o sftp.config). Empty means ~/.ssh/config, then
	// /etc/ssh/ssh_config, those of them that exist, as ssh reads them;
	// NoSSHConfig means none.
	SSHConfigFile string
	// Command, when not nil, is run in place of the built-in client, with
	// the program first (-o sftp.command): it must carry SFTP on its
	// standard input and output, as `ssh HOST -s sftp` does. Host, Port
	// and User then only name the location in messages.
	Command []string
	// SSHArgs, when not nil (even empty), runs the system's ssh in place
	// of the built-in client, with these arguments added (-o sftp.args):
	// `ssh [-p Port] [-l User] SSHArgs... -s -- Host sftp`. ssh then reads
	// ~/.ssh/config, keys and known_hosts itself.
	SSHArgs []string

	// KnownHostsFile, when set, is the only known_hosts file consulted,
	// for every server on the way. Empty means those the ssh_config
	// names (UserKnownHostsFile, GlobalKnownHostsFile), else
	// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, those of them
	// that exist.
	KnownHostsFile string
	// IdentityFiles, when not nil, are the private key files to offer
	// (those that exist), to every server on the way. Nil means those of
	// the ssh_config's IdentityFile, else ~/.ssh/id_ed25519,
	// ~/.ssh/id_ecdsa and ~/.ssh/id_rsa.
	IdentityFiles []string
	// DisableAgent keeps ssh-agent out even when SSH_AUTH_SOCK is set.
	DisableAgent bool
	// HostKeyCallback, when set, replaces the known_hosts check. It is for
	// tests and for callers that pin a key themselves.
	HostKeyCallback ssh.HostKeyCallback

	// keepAlive, when not zero, replaces keepAliveInterval and
	// keepAliveTimeout (test seam).
	keepAlive time.Duration
	// systemSSHConfig, when set, replaces /etc/ssh/ssh_config (test
	// seam).
	systemSSHConfig string
}

// Option is a backend option: a key of SetOption, and what it does.
type Option struct {
	Key   string // without the "sftp." prefix
	Value string // what the value is, for help
	Help  string
}

// Options lists the keys SetOption takes.
var Options = []Option{
	{"command", "COMMAND", "run COMMAND, which must speak SFTP on its standard input and output (e.g. \"ssh -p 2222 alice@host -s sftp\"), in place of the built-in SSH client; it is split into words as a shell would, without a shell"},
	{"args", "ARGS", "run the system ssh in place of the built-in client, with ARGS added: ssh [-p PORT] [-l USER] ARGS -s -- HOST sftp (empty: nothing added)"},
	{"config", "FILE|none", "the ssh_config file the built-in client reads in place of ~/.ssh/config and /etc/ssh/ssh_config (none: no file)"},
}

// SetOption sets the backend option key (without the "sftp." prefix) to
// value. Unknown keys, bad values and options that conflict with those
// set before give an error wrapping ErrOption.
func (c *Config) SetOption(key, value string) error {
	switch key {
	case "command":
		words, err := c.sshWords(key, value, false, c.SSHArgs)
		if err != nil {
			return err
		}
		c.Command = words
	case "args":
		words, err := c.sshWords(key, value, true, c.Command)
		if err != nil {
			return err
		}
		c.SSHArgs = words
	case "config":
		if value == "" {
			return fmt.Errorf("%w: sftp.config is empty (a file, or none)", ErrOption)
		}
		if hasControl(value) {
			return fmt.Errorf("%w: sftp.config holds control characters", ErrOption)
		}
		if c.Command != nil || c.SSHArgs != nil {
			return errConfigWithSSH
		}
		c.SSHConfigFile = value
	default:
		var keys []string
		for _, o := range Options {
			keys = append(keys, "sftp."+o.Key)
		}
		return fmt.Errorf("%w: unknown option %q (known: %s)", ErrOption, "sftp."+key, strings.Join(keys, ", "))
	}
	return nil
}

// sshWords splits the value of sftp.command or sftp.args (key) into
// words, refusing an empty one unless allowEmpty, and refusing it when
// the other of the two (other) or sftp.config was set before. An empty
// value allowed is an empty, not nil, list: set, with nothing in it.
func (c *Config) sshWords(key, value string, allowEmpty bool, other []string) ([]string, error) {
	words, err := SplitCommandLine(value)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: sftp.%s: %v", ErrOption, key, err)
	case len(words) == 0 && !allowEmpty:
		return nil, fmt.Errorf("%w: sftp.%s is empty", ErrOption, key)
	case other != nil:
		return nil, errCommandAndArgs
	case c.SSHConfigFile != "":
		return nil, errConfigWithSSH
	}
	if words == nil {
		words = []string{}
	}
	return words, nil
}

// ParseLocation parses a repository location in one of three forms:
//
//	sftp:[user@]host:/absolute/path
//	sftp:[user@]host:relative/path        (relative to the home folder)
//	sftp://[user[:password]@]host[:port]/absolute/path
//	sftp://[user[:password]@]host[:port]/~/relative/path
//
// In the first two forms an IPv6 address is written in brackets, a path
// starting with "~/" is relative to the home folder too, and a user name or
// password holding special characters must use the URL form (with %XX
// escapes). Every error wraps ErrLocation and never holds the password.
func ParseLocation(s string) (Config, error) {
	rest, ok := strings.CutPrefix(s, "sftp:")
	if !ok {
		return Config{}, fmt.Errorf("%w: %q does not start with \"sftp:\"", ErrLocation, redact(s))
	}
	var (
		cfg Config
		err error
	)
	if strings.HasPrefix(rest, "//") {
		cfg, err = parseURL(s)
	} else {
		cfg, err = parseShort(rest)
	}
	if err != nil {
		return Config{}, err
	}
	if err := cfg.check(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func parseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the whole input, password included.
		return Config{}, fmt.Errorf("%w: %q is not a valid URL", ErrLocation, redact(s))
	}
	if u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return Config{}, fmt.Errorf("%w: %q: a query or fragment is not allowed", ErrLocation, redact(s))
	}
	var cfg Config
	if u.User != nil {
		cfg.User = u.User.Username()
		if cfg.User == "" {
			return Config{}, fmt.Errorf("%w: %q: empty user name", ErrLocation, redact(s))
		}
		cfg.Password, _ = u.User.Password()
	}
	cfg.Host = u.Hostname()
	if strings.HasPrefix(u.Host, "[") && !isIPv6(cfg.Host) {
		return Config{}, fmt.Errorf("%w: %q: only an IPv6 address goes in brackets", ErrLocation, redact(s))
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Config{}, fmt.Errorf("%w: %q: port must be 1 to 65535", ErrLocation, redact(s))
		}
		cfg.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return Config{}, fmt.Errorf("%w: %q: empty port", ErrLocation, redact(s))
	}
	switch p := u.Path; {
	case p == "":
		return Config{}, fmt.Errorf("%w: %q: no folder (write sftp://host/absolute/path or sftp://host/~/path)", ErrLocation, redact(s))
	case p == "/~" || strings.HasPrefix(p, "/~/"):
		cfg.Path = folderPath(p[1:])
	default:
		cfg.Path = path.Clean(p)
	}
	return cfg, nil
}

// folderPath is Config.Path for the folder part of a location: "~", and
// what starts with "~/", are in the login folder ("." and a relative
// path); anything else is cleaned as it stands.
func folderPath(p string) string {
	switch {
	case p == "~" || p == "~/":
		return "."
	case strings.HasPrefix(p, "~/"):
		return path.Clean(p[len("~/"):])
	}
	return path.Clean(p)
}

func parseShort(s string) (Config, error) {
	var cfg Config
	if at := strings.IndexByte(s, '@'); at >= 0 {
		user := s[:at]
		switch {
		case !strings.ContainsAny(user, ":/["):
			if user == "" {
				return Config{}, fmt.Errorf("%w: %q: empty user name", ErrLocation, "sftp:"+s)
			}
			cfg.User, s = user, s[at+1:]
		case strings.Contains(user, ":") && !strings.Contains(user, "/"):
			// "user:password@host:path" or "host:path@..." cannot be told
			// apart; the URL form says which is meant.
			return Config{}, fmt.Errorf("%w: an '@' after a ':' is ambiguous: write a password, or a path holding '@', in the form sftp://user:password@host/path", ErrLocation)
		}
	}
	var rest string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Config{}, fmt.Errorf("%w: %q: missing ']' after an IPv6 address", ErrLocation, "sftp:"+s)
		}
		cfg.Host, rest = s[1:end], s[end+1:]
		if !isIPv6(cfg.Host) {
			return Config{}, fmt.Errorf("%w: %q: only an IPv6 address goes in brackets", ErrLocation, "sftp:"+s)
		}
		if !strings.HasPrefix(rest, ":") {
			return Config{}, fmt.Errorf("%w: %q: missing ':' between host and path", ErrLocation, "sftp:"+s)
		}
		rest = rest[1:]
	} else {
		var ok bool
		cfg.Host, rest, ok = strings.Cut(s, ":")
		if !ok {
			return Config{}, fmt.Errorf("%w: %q: missing ':' between host and path (sftp:host:/path)", ErrLocation, "sftp:"+s)
		}
	}
	if rest == "" {
		return Config{}, fmt.Errorf("%w: %q: no folder after the host", ErrLocation, "sftp:"+s)
	}
	cfg.Path = folderPath(rest)
	return cfg, nil
}

// check validates the fields a location sets.
func (c Config) check() error {
	if c.Host == "" {
		return fmt.Errorf("%w: no host", ErrLocation)
	}
	if !validHost(c.Host) {
		return fmt.Errorf("%w: host %q is not a host name or address", ErrLocation, c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("%w: port %d is not 1 to 65535", ErrLocation, c.Port)
	}
	if hasControl(c.User) {
		return fmt.Errorf("%w: user name holds control characters", ErrLocation)
	}
	if c.Path == "" {
		return fmt.Errorf("%w: no folder", ErrLocation)
	}
	if hasControl(c.Path) {
		return fmt.Errorf("%w: folder %q holds control characters", ErrLocation, c.Path)
	}
	return nil
}

// validHost accepts a DNS name (letters, digits, '-', '_', '.'; not
// starting with '-', which a command would read as an option), an IPv4
// address or an IPv6 address.
func validHost(s string) bool {
	if isIPv6(s) {
		return true
	}
	if strings.HasPrefix(s, "-") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return s != ""
}

func isIPv6(s string) bool {
	return strings.Contains(s, ":") && net.ParseIP(s) != nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// redact removes a password from a location for messages.
func redact(s string) string {
	rest, ok := strings.CutPrefix(s, "sftp://")
	if !ok {
		return s
	}
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return s
	}
	user, _, hasPW := strings.Cut(rest[:at], ":")
	if !hasPW {
		return s
	}
	return "sftp://" + user + ":***" + rest[at:]
}

// port is the port to dial.
func (c Config) port() int {
	if c.Port == 0 {
		return DefaultPort
	}
	return c.Port
}

// String is the location in a form ParseLocation reads back, without the
// password: the short form when the port is the default and the names
// need no escaping, else the URL form.
func (c Config) String() string {
	host := c.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	simpleUser := !strings.ContainsAny(c.User, "@:/[%") && !hasControl(c.User)
	if c.port() == DefaultPort && simpleUser && !strings.Contains(c.Path, "@") && !strings.HasPrefix(c.Path, "//") {
		user := ""
		if c.User != "" {
			user = c.User + "@"
		}
		p := c.Path
		if p == "." {
			p = "~"
		} else if strings.HasPrefix(p, "~") {
			p = "./" + p // a literal "~" folder, not the home folder
		}
		return "sftp:" + user + host + ":" + p
	}
	u := url.URL{Scheme: "sftp", Host: host}
	if c.port() != DefaultPort {
		u.Host = net.JoinHostPort(c.Host, strconv.Itoa(c.port()))
	}
	if c.User != "" {
		u.User = url.User(c.User)
	}
	switch {
	case c.Path == ".":
		u.Path = "/~"
	case path.IsAbs(c.Path):
		u.Path = c.Path
	default:
		u.Path = "/~/" + c.Path
	}
	return u.String()
}

// GoString is String, so %#v never shows the password either.
func (c Config) GoString() string { return "sftp.Config(" + strconv.Quote(c.String()) + ")" }
