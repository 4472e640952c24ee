package sftp

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// writeSSHConfig writes text as an ssh_config file in a new home folder,
// points HOME at it and returns the file's name.
func writeSSHConfig(t *testing.T, text string) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(home, ".ssh", "config")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// resolveHops resolves loc as newDialer does, with file as the only
// ssh_config file.
func resolveHops(t *testing.T, file, loc string) ([]endpoint, error) {
	t.Helper()
	cfg, err := ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := loadSSHConfig(file, "")
	if err != nil {
		return nil, err
	}
	target, err := sc.resolve(cfg.Host, cfg.User, cfg.Port)
	if err != nil {
		return nil, err
	}
	return sc.chain(target)
}

// hopSummary is what a test checks of an endpoint.
type hopSummary struct {
	Host, User string
	Port       int
	Keys       []string
	Known      []string
}

func summarize(eps []endpoint) []hopSummary {
	var out []hopSummary
	for _, e := range eps {
		out = append(out, hopSummary{Host: e.host, User: e.user, Port: e.port, Keys: e.identityFiles, Known: e.knownHosts})
	}
	return out
}

func TestResolveSSHConfig(t *testing.T) {
	const text = `
# A comment
Host nas backup-*
    HostName %h.example.org
    User alice
    Port 2222
    IdentityFile ~/.ssh/backup_%r
    IdentityFile "${CAIRN_TEST_KEYS}/second key"
    UserKnownHostsFile ~/.ssh/kh_one ~/.ssh/kh_two

Host pi
    HostName 192.168.7.7
    ProxyJump bob@nas:2200

Host deep
    ProxyJump pi,ssh://carol@gate:2022

Host loop1
    ProxyJump loop2
Host loop2
    ProxyJump loop1

Host none-jump
    ProxyJump none

Host *.example.org
    Port 2200
    User nobody

Host *
    User everyone
`
	file := writeSSHConfig(t, text)
	home := os.Getenv("HOME")
	t.Setenv("CAIRN_TEST_KEYS", "/keys")
	local, err := localUser()
	if err != nil {
		t.Fatal(err)
	}
	_ = local
	nas := hopSummary{Host: "nas.example.org", User: "alice", Port: 2222,
		Keys:  []string{home + "/.ssh/backup_alice", "/keys/second key"},
		Known: []string{home + "/.ssh/kh_one", home + "/.ssh/kh_two", systemKnownHosts}}
	for _, tc := range []struct {
		loc  string
		want []hopSummary
	}{
		{"sftp:nas:/srv", []hopSummary{nas}},
		// The location wins over the ssh config.
		{"sftp://bob@nas:22/srv", []hopSummary{{Host: "nas.example.org", User: "bob", Port: 22,
			Keys:  []string{home + "/.ssh/backup_bob", "/keys/second key"},
			Known: nas.Known}}},
		// Host patterns, case ignored as ssh does.
		{"sftp:Backup-7:/srv", []hopSummary{{Host: "backup-7.example.org", User: "alice", Port: 2222,
			Keys: nas.Keys, Known: nas.Known}}},
		// Not an alias: the name as given, the defaults of Host *.
		{"sftp:other.net:/srv", []hopSummary{{Host: "other.net", User: "everyone", Port: 22}}},
		{"sftp:x.example.org:/srv", []hopSummary{{Host: "x.example.org", User: "nobody", Port: 2200}}},
		// A jump host, itself an alias.
		{"sftp:pi:/srv", []hopSummary{
			{Host: "nas.example.org", User: "bob", Port: 2200, Keys: []string{home + "/.ssh/backup_bob", "/keys/second key"}, Known: nas.Known},
			{Host: "192.168.7.7", User: "everyone", Port: 22}}},
		// Two jump hosts: the first one's own ProxyJump is followed.
		{"sftp:deep:/srv", []hopSummary{
			{Host: "nas.example.org", User: "bob", Port: 2200, Keys: []string{home + "/.ssh/backup_bob", "/keys/second key"}, Known: nas.Known},
			{Host: "192.168.7.7", User: "everyone", Port: 22},
			{Host: "gate", User: "carol", Port: 2022},
			{Host: "deep", User: "everyone", Port: 22}}},
		{"sftp:none-jump:/srv", []hopSummary{{Host: "none-jump", User: "everyone", Port: 22}}},
	} {
		t.Run(tc.loc, func(t *testing.T) {
			eps, err := resolveHops(t, file, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			if got := summarize(eps); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	_, err = resolveHops(t, file, "sftp:loop1:/srv")
	if !errors.Is(err, ErrSSHConfig) || !backend.IsPermanent(err) || !strings.Contains(err.Error(), "loop") {
		t.Errorf("ProxyJump loop: %v, want a permanent ErrSSHConfig naming a loop", err)
	}

	// Without a config file, an alias is just a name.
	eps, err := resolveHops(t, NoSSHConfig, "sftp:nas:/srv")
	if err != nil || len(eps) != 1 || eps[0].host != "nas" || eps[0].port != 22 || eps[0].user != local || eps[0].fromConfig {
		t.Errorf("sftp.config=none: %+v, %v", eps, err)
	}
}

// TestDefaultSSHConfigFiles: with no sftp.config, ~/.ssh/config is read
// before the system file, and a missing one is no error; a system file
// the library cannot parse is skipped, a user's file is not.
func TestDefaultSSHConfigFiles(t *testing.T) {
	system := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(system, []byte("Host nas\n  HostName 10.9.9.9\n  Port 2200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeSSHConfig(t, "Host nas\n  HostName 10.1.2.3\n")
	sc, err := loadSSHConfig("", system)
	if err != nil {
		t.Fatal(err)
	}
	e, err := sc.resolve("nas", "", 0)
	if err != nil || e.host != "10.1.2.3" || e.port != 2200 {
		t.Fatalf("alias from ~/.ssh/config, port from the system file: %+v, %v", e, err)
	}
	t.Setenv("HOME", t.TempDir())
	if _, err := loadSSHConfig("", filepath.Join(t.TempDir(), "absent")); err != nil {
		t.Fatalf("no ~/.ssh/config and no system file: %v", err)
	}
	if _, err := loadSSHConfig(filepath.Join(t.TempDir(), "absent"), ""); !errors.Is(err, ErrSSHConfig) {
		t.Fatalf("a named file that is missing: %v, want ErrSSHConfig", err)
	}

	// Fedora's system file holds "Match final all" (in an included file).
	inc := filepath.Join(t.TempDir(), "50-redhat.conf")
	if err := os.WriteFile(inc, []byte("Match final all\n  GSSAPIAuthentication yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(system, []byte("Include "+inc+"\nHost *\n  SendEnv LANG\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeSSHConfig(t, "Host nas\n  HostName 10.1.2.3\n")
	sc, err = loadSSHConfig("", system)
	if err != nil {
		t.Fatalf("unparsable system file: %v, want it skipped", err)
	}
	if e, err := sc.resolve("nas", "", 0); err != nil || e.host != "10.1.2.3" {
		t.Fatalf("alias with the system file skipped: %+v, %v", e, err)
	}
	if !strings.Contains(sc.names(), "skipped: "+system) {
		t.Errorf("names %q do not say the system file was skipped", sc.names())
	}
	file := writeSSHConfig(t, "Include "+inc+"\n")
	if _, err := loadSSHConfig("", system); !errors.Is(err, ErrSSHConfig) || !strings.Contains(err.Error(), file) {
		t.Fatalf("unparsable user file: %v, want ErrSSHConfig naming it", err)
	}
}

// TestSSHConfigRefused: what the built-in client cannot do for a host is
// refused with a message that says how to get past it, and only for the
// hosts it applies to.
func TestSSHConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name, text, host, want string
	}{
		{"ProxyCommand", "Host nas\n  ProxyCommand nc %h %p\n", "nas", "ProxyCommand"},
		{"HostKeyAlias", "Host nas\n  HostKeyAlias other\n", "nas", "HostKeyAlias"},
		{"CertificateFile", "Host *\n  CertificateFile ~/.ssh/id-cert.pub\n", "nas", "CertificateFile"},
		{"Match host", "Match host nas\n  User x\n", "nas", "Match host nas"},
		// ssh matches "Match host" against the HostName.
		{"Match host by HostName", "Host nas\n  HostName box.lan\nMatch host box.lan,other\n  Port 7\n", "nas", "Match host box.lan,other"},
		{"Match with criteria", "Match host nas user bob\n  Port 7\n", "nas", "Match host nas user bob"},
		{"Match exec", "Host nas\n  User x\nMatch exec \"true\"\n  Port 7\n", "elsewhere", "Match Exec is not supported"},
		{"bad token", "Host nas\n  IdentityFile ~/.ssh/%C\n", "nas", "%C"},
		{"bad port", "Host nas\n  Port 99999\n", "nas", "Port"},
		{"bad jump", "Host nas\n  ProxyJump a:b:c:d\n", "nas", "ProxyJump"},
		{"unset variable", "Host nas\n  IdentityFile ${CAIRN_TEST_UNSET_VAR}/k\n", "nas", "CAIRN_TEST_UNSET_VAR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeSSHConfig(t, tc.text)
			_, err := resolveHops(t, file, "sftp:"+tc.host+":/srv")
			if !errors.Is(err, ErrSSHConfig) || !backend.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a permanent ErrSSHConfig mentioning %q", err, tc.want)
			}
			if strings.Contains(tc.name, "Match") || tc.name == "ProxyCommand" {
				if !strings.Contains(err.Error(), "sftp.args") {
					t.Errorf("message %q does not say how to use the system ssh", err)
				}
			}
		})
	}
	// Settings for other hosts do not matter, and neither do Match all
	// and what the built-in client has no use for.
	file := writeSSHConfig(t, "Host other\n  ProxyCommand nc %h %p\nMatch host other,else\n  Port 7\nMatch all\n  User m\n"+
		"Host *\n  ServerAliveInterval 10\n  ControlMaster auto\n  ProxyCommand none\n  Ciphers aes128-ctr\n")
	eps, err := resolveHops(t, file, "sftp:nas:/srv")
	if err != nil || len(eps) != 1 || eps[0].user != "m" {
		t.Fatalf("got %+v, %v; want nas as m", eps, err)
	}
}

// TestSSHConfigInclude: Include is followed (by the library), and a Match
// block in an included file is seen.
func TestSSHConfigInclude(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.conf")
	if err := os.WriteFile(inc, []byte("Host nas\n  HostName 10.9.9.9\nMatch host box\n  Port 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := writeSSHConfig(t, "Include "+inc+"\n")
	eps, err := resolveHops(t, file, "sftp:nas:/srv")
	if err != nil || eps[0].host != "10.9.9.9" {
		t.Fatalf("included alias: %+v, %v", eps, err)
	}
	if _, err := resolveHops(t, file, "sftp:box:/srv"); !errors.Is(err, ErrSSHConfig) || !strings.Contains(err.Error(), inc) {
		t.Fatalf("Match in an included file: %v, want ErrSSHConfig naming %s", err, inc)
	}
}

func TestParseJump(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want jumpSpec
		ok   bool
	}{
		{"gate", jumpSpec{host: "gate"}, true},
		{"bob@gate", jumpSpec{user: "bob", host: "gate"}, true},
		{"bob@gate:2200", jumpSpec{user: "bob", host: "gate", port: 2200}, true},
		{"[::1]:22", jumpSpec{host: "::1", port: 22}, true},
		{"::1", jumpSpec{host: "::1"}, true},
		{"ssh://bob@gate:2200", jumpSpec{user: "bob", host: "gate", port: 2200}, true},
		{"ssh://gate", jumpSpec{host: "gate"}, true},
		{"gate:0", jumpSpec{}, false},
		{"gate:x", jumpSpec{}, false},
		{"@gate", jumpSpec{}, false},
		{"-oProxyCommand=x", jumpSpec{}, false},
		{"ssh://gate/path", jumpSpec{}, false},
		{"", jumpSpec{}, false},
	} {
		got, err := parseJump(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("parseJump(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestSplitCommandLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"  ", nil, true},
		{"ssh -p 22 host -s sftp", []string{"ssh", "-p", "22", "host", "-s", "sftp"}, true},
		{`ssh -i "/a b/key" 'x y'`, []string{"ssh", "-i", "/a b/key", "x y"}, true},
		{`a\ b "c\"d" 'e\f' ''`, []string{"a b", `c"d`, `e\f`, ""}, true},
		{`"a"'b'c`, []string{"abc"}, true},
		{`"$HOME"`, []string{"$HOME"}, true},
		{`'open`, nil, false},
		{`"open`, nil, false},
		{`end\`, nil, false},
	} {
		got, err := SplitCommandLine(tc.in)
		if (err == nil) != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitCommandLine(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzSplitCommandLine(f *testing.F) {
	for _, s := range []string{"ssh -p 22 host -s sftp", `a\ b "c\"d" 'e\f' ''`, `"open`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCommandLine(s)
		if err != nil {
			if words != nil {
				t.Fatalf("error %v with words %q", err, words)
			}
			return
		}
		// Quoting each word back gives the same words.
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
		}
		again, err := SplitCommandLine(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(again, words) {
			t.Fatalf("%q: words %q, quoted back %q, %v", s, words, again, err)
		}
	})
}

func TestSSHCommand(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want []string
		err  string
	}{
		{Config{Host: "nas", Path: "/r", SSHArgs: []string{}}, []string{"ssh", "-s", "--", "nas", "sftp"}, ""},
		{Config{Host: "nas", User: "bob", Port: 2222, Path: "/r", SSHArgs: []string{"-i", "/k"}},
			[]string{"ssh", "-p", "2222", "-l", "bob", "-i", "/k", "-s", "--", "nas", "sftp"}, ""},
		{Config{Host: "nas", Path: "/r", Command: []string{"my-ssh", "x"}}, []string{"my-ssh", "x"}, ""},
		{Config{Host: "nas", Path: "/r"}, nil, ""},
		{Config{Host: "nas", Path: "/r", Command: []string{"a"}, SSHArgs: []string{}}, nil, "not both"},
		{Config{Host: "nas", Path: "/r", Password: "pw", SSHArgs: []string{}}, nil, "password"},
		{Config{Host: "nas", Path: "/r", SSHConfigFile: "/c", SSHArgs: []string{}}, nil, "sftp.config"},
	} {
		got, err := tc.cfg.sshCommand()
		if tc.err != "" {
			if !errors.Is(err, ErrOption) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%#v: %v, want ErrOption mentioning %q", tc.cfg, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%#v: %q, %v; want %q", tc.cfg, got, err, tc.want)
		}
	}
}

func TestSetOption(t *testing.T) {
	var c Config
	if err := c.SetOption("command", `ssh -p 2 "h" -s sftp`); err != nil || !reflect.DeepEqual(c.Command, []string{"ssh", "-p", "2", "h", "-s", "sftp"}) {
		t.Errorf("command: %q, %v", c.Command, err)
	}
	c = Config{}
	if err := c.SetOption("args", ""); err != nil || c.SSHArgs == nil || len(c.SSHArgs) != 0 {
		t.Errorf("empty args: %q, %v; want an empty, non-nil list", c.SSHArgs, err)
	}
	c = Config{}
	if err := c.SetOption("config", "none"); err != nil || c.SSHConfigFile != NoSSHConfig {
		t.Errorf("config: %q, %v", c.SSHConfigFile, err)
	}
	for _, kv := range [][2]string{{"commnd", "x"}, {"command", ""}, {"command", "'x"}, {"args", `"`}, {"config", ""}} {
		var c Config
		if err := c.SetOption(kv[0], kv[1]); !errors.Is(err, ErrOption) {
			t.Errorf("%s=%q: %v, want ErrOption", kv[0], kv[1], err)
		}
	}
	var u Config
	if err := u.SetOption("nope", "1"); err == nil || !strings.Contains(err.Error(), "sftp.command, sftp.args, sftp.config") {
		t.Errorf("unknown key: %v, want the list of known keys", err)
	}
	// Options that cannot go together, in either order.
	for _, pair := range [][2][2]string{
		{{"command", "ssh h"}, {"args", "-v"}}, {{"args", "-v"}, {"command", "ssh h"}},
		{{"config", "/c"}, {"args", ""}}, {{"command", "ssh h"}, {"config", "/c"}},
		{{"config", "/c"}, {"command", "ssh h"}}, {{"args", ""}, {"config", "/c"}},
	} {
		var c Config
		if err := c.SetOption(pair[0][0], pair[0][1]); err != nil {
			t.Fatal(err)
		}
		if err := c.SetOption(pair[1][0], pair[1][1]); !errors.Is(err, ErrOption) {
			t.Errorf("%v then %v: %v, want ErrOption", pair[0], pair[1], err)
		}
	}
}
