package sftp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"

	"github.com/cairn-backup/cairn/backend"
)

// ErrSSHConfig is wrapped by the errors about ssh_config files: one that
// cannot be read, or that asks for something the built-in client does not
// do for the host being reached. They are permanent.
var ErrSSHConfig = errors.New("ssh config")

// NoSSHConfig as Config.SSHConfigFile reads no ssh_config file.
const NoSSHConfig = "none"

const (
	// systemSSHConfig is the file ssh reads after the user's.
	systemSSHConfig = "/etc/ssh/ssh_config"
	// maxSSHConfigSize caps an ssh_config file read.
	maxSSHConfigSize = 1 << 20
	// maxHops bounds a chain of jump hosts, the target included: ssh
	// itself has no bound, but a loop in ~/.ssh/config must end.
	maxHops = 8
	// maxIncludeDepth is how deep Include nests, as the library allows.
	maxIncludeDepth = 5
)

// refusedKeywords are the ssh_config keywords that would make ssh reach
// the server differently, prove who the user is differently or check the
// server differently, and that the built-in client does not do. A host
// they apply to is refused rather than reached some other way; the
// system ssh (-o sftp.args, -o sftp.command) does them.
var refusedKeywords = []string{
	"ProxyCommand", "HostKeyAlias", "CertificateFile", "PKCS11Provider",
	"SecurityKeyProvider", "KnownHostsCommand", "CanonicalizeHostname",
	"BindAddress", "BindInterface",
}

// sshConfig is the ssh_config files read, in the order ssh reads them.
// For each keyword the first value found counts, except IdentityFile,
// whose values add up (as in ssh).
type sshConfig struct {
	files []sshConfigFile
	// skipped are the system files skipped as unreadable, with why.
	skipped []string
}

type sshConfigFile struct {
	name string
	cfg  *ssh_config.Config
}

// loadSSHConfig reads file: "" is ~/.ssh/config then the system file
// (system, "" for /etc/ssh/ssh_config), those that exist; NoSSHConfig
// none.
//
// A user's file the library cannot parse is an error. The system file is
// then skipped instead: distributions put there what the library cannot
// read (Fedora's "Match final all" in /etc/ssh/ssh_config.d) around
// settings the built-in client has no use for (algorithms, GSSAPI,
// SendEnv), and it seldom describes hosts.
func loadSSHConfig(file, system string) (*sshConfig, error) {
	if system == "" {
		system = systemSSHConfig
	}
	var names []string
	switch file {
	case NoSSHConfig:
		return &sshConfig{}, nil
	case "":
		if f, err := homeFile("config"); err == nil {
			names = append(names, f)
		}
		names = append(names, system)
	default:
		names = []string{file}
	}
	c := &sshConfig{}
	for _, name := range names {
		optional := file == ""
		data, err := readSmallFile(name, maxSSHConfigSize)
		if errors.Is(err, fs.ErrNotExist) && optional {
			continue
		}
		if err != nil {
			return nil, backend.Permanent(fmt.Errorf("%w: %v", ErrSSHConfig, err))
		}
		// The library reads files named by Include itself, relative to
		// ~/.ssh, as ssh does for the user's file.
		cfg, err := ssh_config.DecodeBytes(data)
		if err != nil && optional && name == system {
			c.skipped = append(c.skipped, fmt.Sprintf("%s (%v)", name, err))
			continue
		}
		if err != nil {
			return nil, backend.Permanent(fmt.Errorf("%w: %s: %v%s", ErrSSHConfig, name, err, sshConfigHint))
		}
		c.files = append(c.files, sshConfigFile{name: name, cfg: cfg})
	}
	return c, nil
}

// sshConfigHint says how to get past an ssh_config the built-in client
// cannot follow.
const sshConfigHint = " (cairn's built-in SSH client cannot follow this: run the system ssh with -o sftp.args= (empty), " +
	"or -o sftp.command=\"ssh HOST -s sftp\"; or ignore the ssh config files with -o sftp.config=none)"

// readSmallFile reads name, refusing one larger than limit bytes.
func readSmallFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close() // read-only
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// names lists the files read, for messages.
func (c *sshConfig) names() string {
	var n []string
	for _, f := range c.files {
		n = append(n, f.name)
	}
	s := strings.Join(n, " and ")
	if s == "" {
		s = "no ssh config file"
	}
	if len(c.skipped) > 0 {
		s += " (skipped: " + strings.Join(c.skipped, "; ") + ")"
	}
	return s
}

