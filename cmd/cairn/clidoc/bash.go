package clidoc

import (
	"fmt"
	"strconv"
	"strings"
)

// Bash returns a bash completion script for the command line rooted at
// root: source it, or install it as
// /usr/share/bash-completion/completions/cairn. It defines _cairn (for
// "complete -F") and registers it for the root's name.
//
// _cairn finds the command typed so far by walking the words before the
// cursor: a flag that takes a value skips the next word ("=" too, which
// bash makes a word of its own), and the first word that is not a
// subcommand ends the walk. It completes subcommand names where one may
// come, flags when the word starts with "-", and leaves everything else
// (flag values, arguments) to bash's file name completion ("-o
// default").
func Bash(root *Command) string {
	name := root.Path[0]
	fn := "_" + ident(name)
	var b strings.Builder
	b.WriteString(scriptHead("bash", name, "Source it, or install it as /usr/share/bash-completion/completions/"+name+"."))
	cases := func(fnName, comment string, words func(c *Command) []string) {
		l := lookup{head: fmt.Sprintf("# %s\n%s() {\n\tcase \"$1\" in\n", comment, fnName), row: "\t%s) echo %s ;;\n", tail: "\tesac\n}\n\n", quote: strconv.Quote}
		l.write(&b, root, words)
	}
	cases(fn+"_subcommands", "The subcommands of the command path $1 (\"\" for the top).", (*Command).subcommandWords)
	cases(fn+"_words", "What the arguments of the command path $1 complete to, if not files.", func(c *Command) []string {
		return c.Words
	})
	cases(fn+"_flags", "The flags the command path $1 accepts.", func(c *Command) []string {
		return c.flagWords(root, false)
	})
	cases(fn+"_value_flags", "The flags of the command path $1 that take a value.", func(c *Command) []string {
		return c.flagWords(root, true)
	})

	fmt.Fprintf(&b, `%[1]s() {
	local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" w i value=0 args=0
	COMPREPLY=()
	[[ "$cur" == "=" ]] && cur=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		w="${COMP_WORDS[i]}"
		value=0
		if [[ "$w" == "--" ]]; then
			args=1
			continue
		fi
		if [[ "$w" == -* && $args -eq 0 ]]; then
			if [[ " $(%[1]s_value_flags "$cmd") " == *" $w "* ]]; then
				value=1
				if [[ "${COMP_WORDS[i+1]}" == "=" ]]; then
					((i++))
				fi
				if ((i + 1 < COMP_CWORD)); then
					((i++))
					value=0
				fi
			fi
			continue
		fi
		if [[ $args -eq 0 && " $(%[1]s_subcommands "$cmd") " == *" $w "* ]]; then
			cmd="${cmd:+$cmd }$w"
		else
			args=1
		fi
	done
	if [[ $value -eq 1 ]]; then
		return 0 # a flag's value: file names
	fi
	if [[ "$cur" == -* && $args -eq 0 ]]; then
		COMPREPLY=($(compgen -W "$(%[1]s_flags "$cmd")" -- "$cur"))
		return 0
	fi
	local words
	words="$(%[1]s_words "$cmd")"
	if [[ -n "$words" ]]; then
		COMPREPLY=($(compgen -W "$words" -- "$cur"))
		return 0
	fi
	if [[ $args -eq 0 ]]; then
		words="$(%[1]s_subcommands "$cmd")"
		if [[ -n "$words" ]]; then
			COMPREPLY=($(compgen -W "$words" -- "$cur"))
		fi
	fi
	return 0
}

complete -o default -F %[1]s %[2]s
`, fn, name)
	return b.String()
}

// ident makes a name usable in a shell function name.
func ident(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' {
			return '_'
		}
		return r
	}, s)
}
