package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Tests of "cairn run" and "cairn config": the built binary, a real
// configuration file, real repositories, a real "peer serve" on
// 127.0.0.1, a real lock held by a paused process.

// writeConfig writes cairn.toml in the test's folder and returns its path.
func writeConfig(t *testing.T, e *testEnv, content string) string {
	t.Helper()
	path := filepath.Join(e.dir, "cairn.toml")
	e.writeFile(path, content)
	return path
}

// runJob runs "cairn --config cfg run --json args..." and returns the
// summary it printed, checking the exit status and that the state dir
// holds the same summary.
func runJob(t *testing.T, e *testEnv, wantCode int, cfg string, args ...string) (runSummary, result) {
	t.Helper()
	r := e.run(append([]string{"--config", cfg, "run", "--json"}, args...)...)
	if r.code != wantCode {
		t.Fatalf("want exit %d\n%s", wantCode, r)
	}
	var sum runSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("run --json printed no summary: %v\n%s", err, r)
	}
	if sum.ExitCode != wantCode || sum.OK != (wantCode == 0) {
		t.Fatalf("summary says exit %d ok %v, the process exited %d\n%s", sum.ExitCode, sum.OK, r.code, r)
	}
	kept, err := os.ReadFile(filepath.Join(e.dir, "home", ".local", "state", "cairn", "runs", sum.Profile+".json"))
	if err != nil {
		t.Fatalf("summary not kept in the state dir: %v", err)
	}
	var k runSummary
	if err := json.Unmarshal(kept, &k); err != nil || k.End != sum.End || len(k.Steps) != len(sum.Steps) || k.ExitCode != sum.ExitCode {
		t.Fatalf("kept summary %s differs from the printed one %s (%v)", kept, r.stdout, err)
	}
	return sum, r
}

// wantSteps checks the summary's steps: name -> "ok", "failed:CODE",
// "skipped" (after a failure) or "not due"; their order too.
func wantSteps(t *testing.T, sum runSummary, r result, want ...string) {
	t.Helper()
	var got []string
	for _, st := range sum.Steps {
		s := st.Name + "=ok"
		switch {
		case st.Skipped && st.OK:
			s = st.Name + "=not due"
		case st.Skipped:
			s = st.Name + "=skipped"
		case !st.OK:
			s = fmt.Sprintf("%s=failed:%d", st.Name, st.ExitCode)
		}
		if !st.OK && !st.Skipped && st.Error == "" {
			t.Errorf("step %s failed without an error", st.Name)
		}
		got = append(got, s)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("steps\n got %q\nwant %q\n%s", got, want, r)
	}
}

