// Package clidoc turns the urfave/cli definition of cairn's command line
// into shell completions (bash, zsh, fish) and man pages, so that they
// never disagree with "cairn help": every command, subcommand and flag
// comes from the same *cli.App the binary runs.
//
// The completions are static scripts: they do not run cairn while the
// user types, so they need no repository or password and cost nothing.
// They complete command names, subcommand names and flags (global flags
// too, which cairn takes before or after the command name); a flag's
// value and positional arguments complete as file names, except "help",
// whose argument is a command name.
package clidoc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Command is a command as completions and man pages see it.
type Command struct {
	// Path is the command's full name: ["cairn"], ["cairn", "key",
	// "add"].
	Path []string
	// Names are its name and aliases ("help", "h").
	Names                         []string
	Usage, ArgsUsage, Description string
	// Flags are its own visible flags; the root's are the global ones.
	Flags       []Flag
	Subcommands []*Command
	// Words, if set, is what its positional arguments complete to
	// (help: the command names); otherwise they complete as files.
	Words []string
}

// Flag is a visible flag.
type Flag struct {
	// Names without dashes, in their defined order ("repo", "r").
	Names []string
	// Usage is the help text, a placeholder's backquotes removed.
	Usage string
	// Value names its value ("FILE"); "" for a flag without one.
	Value      string
	Repeatable bool
	// Default is the default value shown in help, or "".
	Default string
	Env     []string
}

// Name returns the command's name without the application's.
func (c *Command) Name() string { return strings.Join(c.Path[1:], " ") }

// FromApp builds the model of app's command line. app must have been set
// up (as running it does, which adds the help command); hidden commands
// and flags are left out. Every command and flag name must be a plain
// word (letters, digits, "-", "_", "."): the scripts quote nothing.
func FromApp(app *cli.App) (*Command, error) {
	root := &Command{Path: []string{app.Name}, Names: []string{app.Name}, Usage: app.Usage, ArgsUsage: "COMMAND", Description: app.Description}
	var err error
	if root.Flags, err = flags(app.Flags); err != nil {
		return nil, err
	}
	if root.Subcommands, err = commands(root.Path, app.Commands); err != nil {
		return nil, err
	}
	// urfave/cli gives each command it runs a "help" subcommand of its
	// own; only the application's is worth completing.
	root.walk(func(c *Command) {
		if c == root {
			return
		}
		c.Subcommands = slices.DeleteFunc(c.Subcommands, func(s *Command) bool { return s.Names[0] == "help" })
	})
	for _, c := range root.Subcommands {
		if c.Names[0] == "help" {
			for _, o := range root.Subcommands {
				if o.Names[0] != "help" {
					c.Words = append(c.Words, o.Names...)
				}
			}
		}
	}
	return root, nil
}

func commands(parent []string, cmds []*cli.Command) ([]*Command, error) {
	var out []*Command
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, n := range c.Names() {
			if !plainWord(n) {
				return nil, fmt.Errorf("command name %q: not a plain word", n)
			}
		}
		m := &Command{
			Path:  append(append([]string(nil), parent...), c.Name),
			Names: c.Names(), Usage: c.Usage, ArgsUsage: strings.TrimSpace(c.ArgsUsage), Description: c.Description,
		}
		var err error
		if m.Flags, err = flags(c.Flags); err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(m.Path, " "), err)
		}
		if m.Subcommands, err = commands(m.Path, c.Subcommands); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func flags(fs []cli.Flag) ([]Flag, error) {
	var out []Flag
	for _, f := range fs {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		d, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		for _, n := range f.Names() {
			if !plainWord(n) {
				return nil, fmt.Errorf("flag name %q: not a plain word", n)
			}
		}
		value, usage := placeholder(d.GetUsage())
		m := Flag{Names: f.Names(), Usage: usage, Env: d.GetEnvVars()}
		if d.TakesValue() {
			if value == "" {
				value = "VALUE"
			}
			m.Value = value
			m.Default = d.GetDefaultText()
			if m.Default == "" {
				m.Default = d.GetValue()
			}
		}
		s, ok := f.(cli.DocGenerationSliceFlag)
		m.Repeatable = ok && s.IsSliceFlag() || strings.Contains(usage, "(repeatable")
		out = append(out, m)
	}
	return out, nil
}

// placeholder splits the `NAME` of a usage text off, as urfave/cli does
// for its help: it returns NAME and the text without the backquotes.
func placeholder(usage string) (name, text string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name = usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}

func plainWord(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// dashed returns a flag name as typed: "--repo", "-r".
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// walk calls fn for c and every command below it, parents first.
func (c *Command) walk(fn func(*Command)) {
	fn(c)
	for _, s := range c.Subcommands {
		s.walk(fn)
	}
}

// subNames lists the names (aliases too) of c's subcommands.
func (c *Command) subNames() []string {
	var out []string
	for _, s := range c.Subcommands {
		out = append(out, s.Names...)
	}
	return out
}

// allFlags are the flags c accepts: its own and, below the root, the
// global ones.
func (c *Command) allFlags(root *Command) []Flag {
	if c == root {
		return c.Flags
	}
	out := append([]Flag(nil), c.Flags...)
	for _, g := range root.Flags {
		if !slices.ContainsFunc(out, func(f Flag) bool { return f.Names[0] == g.Names[0] }) {
			out = append(out, g)
		}
	}
	return out
}

// subcommandWords lists what may follow c as a subcommand: the names of
// its subcommands, or none where c's arguments complete to Words.
func (c *Command) subcommandWords() []string {
	if len(c.Words) > 0 {
		return nil
	}
	return c.subNames()
}

// flagWords lists the names, dashed, of the flags c accepts (see
// allFlags); with valued, only of those that take a value.
func (c *Command) flagWords(root *Command, valued bool) []string {
	var w []string
	for _, f := range c.allFlags(root) {
		if valued && f.Value == "" {
			continue
		}
		for _, n := range f.Names {
			w = append(w, dashed(n))
		}
	}
	return w
}

// scriptHead is the start of a completion script for shell: a comment
// saying what made it, and install, where it goes.
func scriptHead(shell, name, install string) string {
	return fmt.Sprintf("# %s completion for %s; generated by \"%s generate --%s-completion\".\n# %s\n\n", shell, name, name, shell, install)
}

// lookup is a completion script's lookup function, from a command path
// to the words it completes to: its opening, the format of a row (the
// command path, then the words joined by spaces, both put through
// quote) and its end.
type lookup struct {
	head, row, tail string
	quote           func(string) string
}

// write writes the function to b, with a row for each command of the
// tree at root for which words returns any, in walk order.
func (l lookup) write(b *strings.Builder, root *Command, words func(*Command) []string) {
	b.WriteString(l.head)
	root.walk(func(c *Command) {
		if w := words(c); len(w) > 0 {
			fmt.Fprintf(b, l.row, l.quote(c.Name()), l.quote(strings.Join(w, " ")))
		}
	})
	b.WriteString(l.tail)
}
