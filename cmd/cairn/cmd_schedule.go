package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/cmd/cairn/schedule"
)

func (e *appEnv) scheduleCommand() *cli.Command {
	unitDir := &cli.StringFlag{Name: "unit-dir", Usage: "systemd units are in `DIR` rather than /etc/systemd/system (--user: ~/.config/systemd/user); systemctl is not run (for images, packages, or a manager reading other folders)"}
	user := &cli.BoolFlag{Name: "user", Usage: "the user's systemd units (systemctl --user) rather than the system's"}
	return &cli.Command{
		Name:  "schedule",
		Usage: "run a profile on a schedule: a systemd timer, or a crontab line",
		Description: "Schedules \"cairn run PROFILE\" (profiles are in the configuration file: see\n" +
			"\"cairn config\"). Where systemd runs, a service and a timer named\n" +
			"cairn-PROFILE.service/.timer are written to /etc/systemd/system (--user:\n" +
			"~/.config/systemd/user) and enabled; elsewhere, or with --crontab, a line is\n" +
			"added to the user's crontab. See docs/jobs.md.",
		Subcommands: []*cli.Command{
			{
				Name:      "install",
				Usage:     "schedule a profile (again: replaces its schedule)",
				ArgsUsage: "PROFILE",
				Description: "--every is hourly, daily (midnight), weekly (Monday midnight) or a systemd\n" +
					"OnCalendar expression (systemd.time(7)), e.g. \"*-*-* 03:30:00\". The timer is\n" +
					"Persistent (a run missed while the machine was off happens at boot) and starts\n" +
					"within a random delay (5 minutes; 30 for daily and weekly); the service runs\n" +
					"the job with Nice=10 and IOSchedulingClass=idle, and ExecStart names this\n" +
					"cairn by its absolute path and the configuration file by its own. A crontab\n" +
					"line can say hourly, daily, weekly and \"*-*-* HH:MM:00\" only; it runs cairn -q\n" +
					"(cron mails what a job prints) and ends with \"# cairn-schedule:PROFILE\".",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "every", Usage: "when: hourly, daily, weekly or a systemd `CALENDAR` expression", Required: true},
					user,
					&cli.BoolFlag{Name: "crontab", Usage: "write a crontab line even where systemd runs"},
					unitDir,
				},
				Action: e.runScheduleInstall,
			},
			{
				Name:      "remove",
				Usage:     "unschedule a profile: disable and delete its units, or delete its crontab line",
				ArgsUsage: "PROFILE",
				Flags:     []cli.Flag{user, unitDir},
				Action:    e.runScheduleRemove,
			},
			{
				Name:      "list",
				Usage:     "list the scheduled profiles (systemd timers and crontab lines)",
				ArgsUsage: " ",
				Flags:     []cli.Flag{user, unitDir},
				Action:    e.runScheduleList,
			},
			{
				Name:      "status",
				Usage:     "show each scheduled profile's last run, next run and last result",
				ArgsUsage: "[PROFILE]",
				Description: "The last run and its result are read from the state cairn run keeps in\n" +
					"$XDG_STATE_HOME/cairn/runs/PROFILE.json (~/.local/state/cairn/runs); the next\n" +
					"run from systemctl, or from the crontab line (without --unit-dir's systemd,\n" +
					"hourly/daily/weekly and \"*-*-* HH:MM:00\" timers are computed the same way,\n" +
					"ignoring the random delay).",
				Flags:  []cli.Flag{user, unitDir},
				Action: e.runScheduleStatus,
			},
		},
	}
}

// scheduleSpec builds the schedule of the profile named on the command
// line, checking that the configuration file has it.
func (e *appEnv) scheduleSpec(c *cli.Context) (schedule.Spec, error) {
	cf, err := e.loadConfig(c)
	if err != nil {
		return schedule.Spec{}, err
	}
	name := c.Args().First()
	if _, err := cf.Resolve(name); err != nil {
		return schedule.Spec{}, err
	}
	cfg, err := filepath.Abs(cf.Path)
	if err != nil {
		return schedule.Spec{}, err
	}
	bin, err := os.Executable()
	if err != nil {
		return schedule.Spec{}, fmt.Errorf("find cairn's own path: %w", err)
	}
	s := schedule.Spec{Profile: name, Every: c.String("every"), Binary: bin, Config: cfg, User: c.Bool("user")}
	// The job must find the state and keys this user's cairn does: a
	// system service has no HOME of its own.
	for _, v := range []string{"HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"} {
		if d := e.getenv(v); filepath.IsAbs(d) {
			s.Env = append(s.Env, v+"="+d)
		}
	}
	return s, s.Validate()
}

func (e *appEnv) runScheduleInstall(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	s, err := e.scheduleSpec(c)
	if err != nil {
		return err
	}
	sys := e.scheduler(c)
	if c.Bool("crontab") && sys.unitDirGiven {
		return errors.New("--crontab and --unit-dir: choose one")
	}
	if c.Bool("crontab") || !sys.useSystemd() {
		if s.User {
			return errors.New("--user is for systemd units: a crontab line is always the user's own")
		}
		line, err := sys.installCron(c.Context, s)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "crontab: %s\n", line)
		return nil
	}
	names, err := sys.installUnits(c.Context, s)
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Fprintf(e.stdout, "wrote %s\n", n)
	}
	if sys.unitDirGiven {
		fmt.Fprintf(e.stdout, "systemctl not run (--unit-dir): enable with systemctl%s enable --now %s.timer\n", sys.userFlag(), schedule.UnitName(s.Profile))
	} else {
		fmt.Fprintf(e.stdout, "enabled %s.timer\n", schedule.UnitName(s.Profile))
	}
	return nil
}

