package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killMirrorInLog runs "cairn mirror DEST" with the test-only pause after
// n log entries, waits until it says it paused, and kills it with SIGKILL.
func killMirrorInLog(t *testing.T, e *testEnv, dest string, n int) {
	t.Helper()
	cmd := exec.Command(cairnBin, "mirror", dest)
	cmd.Env = append(append([]string(nil), e.env...), fmt.Sprintf("%s=%d", envTestMirrorPause, n))
	cmd.Dir = e.dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	paused := make(chan bool, 1)
	var said strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			said.WriteString(sc.Text() + "\n")
			if sc.Text() == fmt.Sprintf("cairn: warning: testonly: mirror paused after %d log entries", n) {
				paused <- true
				return
			}
		}
		paused <- false
	}()
	select {
	case ok := <-paused:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("the mirror ended without pausing after %d log entries:\n%s", n, said.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the mirror did not pause within 2 minutes:\n%s", said.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed: judged below
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the mirror was not killed: %v", cmd.ProcessState)
	}
}

// logSeqs returns the sequence numbers of the log entries in the
// repository at dir, sorted, as "cairn -r dir log --json" lists them.
func logSeqs(t *testing.T, e *testEnv, dir string) []uint64 {
	t.Helper()
	r := e.must("-r", dir, "--json", "log")
	var entries []logEntryFile
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		t.Fatalf("log --json: %v\n%s", err, r)
	}
	var seqs []uint64
	for _, en := range entries {
		seqs = append(seqs, en.Seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

// TestMirrorKilledInLogPhase kills a first mirror, then a later one, with
// SIGKILL after some of their log entries arrived: each time the copy's
// log is a valid shorter log (its oldest entries, no broken link), lists
// the snapshots whose entries made it, and checks as behind (exit 0).
// Then a mirror finishes the job.
func TestMirrorKilledInLogPhase(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	e.init()
	backup := func(content string) {
		t.Helper()
		e.writeFile(filepath.Join(data, "f"), content)
		e.must("backup", data)
	}
	for i := range 4 {
		backup(fmt.Sprintf("version %d\n", i))
	}
	// The log: the device's writer entry, then 4 snapshots (sequences 1-5).
	friend := filepath.Join(e.dir, "friend")
	snapshotsAt := func(dir string) int {
		t.Helper()
		var snaps []map[string]any
		r := e.must("-r", dir, "snapshots", "--json")
		if err := json.Unmarshal([]byte(r.stdout), &snaps); err != nil {
			t.Fatalf("snapshots --json: %v\n%s", err, r)
		}
		return len(snaps)
	}
	checkBehind := func(by int) {
		t.Helper()
		r := e.run("-r", friend, "check")
		if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("log is behind by %d entries", by)) || strings.Contains(r.stdout, "error:") {
			t.Fatalf("check of the copy left by the killed mirror: want exit 0, behind by %d\n%s", by, r)
		}
	}

	// The first mirror, killed after 3 log entries: the writer entry and
	// the first 2 snapshots.
	killMirrorInLog(t, e, friend, 3)
	if got := logSeqs(t, e, friend); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("the killed first mirror left log entries with sequences %v, want [1 2 3]", got)
	}
	if n := snapshotsAt(friend); n != 2 {
		t.Fatalf("the killed first mirror's copy lists %d snapshots, want 2", n)
	}
	checkBehind(2)

	e.must("mirror", friend)
	if n := snapshotsAt(friend); n != 4 {
		t.Fatalf("after the mirror the copy lists %d snapshots, want 4", n)
	}
	if r := e.must("-r", friend, "check"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check after the mirror\n%s", r)
	}

	// A later mirror with 3 new entries, killed after the first.
	for i := range 3 {
		backup(fmt.Sprintf("later version %d\n", i))
	}
	killMirrorInLog(t, e, friend, 1)
	if got := logSeqs(t, e, friend); fmt.Sprint(got) != "[1 2 3 4 5 6]" {
		t.Fatalf("the killed mirror left log entries with sequences %v, want [1 2 3 4 5 6]", got)
	}
	if n := snapshotsAt(friend); n != 5 {
		t.Fatalf("the killed mirror's copy lists %d snapshots, want 5", n)
	}
	// The copy was read at sequence 5 by this device before: 6 is not a
	// rollback there, only behind what it saw at home.
	checkBehind(2)
	e.must("mirror", friend)
	if r := e.must("-r", friend, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check after the last mirror\n%s", r)
	}
	target := filepath.Join(e.dir, "restored")
	e.must("-r", friend, "restore", "latest", "--target", target)
	compareTrees(t, data, filepath.Join(target, data), false)
}
