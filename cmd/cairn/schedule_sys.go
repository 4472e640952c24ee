package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/cmd/cairn/schedule"
)

// scheduler writes and finds schedules: unit files in unitDir and
// systemctl, or the user's crontab through the crontab command.
type scheduler struct {
	user bool
	// unitDir is where units are; unitDirGiven says --unit-dir named it,
	// and then systemctl is not run.
	unitDir      string
	unitDirGiven bool
	// systemd says systemd is the running init (sd_booted(3): the folder
	// /run/systemd/system exists).
	systemd bool
}

func (e *appEnv) scheduler(c *cli.Context) *scheduler {
	s := &scheduler{user: c.Bool("user"), unitDir: c.String("unit-dir")}
	s.unitDirGiven = s.unitDir != ""
	if !s.unitDirGiven {
		s.unitDir = "/etc/systemd/system"
		if s.user {
			s.unitDir = filepath.Join(filepath.Dir(userDir(e.getenv, "XDG_CONFIG_HOME", ".config")), "systemd", "user")
		}
	}
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		s.systemd = true
	}
	return s
}

// useSystemd says install writes units: --unit-dir, or systemd running.
func (s *scheduler) useSystemd() bool { return s.unitDirGiven || s.systemd }

// runsSystemctl says systemctl is to be run.
func (s *scheduler) runsSystemctl() bool { return !s.unitDirGiven && s.systemd }

func (s *scheduler) userFlag() string {
	if s.user {
		return " --user"
	}
	return ""
}

// maxToolOutput caps what is kept of systemctl's, crontab's or
// systemd-analyze's output.
const maxToolOutput = 1 << 20

// toolTimeout bounds one run of systemctl, crontab or systemd-analyze.
const toolTimeout = 2 * time.Minute

// tool runs name with args (stdin as its input) and returns its stdout;
// a failure is an error quoting the first line of its stderr.
func tool(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb capped
	out.max, errb.max = maxToolOutput, maxToolOutput
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			msg = err.Error()
		}
		return out.String(), &toolError{cmd: strings.Join(append([]string{name}, args...), " "), msg: msg, err: err}
	}
	return out.String(), nil
}

type toolError struct {
	cmd, msg string
	err      error
}

func (t *toolError) Error() string { return fmt.Sprintf("%s: %s", t.cmd, escapeControl(t.msg)) }
func (t *toolError) Unwrap() error { return t.err }

// capped keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (s *scheduler) systemctl(ctx context.Context, args ...string) error {
	if s.user {
		args = append([]string{"--user"}, args...)
	}
	_, err := tool(ctx, "", "systemctl", args...)
	return err
}

// checkCalendar asks systemd-analyze, when there is one, whether every
// is a calendar expression systemd understands: a timer with a bad one
// would be written and enabled, and never run.
func checkCalendar(ctx context.Context, every string) error {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		return nil
	}
	if _, err := tool(ctx, "", "systemd-analyze", "calendar", "--", every); err != nil {
		return fmt.Errorf("--every %q is not a systemd calendar expression (systemd.time(7)): %w", every, err)
	}
	return nil
}

// installUnits writes the service and the timer and, with systemd
// running and no --unit-dir, reloads systemd and enables the timer.
func (s *scheduler) installUnits(ctx context.Context, spec schedule.Spec) ([]string, error) {
	if err := checkCalendar(ctx, spec.Every); err != nil {
		return nil, err
	}
	service, err := schedule.ServiceUnit(spec)
	if err != nil {
		return nil, err
	}
	timer, err := schedule.TimerUnit(spec)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.unitDir, 0o755); err != nil {
		return nil, err
	}
	base := filepath.Join(s.unitDir, schedule.UnitName(spec.Profile))
	var wrote []string
	for _, u := range []struct{ name, text string }{{base + ".service", service}, {base + ".timer", timer}} {
		if err := writeUnitFile(u.name, []byte(u.text)); err != nil {
			if errors.Is(err, fs.ErrPermission) && !s.user && !s.unitDirGiven {
				return wrote, fmt.Errorf("write %s: %w (system units need root; --user installs yours)", u.name, err)
			}
			return wrote, fmt.Errorf("write %s: %w", u.name, err)
		}
		wrote = append(wrote, u.name)
	}
	if !s.runsSystemctl() {
		return wrote, nil
	}
	if err := s.systemctl(ctx, "daemon-reload"); err != nil {
		return wrote, err
	}
	return wrote, s.systemctl(ctx, "enable", "--now", schedule.UnitName(spec.Profile)+".timer")
}

// writeUnitFile writes a unit atomically, readable by all as systemd's
// units are.
func writeUnitFile(name string, data []byte) error {
	if err := writeFileAtomic(name, data); err != nil {
		return err
	}
	return os.Chmod(name, 0o644)
}

