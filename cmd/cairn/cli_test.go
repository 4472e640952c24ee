package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCLIBasics runs one table of simple invocations against a fresh,
// initialised repository.
func TestCLIBasics(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	wrongPW := filepath.Join(e.dir, "wrong-password")
	e.writeFile(wrongPW, "not the password\n")
	missing := filepath.Join(e.dir, "no-such-repo")
	noPassword := []string{envPasswordFile + "=", envPassword + "=", envPasswordCommand + "="}

	rows := []struct {
		name    string
		args    []string
		env     []string
		stdin   string
		code    int
		stdout  string // regexp; "" means anything
		stderr  string // regexp for the one error line; "" means stderr empty
		maxTime time.Duration
	}{
		{name: "version", args: []string{"version"}, code: 0,
			stdout: `^cairn ` + regexp.QuoteMeta(testVersion) + `( \(commit [0-9a-f]{12}(-dirty)?\))? compiled with go1\.\d+\S* on linux/amd64\n$`},
		{name: "version quiet", args: []string{"-q", "version"}, code: 0, stdout: `^cairn `},
		{name: "no arguments prints help", args: nil, code: 0, stdout: `(?s)USAGE:.*COMMANDS:.*EXIT STATUS:`},
		{name: "missing repository", args: []string{"snapshots"}, env: []string{envRepository + "=" + missing},
			code: 10, stderr: `repository does not exist`},
		{name: "missing repository, local: scheme", args: []string{"-r", "local:" + missing, "snapshots"},
			code: 10, stderr: `repository does not exist`},
		{name: "missing repository, no password needed", args: []string{"snapshots"},
			env: append([]string{envRepository + "=" + missing}, noPassword...), code: 10, stderr: `repository does not exist`},
		{name: "no repository given", args: []string{"snapshots"}, env: []string{envRepository + "="},
			code: 1, stderr: `no repository given`},
		{name: "unknown scheme", args: []string{"-r", "b2:bucket/x", "snapshots"}, code: 1,
			stderr: `unknown repository scheme "b2:"`},
		{name: "wrong password", args: []string{"snapshots"}, env: []string{envPasswordFile + "=" + wrongPW},
			code: 12, stderr: `wrong password`},
		{name: "wrong password from env", args: []string{"snapshots"},
			env: append(noPassword, envPassword+"=nope"), code: 12, stderr: `wrong password`},
		{name: "password from env", args: []string{"snapshots"}, env: append(noPassword, envPassword+"="+testPassword), code: 0},
		{name: "password command", args: []string{"snapshots", "--password-command", "echo '" + testPassword + "'"},
			env: noPassword, code: 0},
		{name: "password command fails", args: []string{"snapshots", "--password-command", "echo oops >&2; exit 3"},
			env: noPassword, code: 1, stderr: ``},
		{name: "password file wins over env", args: []string{"snapshots"}, env: []string{envPassword + "=nope"}, code: 0},
		{name: "missing password file", args: []string{"--password-file", filepath.Join(e.dir, "nope"), "snapshots"},
			code: 1, stderr: `read password file: open .*no such file`},
		{name: "no password, stdin not a terminal", args: []string{"snapshots"}, env: noPassword, stdin: "typed\n",
			code: 1, stderr: `no password given \(use --password-file`, maxTime: 10 * time.Second},
		{name: "no password, no stdin", args: []string{"snapshots"}, env: noPassword,
			code: 1, stderr: `no password given`, maxTime: 10 * time.Second},
		{name: "bad flag after command", args: []string{"snapshots", "--bogus"}, code: 1, stderr: `flag provided but not defined: -bogus`},
		{name: "bad flag before command", args: []string{"--bogus", "snapshots"}, code: 1, stderr: `flag provided but not defined: -bogus`},
		{name: "bad flag on backup", args: []string{"backup", "--nope", "/tmp"}, code: 1, stderr: `flag provided but not defined: -nope`},
		{name: "unknown command", args: []string{"frobnicate"}, code: 1, stderr: `unknown command "frobnicate"`},
		{name: "unknown key subcommand", args: []string{"key", "frob"}, code: 1, stderr: `unknown command "key frob"`},
		{name: "help for unknown command", args: []string{"help", "frobnicate"}, code: 1, stderr: `frobnicate`},
		{name: "missing argument", args: []string{"restore"}, code: 1, stderr: `missing argument`},
		{name: "restore without target", args: []string{"restore", "latest"}, code: 1, stderr: `--target is required`},
		{name: "extra argument", args: []string{"init", "extra"}, code: 1, stderr: `unexpected argument "extra"`},
		{name: "bad compression", args: []string{"backup", "--compression", "zip", "/tmp"}, code: 1, stderr: `invalid compression mode`},
		{name: "bad size", args: []string{"backup", "--exclude-larger-than", "lots", "/tmp"}, code: 1, stderr: `invalid size`},
		{name: "no snapshot yet", args: []string{"ls", "latest"}, code: 1, stderr: `no matching snapshot`},
		{name: "bad selector", args: []string{"ls", "zz!"}, code: 1, stderr: `invalid snapshot selector`},
		{name: "empty snapshot list", args: []string{"snapshots"}, code: 0, stdout: `0 snapshots\n$`},
		{name: "global flag after command", args: []string{"snapshots", "-r", missing}, code: 10, stderr: `does not exist`},
		{name: "flag after command beats flag before", args: []string{"-r", missing, "snapshots", "-r", e.repo}, code: 0},
		{name: "flag beats env", args: []string{"-r", e.repo, "snapshots"}, env: []string{envRepository + "=" + missing}, code: 0},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			start := time.Now()
			r := e.runWith(runOpts{env: row.env, stdin: row.stdin, timeout: row.maxTime}, row.args...)
			if row.maxTime > 0 && time.Since(start) > row.maxTime {
				t.Fatalf("took %v", time.Since(start))
			}
			if r.code != row.code {
				t.Fatalf("want exit %d\n%s", row.code, r)
			}
			if row.stdout != "" && !regexp.MustCompile(row.stdout).MatchString(r.stdout) {
				t.Fatalf("stdout does not match %q\n%s", row.stdout, r)
			}
			switch {
			case row.code == 0 && r.stderr != "":
				t.Fatalf("want empty stderr\n%s", r)
			case row.code != 0 && row.name == "password command fails":
				// The command's own stderr passes through, then ours.
				if !strings.HasPrefix(r.stderr, "oops\n") || !strings.Contains(r.stderr, "cairn: password command failed: exit status 3\n") {
					t.Fatalf("stderr\n%s", r)
				}
			case row.code != 0:
				checkOneErrorLine(t, r, row.stderr)
			}
			checkNoControl(t, "stdout", r.stdout)
			checkNoControl(t, "stderr", r.stderr)
		})
	}
}