// TestRunEndToEnd: a profile inheriting another backs up, forgets,
// prunes, checks and mirrors to a folder and to a friend's "peer serve";
// both copies restore the files byte for byte; hooks see the result;
// the metrics file parses and matches; a second run finds prune not due.
func TestRunEndToEnd(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "big"), 300<<10, 1)
	e.writeFile(filepath.Join(src, "small.txt"), "hello\n")
	e.init()
	owner := peerID(t, e, "")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "friend-root"), "--allow", owner)
	local := filepath.Join(e.dir, "mirror")
	hookLog := filepath.Join(e.dir, "hooks.log")
	metrics := filepath.Join(e.dir, "cairn.prom")
	cfg := writeConfig(t, e, fmt.Sprintf(`
[profile.base]
repository = %q
password-file = %q
paths = [%q]
keep-last = 5
prune-every = "7d"
check-subset = "100%%"
tags = ["job"]

[profile.base.hooks]
before = "echo before $CAIRN_PROFILE >> %s"
after = "echo after $CAIRN_RESULT $CAIRN_EXIT_CODE >> %s"
[profile.base.hooks.backup]
on-success = "echo backup $CAIRN_STEP $CAIRN_RESULT >> %s"

[profile.laptop]
inherit = "base"
mirror = [%q, %q]
metrics-file = %q
[profile.laptop.env]
JOB_GREETING = "hi"
`, e.repo, e.pwFile, src, hookLog, hookLog, hookLog, local, friend.loc("laptop"), metrics))

	sum, r := runJob(t, e, 0, cfg, "laptop")
	wantSteps(t, sum, r, "hook:before=ok", "backup=ok", "hook:backup:on-success=ok", "forget=ok", "prune=ok", "check=ok",
		"mirror:"+local+"=ok", "mirror:"+friend.loc("laptop")+"=ok", "hook:after=ok")
	if sum.Profile != "laptop" || sum.LastPrune == "" {
		t.Fatalf("summary %+v", sum)
	}
	hooks, err := os.ReadFile(hookLog)
	if err != nil || string(hooks) != "before laptop\nbackup backup success\nafter success 0\n" {
		t.Fatalf("hooks wrote %q (%v)", hooks, err)
	}
	snaps := e.snapshotsJSON()
	if len(snaps) != 1 || !slices.Contains(toStrings(snaps[0]["tags"]), "job") {
		t.Fatalf("snapshots %v", snaps)
	}
	// Both copies hold the repository and restore the files.
	want := repoFiles(t, e.repo)
	for _, loc := range []string{local, friend.loc("laptop")} {
		target := filepath.Join(e.dir, "restored-"+fmt.Sprint(len(loc)))
		e.must("-r", loc, "restore", "latest", "--target", target)
		for _, f := range []string{"big", "small.txt"} {
			a, _ := os.ReadFile(filepath.Join(src, f))
			b, err := os.ReadFile(filepath.Join(target, src, f))
			if err != nil || string(a) != string(b) {
				t.Fatalf("%s restored from %s differs (%v)", f, loc, err)
			}
		}
	}
	if got := repoFiles(t, friend.folder(owner, "laptop")); !sameSizes(got, want) {
		t.Fatalf("the friend holds %v\nthe source %v", got, want)
	}
	checkRunMetrics(t, metrics, sum, 1, []string{local, friend.loc("laptop")})

	// Again: prune is not due; the text summary says so.
	r = e.must("--config", cfg, "run", "laptop")
	if !matches(`(?m)^  prune +not due`, r.stdout) || !matches(`(?m)^cairn run laptop: ok$`, r.stdout) {
		t.Fatalf("second run\n%s", r)
	}
	if n := len(e.snapshotsJSON()); n != 2 {
		t.Fatalf("%d snapshots after two runs", n)
	}
	// Six and a half days later: due (prune-every 7d, less a tenth).
	later := runOpts{env: []string{envTestClockShift + "=156h"}}
	r = e.runWith(later, "--config", cfg, "run", "laptop")
	if r.code != 0 || !matches(`(?m)^  prune +ok`, r.stdout) {
		t.Fatalf("a run 6.5 days later did not prune\n%s", r)
	}
	// Then not due again for that long.
	later.env[0] = envTestClockShift + "=300h"
	if r = e.runWith(later, "--config", cfg, "run", "laptop"); r.code != 0 || !matches(`(?m)^  prune +not due`, r.stdout) {
		t.Fatalf("a run 6 days after the last prune pruned\n%s", r)
	}
}

