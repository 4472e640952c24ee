package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// appEnv is what one run of cairn talks to: its standard streams and
// whether they are terminals. Tests build one over buffers.
type appEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// stdoutTTY says stdout is a terminal: progress is drawn only then.
	stdoutTTY bool
	// stdinTTY says stdin is a terminal: a password is prompted for only
	// then, so cron never hangs on a prompt.
	stdinTTY bool
	// getenv reads the environment; tests may replace it.
	getenv func(string) string
	// onBackup, when set ("cairn run"), gets each backup's summary.
	onBackup func(snapshot.Summary)
	// stdoutWidth gives the width of the terminal stdout is on (0:
	// unknown); nil when stdout is not a terminal.
	stdoutWidth func() int
}

// isTerminal reports whether v is an *os.File open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newApp builds the command line application over the given streams.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	e := &appEnv{
		stdin: stdin, stdout: stdout, stderr: stderr,
		stdoutTTY: isTerminal(stdout), stdinTTY: isTerminal(stdin),
		getenv: os.Getenv,
	}
	if f, ok := stdout.(*os.File); ok && e.stdoutTTY {
		e.stdoutWidth = terminalWidth(f, term.GetSize)
	}
	return e.newApp()
}

func (e *appEnv) newApp() *cli.App {
	app := &cli.App{
		Name:  "cairn",
		Usage: "encrypted, deduplicated backups",
		Description: "cairn backs files up into an encrypted, deduplicated, compressed repository\n" +
			"and restores them. Run \"cairn help COMMAND\" for a command's flags.\n\n" +
			"Global options may be given before or after the command name. The password\n" +
			"is read from --password-file, else --password-command, else $CAIRN_PASSWORD,\n" +
			"else prompted for when standard input is a terminal; otherwise the command\n" +
			"fails (it never waits for input in cron).\n\n" +
			"Backend options (-o KEY=VALUE, repeatable) go to the locations of the scheme\n" +
			"KEY starts with; an unknown KEY, or one no location of the command uses, is\n" +
			"an error. A location's own user and port win over them. Known options:\n" + optionsHelp(),
		CustomAppHelpTemplate: cli.AppHelpTemplate + "\n" + exitStatusHelp + "\n",
		Version:               programVersion().Version,
		HideVersion:           true, // --version is versionFlag: urfave/cli's would take -v
		Reader:                e.stdin,
		Writer:                e.stdout,
		ErrWriter:             e.stderr,
		Flags:                 globalFlags(true),
		ExitErrHandler:        func(*cli.Context, error) {}, // main maps errors to codes
		OnUsageError:          usageError,
		Before: func(c *cli.Context) error {
			if err := e.checkTestSeams(); err != nil {
				return err
			}
			if _, err := progressFPS(e.getenv(envProgressFPS)); err != nil {
				return err
			}
			if c.Bool("version") && c.Args().Present() {
				return fmt.Errorf("--version takes no command (\"cairn version\" prints the version)")
			}
			_, err := parseBackendOptions(optionValues(c))
			return err
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand(c, "")
			}
			if c.Bool("version") {
				return e.printVersion(c)
			}
			return cli.ShowAppHelp(c)
		},
	}
	hideBoolDefaults(app.Flags)
	globalHelp := globalOptionsHelp(app.Flags)
	// Not a global option: commands do not take it.
	app.Flags = append(app.Flags, versionFlag())
	hideBoolDefaults(app.Flags)
	// version and peer open no repository: -o does not apply to them.
	for _, cmd := range []*cli.Command{e.versionCommand(), e.peerCommand(), e.scheduleCommand()} {
		prepareCommand(cmd, globalHelp, checkOptionsBefore(false))
		app.Commands = append(app.Commands, cmd)
	}
	for _, cmd := range e.repoCommands() {
		prepareCommand(cmd, globalHelp, checkOptionsBefore(true))
		app.Commands = append(app.Commands, cmd)
	}
	return app
}