// get is the first value of key for host.
func (c *sshConfig) get(host, key string) (string, error) {
	for _, f := range c.files {
		v, err := f.cfg.Get(host, key)
		if err != nil {
			return "", backend.Permanent(fmt.Errorf("%w: %s: %v", ErrSSHConfig, f.name, err))
		}
		if v != "" {
			return v, nil
		}
	}
	return "", nil
}

// getAll is every value of key for host, in order.
func (c *sshConfig) getAll(host, key string) ([]string, error) {
	var all []string
	for _, f := range c.files {
		v, err := f.cfg.GetAll(host, key)
		if err != nil {
			return nil, backend.Permanent(fmt.Errorf("%w: %s: %v", ErrSSHConfig, f.name, err))
		}
		all = append(all, v...)
	}
	return all, nil
}

// checkMatch refuses a Match block that may apply to the host reached as
// alias with the host name hostname. The library matches "Match host"
// against the alias and reads a list of criteria as host patterns, where
// ssh matches the host name and checks every criterion, so such a block
// could apply where ssh would not, or be missed where ssh applies it.
// "Match all" is what ssh does with it.
func (c *sshConfig) checkMatch(alias, hostname string) error {
	for _, f := range c.files {
		if err := checkMatchIn(f.name, f.cfg, alias, hostname, 0); err != nil {
			return err
		}
	}
	return nil
}