// checkRunMetrics parses the metrics file with Prometheus's own parser
// and checks it against the job.
func checkRunMetrics(t *testing.T, path string, sum runSummary, snapshots int, mirrors []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("metrics file: %v", err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("metrics file does not parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		fam, ok := families[name]
		if !ok {
			t.Fatalf("metrics file lacks %s", name)
		}
	metric:
		for _, m := range fam.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue metric
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetUntyped().GetValue()
		}
		t.Fatalf("metrics file lacks %s%v", name, labels)
		return 0
	}
	p := map[string]string{"profile": sum.Profile}
	if v := value("cairn_job_success", p); v != map[bool]float64{true: 1, false: 0}[sum.OK] {
		t.Errorf("cairn_job_success = %v, summary ok %v", v, sum.OK)
	}
	if v := value("cairn_job_exit_code", p); v != float64(sum.ExitCode) {
		t.Errorf("cairn_job_exit_code = %v, want %d", v, sum.ExitCode)
	}
	if v := value("cairn_repository_snapshots", p); v != float64(snapshots) {
		t.Errorf("cairn_repository_snapshots = %v, want %d", v, snapshots)
	}
	if v := value("cairn_backup_processed_files", p); v != 2 {
		t.Errorf("cairn_backup_processed_files = %v, want 2", v)
	}
	if v := value("cairn_repository_size_bytes", p); v <= 300<<10 {
		t.Errorf("cairn_repository_size_bytes = %v, want more than the 300 KiB of random data", v)
	}
	for _, st := range sum.Steps {
		if v := value("cairn_step_success", map[string]string{"profile": sum.Profile, "step": st.Name}); v != map[bool]float64{true: 1, false: 0}[st.OK] {
			t.Errorf("step %s success = %v, summary %v", st.Name, v, st.OK)
		}
	}
	for _, d := range mirrors {
		l := map[string]string{"profile": sum.Profile, "destination": d}
		if v := value("cairn_mirror_success", l); v != 1 {
			t.Errorf("mirror %s success = %v", d, v)
		}
		if v := value("cairn_mirror_lag_entries", l); v != 0 {
			t.Errorf("mirror %s lag = %v", d, v)
		}
	}
	if v := value("cairn_check_success", p); v != 1 {
		t.Errorf("cairn_check_success = %v", v)
	}
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// jobConfig is a one-profile configuration for the failure tests.
func jobConfig(e *testEnv, src string, extra string) string {
	return fmt.Sprintf("[profile.job]\nrepository = %q\npassword-file = %q\npaths = [%q]\nkeep-last = 3\n%s\n",
		e.repo, e.pwFile, src, extra)
}

// TestRunUnreadableFileStillMirrors: the backup exits 3, the rest runs,
// the mirror included, and the job exits 3.
func TestRunUnreadableFileStillMirrors(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "ok.txt"), "fine\n")
	locked := filepath.Join(src, "locked.txt")
	e.writeFile(locked, "secret\n")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		chownTree(t, e.dir, nobody, nobody)
		e.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	e.init()
	mirror := filepath.Join(e.dir, "mirror")
	cfg := writeConfig(t, e, jobConfig(e, src, fmt.Sprintf("mirror = [%q]", mirror)))
	sum, r := runJob(t, e, exitPartial, cfg, "job")
	wantSteps(t, sum, r, "backup=failed:3", "forget=ok", "check=ok", "mirror:"+mirror+"=ok")
	if !strings.Contains(r.stderr, "locked.txt") {
		t.Fatalf("the unreadable file is not named\n%s", r)
	}
	if got, want := repoFiles(t, mirror), repoFiles(t, e.repo); !sameSizes(got, want) {
		t.Fatalf("the mirror holds %v\nthe source %v", got, want)
	}
}

// TestRunLockedRepository: another process holds an exclusive lock; the
// backup gives up after retry-lock (exit 11), forget and check are
// skipped, the mirror of what is there still runs.
func TestRunLockedRepository(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 10<<10, 2)
	e.writeFile(filepath.Join(src, "drop.me"), "x\n")
	e.init()
	e.must("backup", src)
	holder := e.startPaused("rewrite-before-forget", nil, "rewrite", "--exclude", "drop.me", "--forget")
	mirror := filepath.Join(e.dir, "mirror")
	cfg := writeConfig(t, e, jobConfig(e, src, fmt.Sprintf("retry-lock = \"1s\"\nmirror = [%q]", mirror)))
	sum, r := runJob(t, e, exitLocked, cfg, "job")
	wantSteps(t, sum, r, "backup=failed:11", "forget=skipped", "check=skipped", "mirror:"+mirror+"=ok")
	if !strings.Contains(sum.Steps[0].Error, "lock") {
		t.Fatalf("backup's error does not say locked: %q", sum.Steps[0].Error)
	}
	if _, err := os.Stat(filepath.Join(mirror, "config")); err != nil {
		t.Fatalf("the mirror did not run: %v", err)
	}
	if r := holder.resume(); r.code != 0 {
		t.Fatalf("the lock holder failed\n%s", r)
	}
}

