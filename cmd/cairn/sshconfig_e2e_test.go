package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/sftp/sftptest"
)

// End-to-end tests of ~/.ssh/config and of the -o backend options with
// the built binary and real sshd servers on 127.0.0.1.

// sshConfigHome writes, in the test's home folder (e.dir/home), an
// .ssh/config holding text with {HOME} replaced by the folder, each
// server's client key as .ssh/key0, .ssh/key1, ... and a known_hosts file
// .ssh/test_known_hosts listing every server's host keys. None is a file
// cairn would use without the config.
func sshConfigHome(t *testing.T, e *testEnv, text string, srvs ...*sftptest.Server) string {
	t.Helper()
	home := filepath.Join(e.dir, "home")
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var known []byte
	for i, s := range srvs {
		key, err := os.ReadFile(s.ClientKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("key%d", i)), key, 0o600); err != nil {
			t.Fatal(err)
		}
		kh, err := os.ReadFile(s.KnownHostsFile)
		if err != nil {
			t.Fatal(err)
		}
		known = append(known, kh...)
	}
	if err := os.WriteFile(filepath.Join(dir, "test_known_hosts"), known, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(strings.ReplaceAll(text, "{HOME}", home)), 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

// roundTripRepo inits a repository at loc, backs src up into it, restores
// it and compares the result with src byte for byte; args go before each
// command.
func roundTripRepo(t *testing.T, e *testEnv, loc, src string, xattrs bool, args ...string) {
	t.Helper()
	run := func(more ...string) result {
		return e.must(append(append(append([]string(nil), args...), "-r", loc), more...)...)
	}
	run("init")
	run("backup", "--host", "sshconfig-e2e", src)
	target := filepath.Join(e.dir, "restored-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	run("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src), xattrs)
	if r := run("check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check\n%s", r)
	}
}

