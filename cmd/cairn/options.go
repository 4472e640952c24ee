package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/backend/sftp"
)

// Backend options: -o KEY=VALUE, as restic has them. KEY is
// "scheme.name": the option goes to the locations of that scheme. Each
// scheme lists the options it takes (schemeOptions); any other key, or a
// key of a scheme that none of the command's locations uses, is an error.

// backendOption is one -o option.
type backendOption struct {
	scheme string // "sftp"
	key    string // without the scheme: "command"
	value  string
}

func (o backendOption) name() string { return o.scheme + "." + o.key }

// optionDoc describes an option for help and messages.
type optionDoc struct {
	key, value, help string
	// oneLocation says the value names one server: the option cannot
	// serve two locations of its scheme in one command.
	oneLocation bool
}

// schemeOptions is, for each scheme that takes options, their
// documentation and the function that sets one on a location (which
// checks the value).
type schemeOptions struct {
	docs []optionDoc
	// check validates the scheme's options together, without a location.
	check func(opts []backendOption) error
}

// backendOptionTable lists the schemes that take options.
func backendOptionTable() map[string]schemeOptions {
	var sftpDocs []optionDoc
	for _, o := range sftp.Options {
		sftpDocs = append(sftpDocs, optionDoc{key: o.Key, value: o.Value, help: o.Help, oneLocation: o.Key == "command"})
	}
	return map[string]schemeOptions{
		"sftp": {docs: sftpDocs, check: func(opts []backendOption) error {
			var c sftp.Config
			for _, o := range opts {
				if err := c.SetOption(o.key, o.value); err != nil {
					return err
				}
			}
			return nil
		}},
		"s3": s3OptionDocs(),
	}
}

// knownOptions lists every KEY, sorted.
func knownOptions() []string {
	var keys []string
	for scheme, so := range backendOptionTable() {
		for _, d := range so.docs {
			keys = append(keys, scheme+"."+d.key)
		}
	}
	slices.Sort(keys)
	return keys
}

// optionsHelp is the list of options for "cairn help".
func optionsHelp() string {
	var b strings.Builder
	table := backendOptionTable()
	schemes := make([]string, 0, len(table))
	for s := range table {
		schemes = append(schemes, s)
	}
	slices.Sort(schemes)
	for _, s := range schemes {
		for _, d := range table[s].docs {
			fmt.Fprintf(&b, "   %s.%s=%s\n%s", s, d.key, d.value, wrapText(d.help, "        ", 78))
		}
	}
	return b.String()
}

// wrapText breaks s into lines of at most width columns (a longer word
// stands alone), each starting with indent and ending with a newline.
func wrapText(s, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, w := range strings.Fields(s) {
		if line != indent && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	if line != indent {
		b.WriteString(line + "\n")
	}
	return b.String()
}

// optionList collects -o values. It is a cli.Generic rather than a
// StringSliceFlag, which would split a value at its commas.
type optionList struct{ values []string }

// Set adds a value. urfave/cli copies a flag's value between its names
// (-o, --option) with Set(String()): that copy is recognised by the NUL
// bytes String puts in, which no command-line argument holds, and
// dropped.
func (l *optionList) Set(s string) error {
	if len(l.values) > 0 && s == l.String() {
		return nil
	}
	l.values = append(l.values, s)
	return nil
}

func (l *optionList) String() string {
	if len(l.values) == 0 {
		return ""
	}
	return "\x00" + strings.Join(l.values, "\x00")
}

// optionFlag is the -o flag; root says it is the root's copy (shown in
// help), else a command's hidden one.
func optionFlag(root bool) cli.Flag {
	return &cli.GenericFlag{Name: "option", Aliases: []string{"o"}, Value: &optionList{},
		Usage:  "set backend option `KEY=VALUE` (repeatable): " + strings.Join(knownOptions(), ", ") + "; see \"cairn help\"",
		Hidden: !root}
}

// optionValues gathers the -o values of every command level, the root's
// first: unlike other global flags, they add up.
func optionValues(c *cli.Context) []string {
	var out []string
	lineage := c.Lineage()
	for i := len(lineage) - 1; i >= 0; i-- {
		l := lineage[i]
		if l.Command == nil {
			continue
		}
		set := false
		for _, n := range l.LocalFlagNames() {
			set = set || n == "option" || n == "o"
		}
		if !set {
			continue
		}
		if v, ok := l.Generic("option").(*optionList); ok {
			out = append(out, v.values...)
		}
	}
	return out
}

// errOption is wrapped by every error about -o options.
var errOption = errors.New("backend option")

// parseBackendOptions checks each KEY=VALUE: the key names a scheme that
// takes it, the value is valid for it, and no key is given twice.
func parseBackendOptions(values []string) ([]backendOption, error) {
	table := backendOptionTable()
	var out []backendOption
	seen := map[string]bool{}
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%w %q: missing \"=VALUE\" (write -o KEY=VALUE)", errOption, k)
		}
		scheme, key, _ := strings.Cut(k, ".")
		so, known := table[strings.ToLower(scheme)]
		if !known || !slices.ContainsFunc(so.docs, func(d optionDoc) bool { return d.key == key }) {
			return nil, fmt.Errorf("%w %q is unknown (known: %s)", errOption, k, strings.Join(knownOptions(), ", "))
		}
		if seen[k] {
			return nil, fmt.Errorf("%w %q is given twice", errOption, k)
		}
		seen[k] = true
		out = append(out, backendOption{scheme: strings.ToLower(scheme), key: key, value: v})
	}
	for scheme, so := range table {
		var mine []backendOption
		for _, o := range out {
			if o.scheme == scheme {
				mine = append(mine, o)
			}
		}
		if err := so.check(mine); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkOptionsUsed refuses an option whose scheme none of the command's
// locations uses (it would be ignored), and one that names a single server
// (sftp.command) when two locations of its scheme would get it.
func checkOptionsUsed(opts []backendOption, locs ...string) error {
	table := backendOptionTable()
	for _, o := range opts {
		n := 0
		for _, loc := range locs {
			if name, _, err := parseLocation(loc); err == nil && strings.EqualFold(name, o.scheme) {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("%w %q: no %s: location in this command to apply it to", errOption, o.name(), o.scheme)
		}
		for _, d := range table[o.scheme].docs {
			if d.key == o.key && d.oneLocation && n > 1 {
				return fmt.Errorf("%w %q names one server, but this command reaches %d %s: locations: give them Host aliases in ~/.ssh/config instead", errOption, o.name(), n, o.scheme)
			}
		}
	}
	return nil
}

// checkOptionsBefore is a command's Before: it checks the -o options
// given so far, and refuses any for a command that opens no repository.
func checkOptionsBefore(opensLocations bool) cli.BeforeFunc {
	return func(c *cli.Context) error {
		values := optionValues(c)
		if _, err := parseBackendOptions(values); err != nil {
			return err
		}
		if !opensLocations && len(values) > 0 {
			return fmt.Errorf("%w: %q opens no repository, so -o does not apply", errOption, commandPath(c))
		}
		return nil
	}
}