// readCrontab is the user's crontab, "" when there is none.
func readCrontab(ctx context.Context) (string, error) {
	out, err := tool(ctx, "", "crontab", "-l")
	var te *toolError
	if errors.As(err, &te) && strings.Contains(te.msg, "no crontab") {
		return "", nil
	}
	return out, err
}

func (s *scheduler) installCron(ctx context.Context, spec schedule.Spec) (string, error) {
	line, err := schedule.CronLine(spec)
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("crontab"); err != nil {
		return "", errors.New("systemd is not running and there is no crontab command: install cron, or write units with --unit-dir")
	}
	cur, err := readCrontab(ctx)
	if err != nil {
		return "", err
	}
	next, _ := schedule.SetCron(cur, spec.Profile, line)
	if _, err := tool(ctx, next, "crontab", "-"); err != nil {
		return "", err
	}
	return line, nil
}

// remove takes out what install wrote for profile: the timer (disabled
// first) and the service in the unit folder, and the crontab line.
// It returns what it removed.
func (s *scheduler) remove(ctx context.Context, profile string) ([]string, error) {
	var removed []string
	base := filepath.Join(s.unitDir, schedule.UnitName(profile))
	if _, err := os.Stat(base + ".timer"); err == nil {
		if s.runsSystemctl() {
			if err := s.systemctl(ctx, "disable", "--now", schedule.UnitName(profile)+".timer"); err != nil {
				return nil, err
			}
		}
		for _, name := range []string{base + ".timer", base + ".service"} {
			if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
				return removed, err
			}
			removed = append(removed, name)
		}
		if s.runsSystemctl() {
			if err := s.systemctl(ctx, "daemon-reload"); err != nil {
				return removed, err
			}
		}
	}
	if s.unitDirGiven {
		return removed, nil
	}
	if _, err := exec.LookPath("crontab"); err != nil {
		return removed, nil
	}
	cur, err := readCrontab(ctx)
	if err != nil {
		return removed, err
	}
	next, n := schedule.SetCron(cur, profile, "")
	if n == 0 {
		return removed, nil
	}
	if _, err := tool(ctx, next, "crontab", "-"); err != nil {
		return removed, err
	}
	return append(removed, "crontab line of "+profile), nil
}

// list finds the timers in the unit folder and cairn's crontab lines.
func (s *scheduler) list(ctx context.Context) ([]scheduledJSON, error) {
	var out []scheduledJSON
	timers, err := filepath.Glob(filepath.Join(s.unitDir, "cairn-*.timer"))
	if err != nil {
		return nil, err
	}
	for _, t := range timers {
		// A file name is shown escaped: it may hold any byte.
		profile := escapeControl(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(t), "cairn-"), ".timer"))
		out = append(out, scheduledJSON{Profile: profile, Kind: "systemd", Every: timerCalendar(t), Where: escapeControl(t)})
	}
	if s.unitDirGiven {
		return out, nil
	}
	if _, err := exec.LookPath("crontab"); err != nil {
		return out, nil
	}
	cur, err := readCrontab(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range schedule.FindCron(cur) {
		out = append(out, scheduledJSON{Profile: c.Profile, Kind: "crontab", Every: c.Times, Where: "crontab"})
	}
	return out, nil
}

// maxUnitFile caps how much of a timer file list reads.
const maxUnitFile = 64 << 10

// timerCalendar is a timer file's OnCalendar value, "?" when it has none.
func timerCalendar(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > maxUnitFile {
		return "?"
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "OnCalendar="); ok {
			return escapeControl(v)
		}
	}
	return "?"
}

// nextRun is when f runs next: systemctl's word for a timer when systemd
// runs it, else computed from the cron times (a timer's OnCalendar
// translated as for a crontab line, where it can be); "" when unknown.
func (s *scheduler) nextRun(ctx context.Context, f scheduledJSON, now time.Time) string {
	times := f.Every
	if f.Kind == "systemd" {
		if s.runsSystemctl() {
			args := []string{"show", "-p", "NextElapseUSecRealtime", "--value", schedule.UnitName(f.Profile) + ".timer"}
			if s.user {
				args = append([]string{"--user"}, args...)
			}
			out, err := tool(ctx, "", "systemctl", args...)
			if err != nil {
				return ""
			}
			return strings.TrimSpace(out)
		}
		var err error
		if times, err = schedule.CronTimes(f.Every); err != nil {
			return ""
		}
	}
	next, err := schedule.NextCron(times, now)
	if err != nil || next.IsZero() {
		return ""
	}
	return next.Format("2006-01-02 15:04 MST")
}