// TestRunDownPeer: one destination is a peer that is not listening;
// the other destination is still mirrored and the job exits 1.
func TestRunDownPeer(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 10<<10, 3)
	e.init()
	owner := peerID(t, e, "")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "friend-root"), "--allow", owner)
	down := friend.loc("laptop")
	friend.stop()
	waitPortClosed(t, friend.addr)
	mirror := filepath.Join(e.dir, "mirror")
	metrics := filepath.Join(e.dir, "job.prom")
	cfg := writeConfig(t, e, jobConfig(e, src, fmt.Sprintf("mirror = [%q, %q]\nmetrics-file = %q", down, mirror, metrics)))
	sum, r := runJob(t, e, exitError, cfg, "job")
	wantSteps(t, sum, r, "backup=ok", "forget=ok", "check=ok", "mirror:"+down+"=failed:1", "mirror:"+mirror+"=ok")
	if got, want := repoFiles(t, mirror), repoFiles(t, e.repo); !sameSizes(got, want) {
		t.Fatalf("the mirror holds %v\nthe source %v", got, want)
	}
	// The failed destination has never been complete: it lags by every
	// log entry.
	b, _ := os.ReadFile(metrics)
	if !matches(`(?m)^cairn_mirror_success\{profile="job",destination="`+regexpQuote(down)+`"\} 0$`, string(b)) ||
		!matches(`(?m)^cairn_mirror_lag_entries\{profile="job",destination="`+regexpQuote(down)+`"\} [1-9]`, string(b)) {
		t.Fatalf("metrics\n%s", b)
	}
}

// waitPortClosed waits (10 s at most) until nothing accepts on addr.
func waitPortClosed(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, 10e9, "the stopped server's port to close", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

// TestRunCheckFailureStillMirrors: a damaged pack fails the check (exit
// 1); the mirror step still runs.
func TestRunCheckFailureStillMirrors(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 10<<10, 4)
	e.init()
	e.must("backup", src)
	// Damage the pack holding the file's data: the job's backup adds
	// nothing new (the data is deduplicated) and the check reads all.
	var victim string
	for rel := range repoFiles(t, e.repo) {
		if strings.HasPrefix(rel, "data/") {
			if fi, err := os.Stat(filepath.Join(e.repo, rel)); err == nil && fi.Size() > 10<<10 {
				victim = filepath.Join(e.repo, rel)
			}
		}
	}
	if victim == "" {
		t.Fatal("no data pack found")
	}
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	e.writeFile(victim, string(b))
	mirror := filepath.Join(e.dir, "mirror")
	cfg := writeConfig(t, e, jobConfig(e, src, fmt.Sprintf("check-subset = \"100%%\"\nmirror = [%q]", mirror)))
	sum, r := runJob(t, e, exitError, cfg, "job")
	if len(sum.Steps) != 4 || sum.Steps[2].Name != "check" || sum.Steps[2].OK || sum.Steps[3].Name != "mirror:"+mirror || sum.Steps[3].Skipped {
		t.Fatalf("steps %+v\n%s", sum.Steps, r)
	}
	// The mirror ran: the destination holds the repository's files
	// other than the damaged pack (mirror refuses to copy a file whose
	// content does not match its name).
	got := repoFiles(t, mirror)
	if _, ok := got["config"]; !ok || len(got) < len(repoFiles(t, e.repo))-1 {
		t.Fatalf("the mirror holds %v", got)
	}
}

