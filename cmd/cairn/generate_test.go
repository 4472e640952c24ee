package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// requireTool returns the path of a program the generate tests check
// their output with. It skips the test when the program is missing,
// unless CAIRN_TEST_REQUIRE names "shells" (as `make test` does:
// scripts/test-deps.sh installs zsh and fish).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, r := range strings.FieldsFunc(os.Getenv("CAIRN_TEST_REQUIRE"), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if r == "shells" {
			t.Fatalf("CAIRN_TEST_REQUIRE names shells, but %s is missing", name)
		}
	}
	t.Skipf("%s is missing; set CAIRN_TEST_REQUIRE=shells to make this a failure", name)
	return ""
}

// runTool runs a checker with a bound on its time; it returns its
// combined output.
func runTool(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within a minute\n%s", name, args, out)
	}
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// generated writes every completion and the man pages with the binary.
func generated(t *testing.T, e *testEnv) (dir string) {
	t.Helper()
	dir = filepath.Join(e.dir, "gen")
	r := e.runWith(runOpts{env: []string{"SOURCE_DATE_EPOCH=1700000000"}}, "generate",
		"--bash-completion", filepath.Join(dir+"-bash"),
		"--zsh-completion", filepath.Join(dir+"-zsh"),
		"--fish-completion", filepath.Join(dir+"-fish"),
		"--man", filepath.Join(dir, "man"))
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("want exit 0 and no warning\n%s", r)
	}
	return dir
}

