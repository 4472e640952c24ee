package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/urfave/cli/v2"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp(nil, nil, nil)
	for _, tc := range []struct{ in, want string }{
		{"cairn", "cairn"},
		{"cairn snapshots", "cairn snapshots"},
		{"cairn restore latest --target /t", "cairn restore --target /t latest"},
		{"cairn restore latest -t /t --verify", "cairn restore -t /t --verify latest"},
		{"cairn -r /repo backup /a /b --tag x -q", "cairn -r /repo backup --tag x -q /a /b"},
		{"cairn backup /a --tag=x", "cairn backup --tag=x /a"},
		{"cairn backup --json /a", "cairn backup --json /a"},
		{"cairn backup /a -- -weird --tag", "cairn backup -- /a -weird --tag"},
		{"cairn key add --new-password-file f", "cairn key add --new-password-file f"},
		{"cairn key --repo r add x", "cairn key --repo r add x"},
		{"cairn help backup", "cairn help backup"},
		{"cairn backup - /a", "cairn backup - /a"},
		{"cairn backup /a --bogus /b", "cairn backup --bogus /a /b"},
	} {
		got := strings.Join(permuteArgs(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("permuteArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct{ in, scheme, rest, err string }{
		{"/srv/repo", "local", "/srv/repo", ""},
		{"relative/repo", "local", "relative/repo", ""},
		{"./a:b", "local", "./a:b", ""},
		{"/x/a:b", "local", "/x/a:b", ""},
		{"local:/srv/repo", "local", "/srv/repo", ""},
		{"local:///srv/repo", "local", "/srv/repo", ""},
		{"local:rel", "local", "rel", ""},
		{"sftp:host:/x", "sftp", "host:/x", ""},
		{"peer://id@host/x", "peer", "//id@host/x", ""},
		{"1abc:x", "local", "1abc:x", ""},
		{"", "", "", "no repository given"},
		{"local:", "", "", "empty path"},
	} {
		s, rest, err := parseLocation(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseLocation(%q): error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || s != tc.scheme || rest != tc.rest {
			t.Errorf("parseLocation(%q) = %q, %q, %v; want %q, %q", tc.in, s, rest, err, tc.scheme, tc.rest)
		}
	}
	_, err := openBackend(context.Background(), "b2://user:hunter2@host/x", locEnv{})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), `"b2:"`) {
		t.Errorf("unknown scheme error %v", err)
	}
	// Keys in an s3: location are refused, and not repeated.
	_, err = openBackend(context.Background(), "s3:https://user:hunter2@host/bucket", locEnv{})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "credentials in the location are refused") {
		t.Errorf("s3: location with keys: %v", err)
	}
	if got := redactLocation("sftp://user:hunter2@host/x"); strings.Contains(got, "hunter2") {
		t.Errorf("redactLocation kept the password: %q", got)
	}
	if got := redactLocation("/plain/path"); got != "/plain/path" {
		t.Errorf("redactLocation(/plain/path) = %q", got)
	}
}