// TestRunHooks: a failing job before hook stops the job with exit 20
// (nothing is backed up; on-failure and after still run); a failing step
// before hook skips that step; a hook that outlives hook-timeout is killed.
func TestRunHooks(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 1<<10, 5)
	e.init()
	out := filepath.Join(e.dir, "hooks.log")
	cfg := writeConfig(t, e, jobConfig(e, src, fmt.Sprintf(`
[profile.job.hooks]
before = "echo no database; exit 7"
on-failure = "echo failed $CAIRN_EXIT_CODE \"$CAIRN_ERROR\" >> %s"
after = "echo after $CAIRN_RESULT >> %[1]s"

[profile.slow]
inherit = "job"
hook-timeout = "1s"
[profile.slow.hooks]
before = "sleep 60"

[profile.stepfail]
inherit = "job"
[profile.stepfail.hooks]
before = "true"
[profile.stepfail.hooks.backup]
before = "exit 3"
`, out)))
	sum, r := runJob(t, e, exitHookBefore, cfg, "job")
	wantSteps(t, sum, r, "hook:before=failed:7", "hook:on-failure=ok", "hook:after=ok")
	if n := len(e.snapshotsJSON()); n != 0 {
		t.Fatalf("%d snapshots after a failed before hook", n)
	}
	got, _ := os.ReadFile(out)
	if !matches(`^failed 20 before hook: exit status 7\nafter failure\n$`, string(got)) {
		t.Fatalf("hooks wrote %q", got)
	}
	if !strings.Contains(r.stderr, "no database") {
		t.Fatalf("the hook's output is not in the log\n%s", r)
	}

	sum, r = runJob(t, e, exitHookBefore, cfg, "slow")
	if !strings.Contains(sum.Steps[0].Error, "killed after hook-timeout 1s") {
		t.Fatalf("steps %+v\n%s", sum.Steps, r)
	}

	sum, r = runJob(t, e, exitError, cfg, "stepfail")
	wantSteps(t, sum, r, "hook:before=ok", "hook:backup:before=failed:3", "backup=skipped", "forget=ok", "check=ok",
		"hook:on-failure=ok", "hook:after=ok")
}

// TestRunPing: the profile's ping URL hears start, then success, or start
// then fail with the log's tail as the body.
func TestRunPing(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	var mu sync.Mutex
	var pings []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		pings = append(pings, r.URL.Path+" "+string(body))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 1<<10, 6)
	e.init()
	cfg := writeConfig(t, e, jobConfig(e, src, fmt.Sprintf("ping-url = %q\n[profile.bad]\ninherit = \"job\"\nrepository = %q\nping-url = %q",
		srv.URL+"/uuid", filepath.Join(e.dir, "nothing-here"), srv.URL+"/uuid")))
	runJob(t, e, 0, cfg, "job")
	runJob(t, e, exitNoRepo, cfg, "bad")
	mu.Lock()
	defer mu.Unlock()
	if len(pings) != 4 || pings[0] != "/uuid/start " || pings[1] != "/uuid " || pings[2] != "/uuid/start " ||
		!strings.HasPrefix(pings[3], "/uuid/fail ") || !strings.Contains(pings[3], "nothing-here") {
		t.Fatalf("pings %q", pings)
	}
}

