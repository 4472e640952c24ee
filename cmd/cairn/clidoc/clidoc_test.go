package clidoc

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// testApp is a small command line with what the generators must handle:
// a group command, aliases, hidden commands and flags, repeatable flags,
// a flag with a value and one without, and help text with a leading dot.
func testApp(t *testing.T) *Command {
	t.Helper()
	app := &cli.App{
		Name:        "tool",
		Usage:       "does things",
		Description: "Top text.\n\nEXAMPLES:\n   tool run x\n   .hidden dot",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "repo", Aliases: []string{"r"}, Usage: "the `LOCATION`", EnvVars: []string{"TOOL_REPO"}},
			&cli.BoolFlag{Name: "quiet", Usage: "say less"},
			&cli.BoolFlag{Name: "secret", Hidden: true},
		},
		Commands: []*cli.Command{
			{Name: "run", Aliases: []string{"go"}, Usage: "run [it]: now", ArgsUsage: "FILE...",
				Description: ".starts with a dot\\ and a backslash",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "tag", Usage: "a `TAG`"},
					&cli.IntFlag{Name: "count", Value: 3, Usage: "how many"},
					&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "pretend (repeatable? no)"},
				}},
			{Name: "group", Usage: "a group", Subcommands: []*cli.Command{
				{Name: "sub", Usage: "below"},
				{Name: "other", Usage: "beside", Hidden: true},
			}},
			{Name: "ghost", Hidden: true},
		},
	}
	app.Setup() // as running it does: adds the help command and flag
	root, err := FromApp(app)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestFromApp(t *testing.T) {
	root := testApp(t)
	var names []string
	root.walk(func(c *Command) { names = append(names, strings.Join(c.Path, " ")) })
	if want := []string{"tool", "tool run", "tool group", "tool group sub", "tool help"}; !slices.Equal(names, want) {
		t.Fatalf("commands %q, want %q", names, want)
	}
	var flagNames []string
	for _, f := range root.Flags {
		flagNames = append(flagNames, f.Names[0])
	}
	if !slices.Contains(flagNames, "repo") || slices.Contains(flagNames, "secret") {
		t.Errorf("global flags %v: want repo, not the hidden secret", flagNames)
	}
	run := root.Subcommands[0]
	if f := run.Flags[0]; f.Value != "TAG" || !f.Repeatable || f.Usage != "a TAG" {
		t.Errorf("--tag: %+v", f)
	}
	if f := run.Flags[1]; f.Value != "VALUE" || f.Default != "3" || f.Repeatable {
		t.Errorf("--count: %+v", f)
	}
	if f := run.Flags[2]; f.Value != "" || !slices.Equal(f.Names, []string{"dry-run", "n"}) {
		t.Errorf("--dry-run: %+v", f)
	}
	help := root.Subcommands[len(root.Subcommands)-1]
	if !slices.Equal(help.Words, []string{"run", "go", "group"}) {
		t.Errorf("help completes to %v", help.Words)
	}
	app := &cli.App{Name: "x", Commands: []*cli.Command{{Name: "bad name"}}}
	app.Setup()
	if _, err := FromApp(app); err == nil {
		t.Error("a command name with a space was accepted: the scripts do not quote names")
	}
}

// The bash script, sourced in a real bash, completes commands, aliases,
// subcommands, flags (global ones after the command name too) and help's
// argument, and leaves flag values and arguments to file completion.
func TestBashScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(t.TempDir(), "tool.bash")
	if err := os.WriteFile(script, []byte(Bash(testApp(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"tool", ""}, "run go group help h"},
		{[]string{"tool", "g"}, "go group"},
		{[]string{"tool", "group", ""}, "sub"},
		{[]string{"tool", "run", "--"}, "--tag --count --dry-run --repo --quiet --help"},
		{[]string{"tool", "run", "-"}, "--tag --count --dry-run -n --repo -r --quiet --help -h"},
		{[]string{"tool", "-r", "x", "gr"}, "group"},
		{[]string{"tool", "--repo", "=", "x", "gr"}, "group"},
		{[]string{"tool", "--quiet", "gr"}, "group"},
		{[]string{"tool", "run", "--count", ""}, ""},
		{[]string{"tool", "run", "file", "g"}, ""},
		{[]string{"tool", "help", "r"}, "run"},
	} {
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c",
			`source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _tool; echo "${COMPREPLY[*]}"`,
			"bash", script)
		cmd.Args = append(cmd.Args, tc.words...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.words, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%q completes to %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestManPage(t *testing.T) {
	root := testApp(t)
	dir := t.TempDir()
	files, err := WriteMan(dir, root, ManInfo{Date: time.Unix(0, 0), Version: "1.0", ExitStatus: "EXIT STATUS:\n   0    fine\n   1    not"})
	if err != nil {
		t.Fatal(err)
	}
	var base []string
	for _, f := range files {
		base = append(base, filepath.Base(f))
	}
	if want := []string{"tool.1", "tool-run.1", "tool-group.1", "tool-group-sub.1"}; !slices.Equal(base, want) {
		t.Fatalf("pages %q, want %q", base, want)
	}
	page, err := os.ReadFile(filepath.Join(dir, "tool-run.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`.TH "TOOL\-RUN" 1 "1970\-01\-01" "tool 1.0" "tool manual"`,
		"tool\\-run \\- run [it]: now\n",
		"\\&.starts with a dot\\e and a backslash\n", // a control character escaped
		"\\fB\\-\\-tag\\fR \\fITAG\\fR\n",
		"how many (default: 3)",
		"the LOCATION [$TOOL_REPO]",
		".SH EXIT STATUS\n.TP\n.B 0\nfine\n",
		"\\fBtool\\fR(1)",
	} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("tool-run.1 lacks %q:\n%s", want, page)
		}
	}
	top, err := os.ReadFile(filepath.Join(dir, "tool.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(top, []byte(".SS EXAMPLES\n.PP\n.RS\n.nf\ntool run x\n\\&.hidden dot\n.fi\n")) {
		t.Errorf("tool.1: the examples are not kept as laid out:\n%s", top)
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff to render the pages")
	}
	for _, f := range files {
		cmd := exec.Command(groff, "-man", "-ww", "-z", "-k", f)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Stdout = io.Discard
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s: %v\n%s", filepath.Base(f), err, stderr.String())
		}
	}
}
