package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// dataStats counts the packs in data/ and adds up their sizes.
func (e *testEnv) dataStats() (packs int, bytes int64) {
	e.t.Helper()
	files, _ := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue // a temporary file renamed meanwhile
		}
		if len(filepath.Base(f)) == 64 {
			packs++
			bytes += fi.Size()
		}
	}
	return packs, bytes
}

func (e *testEnv) indexFiles() int {
	files, _ := filepath.Glob(filepath.Join(e.repo, "index", "*"))
	return len(files)
}

// background is a cairn process the test watches and stops.
type background struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

func (e *testEnv) start(env []string, args ...string) *background {
	e.t.Helper()
	b := &background{cmd: exec.Command(cairnBin, args...), done: make(chan struct{})}
	b.cmd.Env = append(append([]string(nil), e.env...), env...)
	b.cmd.Dir = e.dir
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	if err := b.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	e.t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
	})
	return b
}

// waitFor polls cond every few milliseconds until it holds; it fails the
// test if the process ends first or a minute passes.
func (b *background) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		select {
		case <-b.done:
			t.Fatalf("cairn ended before %s (exit %d)\nstdout:\n%s\nstderr:\n%s", what, b.cmd.ProcessState.ExitCode(), &b.stdout, &b.stderr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute\nstderr:\n%s", what, &b.stderr)
		}
	}
}

// stop sends sig and waits for the process; it returns the exit code
// (-1 when the signal ended it).
func (b *background) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	_ = b.cmd.Process.Signal(sig)
	select {
	case <-b.done:
	case <-time.After(time.Minute):
		t.Fatalf("cairn did not end within a minute of %v", sig)
	}
	return b.cmd.ProcessState.ExitCode()
}

// resumeFixture is a first backup of 56 MiB of random data into 1 MiB
// packs: 56 packs, fewer than the 64 after which an index file is written
// whatever the time.
func resumeFixture(t *testing.T) (*testEnv, string) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	writeRandomFiles(t, src, testRand(t), "f", 56, 1<<20)
	e.initPackSize(repo.MinPackSize)
	return e, src
}

// resumeUploadLimit (KiB/s) makes the fixture's upload take 3.5 s at
// least: on a quiet machine an unlimited backup of it ends in well under
// a second, often before a signal sent after 36 packs arrives.
const resumeUploadLimit = "16384"

// checkBackupResumed runs the backup again to completion and checks that it
// uploads less than half of the data: what the stopped run uploaded was
// indexed and is reused.
func checkBackupResumed(t *testing.T, e *testEnv, src string, stoppedPacks int) {
	t.Helper()
	_, before := e.dataStats()
	sum, _ := e.backupJSON(0, src)
	_, after := e.dataStats()
	added := after - before
	t.Logf("the stopped run left %d packs, %d bytes, %d index files; the rerun added %d bytes (data_added_packed %v)",
		stoppedPacks, before, e.indexFiles(), added, sum["data_added_packed"])
	if total := int64(56 << 20); added > total/2 {
		t.Fatalf("the rerun uploaded %d bytes of %d: what the stopped run uploaded was not reused", added, total)
	}
	e.must("check")
}

// TestBackupSIGTERMIndexes: a first backup stopped with SIGTERM indexes
// the packs it uploaded on its way out (exit 130), so that the rerun
// uploads less than half the data again.
func TestBackupSIGTERMIndexes(t *testing.T) {
	e, src := resumeFixture(t)
	b := e.start([]string{"GOMAXPROCS=1"}, "--limit-upload", resumeUploadLimit, "backup", src)
	b.waitFor(t, "36 packs", func() bool { n, _ := e.dataStats(); return n >= 36 })
	if code := b.stop(t, syscall.SIGTERM); code != exitInterrupted {
		t.Fatalf("exit %d after SIGTERM, want %d\nstdout:\n%s\nstderr:\n%s", code, exitInterrupted, &b.stdout, &b.stderr)
	}
	packs, _ := e.dataStats()
	if e.indexFiles() == 0 {
		t.Fatalf("no index file after SIGTERM (%d packs uploaded)", packs)
	}
	checkBackupResumed(t, e, src, packs)
}

// TestBackupKill9AfterPeriodicIndex: a first backup killed with SIGKILL
// right after it wrote an index file on its timer (shortened by a test
// seam) leaves most of its upload indexed; the rerun uploads less than
// half the data again.
func TestBackupKill9AfterPeriodicIndex(t *testing.T) {
	e, src := resumeFixture(t)
	b := e.start([]string{"GOMAXPROCS=1", envTestIndexInterval + "=100ms"}, "--limit-upload", resumeUploadLimit, "backup", src)
	b.waitFor(t, "36 packs", func() bool { n, _ := e.dataStats(); return n >= 36 })
	n0 := e.indexFiles()
	b.waitFor(t, "an index file written after 36 packs", func() bool { return e.indexFiles() > n0 })
	if code := b.stop(t, syscall.SIGKILL); code != -1 {
		t.Fatalf("the backup ended by itself (exit %d) before the kill\nstderr:\n%s", code, &b.stderr)
	}
	// The index file must be the timer's, not the one written once the
	// whole upload is done.
	packs, _ := e.dataStats()
	if packs > 50 {
		t.Fatalf("the first index file came with %d packs uploaded, at the end of the upload: none was written on the timer", packs)
	}
	checkBackupResumed(t, e, src, packs)
}
