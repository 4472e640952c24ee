package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// errUnexpectedArgs reports positional arguments a command does not take.
func errUnexpectedArgs(c *cli.Context) error {
	return fmt.Errorf("%s: unexpected argument %q", c.Command.FullName(), c.Args().First())
}

// wantArgs checks the number of positional arguments.
func wantArgs(c *cli.Context, min, max int) error {
	n := c.Args().Len()
	switch {
	case n < min:
		usage := strings.TrimSpace(c.Command.ArgsUsage)
		return fmt.Errorf("%s: missing argument (usage: cairn %s %s)", c.Command.FullName(), c.Command.FullName(), usage)
	case max >= 0 && n > max:
		return fmt.Errorf("%s: unexpected argument %q", c.Command.FullName(), c.Args().Get(max))
	}
	return nil
}
