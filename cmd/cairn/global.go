package main

import (
	"os"
	"path/filepath"
	"slices"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

// Environment variables cairn reads. The flag-backed ones are also named
// on their flags.
const (
	envRepository      = "CAIRN_REPOSITORY"
	envPasswordFile    = "CAIRN_PASSWORD_FILE"
	envPasswordCommand = "CAIRN_PASSWORD_COMMAND"
	envPassword        = "CAIRN_PASSWORD"
	envCacheDir        = "CAIRN_CACHE_DIR"
	envConfigDir       = "CAIRN_CONFIG_DIR"
	envRepositoryFile  = "CAIRN_REPOSITORY_FILE"
	envPackSize        = "CAIRN_PACK_SIZE"
	// envHost is the default of every --host flag: the host backup
	// records and the filters select by (restic's RESTIC_HOST).
	envHost = "CAIRN_HOST"
	// envCompression sets the compression of the data a command writes
	// (restic's RESTIC_COMPRESSION); backup --compression wins over it.
	envCompression = "CAIRN_COMPRESSION"
)

// globalOptions are the options every command shares.
type globalOptions struct {
	Repo            string
	PasswordFile    string
	PasswordCommand string
	CacheDir        string // "" when --no-cache or no cache dir is known
	ConfigDir       string // holds this device's identity
	JSON            bool
	Quiet           bool
	Verbose         bool
	NoLock          bool
	// Kit is a recovery kit to find the repository by, instead of Repo.
	Kit string
	// Options are the -o backend options, checked (checkOptionsBefore).
	Options []backendOption
	// runOptions are --retry-lock, the limits, --pack-size and
	// $CAIRN_COMPRESSION (see run_options.go).
	runOptions
}

// globalFlags returns the global flags. The root's copy binds environment
// variables and shows in help; each command gets a hidden copy without
// environment bindings, so that a flag given after the command name wins
// over the environment and over the same flag given before the name.
func globalFlags(root bool) []cli.Flag {
	env := func(name string) []string {
		if root {
			return []string{name}
		}
		return nil
	}
	return append([]cli.Flag{
		&cli.StringFlag{Name: "repo", Aliases: []string{"r"}, Usage: "repository `LOCATION`: " + locationForms, EnvVars: env(envRepository), Hidden: !root},
		&cli.StringFlag{Name: "password-file", Usage: "read the password from `FILE` (one trailing newline is removed)", EnvVars: env(envPasswordFile), Hidden: !root},
		&cli.StringFlag{Name: "password-command", Usage: "run `COMMAND` with sh -c and read the password from its output", EnvVars: env(envPasswordCommand), Hidden: !root},
		&cli.StringFlag{Name: "cache-dir", Usage: "local cache `DIR` (default: $XDG_CACHE_HOME/cairn or ~/.cache/cairn)", EnvVars: env(envCacheDir), Hidden: !root},
		&cli.BoolFlag{Name: "no-cache", Usage: "use no local cache", Hidden: !root},
		&cli.StringFlag{Name: "config-dir", Usage: "`DIR` of this device's identity, which signs snapshots (default: $XDG_CONFIG_HOME/cairn or ~/.config/cairn)", EnvVars: env(envConfigDir), Hidden: !root},
		&cli.BoolFlag{Name: "json", Usage: "print JSON (line-delimited status messages) instead of text", Hidden: !root},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors and warnings", Hidden: !root},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print more detail", Hidden: !root},
		&cli.StringFlag{Name: "kit", Usage: "find the repository with the recovery kit `FILE` (cairn recovery-kit) instead of -r", Hidden: !root},
		&cli.BoolFlag{Name: "no-lock", Usage: "do not lock the repository: for commands that only read (and dry runs), e.g. from a read-only copy", Hidden: !root},
		optionFlag(root),
		configFlag(root, env),
	}, runFlags(root, env)...)
}

// globalLevel finds the command level whose value of the global flag
// counts: the innermost command that has it on its command line, else the
// root, whose value urfave/cli already took from the command line, the
// environment or the default.
func globalLevel(c *cli.Context, names ...string) *cli.Context {
	var levels []*cli.Context
	for _, l := range c.Lineage() {
		if l.Command != nil {
			levels = append(levels, l)
		}
	}
	if len(levels) == 0 {
		return nil
	}
	for _, l := range levels[:len(levels)-1] {
		for _, set := range l.LocalFlagNames() {
			if slices.Contains(names, set) {
				return l
			}
		}
	}
	return levels[len(levels)-1]
}

func globalString(c *cli.Context, name, alias string) string {
	l := globalLevel(c, name, alias)
	if l == nil {
		return ""
	}
	return l.String(name)
}

func globalBool(c *cli.Context, name, alias string) bool {
	l := globalLevel(c, name, alias)
	if l == nil {
		return false
	}
	return l.Bool(name)
}

// device is this device's identity and remembered log heads, in the
// config dir.
func (g globalOptions) device() *snapshot.Device { return snapshot.DeviceAt(g.ConfigDir) }

// globals resolves the global options for the command running in c.
func (e *appEnv) globals(c *cli.Context) globalOptions {
	g := globalOptions{
		Repo:            globalString(c, "repo", "r"),
		Kit:             globalString(c, "kit", ""),
		PasswordFile:    globalString(c, "password-file", ""),
		PasswordCommand: globalString(c, "password-command", ""),
		CacheDir:        globalString(c, "cache-dir", ""),
		ConfigDir:       globalString(c, "config-dir", ""),
		JSON:            globalBool(c, "json", ""),
		Quiet:           globalBool(c, "quiet", "q"),
		Verbose:         globalBool(c, "verbose", "v"),
		NoLock:          globalBool(c, "no-lock", ""),
	}
	// Refused before the command ran if bad (checkOptionsBefore).
	g.Options, _ = parseBackendOptions(optionValues(c))
	g.runOptions = e.runOptionsFrom(c, &g.Repo)
	if globalBool(c, "no-cache", "") {
		g.CacheDir = ""
	} else if g.CacheDir == "" {
		g.CacheDir = defaultCacheDir(e.getenv)
	}
	if g.ConfigDir == "" {
		g.ConfigDir = defaultConfigDir(e.getenv)
	}
	return g
}

// defaultCacheDir is $XDG_CACHE_HOME/cairn, else ~/.cache/cairn, else ""
// (no cache) when neither is known.
func defaultCacheDir(getenv func(string) string) string {
	return userDir(getenv, "XDG_CACHE_HOME", ".cache")
}

// defaultConfigDir is $XDG_CONFIG_HOME/cairn, else ~/.config/cairn, else
// "" (commands that need it then fail and ask for --config-dir).
func defaultConfigDir(getenv func(string) string) string {
	return userDir(getenv, "XDG_CONFIG_HOME", ".config")
}

// userDir is $xdgVar/cairn, else ~/home/cairn, following the XDG base
// directory rule that relative paths in the variables are ignored.
func userDir(getenv func(string) string, xdgVar, home string) string {
	if d := getenv(xdgVar); filepath.IsAbs(d) {
		return filepath.Join(d, "cairn")
	}
	h := getenv("HOME")
	if !filepath.IsAbs(h) {
		if d, err := os.UserHomeDir(); err == nil {
			h = d
		}
	}
	if filepath.IsAbs(h) {
		return filepath.Join(h, home, "cairn")
	}
	return ""
}