func checkMatchIn(name string, cfg *ssh_config.Config, alias, hostname string, depth int) error {
	if depth > maxIncludeDepth {
		return nil // the library refused deeper nesting already
	}
	for _, h := range cfg.Hosts {
		head, _, _ := strings.Cut(strings.TrimSpace(h.String()), "\n")
		words := strings.FieldsFunc(head, func(r rune) bool { return r == ' ' || r == '\t' || r == '=' })
		if len(words) > 0 && strings.EqualFold(words[0], "Match") && !(len(words) == 2 && strings.EqualFold(words[1], "all")) {
			for _, p := range h.Patterns {
				for _, alt := range strings.Split(strings.TrimPrefix(p.String(), "!"), ",") {
					alt = strings.TrimPrefix(alt, "!")
					if hostMatch(alt, alias) || hostMatch(alt, hostname) {
						return backend.Permanent(fmt.Errorf("%w: %s: %q may apply to %s%s", ErrSSHConfig, name, head, alias, sshConfigHint))
					}
				}
			}
		}
		for _, n := range h.Nodes {
			inc, ok := n.(*ssh_config.Include)
			if !ok {
				continue
			}
			for _, file := range includeFiles(inc) {
				data, err := readSmallFile(file, maxSSHConfigSize)
				if err != nil {
					return backend.Permanent(fmt.Errorf("%w: %s: %v", ErrSSHConfig, name, err))
				}
				sub, err := ssh_config.DecodeBytes(data)
				if err != nil {
					return backend.Permanent(fmt.Errorf("%w: %s: %v%s", ErrSSHConfig, file, err, sshConfigHint))
				}
				if err := checkMatchIn(file, sub, alias, hostname, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// includeFiles lists the files an Include names, found as the library
// finds them.
func includeFiles(inc *ssh_config.Include) []string {
	words := strings.FieldsFunc(strings.TrimSpace(inc.String()), func(r rune) bool { return r == ' ' || r == '\t' || r == '=' })
	var out []string
	for _, w := range words[1:] {
		if strings.HasPrefix(w, "#") {
			break
		}
		var p string
		switch {
		case filepath.IsAbs(w):
			p = w
		case strings.HasPrefix(w, "~/"):
			p = filepath.Join(passwdHome(), w[2:])
		default:
			p = filepath.Join(passwdHome(), ".ssh", w)
		}
		m, err := filepath.Glob(p)
		if err == nil {
			out = append(out, m...)
		}
	}
	return out
}

// passwdHome is the home folder the library resolves Include paths in.
func passwdHome() string {
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return os.Getenv("HOME")
}

// hostMatch matches an ssh_config pattern ('*' any run, '?' one
// character) against a host name, ignoring case as ssh does.
func hostMatch(pattern, name string) bool {
	ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(name))
	return err == nil && ok
}

// endpoint is one SSH server to log in to: the repository's server or a
// jump host on the way.
type endpoint struct {
	alias string // the name as given: in the location or in ProxyJump
	host  string // the name or address to connect to (HostName)
	port  int
	user  string
	// identityFiles are the private key files to offer; nil means the
	// default ones.
	identityFiles []string
	// identitiesOnly offers, of the agent's keys, only those of
	// identityFiles.
	identitiesOnly bool
	// agentSock is the ssh-agent socket: "" for SSH_AUTH_SOCK, "none"
	// for none.
	agentSock string
	// knownHosts are the known_hosts files; nil means the default ones
	// (the ssh_config names none).
	knownHosts []string
	// jumps are the ProxyJump hosts, as written.
	jumps []jumpSpec
	// fromConfig says an ssh_config file set something for this host.
	fromConfig bool
	// givenUser and givenPort are what the location or the ProxyJump
	// entry said ("" and 0 when nothing).
	givenUser string
	givenPort int
}

// addr is host:port for dialing and known_hosts.
func (e endpoint) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

// jumpSpec is one ProxyJump entry: [user@]host[:port].
type jumpSpec struct {
	user string
	host string
	port int
}

// resolve works out how to reach alias: location values (user, port; 0
// or "" when the location gives none) win over the ssh_config files,
// which win over the defaults, as in ssh.
func (c *sshConfig) resolve(alias, locUser string, locPort int) (endpoint, error) {
	// ssh lowercases the name it is given before it looks it up.
	lower := strings.ToLower(alias)
	l := &hostLookup{c: c, alias: alias, lower: lower,
		e: endpoint{alias: alias, host: lower, port: locPort, user: locUser, givenUser: locUser, givenPort: locPort}}
	home, err := os.UserHomeDir()
	if err != nil {
		home = ""
	}
	localName, _ := localUser()
	if err := l.hostName(); err != nil {
		return endpoint{}, err
	}
	if err := l.portAndUser(localName); err != nil {
		return endpoint{}, err
	}
	tk := tokens{host: l.e.host, alias: alias, port: l.e.port, user: l.e.user, home: home, localUser: localName}
	for _, step := range []func(tokens) error{l.identities, l.knownHosts, l.proxyJump} {
		if err := step(tk); err != nil {
			return endpoint{}, err
		}
	}
	return l.e, nil
}

// hostLookup is one run of resolve: the endpoint being filled in from
// the ssh_config files for one host.
type hostLookup struct {
	c     *sshConfig
	alias string // the name as given
	lower string // alias lowercased: the name looked up
	e     endpoint
}

// get is the first value of key for the host, and notes in the endpoint
// that the ssh_config set something for it.
func (l *hostLookup) get(key string) (string, error) {
	v, err := l.c.get(l.lower, key)
	if v != "" {
		l.e.fromConfig = true
	}
	return v, err
}

// fail is the permanent ErrSSHConfig error about a value for the host,
// naming the files read.
func (l *hostLookup) fail(format string, args ...any) error {
	return backend.Permanent(fmt.Errorf("%w: %s: "+format, append([]any{ErrSSHConfig, l.c.names()}, args...)...))
}

// hostName applies HostName, then refuses the host if a Match block may
// apply to it or a keyword the built-in client does not do
// (refusedKeywords) is set for it.
func (l *hostLookup) hostName() error {
	v, err := l.get("HostName")
	if err != nil {
		return err
	}
	if v != "" {
		h, err := expandTokens(v, "h", tokens{host: l.lower})
		if err != nil {
			return l.fail("HostName %q for %s: %v", v, l.alias, err)
		}
		if !validHost(h) {
			return l.fail("HostName %q for %s is not a host name or address", h, l.alias)
		}
		l.e.host = h
	}
	if err := l.c.checkMatch(l.lower, strings.ToLower(l.e.host)); err != nil {
		return err
	}
	for _, k := range refusedKeywords {
		v, err := l.get(k)
		if err != nil {
			return err
		}
		switch {
		case v == "":
		case strings.EqualFold(v, "none") && k != "HostKeyAlias" && k != "BindAddress" && k != "BindInterface":
		case k == "CanonicalizeHostname" && strings.EqualFold(v, "no"):
		default:
			return l.fail("%s %s applies to %s, and cairn's built-in SSH client does not do it%s", k, v, l.alias, sshConfigHint)
		}
	}
	return nil
}

// portAndUser fills in the port and the user the location did not give:
// from Port and User, else DefaultPort and localName.
func (l *hostLookup) portAndUser(localName string) error {
	if l.e.port == 0 {
		v, err := l.get("Port")
		if err != nil {
			return err
		}
		if v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return l.fail("Port %q for %s is not 1 to 65535", v, l.alias)
			}
			l.e.port = n
		} else {
			l.e.port = DefaultPort
		}
	}
	if l.e.user == "" {
		v, err := l.get("User")
		if err != nil {
			return err
		}
		if hasControl(v) {
			return l.fail("User for %s holds control characters", l.alias)
		}
		l.e.user = v
	}
	if l.e.user == "" {
		if localName == "" {
			return errors.New("the location names no user and the local user name is unknown")
		}
		l.e.user = localName
	}
	return nil
}

// identities applies IdentityFile, IdentitiesOnly and IdentityAgent.
func (l *hostLookup) identities(tk tokens) error {
	files, err := l.c.getAll(l.lower, "IdentityFile")
	if err != nil {
		return err
	}
	for _, f := range files {
		l.e.fromConfig = true
		p, err := expandPath(f, tk)
		if err != nil {
			return l.fail("IdentityFile %q for %s: %v", f, l.alias, err)
		}
		l.e.identityFiles = append(l.e.identityFiles, p)
	}
	v, err := l.get("IdentitiesOnly")
	if err != nil {
		return err
	}
	l.e.identitiesOnly = strings.EqualFold(v, "yes")
	v, err = l.get("IdentityAgent")
	if err != nil || v == "" {
		return err
	}
	switch {
	case strings.EqualFold(v, "none"):
		l.e.agentSock = NoSSHConfig
	case v == "SSH_AUTH_SOCK" || v == "$SSH_AUTH_SOCK":
	default:
		p, err := expandPath(v, tk)
		if err != nil {
			return l.fail("IdentityAgent %q for %s: %v", v, l.alias, err)
		}
		l.e.agentSock = p
	}
	return nil
}

// knownHosts applies UserKnownHostsFile and GlobalKnownHostsFile: the
// files they name, else cairn's defaults (see Config.KnownHostsFile).
// When neither is set the endpoint keeps nil (the default files).
func (l *hostLookup) knownHosts(tk tokens) error {
	var known []string
	set := false
	for _, key := range []string{"UserKnownHostsFile", "GlobalKnownHostsFile"} {
		v, err := l.get(key)
		if err != nil {
			return err
		}
		if v == "" {
			known = append(known, defaultKnownHosts(key, tk.home)...)
			continue
		}
		set = true
		for _, f := range strings.Fields(v) {
			if strings.EqualFold(f, "none") {
				continue
			}
			p, err := expandPath(f, tk)
			if err != nil {
				return l.fail("%s %q for %s: %v", key, f, l.alias, err)
			}
			known = append(known, p)
		}
	}
	if set {
		l.e.knownHosts = append([]string{}, known...)
	}
	return nil
}

// proxyJump applies ProxyJump: the jump hosts, as written.
func (l *hostLookup) proxyJump(tk tokens) error {
	v, err := l.get("ProxyJump")
	if err != nil || v == "" || strings.EqualFold(v, "none") {
		return err
	}
	s, err := expandTokens(v, "hnpr", tk)
	if err != nil {
		return l.fail("ProxyJump %q for %s: %v", v, l.alias, err)
	}
	for _, part := range strings.Split(s, ",") {
		j, err := parseJump(part)
		if err != nil {
			return l.fail("ProxyJump %q for %s: %v", v, l.alias, err)
		}
		l.e.jumps = append(l.e.jumps, j)
	}
	return nil
}

// defaultKnownHosts are the known_hosts files read when the ssh_config
// names none for key.
func defaultKnownHosts(key, home string) []string {
	if key == "GlobalKnownHostsFile" {
		return []string{systemKnownHosts}
	}
	if home == "" {
		return nil
	}
	return []string{filepath.Join(home, ".ssh", "known_hosts")}
}

// chain lists the servers to log in to, in order, to reach target: the
// jump hosts, then target itself. As in ssh, the first jump host's own
// ProxyJump is followed; those of later jump hosts are not (ssh reaches
// each through the ones before it).
func (c *sshConfig) chain(target endpoint) ([]endpoint, error) {
	hops, err := c.chainDepth(target, 0)
	if err != nil {
		return nil, err
	}
	if len(hops) > maxHops {
		return nil, backend.Permanent(fmt.Errorf("%w: %s: more than %d jump hosts on the way to %s (a ProxyJump loop?)", ErrSSHConfig, c.names(), maxHops-1, target.alias))
	}
	return hops, nil
}

func (c *sshConfig) chainDepth(target endpoint, depth int) ([]endpoint, error) {
	if len(target.jumps) == 0 {
		return []endpoint{target}, nil
	}
	if depth >= maxHops {
		return nil, backend.Permanent(fmt.Errorf("%w: %s: more than %d jump hosts on the way to %s (a ProxyJump loop?)", ErrSSHConfig, c.names(), maxHops-1, target.alias))
	}
	var hops []endpoint
	for i, j := range target.jumps {
		e, err := c.resolve(j.host, j.user, j.port)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			pre, err := c.chainDepth(e, depth+1)
			if err != nil {
				return nil, err
			}
			hops = append(hops, pre...)
			continue
		}
		e.jumps = nil
		hops = append(hops, e)
	}
	return append(hops, target), nil
}

// parseJump reads one ProxyJump entry: [user@]host[:port] or
// ssh://[user@]host[:port].
func parseJump(s string) (jumpSpec, error) {
	var j jumpSpec
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "ssh://"); ok {
		u, err := url.Parse("ssh://" + rest)
		if err != nil || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
			return j, fmt.Errorf("%q is not ssh://[user@]host[:port]", s)
		}
		if u.User != nil {
			j.user = u.User.Username()
		}
		j.host = u.Hostname()
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return j, fmt.Errorf("port in %q is not 1 to 65535", s)
			}
			j.port = n
		}
	} else {
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			j.user, s = s[:at], s[at+1:]
			if j.user == "" {
				return j, errors.New("empty user name")
			}
		}
		host, port := s, ""
		if strings.HasPrefix(s, "[") {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return j, fmt.Errorf("missing ']' in %q", s)
			}
			host, port = s[1:end], strings.TrimPrefix(s[end+1:], ":")
			if s[end+1:] != "" && !strings.HasPrefix(s[end+1:], ":") {
				return j, fmt.Errorf("%q is not [user@]host[:port]", s)
			}
		} else if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 1 {
			host, port = s[:i], s[i+1:]
		}
		j.host = host
		if port != "" {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return j, fmt.Errorf("port in %q is not 1 to 65535", s)
			}
			j.port = n
		}
	}
	if !validHost(j.host) {
		return j, fmt.Errorf("%q is not a host name or address", j.host)
	}
	if hasControl(j.user) {
		return j, errors.New("user name holds control characters")
	}
	return j, nil
}