func TestEscapeControl(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"ünï 日本", "ünï 日本"},
		{"a\nb", `a\x0ab`},
		{"\x1b[31m", `\x1b[31m`},
		{"del\x7f", `del\x7f`},
		{"c1\u009b", `c1\u009b`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"tab\t", `tab\x09`},
	} {
		if got := escapeControl(tc.in); got != tc.want {
			t.Errorf("escapeControl(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"512", 512, true}, {"10K", 10 << 10, true}, {"10k", 10 << 10, true},
		{"1.5M", 3 << 19, true}, {"2G", 2 << 30, true}, {"2GiB", 2 << 30, true}, {"1T", 1 << 40, true},
		{"3MB", 3 << 20, true},
		{"", 0, false}, {"K", 0, false}, {"-1", 0, false}, {"NaN", 0, false}, {"inf", 0, false},
		{"1e3", 0, false}, {"9999999999T", 0, false}, {"lots", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content, want string
		ok            bool
	}{
		{"secret\n", "secret", true},
		{"secret\r\n", "secret", true},
		{"secret", "secret", true},
		{"secret\n\n", "secret\n", true},
		{" spaced \n", " spaced ", true},
		{"\n", "", false},
		{"", "", false},
		{strings.Repeat("x", maxPasswordSize+1), "", false},
	} {
		name := filepath.Join(dir, "pw")
		if err := os.WriteFile(name, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readPasswordFile(name)
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("readPasswordFile(%q) = %q, %v", tc.content, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error reveals the password: %v", err)
		}
	}
}

func TestPasswordCommand(t *testing.T) {
	var stderr bytes.Buffer
	e := &appEnv{stderr: &stderr, getenv: func(string) string { return "" }}
	ctx := context.Background()
	pw, err := e.runPasswordCommand(ctx, "printf 'pw\\n'; echo note >&2")
	if err != nil || string(pw) != "pw" || stderr.String() != "note\n" {
		t.Fatalf("got %q, %v, stderr %q", pw, err, stderr.String())
	}
	_, err = e.runPasswordCommand(ctx, "echo hunter2; exit 1")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("failing command: %v", err)
	}
	_, err = e.runPasswordCommand(ctx, fmt.Sprintf("head -c %d /dev/zero", maxPasswordSize+10))
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("huge output: %v", err)
	}
	_, err = e.runPasswordCommand(ctx, "true")
	if err == nil || !strings.Contains(err.Error(), "empty password") {
		t.Fatalf("empty output: %v", err)
	}
}

func TestPasswordOrder(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{envPassword: "from-env"}
	e := &appEnv{stderr: os.Stderr, getenv: func(k string) string { return env[k] }}
	ctx := context.Background()
	for _, tc := range []struct {
		g    globalOptions
		want string
	}{
		{globalOptions{PasswordFile: file, PasswordCommand: "echo from-command"}, "from-file"},
		{globalOptions{PasswordCommand: "echo from-command"}, "from-command"},
		{globalOptions{}, "from-env"},
	} {
		got, err := e.password(ctx, tc.g)
		if err != nil || string(got) != tc.want {
			t.Errorf("password(%+v) = %q, %v; want %q", tc.g, got, err, tc.want)
		}
	}
	delete(env, envPassword)
	if _, err := e.password(ctx, globalOptions{}); !errors.Is(err, errNoPassword) {
		t.Errorf("no source, no terminal: %v", err)
	}
}

func TestExitCode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("open /x: %w", err) }
	for _, tc := range []struct {
		err         error
		interrupted bool
		want        int
	}{
		{nil, false, 0},
		{errors.New("boom"), false, 1},
		{wrap(backend.ErrNoRepository), false, 10},
		{wrap(&repo.LockedError{}), false, 11},
		{wrap(crypt.ErrWrongPassword), false, 12},
		{wrap(&partialBackupError{snapshot: "12345678", skipped: 2}), false, 3},
		{errInterrupted, false, 130},
		{wrap(context.Canceled), true, 130},
		{wrap(repo.ErrFormat), false, 1},
	} {
		if got := exitCode(tc.err, tc.interrupted); got != tc.want {
			t.Errorf("exitCode(%v, %v) = %d, want %d", tc.err, tc.interrupted, got, tc.want)
		}
	}
	var b bytes.Buffer
	printError(&b, errors.New("bad\nname\x1b"), false)
	if b.String() != "cairn: bad\\x0aname\\x1b\n" {
		t.Errorf("printError: %q", b.String())
	}
}

