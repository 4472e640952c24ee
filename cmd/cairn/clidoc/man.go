package clidoc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ManInfo is what man pages say beside the commands.
type ManInfo struct {
	// Date is the pages' date (a build's, for reproducible pages).
	Date time.Time
	// Version is the program's version, in the footer.
	Version string
	// ExitStatus is the EXIT STATUS section as "cairn help" shows it:
	// a heading line, then "   CODE   meaning" lines.
	ExitStatus string
}

// WriteMan writes one man page (section 1) per command into dir: NAME.1
// for the root, NAME-CMD.1 and NAME-CMD-SUB.1 below it, as restic names
// them. It returns the files written.
func WriteMan(dir string, root *Command, info ManInfo) ([]string, error) {
	var files []string
	var err error
	root.walk(func(c *Command) {
		if err != nil || (c != root && c.Names[0] == "help") {
			return
		}
		p := filepath.Join(dir, strings.Join(c.Path, "-")+".1")
		if werr := os.WriteFile(p, []byte(Man(root, c, info)), 0o644); werr != nil {
			err = fmt.Errorf("write man page: %w", werr)
			return
		}
		files = append(files, p)
	})
	return files, err
}

// Man returns the man page of command c (roff, man macros).
func Man(root, c *Command, info ManInfo) string {
	var b strings.Builder
	title := strings.Join(c.Path, "-")
	fmt.Fprintf(&b, ".TH %s 1 %s %s %s\n", roffQuote(strings.ToUpper(title)), roffQuote(info.Date.UTC().Format("2006-01-02")),
		roffQuote(root.Path[0]+" "+info.Version), roffQuote(root.Path[0]+" manual"))

	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", roffEscape(title), roffEscape(c.Usage))

	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n", roffEscape(strings.Join(c.Path, " ")))
	if len(c.Flags) > 0 || c != root {
		b.WriteString("[\\fIOPTIONS\\fR]\n")
	}
	if c.ArgsUsage != "" {
		fmt.Fprintf(&b, "%s\n", roffEscape(c.ArgsUsage))
	} else if len(c.Subcommands) > 0 {
		b.WriteString("\\fICOMMAND\\fR\n")
	}

	if c.Description != "" {
		b.WriteString(".SH DESCRIPTION\n")
		roffText(&b, c.Description, root.Path[0])
	}
	if len(c.Subcommands) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, s := range c.Subcommands {
			if s.Names[0] == "help" {
				continue
			}
			fmt.Fprintf(&b, ".TP\n\\fB%s\\fR(1)\n%s\n", roffEscape(strings.Join(s.Path, "-")), roffEscape(s.Usage))
		}
	}
	heading := "OPTIONS"
	if c == root {
		heading = "GLOBAL OPTIONS"
	}
	roffFlags(&b, heading, c.Flags)
	if c != root {
		roffFlags(&b, "GLOBAL OPTIONS", root.Flags)
	}
	if info.ExitStatus != "" {
		b.WriteString(".SH EXIT STATUS\n")
		lines := strings.Split(strings.TrimRight(info.ExitStatus, "\n"), "\n")
		for _, l := range lines[1:] {
			code, meaning, _ := strings.Cut(strings.TrimSpace(l), " ")
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roffEscape(code), roffEscape(strings.TrimSpace(meaning)))
		}
	}
	b.WriteString(".SH SEE ALSO\n")
	var see []string
	if c != root {
		parent := c.Path[:len(c.Path)-1]
		see = append(see, fmt.Sprintf("\\fB%s\\fR(1)", roffEscape(strings.Join(parent, "-"))))
	}
	for _, s := range c.Subcommands {
		if s.Names[0] != "help" {
			see = append(see, fmt.Sprintf("\\fB%s\\fR(1)", roffEscape(strings.Join(s.Path, "-"))))
		}
	}
	if len(see) == 0 {
		see = append(see, fmt.Sprintf("\\fB%s\\fR(1)", roffEscape(root.Path[0])))
	}
	b.WriteString(strings.Join(see, ",\n") + "\n")
	return b.String()
}

func roffFlags(b *strings.Builder, heading string, flags []Flag) {
	if len(flags) == 0 {
		return
	}
	fmt.Fprintf(b, ".SH %s\n", heading)
	for _, f := range flags {
		var names []string
		for _, n := range f.Names {
			names = append(names, "\\fB"+roffEscape(dashed(n))+"\\fR")
		}
		line := strings.Join(names, ", ")
		if f.Value != "" {
			line += " \\fI" + roffEscape(f.Value) + "\\fR"
		}
		fmt.Fprintf(b, ".TP\n%s\n", line)
		text := f.Usage
		if f.Default != "" && f.Default != `""` {
			text += " (default: " + f.Default + ")"
		}
		if len(f.Env) > 0 {
			text += " [$" + strings.Join(f.Env, ", $") + "]"
		}
		fmt.Fprintf(b, "%s\n", roffLine(text))
	}
}

// roffText renders help text: a line like "SNAPSHOTS:" is a subsection
// heading; other lines make blocks separated by blank lines. A block is
// filled as a paragraph, unless its lines are indented and look laid
// out by hand (a column gap of two spaces, or a command line starting
// with prog): those are kept as they are, indented.
func roffText(b *strings.Builder, text, prog string) {
	var block []string
	flush := func() {
		if len(block) == 0 {
			return
		}
		pre := false
		for _, l := range block {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(l, " ") && (strings.Contains(t, "  ") || strings.HasPrefix(t, prog+" ")) {
				pre = true
			}
		}
		if pre {
			b.WriteString(".PP\n.RS\n.nf\n")
			for _, l := range block {
				b.WriteString(roffLine(strings.TrimPrefix(l, "   ")) + "\n")
			}
			b.WriteString(".fi\n.RE\n")
		} else {
			b.WriteString(".PP\n")
			for _, l := range block {
				b.WriteString(roffLine(strings.TrimSpace(l)) + "\n")
			}
		}
		block = nil
	}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			flush()
		case !strings.HasPrefix(line, " ") && isHeading(trimmed):
			flush()
			fmt.Fprintf(b, ".SS %s\n", roffEscape(strings.TrimSuffix(trimmed, ":")))
		default:
			block = append(block, line)
		}
	}
	flush()
}

// isHeading reports whether a line is a heading such as "EXIT STATUS:".
func isHeading(s string) bool {
	if !strings.HasSuffix(s, ":") || len(s) < 3 {
		return false
	}
	return strings.ToUpper(s) == s && strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// roffEscape escapes text for roff: backslashes, and hyphens as minus
// signs (so flags copy and paste as typed).
func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// roffLine escapes a line of text, which must not start with a control
// character (. or ').
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffQuote quotes a macro argument.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffEscape(s), `"`, `\(dq`) + `"`
}