// TestGenerateBash is issue 13's generate for bash: the script, sourced
// in bash, completes "cairn ba<TAB>" to backup, subcommands, flags of
// the new commands and global flags after a command.
func TestGenerateBash(t *testing.T) {
	bash := requireTool(t, "bash")
	e := newTestEnv(t)
	dir := generated(t, e)
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"cairn", "ba"}, "backup"},
		{[]string{"cairn", "mo"}, "mount"},
		{[]string{"cairn", "-r", "/srv/repo", "ca"}, "cache cat"},
		{[]string{"cairn", "key", "a"}, "add"},
		{[]string{"cairn", "mount", "--path-t"}, "--path-template"},
		{[]string{"cairn", "cache", "--cl"}, "--cleanup"},
		{[]string{"cairn", "generate", "--ma"}, "--man"},
		{[]string{"cairn", "restore", "--targ"}, "--target"},
		{[]string{"cairn", "restore", "--target", ""}, ""}, // a path: files
		{[]string{"cairn", "backup", "--no-l"}, "--no-lock"},
		{[]string{"cairn", "help", "gen"}, "generate"},
	} {
		script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _cairn; echo "${COMPREPLY[*]}"`
		out := runTool(t, "", bash, append([]string{"--norc", "--noprofile", "-c", script, "bash", dir + "-bash"}, tc.words...)...)
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("%q completes to %q, want %q", tc.words, got, tc.want)
		}
	}
	// "-" writes to standard output.
	r := e.must("generate", "--bash-completion", "-")
	if b, err := os.ReadFile(dir + "-bash"); err != nil || r.stdout != string(b) {
		t.Errorf("--bash-completion - differs from the file (%v)", err)
	}
}

// The zsh script passes zsh -n, and completes in a real interactive zsh
// (driven through zsh/zpty: each read waits for the text it expects).
func TestGenerateZsh(t *testing.T) {
	zsh := requireTool(t, "zsh")
	e := newTestEnv(t)
	dir := generated(t, e)
	runTool(t, "", zsh, "-n", dir+"-zsh")
	fpath := filepath.Join(e.dir, "fpath")
	if err := os.Mkdir(fpath, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir + "-zsh")
	if err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(fpath, "_cairn"), string(b))
	driver := `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PROMPT="> "; fpath=(` + fpath + ` $fpath); autoload -Uz compinit; compinit -u -D; print READY'
zpty -r z line '*READY*'
check() {
	zpty -w -n z "$1"$'\t'
	zpty -r z out "*$2*" && print -r -- "completed: $2"
	zpty -w -n z $'\C-u'
}
check 'cairn ba' backup
check 'cairn key a' 'key add'
check 'cairn mount --path-t' --path-template
check 'cairn cache --cl' --cleanup
check 'cairn -r /srv/repo gen' generate
zpty -d z
`
	out := runTool(t, "", zsh, "-f", "-c", driver)
	for _, want := range []string{"backup", "key add", "--path-template", "--cleanup", "generate"} {
		if !strings.Contains(out, "completed: "+want) {
			t.Errorf("zsh did not complete to %q\n%s", want, out)
		}
	}
}

// The fish script passes fish -n, and fish's own "complete -C" completes
// with it.
func TestGenerateFish(t *testing.T) {
	fish := requireTool(t, "fish")
	e := newTestEnv(t)
	dir := generated(t, e)
	runTool(t, "", fish, "--no-config", "-n", dir+"-fish")
	for _, tc := range []struct{ line, want string }{
		{"cairn ba", "backup\t"},
		{"cairn key a", "add\t"},
		{"cairn mount --allow", "--allow-other\t"},
		{"cairn --repo /srv/repo ca", "cache\t"},
		{"cairn cache --max", "--max-age\t"},
		{"cairn help mo", "mount"},
	} {
		out := runTool(t, "", fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, dir+"-fish", tc.line)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, tc.want) }) {
			t.Errorf("%q: completions %q, want one starting %q", tc.line, lines, tc.want)
		}
	}
}

// One man page per command, each rendered by groff without a warning and
// by man -l, dated $SOURCE_DATE_EPOCH.
func TestGenerateMan(t *testing.T) {
	groff := requireTool(t, "groff")
	e := newTestEnv(t)
	dir := filepath.Join(generated(t, e), "man")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var pages []string
	for _, ent := range ents {
		pages = append(pages, ent.Name())
	}
	for _, want := range []string{"cairn.1", "cairn-backup.1", "cairn-key.1", "cairn-key-add.1", "cairn-mount.1", "cairn-cache.1", "cairn-generate.1", "cairn-peer-serve.1"} {
		if !slices.Contains(pages, want) {
			t.Errorf("no %s among %q", want, pages)
		}
	}
	if slices.Contains(pages, "cairn-help.1") {
		t.Error("a man page for the help command")
	}
	for _, p := range pages {
		cmd := exec.Command(groff, "-man", "-ww", "-z", "-k", filepath.Join(dir, p))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff -ww %s: %v\n%s", p, err, stderr.String())
		}
	}
	page, err := os.ReadFile(filepath.Join(dir, "cairn-mount.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(page, []byte(`.TH "CAIRN\-MOUNT" 1 "2023\-11\-14" "cairn `+strings.ReplaceAll(testVersion, "-", `\-`)+`"`)) {
		t.Errorf("cairn-mount.1 header: %q", bytes.SplitN(page, []byte("\n"), 2)[0])
	}
	man := requireTool(t, "man")
	cmd := exec.Command(man, "-l", filepath.Join(dir, "cairn-mount.1"))
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man -l cairn-mount.1: %v", err)
	}
	for _, want := range []string{"cairn-mount - browse snapshots as a read-only file system", "--path-template TEMPLATE", "EXIT STATUS", "cairn(1)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("man -l cairn-mount.1 lacks %q\n%s", want, out)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	e := newTestEnv(t)
	file := filepath.Join(e.dir, "file")
	e.writeFile(file, "x")
	for _, tc := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"generate"}, `generate: nothing to do: give --bash-completion, --zsh-completion, --fish-completion or --man`},
		{[]string{"generate", "x"}, `generate: unexpected argument "x"`},
		{[]string{"generate", "--bash-completion", filepath.Join(file, "sub")}, `generate --bash-completion: open .*file/sub: not a directory`},
		{[]string{"generate", "--man", file}, `generate --man: mkdir .*file: not a directory`},
	} {
		r := e.run(tc.args...)
		if r.code != exitError {
			t.Errorf("want exit 1\n%s", r)
			continue
		}
		checkOneErrorLine(t, r, tc.pattern)
	}
	r := e.run("--json", "generate", "--fish-completion", "-")
	if r.code != exitError {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `--json and --fish-completion - would both write to standard output`)
	r = e.must("--json", "generate", "--fish-completion", filepath.Join(e.dir, "f.fish"), "--man", filepath.Join(e.dir, "man"))
	msgs := jsonLines(t, r.stdout)
	if len(msgs) != 1 || msgs[0]["message_type"] != "generated" || len(msgs[0]["files"].([]any)) < 20 {
		t.Errorf("generate --json: %v", msgs)
	}
	r = e.runWith(runOpts{env: []string{"SOURCE_DATE_EPOCH=soon"}}, "generate", "--man", filepath.Join(e.dir, "m"))
	if r.code != exitError {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `SOURCE_DATE_EPOCH "soon": want seconds since 1970`)
}
