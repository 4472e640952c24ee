package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scheduleEnv is a test world with a repository and a configuration file
// whose profile "home" backs up src into it.
type scheduleEnv struct {
	*testEnv
	config string
	src    string
}

func newScheduleEnv(t *testing.T) *scheduleEnv {
	t.Helper()
	e := newTestEnv(t)
	e.init()
	// A path that needs quoting in a unit ("%" is a specifier, a space
	// splits words) and in a crontab line (cron makes "%" a newline).
	s := &scheduleEnv{testEnv: e, config: filepath.Join(e.dir, "my config", "cairn 100%.toml"), src: filepath.Join(e.dir, "src")}
	for _, d := range []string{s.src, filepath.Dir(s.config)} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.writeFile(filepath.Join(s.src, "file"), "scheduled content\n")
	e.writeFile(s.config, "[profile.home]\nrepository = \""+e.repo+"\"\npassword-file = \""+e.pwFile+"\"\npaths = [\""+s.src+"\"]\n")
	return s
}

// requireSystemdAnalyze returns systemd-analyze's path, or skips (fails
// when CAIRN_TEST_REQUIRE names schedule).
func requireSystemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		requireNamed(t, "schedule", "systemd-analyze is missing (Debian's systemd package; scripts/test-deps.sh installs it)")
	}
	return p
}

// unitLines returns the values of key in a unit file, in order.
func unitLines(t *testing.T, path, key string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// execWords splits an ExecStart= or Environment= value as systemd does
// (systemd.syntax(7)) for what execQuote writes: words, double quotes
// with \" and \\, and %% and $$ for % and $.
func execWords(t *testing.T, v string) []string {
	t.Helper()
	v = strings.NewReplacer("%%", "%", "$$", "$").Replace(v)
	var words []string
	var cur strings.Builder
	inWord, quoted, escaped := false, false, false
	for _, r := range v {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quoted && r == '\\':
			escaped = true
		case quoted && r == '"':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '"':
			quoted, inWord = true, true
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
		t.Fatalf("unterminated quote in %q", v)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// runJobCommand runs a scheduled command the way systemd or cron would:
// only the given environment (plus PATH, and the test KDF seam), from
// the root folder.
func (s *scheduleEnv) runJobCommand(words, env []string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, words[0], words[1:]...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), envTestFastKDF + "=1"}, env...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("scheduled command %q: %v\n%s", words, err, out)
	}
}

// checkJobRan checks that the job backed up src and left its run state
// where status reads it.
func (s *scheduleEnv) checkJobRan() {
	s.t.Helper()
	snaps := s.snapshotsJSON()
	if len(snaps) != 1 {
		s.t.Fatalf("%d snapshots after the scheduled run, want 1", len(snaps))
	}
	r := s.must("ls", "latest", filepath.Join(s.src, "file"))
	if !strings.Contains(r.stdout, "file") {
		s.t.Fatalf("the snapshot lacks the file\n%s", r)
	}
	state := filepath.Join(s.dir, "home", ".local", "state", "cairn", "runs", "home.json")
	if _, err := os.Stat(state); err != nil {
		s.t.Fatalf("no run state: %v", err)
	}
}