func (e *appEnv) runScheduleRemove(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	profile := c.Args().First()
	sys := e.scheduler(c)
	removed, err := sys.remove(c.Context, profile)
	for _, r := range removed {
		fmt.Fprintf(e.stdout, "removed %s\n", r)
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		where := fmt.Sprintf("no %s.timer in %s", schedule.UnitName(profile), sys.unitDir)
		if !sys.unitDirGiven {
			where += ", no crontab line"
		}
		return fmt.Errorf("profile %q is not scheduled (%s)", profile, where)
	}
	return nil
}

// scheduledJSON is one line of "schedule list --json" and of "schedule
// status --json".
type scheduledJSON struct {
	Profile string `json:"profile"`
	// Kind is "systemd" or "crontab".
	Kind  string `json:"kind"`
	Every string `json:"every"`
	// Where is the timer's path or "crontab".
	Where   string          `json:"where"`
	NextRun string          `json:"next_run,omitempty"`
	LastRun *lastRunSummary `json:"last_run,omitempty"`
}

func (e *appEnv) runScheduleList(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	found, err := e.scheduler(c).list(c.Context)
	if err != nil {
		return err
	}
	if e.globals(c).JSON {
		return printJSONList(e, found)
	}
	for _, f := range found {
		fmt.Fprintf(e.stdout, "%-16s %-8s %-20s %s\n", f.Profile, f.Kind, f.Every, f.Where)
	}
	return nil
}

func printJSONList(e *appEnv, v []scheduledJSON) error {
	if v == nil {
		v = []scheduledJSON{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

func (e *appEnv) runScheduleStatus(c *cli.Context) error {
	if err := wantArgs(c, 0, 1); err != nil {
		return err
	}
	sys := e.scheduler(c)
	found, err := sys.list(c.Context)
	if err != nil {
		return err
	}
	if want := c.Args().First(); want != "" {
		found = filterProfile(found, want)
		if len(found) == 0 {
			return fmt.Errorf("profile %q is not scheduled (see \"cairn schedule list\")", want)
		}
	}
	now := e.now()
	for i := range found {
		found[i].NextRun = sys.nextRun(c.Context, found[i], now)
		found[i].LastRun = readLastRun(stateDir(e.getenv), found[i].Profile)
	}
	if e.globals(c).JSON {
		return printJSONList(e, found)
	}
	for _, f := range found {
		fmt.Fprintf(e.stdout, "%s: %s (%s), next run %s\n", f.Profile, f.Kind, f.Every, orUnknown(f.NextRun))
		fmt.Fprintf(e.stdout, "  last run: %s\n", f.LastRun.describe())
	}
	return nil
}

func filterProfile(found []scheduledJSON, profile string) []scheduledJSON {
	var out []scheduledJSON
	for _, f := range found {
		if f.Profile == profile {
			out = append(out, f)
		}
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// lastRunSummary is what status shows of the run state file cairn run
// writes (run_state.go): nil when the profile never ran.
type lastRunSummary struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exit_code"`
	// Failed names the steps that failed.
	Failed []string `json:"failed_steps,omitempty"`
	// Error is set when the state file could not be read.
	Error string `json:"error,omitempty"`
}

// maxRunState caps how much of a run state file is read: a summary of a
// few steps is a few KB.
const maxRunState = 1 << 20

func readLastRun(dir, profile string) *lastRunSummary {
	if dir == "" {
		return nil
	}
	f, err := os.Open(filepath.Join(dir, "runs", profile+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &lastRunSummary{Error: err.Error()}
	}
	defer f.Close()
	var s runSummary
	if err := json.NewDecoder(io.LimitReader(f, maxRunState)).Decode(&s); err != nil {
		return &lastRunSummary{Error: fmt.Sprintf("%s: %v", f.Name(), err)}
	}
	out := &lastRunSummary{Start: s.Start, End: s.End, OK: s.OK, ExitCode: s.ExitCode}
	for _, st := range s.Steps {
		if !st.OK && !st.Skipped {
			out.Failed = append(out.Failed, st.Name)
		}
	}
	return out
}

func (l *lastRunSummary) describe() string {
	switch {
	case l == nil:
		return "never run"
	case l.Error != "":
		return "unknown: " + l.Error
	}
	when := l.End
	if t, err := time.Parse(time.RFC3339, l.End); err == nil {
		when = t.Local().Format("2006-01-02 15:04:05 MST")
	}
	if l.OK {
		return fmt.Sprintf("%s, ok", when)
	}
	msg := fmt.Sprintf("%s, failed (exit %d)", when, l.ExitCode)
	if len(l.Failed) > 0 {
		msg += ": " + strings.Join(l.Failed, ", ")
	}
	return msg
}
