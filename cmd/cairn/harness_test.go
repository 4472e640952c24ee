package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/s3/miniotest"
)

// The CLI tests run the real binary, built once here, the way cron and
// users run it: arguments, environment and stdin in; exit code, stdout
// and stderr out.

const testVersion = "1.2.3-test"

var cairnBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	defer miniotest.CloseShared() // the s3: tests' server, if one started
	dir, err := os.MkdirTemp("", "cairn-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Readable by everyone: some tests run the binary as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cairnBin = filepath.Join(dir, "cairn")
	if raceBuild {
		// Under -race only the in-process tests run (see newTestEnv).
		return m.Run()
	}
	// With the test-only seams (testonly.go), which the tests drive.
	build := exec.Command("go", "build", "-tags", testTags, "-o", cairnBin, "-ldflags", "-X main.version="+testVersion, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build cairn: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// testEnv is one scratch world: a home, a repository location and a
// password file, all under one folder.
type testEnv struct {
	t      *testing.T
	dir    string
	repo   string
	pwFile string
	env    []string
	// cred, if set, runs cairn as that user (root tests of unreadable
	// files and unprivileged round trips).
	cred *syscall.Credential
}

const testPassword = "correct horse battery staple"

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	if raceBuild {
		// The binary's concurrency lives in snapshot and repo, raced in
		// their own tests; this package's goroutines (progress ticker,
		// printer) are raced in-process by TestProgressConcurrent.
		t.Skip("tests of the built binary do not run under -race")
	}
	dir, err := os.MkdirTemp("", "cairn-cli-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir, repo: filepath.Join(dir, "repo"), pwFile: filepath.Join(dir, "password")}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(e.pwFile, testPassword+"\n")
	e.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TZ=UTC",
		envRepository + "=" + e.repo,
		envPasswordFile + "=" + e.pwFile,
		envTestFastKDF + "=1",
	}
	return e
}

func (e *testEnv) writeFile(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// result is what one run of cairn did.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("cairn %q: exit %d\nstdout:\n%s\nstderr:\n%s", r.args, r.code, r.stdout, r.stderr)
}

// runOpts are the extras of one run.
type runOpts struct {
	env     []string // appended to (and overriding) the base environment
	stdin   string
	timeout time.Duration
}

func (e *testEnv) run(args ...string) result {
	e.t.Helper()
	return e.runWith(runOpts{}, args...)
}

func (e *testEnv) runWith(o runOpts, args ...string) result {
	e.t.Helper()
	if o.timeout == 0 {
		o.timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cairnBin, args...)
	cmd.Env = append(append([]string(nil), e.env...), o.env...)
	cmd.Dir = e.dir
	if o.stdin != "" {
		cmd.Stdin = strings.NewReader(o.stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if e.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	err := cmd.Run()
	res := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		e.t.Fatalf("cairn %q did not finish within %v (hung?)\n%s", args, o.timeout, res)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		e.t.Fatalf("run cairn %q: %v", args, err)
	}
	return res
}

// must runs cairn and fails the test unless it exits 0.
func (e *testEnv) must(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("want exit 0\n%s", r)
	}
	return r
}

// init creates the repository.
func (e *testEnv) init() {
	e.t.Helper()
	e.must("init")
}

// backupJSON backs up paths with --json and returns the summary message.
func (e *testEnv) backupJSON(wantCode int, args ...string) (map[string]any, result) {
	e.t.Helper()
	r := e.run(append([]string{"--json", "backup"}, args...)...)
	if r.code != wantCode {
		e.t.Fatalf("want exit %d\n%s", wantCode, r)
	}
	lines := jsonLines(e.t, r.stdout)
	if len(lines) == 0 {
		e.t.Fatalf("no JSON output\n%s", r)
	}
	last := lines[len(lines)-1]
	if last["message_type"] != "summary" {
		e.t.Fatalf("last line is not the summary: %v\n%s", last, r)
	}
	return last, r
}

// jsonLines parses line-delimited JSON objects; every line must parse.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var msgs []map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line is not a JSON object: %q: %v", line, err)
		}
		if _, ok := m["message_type"]; !ok {
			t.Fatalf("JSON line without message_type: %q", line)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// snapshotsJSON lists the snapshots.
func (e *testEnv) snapshotsJSON() []map[string]any {
	e.t.Helper()
	r := e.must("snapshots", "--json")
	var snaps []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &snaps); err != nil {
		e.t.Fatalf("snapshots --json: %v\n%s", err, r)
	}
	return snaps
}

// checkOneErrorLine checks that stderr is exactly one "cairn: " line
// matching pattern.
func checkOneErrorLine(t *testing.T, r result, pattern string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "cairn: ") || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("want one \"cairn: \" line on stderr\n%s", r)
	}
	if !regexp.MustCompile(pattern).MatchString(lines[0]) {
		t.Fatalf("stderr %q does not match %q\n%s", lines[0], pattern, r)
	}
}

// checkNoControl fails if s holds a control character other than newline.
func checkNoControl(t *testing.T, what, s string) {
	t.Helper()
	for i, r := range s {
		if r != '\n' && isControl(r) {
			t.Fatalf("%s holds control character %U at byte %d: %q", what, r, i, s)
		}
	}
}

// listing describes every file under dir (path, mode, size, mtime) for
// "nothing changed" checks.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %d\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// matches reports whether s matches the regular expression pattern.
func matches(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