// The units pass systemd-analyze verify, and their ExecStart, with their
// Environment, runs the job; list, status and remove follow them.
func TestScheduleSystemdUnits(t *testing.T) {
	analyze := requireSystemdAnalyze(t)
	s := newScheduleEnv(t)
	units := filepath.Join(s.dir, "units")
	r := s.must("--config", s.config, "schedule", "install", "home", "--every", "*-*-* 03:30:00", "--unit-dir", units)
	if !strings.Contains(r.stdout, "systemctl not run") {
		t.Errorf("install with --unit-dir does not say systemctl was not run\n%s", r)
	}
	service, timer := filepath.Join(units, "cairn-home.service"), filepath.Join(units, "cairn-home.timer")
	out, err := exec.Command(analyze, "verify", service, timer).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for key, want := range map[string]string{"Persistent": "true", "RandomizedDelaySec": "300", "OnCalendar": "*-*-* 03:30:00"} {
		if got := unitLines(t, timer, key); len(got) != 1 || got[0] != want {
			t.Errorf("timer %s=%q, want %q", key, got, want)
		}
	}
	for key, want := range map[string]string{"Nice": "10", "IOSchedulingClass": "idle", "Type": "oneshot"} {
		if got := unitLines(t, service, key); len(got) != 1 || got[0] != want {
			t.Errorf("service %s=%q, want %q", key, got, want)
		}
	}
	exec := unitLines(t, service, "ExecStart")
	if len(exec) != 1 {
		t.Fatalf("ExecStart lines %q", exec)
	}
	words := execWords(t, exec[0])
	if want := []string{cairnBin, "--config", s.config, "run", "home"}; strings.Join(words, " ") != strings.Join(want, " ") {
		t.Fatalf("ExecStart %q, want %q", words, want)
	}
	var env []string
	for _, v := range unitLines(t, service, "Environment") {
		env = append(env, execWords(t, v)...)
	}
	if !strings.Contains(strings.Join(env, " "), "HOME="+filepath.Join(s.dir, "home")) {
		t.Errorf("service Environment %q lacks the installing user's HOME", env)
	}
	s.runJobCommand(words, env)
	s.checkJobRan()

	r = s.must("schedule", "list", "--unit-dir", units)
	if !matches(`(?m)^home +systemd +\*-\*-\* 03:30:00 +`+timer+`$`, r.stdout) {
		t.Errorf("list does not show the timer\n%s", r)
	}
	r = s.must("schedule", "status", "home", "--unit-dir", units, "--json")
	var st []scheduledJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	if st[0].LastRun == nil || !st[0].LastRun.OK || st[0].LastRun.ExitCode != 0 || !strings.HasSuffix(st[0].NextRun, "03:30 UTC") {
		t.Errorf("status %+v: want the last run ok and the next at 03:30", st[0])
	}

	r = s.must("schedule", "remove", "home", "--unit-dir", units)
	for _, p := range []string{service, timer} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there after remove\n%s", p, r)
		}
	}
	r = s.run("schedule", "remove", "home", "--unit-dir", units)
	if r.code != exitError {
		t.Fatalf("remove of nothing: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `profile "home" is not scheduled`)
}

// A user's units: no network-online.target (a user manager has none),
// and they still verify.
func TestScheduleUserUnits(t *testing.T) {
	analyze := requireSystemdAnalyze(t)
	s := newScheduleEnv(t)
	units := filepath.Join(s.dir, "units")
	s.must("--config", s.config, "schedule", "install", "home", "--every", "hourly", "--user", "--unit-dir", units)
	service, timer := filepath.Join(units, "cairn-home.service"), filepath.Join(units, "cairn-home.timer")
	verify := exec.Command(analyze, "--user", "verify", service, timer)
	// A user manager, even the one verify starts, needs a runtime folder.
	verify.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir())
	out, err := verify.CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze --user verify: %v\n%s", err, out)
	}
	if got := unitLines(t, service, "After"); len(got) != 0 {
		t.Errorf("user service After=%q", got)
	}
}

