package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pipeID is "DEV:INO" of f, as systemd puts it in $JOURNAL_STREAM.
func pipeID(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// runOnPipes runs cairn with stdout and stderr on pipes of the test's own
// (as systemd's journal streams are), setting $JOURNAL_STREAM to what
// journal returns for them.
func (e *testEnv) runOnPipes(journal func(stdout, stderr *os.File) string, args ...string) result {
	e.t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cairnBin, args...)
	cmd.Env = append(append([]string(nil), e.env...), envJournalStream+"="+journal(outW, errW))
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	var stdout, stderr bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(&stdout, outR) })
	wg.Go(func() { _, _ = io.Copy(&stderr, errR) })
	wg.Wait()
	outR.Close()
	errR.Close()
	err = cmd.Wait()
	res := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		e.t.Fatalf("run cairn %q: %v\n%s", args, err, res)
	}
	return res
}

// everyLine checks that every line of s starts with prefix.
func everyLine(t *testing.T, what, s, prefix string, r result) {
	t.Helper()
	if s == "" {
		t.Fatalf("no %s\n%s", what, r)
	}
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("%s line %q lacks the priority prefix %q\n%s", what, line, prefix, r)
		}
	}
}

// Under systemd ($JOURNAL_STREAM naming the stream) every line gets its
// sd-daemon priority: stdout info, stderr warnings, the final error an
// error; elsewhere, lines are as always.
func TestJournalPriorities(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "a"), "content")
	list := filepath.Join(e.dir, "list")
	e.writeFile(list, src+"\n"+filepath.Join(e.dir, "nomatch*")+"\n")
	stderrJournal := func(_, stderr *os.File) string { return pipeID(t, stderr) }
	stdoutJournal := func(stdout, _ *os.File) string { return pipeID(t, stdout) }

	// stderr is the journal: the warning is <4>; stdout (another pipe) is
	// left alone.
	r := e.runOnPipes(stderrJournal, "backup", "--files-from", list)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	everyLine(t, "stderr", r.stderr, sdWarning+"cairn: warning: pattern ", r)
	if strings.Contains(r.stdout, "<") {
		t.Fatalf("stdout is not the journal stream, yet has a prefix\n%s", r)
	}
	// stdout is the journal: every output line is <6>; stderr is not.
	r = e.runOnPipes(stdoutJournal, "backup", "--files-from", list)
	everyLine(t, "stdout", r.stdout, sdInfo, r)
	if !strings.HasPrefix(r.stderr, "cairn: warning: ") {
		t.Fatalf("stderr is not the journal stream, yet has a prefix\n%s", r)
	}

	// The error that ends a run is <3>.
	r = e.runOnPipes(stderrJournal, "snapshots", "--repo", filepath.Join(e.dir, "missing"))
	if r.code != exitNoRepo {
		t.Fatalf("want exit %d\n%s", exitNoRepo, r)
	}
	everyLine(t, "stderr", r.stderr, sdError+"cairn: ", r)

	// $JOURNAL_STREAM naming another stream (inherited by a process whose
	// output went elsewhere) changes nothing.
	r = e.runOnPipes(func(_, _ *os.File) string { return "1:2" }, "snapshots", "--repo", filepath.Join(e.dir, "missing"))
	checkOneErrorLine(t, r, "does not exist|no repository")
}

// A line written in pieces gets one prefix; every line of one write gets
// its own.
func TestPrefixWriterLines(t *testing.T) {
	var b bytes.Buffer
	pw := &prefixWriter{w: &b, prefix: []byte(sdWarning), lineStart: true}
	for _, s := range []string{"cairn: war", "ning: a\n", "b\nc\n", "", "d"} {
		if n, err := pw.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	want := "<4>cairn: warning: a\n<4>b\n<4>c\n<4>d"
	if b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
}
