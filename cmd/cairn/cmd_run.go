package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/cmd/cairn/jobconf"
	"github.com/cairn-backup/cairn/cmd/cairn/monitor"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a profile's job: backup, forget (and prune when due), check, mirror",
		ArgsUsage: "PROFILE",
		Description: "Runs the job the configuration file's profile describes (see \"cairn config\" and\n" +
			"docs/jobs.md), one step after the other, each exactly as the command of that name:\n" +
			"  backup          the profile's paths, excludes, tags, host, compression\n" +
			"  forget          the profile's keep-* policy, for its own snapshots (its host,\n" +
			"                  tags and paths); only when it sets a keep-* key\n" +
			"  prune           when prune-every is set and the last prune is older than it\n" +
			"                  (less a tenth: a daily job with 1d prunes daily)\n" +
			"  check           with --read-data-subset check-subset when that is set\n" +
			"  mirror:DEST     for each mirror destination, in order\n" +
			"Each step locks the repository as its command does and waits for another's\n" +
			"lock up to retry-lock. A failing step does not stop the mirrors: a backup that\n" +
			"could not read some files, or a failed check, is still mirrored. Only when the\n" +
			"backup cannot open the repository (exit 10, 11 or 12) are forget, prune and\n" +
			"check skipped, and mirror too when there is no repository (10).\n\n" +
			"Hooks (sh -c, output to standard error, killed after hook-timeout, default\n" +
			"15m) run before and after the job and each step: before, then on-success or\n" +
			"on-failure, then after. They get CAIRN_PROFILE, CAIRN_STEP, CAIRN_HOOK and,\n" +
			"once there is a result, CAIRN_RESULT (success or failure), CAIRN_EXIT_CODE and\n" +
			"CAIRN_ERROR. A failing job before hook stops the job (exit 20); a failing\n" +
			"step before hook skips that step. The profile's env is set for the whole job.\n\n" +
			"The password comes from the profile's password-file or password-command, or\n" +
			"the environment; run never prompts for it.\n\n" +
			"Global flags given on the command line win over the profile (-r, password,\n" +
			"--retry-lock, limits, ...); the profile wins over the environment.\n\n" +
			"Each step's output goes to standard output (to standard error with --json),\n" +
			"errors to standard error. At the end a summary is printed, with --json as one\n" +
			"JSON document {\"profile\",\"start\",\"end\",\"ok\",\"exit_code\",\"steps\":[{\"name\",\n" +
			"\"ok\",\"skipped\",\"exit_code\",\"seconds\",\"error\"}]}, and the same document is\n" +
			"written to $XDG_STATE_HOME/cairn/runs/PROFILE.json (~/.local/state/...).\n\n" +
			"The exit status is 0 when every step (and hook) succeeded, 20 when the job's\n" +
			"before hook failed, else the first failing step's: 3 (backup made, some files\n" +
			"unreadable), 10, 11 or 12 (the backup could not open the repository), 130\n" +
			"(interrupted), 1 for any other failure, a hook's included.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "metrics-file", Usage: "write Prometheus textfile metrics of the job to `FILE` (default: the profile's metrics-file)"},
		},
		Action: e.runRun,
	}
}

// exitHookBefore is "cairn run"'s status when the profile's before hook
// failed and nothing else ran.
const exitHookBefore = 20

// runError is a job's failure, carrying its exit status (see exitCode).
type runError struct {
	code int
	msg  string
}

func (r *runError) Error() string { return r.msg }

// job is one run of a profile.
type job struct {
	e    *appEnv
	name string
	p    *jobconf.Profile
	// globals are every step's global flags: the profile's, and those
	// given on run's command line.
	globals []string
	// out gets the steps' output; log their errors and the hooks'
	// output, and keeps its tail for a failure ping.
	out io.Writer
	log *tailWriter
	sum runSummary
	// code and firstErr are the first failure's exit status and error.
	code     int
	firstErr string
	// metricsFile is where the metrics go, "" for none; facts are what
	// they report beyond the steps.
	metricsFile string
	facts       jobFacts
	// start and end bound the job (the summary keeps them in seconds).
	start, end time.Time
}