// prepareCommand gives a command (and its subcommands) hidden copies of the
// global flags so they may follow the command name, turns usage errors into
// plain errors, sets a help template that lists the global options and
// the exit statuses, and runs check before the command's own Before.
func prepareCommand(cmd *cli.Command, globalHelp string, check cli.BeforeFunc) {
	cmd.Flags = append(cmd.Flags, globalFlags(false)...)
	own := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		if err := check(c); err != nil {
			return err
		}
		if own != nil {
			return own(c)
		}
		return nil
	}
	hideBoolDefaults(cmd.Flags)
	cmd.OnUsageError = usageError
	if len(cmd.Subcommands) > 0 {
		cmd.CustomHelpTemplate = groupHelpTemplate + globalHelp + "\n" + exitStatusHelp + "\n"
		// A group command run without a known subcommand fails
		// instead of printing help and exiting 0.
		if cmd.Action == nil {
			name := cmd.Name
			cmd.Action = func(c *cli.Context) error {
				if c.Args().Present() {
					return unknownCommand(c, name)
				}
				return cli.ShowSubcommandHelp(c)
			}
		}
	} else {
		cmd.CustomHelpTemplate = cli.CommandHelpTemplate + globalHelp + "\n" + exitStatusHelp + "\n"
	}
	for _, sub := range cmd.Subcommands {
		prepareCommand(sub, globalHelp, check)
	}
}

// groupHelpTemplate is the help of a command that has subcommands. It
// lists them from .VisibleCommands, which (unlike urfave/cli's category
// listing) works before the command has run.
const groupHelpTemplate = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{.HelpName}} command [command options]{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}

COMMANDS:{{range .VisibleCommands}}
   {{join .Names ", "}}{{"\t"}}{{.Usage}}{{end}}
`

// hideBoolDefaults drops the "(default: false)" urfave/cli prints after
// every boolean flag.
func hideBoolDefaults(flags []cli.Flag) {
	for _, f := range flags {
		if b, ok := f.(*cli.BoolFlag); ok {
			b.DisableDefaultText = true
		}
	}
}

// globalOptionsHelp renders the GLOBAL OPTIONS section for command help.
func globalOptionsHelp(flags []cli.Flag) string {
	var b strings.Builder
	b.WriteString("\nGLOBAL OPTIONS:\n")
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		// The text goes into a template: braces would be actions.
		s := strings.NewReplacer("{{", "{ {", "}}", "} }").Replace(fmt.Sprint(f))
		b.WriteString("   " + s + "\n")
	}
	return b.String()
}

// usageError keeps urfave/cli from printing the whole help for a bad flag:
// the error becomes one line printed by main.
func usageError(c *cli.Context, err error, _ bool) error {
	if s := suggestFlag(c, err); s != "" {
		return fmt.Errorf("%w (did you mean %s? see \"cairn help\")", err, s)
	}
	return fmt.Errorf("%w (see \"cairn help\")", err)
}

// runApp runs the application on the command line args (args[0] is the
// program name). Flags may follow positional arguments, as users of
// restic expect: they are moved in front before urfave/cli parses them.
func runApp(ctx context.Context, app *cli.App, args []string) error {
	err := app.RunContext(ctx, permuteArgs(app, args))
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return errInterrupted
	}
	return err
}

// permuteArgs moves each command level's flags (with their values) before
// its positional arguments, so "cairn restore latest --target /tmp/r"
// parses as "cairn restore --target /tmp/r latest". A "--" ends flag
// parsing: whatever follows it is positional.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	flags, cmds := app.Flags, app.Commands
level:
	for {
		var flagArgs, pos []string
		for i := 0; i < len(rest); i++ {
			a := rest[i]
			if a == "--" {
				out = append(out, flagArgs...)
				out = append(out, "--")
				out = append(out, pos...)
				return append(out, rest[i+1:]...)
			}
			if len(a) > 1 && a[0] == '-' {
				flagArgs = append(flagArgs, a)
				if !strings.Contains(a, "=") && flagTakesValue(flags, strings.TrimLeft(a, "-")) && i+1 < len(rest) {
					flagArgs = append(flagArgs, rest[i+1])
					i++
				}
				continue
			}
			if len(pos) == 0 {
				if sub := findCommand(cmds, a); sub != nil {
					out = append(out, flagArgs...)
					out = append(out, a)
					flags, cmds, rest = sub.Flags, sub.Subcommands, rest[i+1:]
					continue level
				}
			}
			pos = append(pos, a)
		}
		out = append(out, flagArgs...)
		return append(out, pos...)
	}
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func flagTakesValue(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if v, ok := f.(cli.DocGenerationFlag); ok {
			return v.TakesValue()
		}
	}
	return false
}
