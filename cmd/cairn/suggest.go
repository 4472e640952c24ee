package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// unknownCommand is the error for a command name that is not one:
// "cairn snapshot" says "did you mean "snapshots"?". group is the command
// whose subcommand was asked for ("key"), "" at the top level.
func unknownCommand(c *cli.Context, group string) error {
	name := c.Args().First()
	cmds, full, help := c.App.Commands, name, "cairn help"
	if group != "" {
		cmds, full, help = c.Command.Subcommands, group+" "+name, "cairn help "+group
	}
	if s := suggestCommand(cmds, name); s != "" {
		return fmt.Errorf("unknown command %q (did you mean %q? run %q for the list)", full, strings.TrimSpace(group+" "+s), help)
	}
	return fmt.Errorf("unknown command %q (run %q for the list)", full, help)
}

// suggestCommand is the command name urfave/cli's suggester finds
// nearest to name, or "" when even that is too far off to be a typo (see
// closeEnough).
func suggestCommand(cmds []*cli.Command, name string) string {
	if cli.SuggestCommand == nil {
		return ""
	}
	var visible []*cli.Command
	for _, c := range cmds {
		if !c.Hidden {
			visible = append(visible, c)
		}
	}
	s := didYouMean(cli.SuggestCommand(visible, name))
	if !closeEnough(name, s) {
		return ""
	}
	return s
}

// undefinedFlag matches the flag package's error for an unknown flag.
var undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)

// suggestFlag is "--name" for the flag of the running command nearest to
// the unknown one err names, or "".
func suggestFlag(c *cli.Context, err error) string {
	m := undefinedFlag.FindStringSubmatch(err.Error())
	if m == nil || cli.SuggestFlag == nil || c == nil {
		return ""
	}
	flags := c.App.Flags
	if c.Command != nil && c.Command.Name != "" {
		flags = c.Command.Flags
	}
	var visible []cli.Flag
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); !ok || v.IsVisible() {
			visible = append(visible, f)
		}
	}
	s := cli.SuggestFlag(visible, m[1], true)
	if !closeEnough(m[1], strings.TrimLeft(s, "-")) {
		return ""
	}
	return s
}

// didYouMean takes the name out of urfave/cli's "Did you mean %q?".
func didYouMean(s string) string {
	if i, j := strings.IndexByte(s, '"'), strings.LastIndexByte(s, '"'); i >= 0 && j > i {
		return s[i+1 : j]
	}
	return ""
}

// closeEnough says typed is plausibly a typo of name: at most a third of
// its letters (and at least one) inserted, deleted, changed or swapped.
// urfave/cli always names the nearest candidate, however far, and
// "did you mean "find"?" for "frobnicate" would only confuse.
func closeEnough(typed, name string) bool {
	if name == "" || name == "help" || name == "h" {
		return false
	}
	return editDistance(typed, name) <= max(1, len(typed)/3)
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours, by byte.
func editDistance(a, b string) int {
	// Three rows of the dynamic programme: two back for swaps.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
