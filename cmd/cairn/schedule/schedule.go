package schedule

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Spec says what to run and when.
type Spec struct {
	// Profile names the profile `cairn run` runs; it names the units too.
	Profile string
	// Every is hourly, daily, weekly, or a systemd OnCalendar expression.
	Every string
	// Binary is the absolute path of the cairn to run.
	Binary string
	// Config is the absolute path of the configuration file, "" for
	// cairn's default.
	Config string
	// User says the units are a user's (systemctl --user) rather than
	// the system's.
	User bool
	// Env is set in the service's environment (HOME, XDG_STATE_HOME, so
	// that the job finds the state the user's `cairn schedule status`
	// reads), in order, as NAME=VALUE.
	Env []string
}

// ErrSpec is returned, wrapped, for a Spec that cannot be scheduled.
var ErrSpec = errors.New("bad schedule")

var (
	profileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	// calendarChars are those of systemd's calendar expressions
	// (systemd.time(7)): weekdays, dates, times, ranges, lists,
	// repetitions and a time zone.
	calendarChars = regexp.MustCompile(`^[A-Za-z0-9 *,.:/~_+-]{1,200}$`)
	envEntry      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// Validate checks s: a profile name fit for a unit name, a calendar
// expression of the characters systemd's take, absolute paths, and no
// character that would break a unit file or a crontab line.
func (s Spec) Validate() error {
	if !profileName.MatchString(s.Profile) {
		return fmt.Errorf("%w: profile name %q cannot name a systemd unit: use letters, digits, '.', '_' and '-'", ErrSpec, s.Profile)
	}
	if !calendarChars.MatchString(s.Every) {
		return fmt.Errorf("%w: --every %q: want hourly, daily, weekly or a systemd calendar expression (systemd.time(7))", ErrSpec, s.Every)
	}
	if !filepath.IsAbs(s.Binary) {
		return fmt.Errorf("%w: cairn's path %q is not absolute", ErrSpec, s.Binary)
	}
	if s.Config != "" && !filepath.IsAbs(s.Config) {
		return fmt.Errorf("%w: configuration file %q is not absolute", ErrSpec, s.Config)
	}
	for _, a := range append([]string{s.Binary, s.Config}, s.Env...) {
		if strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("%w: %q holds a control character", ErrSpec, a)
		}
	}
	for _, e := range s.Env {
		if !envEntry.MatchString(e) {
			return fmt.Errorf("%w: environment entry %q is not NAME=VALUE", ErrSpec, e)
		}
	}
	return nil
}

// Args is the command the schedule runs: cairn [--config FILE] run PROFILE.
func (s Spec) Args() []string {
	args := []string{s.Binary}
	if s.Config != "" {
		args = append(args, "--config", s.Config)
	}
	return append(args, "run", s.Profile)
}

// UnitName is the units' name without the suffix: cairn-PROFILE.
func UnitName(profile string) string { return "cairn-" + profile }

// randomizedDelay spreads the start of a job over the first minutes of
// its period, so that the machines of one site (or of friends mirroring
// to one server) do not all start at the same second: 5 minutes for an
// hourly job or a calendar expression (which may be as frequent), 30 for
// daily and weekly ones.
func randomizedDelay(every string) time.Duration {
	switch every {
	case "daily", "weekly":
		return 30 * time.Minute
	}
	return 5 * time.Minute
}

// ServiceUnit is the text of cairn-PROFILE.service: a oneshot running the
// job at low CPU and idle I/O priority. A system unit starts after the
// network is up (a user manager has no such target).
func ServiceUnit(s Spec) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by \"cairn schedule install\": remove with \"cairn schedule remove %s\".\n", s.Profile)
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=cairn backup job %s\n", s.Profile)
	if !s.User {
		b.WriteString("Wants=network-online.target\nAfter=network-online.target\n")
	}
	b.WriteString("\n[Service]\nType=oneshot\n")
	for _, e := range s.Env {
		fmt.Fprintf(&b, "Environment=%s\n", execQuote(e))
	}
	quoted := make([]string, 0, 5)
	for _, a := range s.Args() {
		quoted = append(quoted, execQuote(a))
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(quoted, " "))
	b.WriteString("Nice=10\nIOSchedulingClass=idle\n")
	return b.String(), nil
}

// TimerUnit is the text of cairn-PROFILE.timer. Persistent=true runs a
// job missed while the machine was off at the next boot.
func TimerUnit(s Spec) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by \"cairn schedule install\": remove with \"cairn schedule remove %s\".\n", s.Profile)
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=cairn backup job %s (%s)\n", s.Profile, specifierQuote(s.Every))
	b.WriteString("\n[Timer]\n")
	fmt.Fprintf(&b, "OnCalendar=%s\n", s.Every)
	b.WriteString("Persistent=true\n")
	fmt.Fprintf(&b, "RandomizedDelaySec=%d\n", int(randomizedDelay(s.Every).Seconds()))
	b.WriteString("\n[Install]\nWantedBy=timers.target\n")
	return b.String(), nil
}

// specifierQuote escapes systemd's specifier character.
func specifierQuote(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// execQuote quotes one word of an ExecStart= or Environment= line
// (systemd.syntax(7), systemd.service(5)): specifiers (%) and variable
// expansion ($) are escaped, and a word holding anything but plain
// characters is double-quoted with \ and " escaped.
func execQuote(a string) string {
	a = strings.ReplaceAll(specifierQuote(a), "$", "$$")
	if a != "" && !strings.ContainsFunc(a, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@%$", r))
	}) {
		return a
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
}
