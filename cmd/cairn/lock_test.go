package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pausedRun is a cairn process stopped at a $CAIRN_TESTONLY_PAUSE point.
type pausedRun struct {
	t      *testing.T
	args   []string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	stdout *lockedBuffer
	done   chan struct{} // closed once the process has exited
	err    error         // what Wait returned; set before done is closed
}

// startPaused runs cairn with $CAIRN_TESTONLY_PAUSE=point and returns once
// the process says it has stopped there: an event on its stderr, not a
// guess at how long it takes.
func (e *testEnv) startPaused(point string, env []string, args ...string) *pausedRun {
	e.t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = append(append(append([]string(nil), e.env...), envTestPause+"="+point), env...)
	cmd.Dir = e.dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	p := &pausedRun{t: e.t, args: args, cmd: cmd, stdin: stdin, stderr: &lockedBuffer{}, stdout: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout = writerFunc(func(b []byte) (int, error) { p.stdout.WriteString(string(b)); return len(b), nil })
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	paused := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			p.stderr.WriteString(sc.Text() + "\n")
			if !said && sc.Text() == "cairn: testonly: paused at "+point {
				said = true
				close(paused)
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case <-paused:
	case <-p.done:
		e.t.Fatalf("cairn %q exited before pausing at %s\nstderr:\n%s", args, point, p.stderr.String())
	case <-time.After(2 * time.Minute):
		e.t.Fatalf("cairn %q did not pause at %s within 2 minutes\nstderr:\n%s", args, point, p.stderr.String())
	}
	return p
}

// resume lets the process go on and waits for it to exit.
func (p *pausedRun) resume() result {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, "\n"); err != nil {
		p.t.Fatal(err)
	}
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		p.t.Fatalf("cairn %q did not finish within 2 minutes of resuming\nstderr:\n%s", p.args, p.stderr.String())
	}
	res := result{args: p.args, stdout: p.stdout.String(), stderr: p.stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case p.err == nil:
	case errors.As(p.err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		p.t.Fatalf("cairn %q: %v", p.args, p.err)
	}
	return res
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// lockFixture backs a folder of a few MiB up and forgets the snapshot: its
// data stays in the repository, used by no live snapshot, so the next
// backup of the same folder deduplicates against packs that a prune
// would delete.
func lockFixture(t *testing.T, e *testEnv) string {
	t.Helper()
	data := filepath.Join(e.dir, "data")
	for i, size := range []int{3 << 20, 700 << 10, 5 << 10} {
		writeRandom(t, filepath.Join(data, "f"+string(rune('a'+i))), size, uint64(i+1))
	}
	e.init()
	e.must("backup", data)
	forgetOldest(t, e)
	return data
}

// TestClockSkewedBackupKeepsItsData is issue 11 item 1: a backup on a host
// whose clock is 2 h behind holds its lock while a prune runs on another
// host. The prune must not take the backup's lock for stale (its written
// time says nothing to a reader on another clock), and the snapshot the
// backup then writes must restore byte for byte.
func TestClockSkewedBackupKeepsItsData(t *testing.T) {
	e := newTestEnv(t)
	data := lockFixture(t, e)

	b := e.startPaused("before-snapshot", []string{envTestClockShift + "=-2h"}, "backup", data)
	other := []string{envTestHostname + "=other-host"}
	r := e.runWith(runOpts{env: other}, "prune")
	if r.code != exitLocked {
		t.Errorf("prune from another host while the backup holds its lock: want exit %d\n%s", exitLocked, r)
	}
	if res := b.resume(); res.code != 0 {
		t.Fatalf("backup: want exit 0\n%s", res)
	}
	target := filepath.Join(e.dir, "restored")
	e.must("restore", "latest", "--target", target)
	compareTrees(t, data, filepath.Join(target, data), false)
	e.must("check", "--read-data")
}

// repoPacks is the set of pack file names in a local repository.
func repoPacks(t *testing.T, repoDir string) map[string]bool {
	t.Helper()
	packs := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(repoDir, "data"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			packs[d.Name()] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return packs
}
