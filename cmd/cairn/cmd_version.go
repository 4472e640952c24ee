package main

import (
	"runtime"

	"github.com/urfave/cli/v2"
)

func (e *appEnv) versionCommand() *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print version information",
		ArgsUsage: " ",
		Description: "Prints cairn's version, the Go version it was compiled with and the\n" +
			"platform. With --json it prints one JSON object.",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return errUnexpectedArgs(c)
			}
			g := e.globals(c)
			p := e.printer(g)
			if g.JSON {
				p.JSON(struct {
					MessageType string `json:"message_type"`
					Version     string `json:"version"`
					GoVersion   string `json:"go_version"`
					GoOS        string `json:"go_os"`
					GoArch      string `json:"go_arch"`
				}{"version", version, runtime.Version(), runtime.GOOS, runtime.GOARCH})
				return nil
			}
			// Printed even with --quiet: it is the command's one result.
			p.quiet = false
			p.Printf("cairn %s compiled with %s on %s/%s", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