// tokens are the values of ssh_config's %-tokens cairn expands.
type tokens struct {
	host      string // %h: the host name to connect to
	alias     string // %n, %k: the name as given
	port      int    // %p
	user      string // %r: the remote user
	home      string // %d and ~
	localUser string // %u
}

// expandTokens replaces the %-tokens in s, allowing only those in
// allowed ("%%" always).
func expandTokens(s, allowed string, t tokens) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("'%' at the end")
		}
		i++
		c := s[i]
		if c == '%' {
			b.WriteByte('%')
			continue
		}
		if !strings.ContainsRune(allowed, rune(c)) {
			return "", fmt.Errorf("token %%%c is not supported here", c)
		}
		switch c {
		case 'h':
			b.WriteString(t.host)
		case 'n', 'k':
			b.WriteString(t.alias)
		case 'p':
			b.WriteString(strconv.Itoa(t.port))
		case 'r':
			b.WriteString(t.user)
		case 'd':
			if t.home == "" {
				return "", errors.New("%d: the home folder is unknown")
			}
			b.WriteString(t.home)
		case 'u':
			b.WriteString(t.localUser)
		}
	}
	return b.String(), nil
}

// expandPath expands a file name as ssh does in IdentityFile,
// UserKnownHostsFile and IdentityAgent: a leading "~", ${VAR} and the
// tokens %d %h %k %n %p %r %u. A relative name stays relative to the
// working folder.
func expandPath(s string, t tokens) (string, error) {
	if s == "~" || strings.HasPrefix(s, "~/") {
		if t.home == "" {
			return "", errors.New("~: the home folder is unknown")
		}
		s = t.home + s[1:]
	}
	s, err := expandEnv(s)
	if err != nil {
		return "", err
	}
	return expandTokens(s, "dhknpru", t)
}

// expandEnv replaces ${VAR} with the variable's value; an unset variable
// is an error, as in ssh.
func expandEnv(s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", errors.New("'${' without '}'")
		}
		name := s[i+2 : i+end]
		v, ok := os.LookupEnv(name)
		if !ok || name == "" {
			return "", fmt.Errorf("environment variable %q is not set", name)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+end+1:]
	}
}
