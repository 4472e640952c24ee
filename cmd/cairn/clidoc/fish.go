package clidoc

import (
	"fmt"
	"strings"
)

// Fish returns a fish completion script for the command line rooted at
// root, for ~/.config/fish/completions/cairn.fish. A helper function
// prints the command path typed so far (walking the words as the bash
// script does); each completion is conditioned on that path.
func Fish(root *Command) string {
	name := root.Path[0]
	fn := "__" + ident(name)
	var b strings.Builder
	b.WriteString(scriptHead("fish", name, "Install it as ~/.config/fish/completions/"+name+".fish."))
	fishCases := func(fnName, desc string, words func(c *Command) []string) {
		l := lookup{head: fmt.Sprintf("function %s --description %s\n\tswitch \"$argv[1]\"\n", fnName, fishQuote(desc)), row: "\t\tcase %s\n\t\t\tstring split ' ' -- %s\n", tail: "\tend\nend\n\n", quote: fishQuote}
		l.write(&b, root, words)
	}
	fishCases(fn+"_subcommands", "subcommands of a "+name+" command path", (*Command).subcommandWords)
	fishCases(fn+"_value_flags", "flags of a "+name+" command path that take a value", func(c *Command) []string {
		return c.flagWords(root, true)
	})
	fmt.Fprintf(&b, `function %[1]s_path --description 'the %[2]s command path typed so far'
	set -l words (commandline -opc)
	set -e words[1]
	set -l path
	set -l skip 0
	for w in $words
		if test $skip = 1
			set skip 0
			continue
		end
		switch $w
			case '--'
				break
			case '-*=*'
				continue
			case '-*'
				if contains -- $w (%[1]s_value_flags (string join ' ' $path))
					set skip 1
				end
				continue
		end
		if contains -- $w (%[1]s_subcommands (string join ' ' $path))
			set -a path $w
		else
			break
		end
	end
	string join ' ' $path
end

function %[1]s_at --description 'whether the %[2]s command path typed so far is $argv[1]'
	set -l p (%[1]s_path)
	test "$p" = "$argv[1]"
end

`, fn, name)
	root.walk(func(c *Command) {
		cond := fmt.Sprintf("%s_at %s", fn, fishQuote(c.Name()))
		if len(c.Subcommands) > 0 && len(c.Words) == 0 {
			// Where a subcommand comes, no file names.
			fmt.Fprintf(&b, "complete -c %s -n %s -f\n", name, fishQuote(cond))
			for _, s := range c.Subcommands {
				for _, n := range s.Names {
					fmt.Fprintf(&b, "complete -c %s -n %s -f -a %s -d %s\n", name, fishQuote(cond), fishQuote(n), fishQuote(fishText(s.Usage)))
				}
			}
		}
		if len(c.Words) > 0 {
			fmt.Fprintf(&b, "complete -c %s -n %s -f -a %s\n", name, fishQuote(cond), fishQuote(strings.Join(c.Words, " ")))
		}
		for _, f := range c.Flags {
			var opts []string
			for _, n := range f.Names {
				if len(n) == 1 {
					opts = append(opts, "-s "+n)
				} else {
					opts = append(opts, "-l "+n)
				}
			}
			if f.Value != "" {
				opts = append(opts, "-r -F")
			}
			// Global flags (the root's) complete at every level.
			fc := fishQuote(cond)
			if c == root {
				fc = fishQuote("true")
			}
			fmt.Fprintf(&b, "complete -c %s -n %s %s -d %s\n", name, fc, strings.Join(opts, " "), fishQuote(fishText(f.Usage)))
		}
	})
	return b.String()
}

func fishText(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// fishQuote single-quotes s for fish (where \ and ' are escaped).
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