// TestHelpIsAccurate checks that "cairn help CMD" and "cairn CMD --help"
// list every flag the command takes, the global options and the exit
// statuses. It runs in-process: help needs no repository.
func TestHelpIsAccurate(t *testing.T) {
	help := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		app := newApp(strings.NewReader(""), &stdout, &stderr)
		if err := runApp(context.Background(), app, append([]string{"cairn"}, args...)); err != nil || stderr.Len() > 0 {
			t.Fatalf("cairn %q: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	type cmdHelp struct {
		path  []string
		flags []string
	}
	var cmds []cmdHelp
	for _, cmd := range newApp(nil, nil, nil).Commands {
		c := cmdHelp{path: []string{cmd.Name}}
		for _, f := range cmd.VisibleFlags() {
			c.flags = append(c.flags, f.Names()[0])
		}
		cmds = append(cmds, c)
		for _, sub := range cmd.Subcommands {
			c := cmdHelp{path: []string{cmd.Name, sub.Name}}
			for _, f := range sub.VisibleFlags() {
				c.flags = append(c.flags, f.Names()[0])
			}
			cmds = append(cmds, c)
		}
	}
	for _, c := range cmds {
		ways := [][]string{append([]string{"help"}, c.path...), append(slices.Clone(c.path), "--help")}
		if len(c.path) > 1 {
			// "cairn help key add" is spelled "cairn key help add".
			ways[0] = []string{c.path[0], "help", c.path[1]}
		}
		for _, args := range ways {
			out := help(args...)
			for _, f := range c.flags {
				if f != "help" && !strings.Contains(out, "--"+f) {
					t.Errorf("cairn %s: help lacks --%s\n%s", strings.Join(args, " "), f, out)
				}
			}
			for _, want := range []string{"GLOBAL OPTIONS:", "--repo", "CAIRN_REPOSITORY", "--password-file", "EXIT STATUS:", "12   wrong password"} {
				if !strings.Contains(out, want) {
					t.Errorf("cairn %s: help lacks %q\n%s", strings.Join(args, " "), want, out)
				}
			}
		}
	}
	if out := help("help", "restore"); !strings.Contains(out, "SNAPSHOT:SUBPATH") || !strings.Contains(out, `"latest"`) {
		t.Errorf("restore help does not explain selectors\n%s", out)
	}
	if out := help("help", "key"); !strings.Contains(out, "passwd") {
		t.Errorf("key help does not list its subcommands\n%s", out)
	}
	if out := help(); !strings.Contains(out, "COMMANDS:") || !strings.Contains(out, "130  interrupted") {
		t.Errorf("app help\n%s", out)
	}
}

// TestInitTwice checks that init refuses an existing repository and
// changes nothing in it.
func TestInitTwice(t *testing.T) {
	e := newTestEnv(t)
	r := e.must("init")
	if !strings.Contains(r.stdout, "created cairn repository") {
		t.Fatalf("init output\n%s", r)
	}
	before := listing(t, e.repo)
	r = e.run("init")
	if r.code != 1 {
		t.Fatalf("second init: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `already exists`)
	if after := listing(t, e.repo); after != before {
		t.Fatalf("second init changed the repository\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// With another password too.
	other := filepath.Join(e.dir, "other")
	e.writeFile(other, "other\n")
	r = e.run("init", "--password-file", other)
	if r.code != 1 || listing(t, e.repo) != before {
		t.Fatalf("init with another password\n%s", r)
	}
}

// TestInitJSON checks init's JSON message and the no-password case.
func TestInitJSON(t *testing.T) {
	e := newTestEnv(t)
	r := e.runWith(runOpts{env: []string{envPasswordFile + "="}}, "init")
	if r.code != 1 {
		t.Fatalf("init without password\n%s", r)
	}
	checkOneErrorLine(t, r, "no password given")
	if _, err := os.Stat(e.repo); err == nil {
		t.Fatalf("init without password created %s", e.repo)
	}
	r = e.must("--json", "init")
	msgs := jsonLines(t, r.stdout)
	if len(msgs) != 1 || msgs[0]["message_type"] != "initialized" || len(msgs[0]["id"].(string)) != 64 {
		t.Fatalf("init --json\n%s", r)
	}
}

// TestCorruptConfig damages the config file: a clean one-line error,
// exit status 1.
func TestCorruptConfig(t *testing.T) {
	for _, damage := range []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/3] }},
		{"empty", func([]byte) []byte { return nil }},
		{"garbage", func(b []byte) []byte { return []byte(strings.Repeat("\x00garbage\n", 100)) }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.init()
			cfg := filepath.Join(e.repo, "config")
			data, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			e.writeFile(cfg, string(damage.fn(data)))
			r := e.run("snapshots")
			if r.code != 1 {
				t.Fatalf("want exit 1\n%s", r)
			}
			checkOneErrorLine(t, r, `config`)
		})
	}
}

// TestVersionJSON checks "version --json".
func TestVersionJSON(t *testing.T) {
	e := newTestEnv(t)
	r := e.must("version", "--json")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v["version"] != testVersion || v["go_os"] != "linux" || !strings.HasPrefix(v["go_version"], "go") {
		t.Fatalf("version --json: %v", v)
	}
}
