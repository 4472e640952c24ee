package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func testSpec() Spec {
	return Spec{Profile: "home", Every: "daily", Binary: "/usr/local/bin/cairn", Config: "/etc/cairn/cairn.toml", Env: []string{"HOME=/root"}}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Spec)
		ok   bool
	}{
		{"good", func(*Spec) {}, true},
		{"calendar", func(s *Spec) { s.Every = "Mon..Fri *-*-* 03:30:00 Europe/Paris" }, true},
		{"no config", func(s *Spec) { s.Config = "" }, true},
		{"profile with slash", func(s *Spec) { s.Profile = "a/b" }, false},
		{"profile with space", func(s *Spec) { s.Profile = "a b" }, false},
		{"profile dot first", func(s *Spec) { s.Profile = ".x" }, false},
		{"empty profile", func(s *Spec) { s.Profile = "" }, false},
		{"every with newline", func(s *Spec) { s.Every = "daily\nExecStart=/bin/sh" }, false},
		{"every with percent", func(s *Spec) { s.Every = "%h" }, false},
		{"empty every", func(s *Spec) { s.Every = "" }, false},
		{"relative binary", func(s *Spec) { s.Binary = "cairn" }, false},
		{"relative config", func(s *Spec) { s.Config = "cairn.toml" }, false},
		{"config with newline", func(s *Spec) { s.Config = "/etc/x\n[Service]" }, false},
		{"env not assignment", func(s *Spec) { s.Env = []string{"HOME"} }, false},
		{"env with newline", func(s *Spec) { s.Env = []string{"HOME=/root\nX=1"} }, false},
	} {
		s := testSpec()
		c.edit(&s)
		err := s.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrSpec) {
			t.Errorf("%s: error %v is not ErrSpec", c.name, err)
		}
	}
}

// unitValues collects a unit's KEY=VALUE lines.
func unitValues(text string) map[string][]string {
	v := map[string][]string{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if k, val, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			v[k] = append(v[k], val)
		}
	}
	return v
}

func TestUnits(t *testing.T) {
	s := testSpec()
	svc, err := ServiceUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	v := unitValues(svc)
	for k, want := range map[string]string{
		"Type":              "oneshot",
		"ExecStart":         "/usr/local/bin/cairn --config /etc/cairn/cairn.toml run home",
		"Nice":              "10",
		"IOSchedulingClass": "idle",
		"Environment":       "HOME=/root",
		"After":             "network-online.target",
	} {
		if got := strings.Join(v[k], "|"); got != want {
			t.Errorf("service %s=%q, want %q", k, got, want)
		}
	}
	timer, err := TimerUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	v = unitValues(timer)
	for k, want := range map[string]string{"OnCalendar": "daily", "Persistent": "true", "RandomizedDelaySec": "1800", "WantedBy": "timers.target"} {
		if got := strings.Join(v[k], "|"); got != want {
			t.Errorf("timer %s=%q, want %q", k, got, want)
		}
	}
	// A user manager has no network-online.target.
	s.User = true
	svc, _ = ServiceUnit(s)
	if strings.Contains(svc, "network-online") {
		t.Errorf("user service waits for network-online.target:\n%s", svc)
	}
	s.Profile = "bad/name"
	if _, err := ServiceUnit(s); err == nil {
		t.Error("ServiceUnit took a bad profile")
	}
	if _, err := TimerUnit(s); err == nil {
		t.Error("TimerUnit took a bad profile")
	}
}

func TestExecQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/cairn":      "/usr/bin/cairn",
		"/home/me/my config":  `"/home/me/my config"`,
		`/a"b\c`:              `"/a\"b\\c"`,
		"/home/100%/x":        "/home/100%%/x",
		"/opt/$HOME":          "/opt/$$HOME",
		"/it's here":          `"/it's here"`,
		"HOME=/home/my name":  `"HOME=/home/my name"`,
		"":                    `""`,
		"/ünïcode/cairn.toml": `"/ünïcode/cairn.toml"`,
	} {
		if got := execQuote(in); got != want {
			t.Errorf("execQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCronTimes(t *testing.T) {
	for every, want := range map[string]string{
		"hourly":           "0 * * * *",
		"daily":            "0 0 * * *",
		"weekly":           "0 0 * * 1",
		"*-*-* 03:30:00":   "30 3 * * *",
		"*-*-* 3:05":       "5 3 * * *",
		"23:59":            "59 23 * * *",
		"*-*-* 24:00:00":   "",
		"*-*-* 03:60:00":   "",
		"*-*-* 03:30:15":   "",
		"Mon *-*-* 03:30":  "",
		"*:0/15":           "",
		"monthly":          "",
		"*-*-01 00:00:00":  "",
		"*-*-* 03:30:00 X": "",
	} {
		got, err := CronTimes(every)
		if want == "" {
			if err == nil || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "cron cannot") {
				t.Errorf("CronTimes(%q) = %q, %v; want a refusal", every, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("CronTimes(%q) = %q, %v; want %q", every, got, err, want)
		}
	}
}

// shellWords splits a command as /bin/sh does for the quoting shellQuote
// writes (plain words, single quotes and \', with cron's \% first undone).
func shellWords(t *testing.T, cmd string) []string {
	t.Helper()
	cmd = strings.ReplaceAll(cmd, `\%`, "%")
	var words []string
	var cur strings.Builder
	inWord, quoted, escaped := false, false, false
	for _, r := range cmd {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quoted && r == '\'':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == '\\':
			escaped, inWord = true, true
		case r == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted || escaped {
		t.Fatalf("unterminated quote in %q", cmd)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

func TestCronLineParsesBack(t *testing.T) {
	s := testSpec()
	s.Every = "*-*-* 02:15:00"
	s.Config = "/home/o'brien/100% sure/cairn.toml"
	line, err := CronLine(s)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(line)
	if got := strings.Join(fields[:5], " "); got != "15 2 * * *" {
		t.Fatalf("time fields %q, want 15 2 * * *: %s", got, line)
	}
	cmd, marker, ok := strings.Cut(line[len("15 2 * * * "):], " # ")
	if !ok || marker != "cairn-schedule:home" {
		t.Fatalf("no marker comment: %s", line)
	}
	want := []string{"/usr/local/bin/cairn", "-q", "--config", s.Config, "run", "home"}
	if got := shellWords(t, cmd); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("command words %q, want %q", got, want)
	}
	if strings.Contains(strings.ReplaceAll(line, `\%`, ""), "%") {
		t.Errorf("unescaped %% (cron makes it a newline): %s", line)
	}
	es := FindCron("MAILTO=x\n" + line + "\n")
	if len(es) != 1 || es[0].Profile != "home" || es[0].Times != "15 2 * * *" || es[0].Line != line {
		t.Errorf("FindCron = %+v", es)
	}
	s.Every = "Mon *-*-* 03:00:00"
	if _, err := CronLine(s); err == nil {
		t.Error("CronLine took a calendar cron cannot say")
	}
}

func TestSetCron(t *testing.T) {
	s := testSpec()
	line, _ := CronLine(s)
	s2 := s
	s2.Profile = "work"
	line2, _ := CronLine(s2)
	user := "# m h dom mon dow command\nMAILTO=me@example.org\n5 4 * * * /usr/bin/other # cairn-schedule:home-like comment\n"
	ct, n := SetCron(user, "home", line)
	if n != 0 || ct != user+line+"\n" {
		t.Fatalf("add: removed %d, got\n%s", n, ct)
	}
	ct, _ = SetCron(ct, "work", line2)
	// Installing again replaces the line: still one.
	s.Every = "hourly"
	again, _ := CronLine(s)
	ct, n = SetCron(ct, "home", again)
	if n != 1 || len(FindCron(ct)) != 2 || !strings.Contains(ct, again) || strings.Contains(ct, line+"\n") {
		t.Fatalf("replace: removed %d, got\n%s", n, ct)
	}
	ct, n = SetCron(ct, "home", "")
	if n != 1 || ct != user+line2+"\n" {
		t.Fatalf("remove: removed %d, got\n%s", n, ct)
	}
	// A commented-out line of ours is the user's: left alone, not listed.
	commented := "#" + line + "\n"
	if es := FindCron(commented); len(es) != 0 {
		t.Errorf("FindCron listed a commented line: %+v", es)
	}
	if out, n := SetCron(commented, "home", ""); n != 0 || out != commented {
		t.Errorf("SetCron removed a commented line")
	}
	// No final newline in the user's crontab.
	if out, _ := SetCron("MAILTO=x", "home", line); out != "MAILTO=x\n"+line+"\n" {
		t.Errorf("SetCron without final newline: %q", out)
	}
}

func TestNextCron(t *testing.T) {
	// Tuesday.
	now := time.Date(2026, 12, 8, 1, 2, 30, 0, time.UTC)
	for _, c := range []struct{ times, want string }{
		{"0 * * * *", "2026-12-08 02:00"},
		{"0 0 * * *", "2026-12-09 00:00"},
		{"0 0 * * 1", "2026-12-14 00:00"},
		{"30 3 * * *", "2026-12-08 03:30"},
		{"2 1 * * *", "2026-12-09 01:02"},
		{"0 0 * * 7", "2026-12-13 00:00"},
		{"0 0 29 2 *", "2028-02-29 00:00"},
		{"0 0 31 2 *", "none"},
	} {
		got, err := NextCron(c.times, now)
		if err != nil {
			t.Errorf("NextCron(%q): %v", c.times, err)
			continue
		}
		s := got.Format("2006-01-02 15:04")
		if got.IsZero() {
			s = "none"
		}
		if c.times == "0 0 29 2 *" {
			// Beyond a year: not found, and that is said as none.
			if !got.IsZero() {
				t.Errorf("NextCron(%q) = %s, want none within a year", c.times, s)
			}
			continue
		}
		if s != c.want {
			t.Errorf("NextCron(%q) = %s, want %s", c.times, s, c.want)
		}
	}
	for _, bad := range []string{"", "0 * * *", "60 * * * *", "* 24 * * *", "*/5 * * * *", "a * * * *"} {
		if _, err := NextCron(bad, now); err == nil {
			t.Errorf("NextCron(%q) took it", bad)
		}
	}
}

func FuzzFindCron(f *testing.F) {
	line, _ := CronLine(testSpec())
	f.Add("MAILTO=x\n" + line + "\n# c\n")
	f.Add("0 * * * * x # cairn-schedule:\n")
	f.Add(" # cairn-schedule:a\n")
	f.Fuzz(func(t *testing.T, crontab string) {
		for _, e := range FindCron(crontab) {
			if !strings.Contains(crontab, e.Line) || !profileName.MatchString(e.Profile) {
				t.Fatalf("entry %+v is not a line of the input", e)
			}
			out, n := SetCron(crontab, e.Profile, "")
			if n == 0 {
				t.Fatalf("SetCron did not remove %+v", e)
			}
			for _, left := range FindCron(out) {
				if left.Profile == e.Profile {
					t.Fatalf("SetCron left %+v", left)
				}
			}
			if _, err := NextCron(e.Times, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil && !errors.Is(err, ErrSpec) {
				t.Fatalf("NextCron(%q): %v", e.Times, err)
			}
		}
	})
}
