package clidoc

import (
	"fmt"
	"strings"
)

// Zsh returns a zsh completion script for the command line rooted at
// root, for a folder on $fpath named "_cairn" (or to be sourced after
// compinit). Each command with subcommands gets a function that
// completes its flags and subcommand names and hands the rest of the
// line to the chosen subcommand's function; other commands complete
// their flags (with descriptions) and file names.
func Zsh(root *Command) string {
	name := root.Path[0]
	var b strings.Builder
	b.WriteString("#compdef " + name + "\n" + scriptHead("zsh", name, "Put it in a folder on $fpath as _"+name+", or source it after compinit."))
	root.walk(func(c *Command) {
		fn := zshFunc(c)
		fmt.Fprintf(&b, "%s() {\n", fn)
		specs := zshSpecs(c.allFlags(root))
		if len(c.Subcommands) > 0 && len(c.Words) == 0 {
			b.WriteString("\tlocal curcontext=\"$curcontext\" state line\n\ttypeset -A opt_args\n")
			b.WriteString("\t_arguments -C -S \\\n")
			for _, s := range specs {
				fmt.Fprintf(&b, "\t\t%s \\\n", s)
			}
			fmt.Fprintf(&b, "\t\t%s \\\n\t\t%s && return 0\n", zshQuote("1: :->command"), zshQuote("*:: :->args"))
			b.WriteString("\tcase $state in\n\tcommand)\n\t\tlocal -a commands\n\t\tcommands=(\n")
			for _, s := range c.Subcommands {
				for _, n := range s.Names {
					fmt.Fprintf(&b, "\t\t\t%s\n", zshQuote(n+":"+zshText(s.Usage)))
				}
			}
			fmt.Fprintf(&b, "\t\t)\n\t\t_describe -t commands %s commands\n\t\t;;\n\targs)\n\t\tcurcontext=\"${curcontext%%:*:*}:%s-$words[1]:\"\n\t\tcase $words[1] in\n",
				zshQuote(strings.Join(c.Path, " ")+" command"), ident(strings.Join(c.Path, "-")))
			for _, s := range c.Subcommands {
				fmt.Fprintf(&b, "\t\t%s) %s ;;\n", strings.Join(s.Names, "|"), zshFunc(s))
			}
			b.WriteString("\t\tesac\n\t\t;;\n\tesac\n}\n\n")
			return
		}
		b.WriteString("\t_arguments -S \\\n")
		for _, s := range specs {
			fmt.Fprintf(&b, "\t\t%s \\\n", s)
		}
		if len(c.Words) > 0 {
			fmt.Fprintf(&b, "\t\t%s\n}\n\n", zshQuote("*:command:("+strings.Join(c.Words, " ")+")"))
			return
		}
		fmt.Fprintf(&b, "\t\t%s\n}\n\n", zshQuote("*:file:_files"))
	})
	fmt.Fprintf(&b, "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n\t%s \"$@\"\nelse\n\tcompdef %s %s\nfi\n", zshFunc(root), zshFunc(root), name)
	return b.String()
}

func zshFunc(c *Command) string { return "_" + ident(strings.Join(c.Path, "_")) }

// zshSpecs are the _arguments specifications of flags: each name with
// its description, and for a flag with a value its name and file
// completion; repeatable flags may be given again.
func zshSpecs(flags []Flag) []string {
	var out []string
	for _, f := range flags {
		for _, n := range f.Names {
			spec := dashed(n)
			if f.Repeatable {
				spec = "*" + spec
			}
			if f.Value != "" {
				if len(n) == 1 {
					spec += "+"
				} else {
					spec += "="
				}
			}
			spec += "[" + zshText(f.Usage) + "]"
			if f.Value != "" {
				spec += ":" + zshText(f.Value) + ":_files"
			}
			out = append(out, zshQuote(spec))
		}
	}
	return out
}

// zshText makes help text safe inside an _arguments description or a
// _describe entry: brackets and colons would end the field.
func zshText(s string) string {
	return strings.NewReplacer("[", "(", "]", ")", ":", " -", "\\", "/", "\n", " ").Replace(s)
}

// zshQuote single-quotes s for zsh.
func zshQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
