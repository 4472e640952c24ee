package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestTypoSuggestions checks that a mistyped command or flag names the
// one meant, and that a name far from every command suggests nothing.
func TestTypoSuggestions(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	rows := []struct {
		args []string
		want string // regexp for the one error line
	}{
		{[]string{"snapshot"}, `unknown command "snapshot" \(did you mean "snapshots"\? run "cairn help" for the list\)$`},
		{[]string{"snapshtos"}, `did you mean "snapshots"\?`},
		{[]string{"key", "ad"}, `unknown command "key ad" \(did you mean "key add"\? run "cairn help key" for the list\)$`},
		{[]string{"snapshots", "--hots", "x"}, `flag provided but not defined: -hots \(did you mean --host\? see "cairn help"\)$`},
		{[]string{"--jsno", "snapshots"}, `flag provided but not defined: -jsno \(did you mean --json\?`},
		{[]string{"frobnicate"}, `^cairn: unknown command "frobnicate" \(run "cairn help" for the list\)$`},
	}
	for _, row := range rows {
		r := e.run(row.args...)
		if r.code != exitError {
			t.Fatalf("want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, row.want)
	}
}

// helpOf runs "cairn ARGS" in-process and returns what it printed.
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	app := newApp(strings.NewReader(""), &stdout, &stderr)
	if err := runApp(context.Background(), app, append([]string{"cairn"}, args...)); err != nil || stderr.Len() > 0 {
		t.Fatalf("cairn %q: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// TestRepoHelpNamesEveryScheme checks that --repo's help names every kind
// of location cairn opens, including any added to schemes() later.
func TestRepoHelpNamesEveryScheme(t *testing.T) {
	out := helpOf(t, "help")
	var line string
	for l := range strings.Lines(out) {
		if strings.Contains(l, "--repo LOCATION") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no --repo line in help\n%s", out)
	}
	if !strings.Contains(line, "a path") {
		t.Errorf("--repo help does not say a plain path works: %q", line)
	}
	for name := range schemes() {
		if !strings.Contains(line, name+":") {
			t.Errorf("--repo help does not name the %s: scheme: %q", name, line)
		}
	}
}

// TestHelpListsExitCodesOnce checks that the help of cairn and of every
// command and subcommand shows the exit statuses exactly once.
func TestHelpListsExitCodesOnce(t *testing.T) {
	check := func(args ...string) {
		t.Helper()
		out := helpOf(t, args...)
		for _, want := range []string{"EXIT STATUS:", "130  interrupted"} {
			if n := strings.Count(out, want); n != 1 {
				t.Errorf("cairn %s: %q appears %d times, want once\n%s", strings.Join(args, " "), want, n, out)
			}
		}
	}
	check("help")
	for _, cmd := range newApp(nil, nil, nil).Commands {
		check("help", cmd.Name)
		for _, sub := range cmd.Subcommands {
			check(cmd.Name, "help", sub.Name)
		}
	}
}

// TestResolveVersion checks where the version comes from: never a bare
// commit hash.
func TestResolveVersion(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}}
	installed := &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}
	rows := []struct {
		ldVersion, ldCommit string
		bi                  *debug.BuildInfo
		want                buildVersion
	}{
		{"", "", nil, buildVersion{devVersion, ""}},
		{"dev", "", nil, buildVersion{devVersion, ""}},
		{"", "", vcs, buildVersion{devVersion, "0123456789ab-dirty"}},
		{"", "", installed, buildVersion{"0.4.0", ""}},
		{"v0.5.0", "", installed, buildVersion{"0.5.0", ""}},
		{"0.5.0-3-gabc1234-dirty", "abc1234def00-dirty", vcs, buildVersion{"0.5.0-3-gabc1234-dirty", "abc1234def00-dirty"}},
		// What "git describe --always" gave without a tag.
		{"e6cf694", "", nil, buildVersion{devVersion, "e6cf694"}},
		{"e6cf694-dirty", "", installed, buildVersion{"0.4.0", "e6cf694-dirty"}},
		{"", "feedbeef0123", vcs, buildVersion{devVersion, "feedbeef0123"}},
	}
	for _, row := range rows {
		if got := resolveVersion(row.ldVersion, row.ldCommit, row.bi); got != row.want {
			t.Errorf("resolveVersion(%q, %q, %v) = %+v, want %+v", row.ldVersion, row.ldCommit, row.bi, got, row.want)
		}
	}
	if s := (buildVersion{"0.4.0", "0123456789ab"}).String(); !matches(`^cairn 0\.4\.0 \(commit 0123456789ab\) compiled with go\S+ on \S+/\S+$`, s) {
		t.Errorf("version line %q", s)
	}
}

// TestVersionFlag checks that "cairn --version" prints what "cairn
// version" prints, and refuses a command beside it.
func TestVersionFlag(t *testing.T) {
	e := newTestEnv(t)
	want := e.must("version").stdout
	if r := e.must("--version"); r.stdout != want {
		t.Errorf("--version printed %q, version %q", r.stdout, want)
	}
	if r := e.must("--json", "--version"); !strings.Contains(r.stdout, `"version":"`+testVersion+`"`) {
		t.Errorf("--json --version\n%s", r)
	}
	r := e.run("--version", "snapshots")
	if r.code != exitError {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `--version takes no command`)
}

// TestMakefileVersion checks what make build stamps into the binary: the
// newest v* tag as the version and the commit, in a scratch git
// repository holding the Makefile, and no version but a commit without a
// tag (the binary then says its devVersion: never a bare hash).
func TestMakefileVersion(t *testing.T) {
	for _, tool := range []string{"git", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	makefile, err := filepath.Abs("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sh := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	sh("git", "init", "-q")
	sh("cp", makefile, "Makefile")
	sh("sh", "-c", "echo one > notes")
	sh("git", "add", "Makefile", "notes")
	sh("git", "commit", "-q", "-m", "one")
	rev := strings.TrimSpace(sh("git", "rev-parse", "--short=12", "HEAD"))
	build := func() string {
		t.Helper()
		cmd := exec.Command("make", "-n", "build")
		cmd.Dir = dir
		// make takes VERSION and COMMIT from the environment when set.
		cmd.Env = []string{"GIT_CONFIG_GLOBAL=/dev/null"}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "VERSION=") && !strings.HasPrefix(kv, "COMMIT=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n build: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := build(); !strings.Contains(out, "-X main.version= -X main.commit="+rev+`"`) {
		t.Errorf("untagged: want no version and commit %s\n%s", rev, out)
	}
	sh("git", "tag", "v9.8.7")
	if out := build(); !strings.Contains(out, "-X main.version=9.8.7 -X main.commit="+rev+`"`) {
		t.Errorf("tagged v9.8.7: want version 9.8.7 and commit %s\n%s", rev, out)
	}
	sh("sh", "-c", "echo two > notes")
	if out := build(); !strings.Contains(out, "-X main.version=9.8.7-dirty -X main.commit="+rev+`-dirty"`) {
		t.Errorf("tagged, modified: want 9.8.7-dirty\n%s", out)
	}
}