func TestScheduleRefusals(t *testing.T) {
	s := newScheduleEnv(t)
	units := filepath.Join(s.dir, "units")
	for _, c := range []struct {
		args    []string
		pattern string
	}{
		{[]string{"install", "nosuch", "--every", "daily", "--unit-dir", units}, `nosuch`},
		{[]string{"install", "home", "--unit-dir", units}, `every`},
		{[]string{"install", "home", "--every", "daily\nExecStartPre=/bin/sh", "--unit-dir", units}, `--every`},
		{[]string{"install", "home", "--every", "Mon *-*-* 03:00:00", "--crontab"}, `cron cannot run --every "Mon \*-\*-\* 03:00:00"`},
		{[]string{"install", "home", "--every", "daily", "--crontab", "--unit-dir", units}, `choose one`},
		{[]string{"install", "home", "--every", "daily", "--crontab", "--user"}, `--user is for systemd`},
	} {
		r := s.run(append([]string{"--config", s.config, "schedule"}, c.args...)...)
		if r.code != exitError {
			t.Errorf("want exit 1\n%s", r)
			continue
		}
		checkOneErrorLine(t, r, c.pattern)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		r := s.run("--config", s.config, "schedule", "install", "home", "--every", "Someday 25:00", "--unit-dir", units)
		if r.code != exitError {
			t.Fatalf("a calendar systemd refuses: want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, `not a systemd calendar expression`)
	}
	if ents, _ := os.ReadDir(units); len(ents) != 0 {
		t.Errorf("refused installs left %d files in the unit folder", len(ents))
	}
}

// fakeCrontab puts a crontab command on PATH that keeps the table in a
// file, as cron's does in /var/spool/cron; it returns the file.
func (s *scheduleEnv) fakeCrontab(initial string) string {
	s.t.Helper()
	bin := filepath.Join(s.dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		s.t.Fatal(err)
	}
	table := filepath.Join(s.dir, "crontab")
	script := "#!/bin/sh\ncase \"$1\" in\n" +
		"-l) if [ -f '" + table + "' ]; then cat '" + table + "'; else echo \"no crontab for $(id -un)\" >&2; exit 1; fi ;;\n" +
		"-) cat > '" + table + "' ;;\n" +
		"*) echo \"crontab: usage\" >&2; exit 1 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(bin, "crontab"), []byte(script), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if initial != "" {
		s.writeFile(table, initial)
	}
	for i, v := range s.env {
		if strings.HasPrefix(v, "PATH=") {
			s.env[i] = "PATH=" + bin + ":" + strings.TrimPrefix(v, "PATH=")
		}
	}
	return table
}

// cronCommand splits a crontab line's command as cron's /bin/sh would:
// cron turns \% into %, sh takes single quotes and \'.
func cronCommand(t *testing.T, line string) (times string, words []string) {
	t.Helper()
	fields := strings.Fields(line)
	if len(fields) < 6 {
		t.Fatalf("crontab line %q has no command", line)
	}
	times = strings.Join(fields[:5], " ")
	rest := strings.TrimPrefix(line, strings.Join(fields[:5], " ")+" ")
	cmd, _, _ := strings.Cut(rest, " # ")
	// sh splits the words, as it does for cron.
	sh := exec.Command("/bin/sh", "-c", "set -- "+strings.ReplaceAll(cmd, `\%`, "%")+`; for a in "$@"; do printf '%s\0' "$a"; done`)
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("sh on %q: %v", cmd, err)
	}
	return times, strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// Where systemd does not run (as here), or with --crontab, install adds
// one line to the user's crontab, keeps the user's own, replaces its own
// on a second install, and the line parsed back runs the job.
func TestScheduleCrontab(t *testing.T) {
	s := newScheduleEnv(t)
	user := "MAILTO=me@example.org\n5 4 * * * /usr/bin/true\n"
	table := s.fakeCrontab(user)
	s.must("--config", s.config, "schedule", "install", "home", "--every", "daily", "--crontab")
	r := s.must("--config", s.config, "schedule", "install", "home", "--every", "*-*-* 03:30:00", "--crontab")
	b, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if !strings.HasPrefix(got, user) || strings.Count(got, "cairn-schedule:") != 1 {
		t.Fatalf("crontab after two installs:\n%s", got)
	}
	line := strings.TrimSuffix(strings.TrimPrefix(got, user), "\n")
	if !strings.Contains(r.stdout, line) {
		t.Errorf("install does not print its line %q\n%s", line, r)
	}
	times, words := cronCommand(t, line)
	if times != "30 3 * * *" {
		t.Errorf("time fields %q, want 30 3 * * *", times)
	}
	if want := []string{cairnBin, "-q", "--config", s.config, "run", "home"}; strings.Join(words, " ") != strings.Join(want, " ") {
		t.Fatalf("command %q, want %q", words, want)
	}
	// cron gives the job HOME and little else.
	s.runJobCommand(words, []string{"HOME=" + filepath.Join(s.dir, "home")})
	s.checkJobRan()

	r = s.must("schedule", "list")
	if !matches(`(?m)^home +crontab +30 3 \* \* \* +crontab$`, r.stdout) {
		t.Errorf("list does not show the line\n%s", r)
	}
	r = s.must("schedule", "status")
	if !matches(`(?m)^home: crontab \(30 3 \* \* \*\), next run \d{4}-\d\d-\d\d 03:30 UTC$`, r.stdout) ||
		!matches(`(?m)^  last run: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, ok$`, r.stdout) {
		t.Errorf("status\n%s", r)
	}
	s.must("schedule", "remove", "home")
	if b, _ := os.ReadFile(table); string(b) != user {
		t.Errorf("crontab after remove:\n%s\nwant the user's lines only:\n%s", b, user)
	}
	r = s.must("schedule", "status")
	if r.stdout != "" {
		t.Errorf("status with nothing scheduled printed\n%s", r)
	}
}

// A profile never run says so; a failed run says which steps failed.
func TestScheduleStatusLastRun(t *testing.T) {
	s := newScheduleEnv(t)
	s.fakeCrontab("")
	s.must("--config", s.config, "schedule", "install", "home", "--every", "hourly")
	r := s.must("schedule", "status", "home")
	if !strings.Contains(r.stdout, "last run: never run") {
		t.Errorf("status before any run\n%s", r)
	}
	runs := filepath.Join(s.dir, "home", ".local", "state", "cairn", "runs")
	if err := os.MkdirAll(runs, 0o700); err != nil {
		t.Fatal(err)
	}
	s.writeFile(filepath.Join(runs, "home.json"), `{"profile":"home","start":"2026-12-08T01:00:00Z","end":"2026-12-08T01:02:00Z","ok":false,"exit_code":1,`+
		`"steps":[{"name":"backup","ok":true},{"name":"check","ok":false,"exit_code":1},{"name":"mirror:peer:bob","ok":false,"exit_code":1},{"name":"prune","skipped":true}]}`)
	r = s.must("schedule", "status", "home")
	if !strings.Contains(r.stdout, "last run: 2026-12-08 01:02:00 UTC, failed (exit 1): check, mirror:peer:bob\n") {
		t.Errorf("status after a failed run\n%s", r)
	}
	s.writeFile(filepath.Join(runs, "home.json"), `{"profile":`)
	r = s.must("schedule", "status", "home")
	if !strings.Contains(r.stdout, "last run: unknown: ") {
		t.Errorf("status with a damaged state file\n%s", r)
	}
	r = s.run("schedule", "status", "other")
	if r.code != exitError {
		t.Fatalf("status of an unscheduled profile: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `profile "other" is not scheduled`)
}