// waitLogLine waits (bounded polls: sshd writes its log from another
// process) for a line of srv's log that holds every part.
func waitLogLine(t *testing.T, srv *sftptest.Server, parts ...string) {
	t.Helper()
	for range 100 {
		for _, line := range strings.Split(srv.Log(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no line of the server's log holds %q:\n%s", parts, srv.Log())
}

// TestSFTPSSHConfig reaches repositories through Host aliases of
// ~/.ssh/config: one naming the server's address, port, user, key and
// known_hosts file, one behind a jump host (ProxyJump) that is an alias
// too. init, backup, restore (byte for byte) and check run with the real
// binary, and the jump host's log shows the forwarded connection.
func TestSFTPSSHConfig(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	srv := sftptest.Start(t)
	gate := sftptest.StartWith(t, sftptest.Options{AllowTCPForwarding: true, LogLevel: "DEBUG1"})
	sshConfigHome(t, e, fmt.Sprintf(`# cairn e2e
Host backup-box
    HostName %[1]s
    Port %[2]d
    User %[3]s
    IdentityFile ~/.ssh/key0
    UserKnownHostsFile ~/.ssh/test_known_hosts

Host behind-gate
    HostName %[1]s
    Port %[2]d
    IdentityFile ~/.ssh/key0
    ProxyJump gate

Host gate
    HostName %[4]s
    Port %[5]d
    IdentityFile ~/.ssh/key1

Host *
    User %[3]s
    UserKnownHostsFile ~/.ssh/test_known_hosts
`, srv.Host, srv.Port, srv.User, gate.Host, gate.Port), srv, gate)
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 61)

	direct := filepath.Join(e.dir, "on-server", "direct")
	roundTripRepo(t, e, "sftp:backup-box:"+direct, src, xattrs)
	checkHashNames(t, direct)

	jumped := filepath.Join(e.dir, "on-server", "jumped")
	roundTripRepo(t, e, "sftp:behind-gate:"+jumped, src, xattrs)
	checkHashNames(t, jumped)
	waitLogLine(t, gate, "server_request_direct_tcpip", fmt.Sprintf("target %s port %d", srv.Host, srv.Port))

	// -o sftp.config=none: the alias is no host name any more (a default
	// key file gets cairn as far as looking the name up).
	key, err := os.ReadFile(srv.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "home", ".ssh", "id_ed25519"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("-o", "sftp.config=none", "-r", "sftp:backup-box:"+direct, "snapshots")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `backup-box.*no Host alias`)
	// -o sftp.config=FILE: another file, with another alias.
	other := filepath.Join(e.dir, "other_ssh_config")
	e.writeFile(other, fmt.Sprintf("Host elsewhere\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile ~/.ssh/key0\n  UserKnownHostsFile ~/.ssh/test_known_hosts\n",
		srv.Host, srv.Port, srv.User))
	if r := e.must("-o", "sftp.config="+other, "-r", "sftp:elsewhere:"+direct, "snapshots", "--json"); !strings.Contains(r.stdout, "sshconfig-e2e") {
		t.Fatalf("snapshots through sftp.config\n%s", r)
	}

	// A host the built-in client cannot reach as ssh would is refused
	// with the way out.
	e.writeFile(other, "Host proxied\n  ProxyCommand nc %h %p\n")
	r = e.run("-o", "sftp.config="+other, "-r", "sftp:proxied:/x", "snapshots")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `ssh config: .*ProxyCommand nc %h %p applies to proxied.*-o sftp\.args=`)
}

// sshWrapper writes a script that logs its arguments (one a line, then
// "---") and execs the system ssh with them.
func sshWrapper(t *testing.T, e *testEnv) (script, logFile string) {
	t.Helper()
	script = filepath.Join(e.dir, "ssh-wrapper")
	logFile = filepath.Join(e.dir, "wrapper.log")
	e.writeFile(script, "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '"+logFile+"'\necho --- >> '"+logFile+"'\nexec ssh \"$@\"\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	return script, logFile
}

// TestSFTPCommandOption: -o sftp.command runs the given command (a
// wrapper that logs its invocation, then execs ssh) for every run, and
// -o sftp.args runs the system ssh with the arguments added, which then
// follows a Host alias and ProxyJump of an ssh config file itself. The
// repositories restore byte for byte.
func TestSFTPCommandOption(t *testing.T) {
	if _, err := os.Stat("/usr/bin/ssh"); err != nil {
		t.Skip("no /usr/bin/ssh")
	}
	e := newTestEnv(t)
	t.Parallel()
	srv := sftptest.Start(t)
	gate := sftptest.StartWith(t, sftptest.Options{AllowTCPForwarding: true, LogLevel: "DEBUG1"})
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 62)
	script, logFile := sshWrapper(t, e)

	// ssh reads the home folder of the passwd database, not $HOME: the
	// arguments keep it on the test's files.
	common := fmt.Sprintf("-i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes",
		srv.ClientKeyFile, srv.KnownHostsFile)
	command := fmt.Sprintf("%s -F /dev/null %s -p %d -l %s -s %s sftp", script, common, srv.Port, srv.User, srv.Host)
	dir := filepath.Join(e.dir, "on-server", "by-command")
	roundTripRepo(t, e, "sftp:name-for-messages:"+dir, src, xattrs, "-o", "sftp.command="+command)
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join(strings.Fields(command)[1:], "\n") + "\n---\n"
	if n := strings.Count(string(logged), want); n < 4 {
		t.Fatalf("the wrapper logged %d invocations as %q, want one per run (4):\n%s", n, want, logged)
	}

	// sftp.args with an ssh config file that makes repo-box an alias
	// behind a jump host: the system ssh does it all.
	cfgFile := filepath.Join(e.dir, "ssh_config_for_ssh")
	gateKnown := filepath.Join(e.dir, "all_known_hosts")
	a, err := os.ReadFile(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(gate.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	e.writeFile(gateKnown, string(a)+string(b))
	e.writeFile(cfgFile, fmt.Sprintf(`Host repo-box
    HostName %[1]s
    Port %[2]d
    IdentityFile %[3]s
    ProxyJump gate
Host gate
    HostName %[4]s
    Port %[5]d
    IdentityFile %[6]s
Host *
    User %[7]s
    IdentitiesOnly yes
    UserKnownHostsFile %[8]s
    GlobalKnownHostsFile /dev/null
    BatchMode yes
`, srv.Host, srv.Port, srv.ClientKeyFile, gate.Host, gate.Port, gate.ClientKeyFile, srv.User, gateKnown))
	dir2 := filepath.Join(e.dir, "on-server", "by-args")
	roundTripRepo(t, e, "sftp:repo-box:"+dir2, src, xattrs, "-o", "sftp.args=-F "+cfgFile)
	waitLogLine(t, gate, "server_request_direct_tcpip", fmt.Sprintf("target %s port %d", srv.Host, srv.Port))

	// A refused host key: one line quoting ssh, exit 1, no retries.
	r := e.run("-o", "sftp.args=-F /dev/null "+strings.Replace(common, srv.KnownHostsFile, "/dev/null", 1),
		"-r", fmt.Sprintf("sftp://%s@%s:%d%s", srv.User, srv.Host, srv.Port, dir), "snapshots")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `"ssh".*said: .*Host key verification failed`)
}

// TestBackendOptionErrors: a bad -o is one line on stderr and exit 1,
// before anything is opened.
func TestBackendOptionErrors(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	e.init()
	for _, tc := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"-o", "sftp.bogus=1", "snapshots"}, `backend option "sftp\.bogus" is unknown \(known: s3\.bucket-lookup, s3\.ca-file, s3\.region, s3\.storage-class, sftp\.args, sftp\.command, sftp\.config\)`},
		{[]string{"snapshots", "-o", "nodot=1"}, `backend option "nodot" is unknown`},
		{[]string{"-o", "local.path=1", "snapshots"}, `backend option "local\.path" is unknown`},
		{[]string{"-o", "sftp.command", "snapshots"}, `backend option "sftp\.command": missing "=VALUE"`},
		{[]string{"-o", "sftp.command='unclosed", "snapshots"}, `sftp\.command: unclosed single quote`},
		{[]string{"-o", "sftp.config=none", "-o", "sftp.config=/x", "snapshots"}, `"sftp\.config" is given twice`},
		{[]string{"-o", "sftp.config=none", "snapshots"}, `"sftp\.config": no sftp: location in this command`},
		{[]string{"-o", "sftp.args=", "version"}, `"version" opens no repository, so -o does not apply`},
		{[]string{"-o", "sftp.command=ssh x", "-o", "sftp.args=-v", "-r", "sftp:x:/r", "snapshots"}, `give sftp\.command or sftp\.args, not both`},
		{[]string{"-o", "sftp.args=", "-r", "sftp://u:secret@x/r", "snapshots"}, `cannot be given the password`},
		{[]string{"-o", "sftp.command=ssh x -s sftp", "-r", "sftp:a:/r", "mirror", "sftp:b:/r"}, `names one server, but this command reaches 2 sftp: locations`},
	} {
		r := e.run(tc.args...)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, tc.pattern)
		if strings.Contains(r.stderr, "secret") {
			t.Errorf("the password shows: %s", r.stderr)
		}
	}
}