// TestGlobalPrecedence checks where a global option's value comes from: a
// flag after the command beats one before it, which beats the environment.
func TestGlobalPrecedence(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want globalOptions
	}{
		{[]string{"probe"}, nil, globalOptions{CacheDir: "/home/u/.cache/cairn", ConfigDir: "/home/u/.config/cairn"}},
		{[]string{"probe"}, map[string]string{envRepository: "/env", "XDG_CACHE_HOME": "/xdg"},
			globalOptions{Repo: "/env", CacheDir: "/xdg/cairn", ConfigDir: "/home/u/.config/cairn"}},
		{[]string{"-r", "/before", "probe"}, map[string]string{envRepository: "/env"},
			globalOptions{Repo: "/before", CacheDir: "/home/u/.cache/cairn", ConfigDir: "/home/u/.config/cairn"}},
		{[]string{"-r", "/before", "probe", "--repo", "/after", "--json", "-q", "--no-cache"}, nil,
			globalOptions{Repo: "/after", JSON: true, Quiet: true, ConfigDir: "/home/u/.config/cairn"}},
		{[]string{"--verbose", "probe", "--password-file", "/pw", "--cache-dir", "/c"}, map[string]string{envPasswordFile: "/envpw"},
			globalOptions{PasswordFile: "/pw", Verbose: true, CacheDir: "/c", ConfigDir: "/home/u/.config/cairn"}},
		{[]string{"probe"}, map[string]string{envPasswordFile: "/envpw", envPasswordCommand: "cmd", envCacheDir: "/ec", envConfigDir: "/cf"},
			globalOptions{PasswordFile: "/envpw", PasswordCommand: "cmd", CacheDir: "/ec", ConfigDir: "/cf"}},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		env := map[string]string{"HOME": "/home/u"}
		for k, v := range tc.env {
			env[k] = v
		}
		e := &appEnv{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(k string) string { return env[k] }}
		app := e.newApp()
		var got globalOptions
		probe := &cli.Command{Name: "probe", Action: func(c *cli.Context) error { got = e.globals(c); return nil }}
		prepareCommand(probe, "", checkOptionsBefore(true))
		app.Commands = append(app.Commands, probe)
		if err := runApp(context.Background(), app, append([]string{"cairn"}, tc.args...)); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v with env %v:\ngot  %+v\nwant %+v", tc.args, tc.env, got, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}

func TestPathScope(t *testing.T) {
	s := newPathScope([]string{"/home/u", "etc/x"})
	for _, tc := range []struct {
		p           string
		in, descend bool
	}{
		{"/home", false, true}, {"/home/u", true, true}, {"/home/u/f", true, true}, {"/home/uv", false, false},
		{"/etc", false, true}, {"/etc/x/y", true, true}, {"/var", false, false},
	} {
		in, descend := s.match(tc.p)
		if in != tc.in || descend != tc.descend {
			t.Errorf("match(%q) = %v, %v; want %v, %v", tc.p, in, descend, tc.in, tc.descend)
		}
	}
	if in, _ := newPathScope(nil).match("/anything"); !in {
		t.Error("empty scope must match everything")
	}
}

func TestReadPatternFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "excludes")
	if err := os.WriteFile(name, []byte("# comment\n*.tmp\n\n  /abs/path  \r\n**/cache\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readPatternFile(name)
	if err != nil || !slices.Equal(got, []string{"*.tmp", "/abs/path", "**/cache"}) {
		t.Fatalf("readPatternFile = %q, %v", got, err)
	}
}

// TestProgressConcurrent drives the backup and restore progress displays
// from many goroutines while their tickers run, as the archiver and the
// restorer do; run with -race it checks the CLI's own concurrency.
func TestProgressConcurrent(t *testing.T) {
	for _, p := range []*printer{
		{out: &bytes.Buffer{}, errw: &bytes.Buffer{}, tty: true, verbose: true},
		{out: &bytes.Buffer{}, errw: &bytes.Buffer{}, tty: true, json: true, verbose: true},
		{out: &bytes.Buffer{}, errw: &bytes.Buffer{}},
	} {
		bp := newBackupProgress(p, true)
		bp.Scanned(archiver.ScanStats{Files: 1600, Bytes: 16000, Done: true})
		rp := &restoreProgress{p: p, start: time.Now()}
		bt := startTicker(p, time.Millisecond, bp.tick)
		rt := startTicker(p, time.Millisecond, rp.tick)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 200 {
					name := fmt.Sprintf("/f%d-%d", g, i)
					bp.StartFile(name)
					bp.BytesRead(name, 10)
					bp.CompleteItem(name, &snapshot.Node{Name: "f", Type: snapshot.NodeFile, Size: 10}, archiver.StatusNew)
					if i%50 == 0 {
						bp.Warn(name, errors.New("changed while read"))
						p.Warnf("warning %d", i)
					}
					rp.Totals(1600, 16000)
					rp.Restored(10)
					rp.FileDone(name)
				}
			})
		}
		wg.Wait()
		bt.Stop()
		rt.Stop()
		if got := bp.files.Load(); got != 1600 {
			t.Fatalf("counted %d files", got)
		}
		out := p.out.(*bytes.Buffer).String()
		if !p.tty && out != "" {
			t.Fatalf("output off a terminal: %q", out)
		}
		if p.json {
			for line := range strings.Lines(out) {
				if !strings.HasPrefix(line, "{") {
					t.Fatalf("non-JSON line in --json output: %q", line)
				}
			}
		}
	}
}