// TestRunOverridesAndErrors: a flag on the command line wins over the
// profile; a missing repository skips everything after the backup.
func TestRunOverridesAndErrors(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 1<<10, 7)
	e.init()
	mirror := filepath.Join(e.dir, "mirror")
	cfg := writeConfig(t, e, jobConfig(e, src, fmt.Sprintf("mirror = [%q]", mirror)))
	sum, r := runJob(t, e, exitNoRepo, cfg, "job", "-r", filepath.Join(e.dir, "elsewhere"))
	wantSteps(t, sum, r, "backup=failed:10", "forget=skipped", "check=skipped", "mirror:"+mirror+"=skipped")
	if n := len(e.snapshotsJSON()); n != 0 {
		t.Fatalf("the profile's repository got %d snapshots: -r did not win", n)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "nope"}, `^cairn: no profile "nope" in .*cairn\.toml \(it has: job\)$`},
		{[]string{"run"}, `^cairn: run: missing argument`},
		{[]string{"run", "job", "--no-lock"}, `^cairn: run: --no-lock does not apply`},
	} {
		r := e.run(append([]string{"--config", cfg}, tc.args...)...)
		if r.code != exitError {
			t.Fatalf("want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, tc.want)
	}
	r = e.run("--config", filepath.Join(e.dir, "missing.toml"), "run", "job")
	checkOneErrorLine(t, r, `^cairn: config file: open .*missing\.toml: no such file or directory$`)
}

// TestConfigFile: unknown keys are refused with their line, inherit
// cycles are refused, config check lists every problem, config show
// masks secrets.
func TestConfigFile(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	bad := writeConfig(t, e, "[profile.a]\nrepository = \"/r\"\npaths = [\"/x\"]\n\nkeep-dialy = 7\n")
	r := e.run("--config", bad, "run", "a")
	if r.code != exitError {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `^cairn: .*cairn\.toml:5: unknown key "profile\.a\.keep-dialy"$`)

	cfg := writeConfig(t, e, `
[profile.a]
inherit = "b"
[profile.b]
inherit = "a"
[profile.c]
repository = "/srv/r"
password-command = "pass show cairn"
paths = ["relative"]
compression = "zip"
[profile.c.env]
B2_ACCOUNT_KEY = "very-secret-value"
AWS_SECRET_ACCESS_KEY = "another-secret"
DB_PASSWORD = "third-secret"
REGION = "eu-west"
`)
	r = e.run("--config", cfg, "config", "check")
	if r.code != exitError {
		t.Fatalf("want exit 1\n%s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.Contains(r.stdout, "inherit cycle a -> b -> a") || !strings.Contains(r.stdout, "inherit cycle b -> a -> b") ||
		!strings.Contains(r.stdout, `"relative" is not an absolute path`) || !strings.Contains(r.stdout, `compression "zip"`) {
		t.Fatalf("config check\n%s", r)
	}
	checkOneErrorLine(t, r, `^cairn: config check: 4 problem\(s\) in .*cairn\.toml$`)
	r = e.run("--config", cfg, "run", "a")
	checkOneErrorLine(t, r, `inherit cycle a -> b -> a$`)

	r = e.must("--config", cfg, "config", "show", "c")
	for _, s := range []string{"very-secret-value", "another-secret", "third-secret"} {
		if strings.Contains(r.stdout, s) {
			t.Fatalf("config show prints a secret\n%s", r)
		}
	}
	if !strings.Contains(r.stdout, "pass show cairn") || !strings.Contains(r.stdout, "eu-west") || strings.Count(r.stdout, "********") != 3 {
		t.Fatalf("config show\n%s", r)
	}

	// The default file: $XDG_CONFIG_HOME/cairn/cairn.toml.
	xdg := filepath.Join(e.dir, "xdg")
	if err := os.MkdirAll(filepath.Join(xdg, "cairn"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(xdg, "cairn", "cairn.toml"), "[profile.d]\nrepository = \"/r\"\npaths = [\"/x\"]\n")
	r = e.runWith(runOpts{env: []string{"XDG_CONFIG_HOME=" + xdg}}, "config", "check")
	if r.code != 0 || !strings.Contains(r.stdout, "ok: "+filepath.Join(xdg, "cairn", "cairn.toml")+", 1 profile(s)") {
		t.Fatalf("default file\n%s", r)
	}
}