func (e *appEnv) runRun(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	if globalBool(c, "no-lock", "") {
		return errors.New("run: --no-lock does not apply: every step locks the repository as its command does")
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
	if probs := p.Validate(name); len(probs) > 0 {
		return &jobconf.Error{Problems: probs}
	}
	for k, v := range p.Env {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("profile %q: env %s: %w", name, k, err)
		}
	}
	cliArgs, set := cliGlobalArgs(c)
	j := &job{name: name, p: p, log: &tailWriter{w: e.stderr, max: 16 << 10}}
	je := *e
	je.onBackup = func(sum snapshot.Summary) { j.facts.backup = &sum }
	j.e = &je
	j.metricsFile = p.MetricsFile
	if c.IsSet("metrics-file") {
		j.metricsFile = c.String("metrics-file")
	}
	j.globals = append(p.GlobalArgs(func(flag string) bool {
		return set[flag] || (flag == "repo" && set["repository-file"])
	}), cliArgs...)
	j.out = e.stdout
	asJSON := globalBool(c, "json", "")
	if asJSON {
		j.out = j.log
	}
	var pinger *monitor.Pinger
	if p.PingURL != "" {
		pinger = &monitor.Pinger{URL: p.PingURL}
		if err := pinger.Start(c.Context); err != nil {
			fmt.Fprintf(j.log, "cairn: run %s: warning: %s\n", name, escapeControl(err.Error()))
		}
	}
	j.run(c.Context)
	prev := previousSummary(stateDir(e.getenv), name)
	if j.metricsFile != "" {
		j.countFacts(c.Context)
	}
	err = j.finish(asJSON, prev.Mirrors)
	// Reports outlive an interrupt: the watcher must hear of it.
	j.report(context.WithoutCancel(c.Context), pinger)
	return err
}

// cliGlobals are the global flags run passes on to its steps when given
// on its command line, with their aliases.
var cliGlobals = [][]string{
	{"repo", "r"}, {"repository-file"}, {"password-file"}, {"password-command"},
	{"cache-dir"}, {"no-cache"}, {"config-dir"}, {"quiet", "q"}, {"verbose", "v"},
	{"retry-lock"}, {"limit-upload"}, {"limit-download"}, {"pack-size"},
}

// cliGlobalArgs returns the global flags given on run's command line (not
// by the environment: the profile wins over that) as arguments for the
// steps, and the set of their names.
func cliGlobalArgs(c *cli.Context) ([]string, map[string]bool) {
	var args []string
	set := map[string]bool{}
	for _, names := range cliGlobals {
		for _, l := range c.Lineage() {
			if l.Command == nil || !hasLocal(l, names) || fromEnv(c, l, names[0]) {
				continue
			}
			set[names[0]] = true
			switch v := l.Value(names[0]).(type) {
			case bool:
				if v {
					args = append(args, "--"+names[0])
				}
			default:
				args = append(args, "--"+names[0], fmt.Sprint(v))
			}
			break
		}
	}
	for _, o := range optionValues(c) {
		args = append(args, "-o", o)
	}
	return args, set
}

// fromEnv reports whether the root level's value of the global flag
// name came from its environment variable: urfave/cli counts that as set.
// (Commands' copies of the global flags bind no variables.) A value given
// on the command line equal to the variable's reads as the variable's,
// which changes nothing but which of the two equal values is used.
func fromEnv(c *cli.Context, l *cli.Context, name string) bool {
	if l.Command.Name != c.App.Name && len(l.Lineage()) > 1 {
		return false
	}
	for _, f := range c.App.Flags {
		d, ok := f.(cli.DocGenerationFlag)
		if !ok || !slices.Contains(f.Names(), name) {
			continue
		}
		for _, v := range d.GetEnvVars() {
			if val, ok := os.LookupEnv(v); ok && val == fmt.Sprint(l.Value(name)) {
				return true
			}
		}
	}
	return false
}

func hasLocal(l *cli.Context, names []string) bool {
	for _, n := range l.LocalFlagNames() {
		for _, want := range names {
			if n == want {
				return true
			}
		}
	}
	return false
}
