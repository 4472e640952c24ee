package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRestoreSwappedFifo is issue 11's case with the real binary: a fifo
// of mode 4777 is swapped for a symlink to a file outside the target
// right after the restore made it (as another user writing in the target,
// or a case-insensitive file system, could). The outside file must keep
// its mode, owner and times, and the restore must name the fifo and exit
// 1.
func TestRestoreSwappedFifo(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	data := filepath.Join(e.dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(data, "file"), "content\n")
	fifo := filepath.Join(data, "pipe")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fifo, os.ModeNamedPipe|os.ModeSetuid|0o777); err != nil {
		t.Fatal(err)
	}
	e.must("backup", data)

	outside := filepath.Join(e.dir, "outside")
	e.writeFile(outside, "not yours\n")
	if err := os.Chmod(outside, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(outside, old, old); err != nil {
		t.Fatal(err)
	}
	var before unix.Stat_t
	if err := unix.Stat(outside, &before); err != nil {
		t.Fatal(err)
	}

	target := filepath.Join(e.dir, "target")
	r := e.runWith(runOpts{env: []string{envTestRestoreSwap + "=" + fifo + "=" + outside}},
		"restore", "latest", "--target", target)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	var after unix.Stat_t
	if err := unix.Stat(outside, &after); err != nil {
		t.Fatal(err)
	}
	if after.Mode != before.Mode || after.Uid != before.Uid || after.Gid != before.Gid || after.Mtim != before.Mtim {
		t.Errorf("outside file changed: mode %o owner %d:%d mtime %v, was %o %d:%d",
			after.Mode, after.Uid, after.Gid, time.Unix(after.Mtim.Unix()), before.Mode, before.Uid, before.Gid)
	}
	var warnings []string
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.Contains(line, "warning") && strings.Contains(line, fifo) {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "changed under the restore") {
		t.Errorf("want one warning naming %s as changed under the restore\n%s", fifo, r)
	}
	restored := filepath.Join(target, fifo)
	if dest, err := os.Readlink(restored); err != nil || dest != outside {
		t.Errorf("the swapped-in symlink: %q %v", dest, err)
	}
	if fi, err := os.Lstat(restored + ".swapped"); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the fifo moved aside: %v %v", fi, err)
	}
	if got, err := os.ReadFile(filepath.Join(target, data, "file")); err != nil || string(got) != "content\n" {
		t.Errorf("file: %q %v", got, err)
	}
	// A malformed setting is refused before anything runs.
	r = e.runWith(runOpts{env: []string{envTestRestoreSwap + "=relative"}}, "restore", "latest", "--target", target)
	checkOneErrorLine(t, r, envTestRestoreSwap)
}
