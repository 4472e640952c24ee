package main

import (
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/cmd/cairn/jobconf"
	"github.com/urfave/cli/v2"
)

// envConfigFile names the configuration file, as --config does.
const envConfigFile = "CAIRN_CONFIG"

// configFlag is the global --config flag; root and env as in globalFlags.
func configFlag(root bool, env func(string) []string) cli.Flag {
	return &cli.StringFlag{Name: "config", Usage: "read profiles (cairn run) and [serve] from `FILE` (default: $XDG_CONFIG_HOME/cairn/cairn.toml, else ~/.config/cairn/cairn.toml, else /etc/cairn/cairn.toml)", EnvVars: env(envConfigFile), Hidden: !root}
}

// errNoConfig says no configuration file was given or found.
var errNoConfig = errors.New("no configuration file: give --config FILE, or create ~/.config/cairn/cairn.toml or /etc/cairn/cairn.toml (see docs/jobs.md)")

// configPath is --config (or $CAIRN_CONFIG), else the first default
// file that exists, else "".
func (e *appEnv) configPath(c *cli.Context) string {
	if p := globalString(c, "config", ""); p != "" {
		return p
	}
	return jobconf.Find(e.getenv)
}

// loadConfig reads the configuration file; errNoConfig when there is none.
func (e *appEnv) loadConfig(c *cli.Context) (*jobconf.File, error) {
	path := e.configPath(c)
	if path == "" {
		return nil, errNoConfig
	}
	return jobconf.Load(path)
}

func (e *appEnv) configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "show and check the configuration file's profiles",
		Description: "The configuration file (TOML) holds named profiles for \"cairn run\" and the\n" +
			"[serve] section of \"cairn peer serve\"; see docs/jobs.md for every key. It is\n" +
			"--config FILE, else $XDG_CONFIG_HOME/cairn/cairn.toml (~/.config/cairn/cairn.toml),\n" +
			"else /etc/cairn/cairn.toml.",
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "print a profile's effective settings (inherited ones merged, secrets masked)",
				ArgsUsage: "PROFILE",
				Description: "Prints the profile as TOML after following its inherit chain. The values of\n" +
					"env variables whose names hold PASSWORD, SECRET, KEY or TOKEN are masked; a\n" +
					"password-command is shown (it says where the password is, not what it is).",
				Action: e.runConfigShow,
			},
			{
				Name:      "check",
				Usage:     "validate every profile and [serve]",
				ArgsUsage: " ",
				Description: "Reads the file and checks every profile (after inheritance) and the [serve]\n" +
					"section, without opening any repository. Prints one line per problem and\n" +
					"exits 1 if there is any; prints \"ok\" and exits 0 otherwise.",
				Action: e.runConfigCheck,
			},
		},
	}
}

func (e *appEnv) runConfigShow(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	cf, err := e.loadConfig(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	p, err := cf.Resolve(name)
	if err != nil {
		return err
	}
	out, err := p.Masked().Marshal(name)
	if err != nil {
		return fmt.Errorf("config show: %w", err)
	}
	fmt.Fprintf(e.stdout, "# %s, profile %q with its inherited settings\n%s", cf.Path, name, out)
	return nil
}

func (e *appEnv) runConfigCheck(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	cf, err := e.loadConfig(c)
	var problems []string
	var je *jobconf.Error
	switch {
	case errors.As(err, &je):
		problems = je.Problems
	case err != nil:
		return err
	default:
		problems = cf.Check()
	}
	for _, p := range problems {
		fmt.Fprintln(e.stdout, escapeControl(p))
	}
	if len(problems) > 0 {
		return fmt.Errorf("config check: %d problem(s) in %s", len(problems), e.configPath(c))
	}
	fmt.Fprintf(e.stdout, "ok: %s, %d profile(s)\n", cf.Path, len(cf.Profiles))
	return nil
}
