package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Stale temporary files: a mirror killed with SIGKILL mid-upload leaves
// its ".tmp-..." file in the destination's folder; the next mirror that
// succeeds removes it once it is an hour old, and prune does the same in
// its own repository. These tests kill the real binary, age what the kill
// left with os.Chtimes (rather than wait an hour) and run again.

// staleTempLine is the line mirror and prune print when they removed
// stale temporary files.
var staleTempLine = regexp.MustCompile(`removed (\d+) stale temporary file\(s\)`)

// removedTemps reads how many stale temporary files a run says it
// removed; 0 when it says nothing about them.
func removedTemps(t *testing.T, r result) int {
	t.Helper()
	m := staleTempLine.FindStringSubmatch(r.stdout)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ageTemps sets the times of the temporary files under dir two hours
// back and returns them. When the kill left none (it landed between two
// uploads) it plants one in a pack folder, named as the backends name
// theirs, so the test cannot pass without removing something; it logs
// which it was.
func ageTemps(t *testing.T, dir string) []string {
	t.Helper()
	tmp := tempFiles(t, dir)
	if len(tmp) > 0 {
		t.Logf("the kill left %d temporary file(s): %q", len(tmp), tmp)
	} else {
		var r [12]byte
		if _, err := rand.Read(r[:]); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "data", "5e", ".tmp-"+hex.EncodeToString(r[:]))
		if err := os.WriteFile(p, make([]byte, 70_000), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("the kill left no temporary file (it landed between uploads); planted %s", p)
		tmp = []string{p}
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range tmp {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return tmp
}

// killMirrorThenClean kills a mirror to dest (whose folder is dir), ages
// the leftovers, and runs the mirror again: it must finish the copy,
// remove every temporary file and say how many. settle, if not nil,
// waits until the destination's server has stopped writing what the
// killed mirror sent it (an sftp session outlives its client for a
// moment): a temporary file it still wrote after being aged would look
// fresh, and rightly be kept.
func killMirrorThenClean(t *testing.T, e *testEnv, dest, dir string, settle func()) {
	t.Helper()
	killMirrorHalfway(t, e, dest, filepath.Join(dir, "data"))
	if settle != nil {
		settle()
	}
	tmp := ageTemps(t, dir)

	r := e.must("mirror", dest)
	if got := removedTemps(t, r); got != len(tmp) {
		t.Errorf("the mirror after the kill says it removed %d stale temporary files, want %d\n%s", got, len(tmp), r)
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Fatalf("temporary files left after the mirror: %q", left)
	}
	checkHashNames(t, dir)
	if got, want := repoFiles(t, dir), repoFiles(t, e.repo); !sameSizes(got, want) {
		t.Fatalf("the destination holds %v\nthe source %v", got, want)
	}
	if r := e.must("-r", dest, "check", "--read-data"); !strings.Contains(r.stdout, "no problems found") {
		t.Fatalf("check\n%s", r)
	}
	// Nothing removed: nothing said.
	if r := e.must("mirror", dest); strings.Contains(r.stdout, "temporary") {
		t.Errorf("a mirror with no temporary file to remove mentions them\n%s", r)
	}
}

func TestTempCleanSFTPMirrorKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a mirror slowed down to be killed")
	}
	e := newTestEnv(t)
	t.Parallel()
	s := sftpServer(t, e)
	killResumeFixture(t, e)
	dir := filepath.Join(e.dir, "on-server", "mirror")
	killMirrorThenClean(t, e, s.Location(dir), dir, func() { s.WaitSessionsEnded(t) })
}

func TestTempCleanLocalMirrorKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a mirror slowed down to be killed")
	}
	e := newTestEnv(t)
	t.Parallel()
	killResumeFixture(t, e)
	dir := filepath.Join(e.dir, "usb-disk", "mirror")
	killMirrorThenClean(t, e, dir, dir, nil)

	// Prune sweeps its own repository: an old temporary file goes, a
	// fresh one (an upload that may still be running) stays.
	old := filepath.Join(e.repo, "index", ".tmp-0123456789")
	fresh := filepath.Join(e.repo, "data", "00", ".tmp-9876543210")
	for _, p := range []string{old, fresh} {
		e.writeFile(p, "partial upload")
	}
	long := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	r := e.must("prune")
	if got := removedTemps(t, r); got != 1 {
		t.Errorf("prune says it removed %d stale temporary files, want 1\n%s", got, r)
	}
	if left := tempFiles(t, e.repo); len(left) != 1 || left[0] != fresh {
		t.Errorf("temporary files after prune: %q, want only %s", left, fresh)
	}
	if r := e.must("prune"); strings.Contains(r.stdout, "temporary") {
		t.Errorf("a prune with no stale temporary file mentions them\n%s", r)
	}
	e.must("check")
}
