package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes at dir (root only) and unmounts
// it when the test ends.
func mountTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
}

// noSpaceTree writes a tree of about 24 MiB of random bytes under dir:
// 1,500 small files and a few large ones of several chunks, each with a
// modification time of its own in 2020.
func noSpaceTree(t *testing.T, dir string, rnd *rand.Rand) map[string]time.Time {
	t.Helper()
	mtimes := map[string]time.Time{}
	write := func(rel string, size int) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(len(mtimes)) * time.Minute).Add(123456789)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		mtimes[rel] = mt
	}
	for i := range 1500 {
		write(fmt.Sprintf("small/%02d/f%04d", i%30, i), 1024+rnd.IntN(8<<10))
	}
	for i := range 6 {
		write(fmt.Sprintf("large/l%d", i), (1<<20)+rnd.IntN(2<<20))
	}
	return mtimes
}

// TestRestoreNoSpace restores a 24 MiB snapshot into an 8 MiB tmpfs: the
// restore stops at the first "no space left on device" with one error
// line and exit status 1; the file count it gives is the number of files
// left in the target, and every file left there is the original, byte
// for byte, with its modification time (a file being written when the
// disk filled is removed). Once there is room, a second restore with
// --overwrite if-changed completes the target.
func TestRestoreNoSpace(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	mtimes := noSpaceTree(t, src, testRand(t))
	e.init()
	e.must("backup", src)

	small := filepath.Join(e.dir, "small")
	mountTmpfs(t, small, 8<<20)
	target := filepath.Join(small, "t")
	r := e.run("restore", "latest:"+src, "--target", target)
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `^cairn: restore stopped: no space left on device \(writing `+regexp.QuoteMeta(src)+`/[^)]+\); \d+ file\(s\) were restored whole before, the files being written were removed$`)
	claimed, _ := strconv.Atoi(regexp.MustCompile(`; (\d+) file`).FindStringSubmatch(r.stderr)[1])

	left := restoredFiles(t, target)
	if len(left) == 0 || len(left) >= len(mtimes) {
		t.Fatalf("%d of %d files left in the target", len(left), len(mtimes))
	}
	if claimed != len(left) {
		t.Errorf("the error says %d files were restored, %d are in the target", claimed, len(left))
	}
	for _, rel := range left {
		fi, err := os.Stat(filepath.Join(target, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(mtimes[rel]) {
			t.Errorf("%s: mtime %v, want the original %v", rel, fi.ModTime(), mtimes[rel])
		}
		if !sameContent(t, filepath.Join(src, rel), filepath.Join(target, rel)) {
			t.Errorf("%s: left in the target, but not the original content (%d bytes)", rel, fi.Size())
		}
	}
	t.Logf("%d of %d files restored before the disk filled", len(left), len(mtimes))

	// With room made, the same restore with --overwrite if-changed keeps
	// the files restored whole and restores the rest.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", small).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v\n%s", err, out)
	}
	sum := restoreSummary(t, e, "restore", "latest:"+src, "--target", target, "--overwrite", "if-changed")
	if int(sum["files_unchanged"].(float64)) != len(left) || int(sum["files_restored"].(float64)) != len(mtimes)-len(left) {
		t.Errorf("second restore: %v, want %d unchanged and %d restored", sum, len(left), len(mtimes)-len(left))
	}
	if got := restoredFiles(t, target); len(got) != len(mtimes) {
		t.Fatalf("%d files after the second restore, want %d", len(got), len(mtimes))
	}
	for rel, mt := range mtimes {
		fi, err := os.Stat(filepath.Join(target, rel))
		if err != nil || !fi.ModTime().Equal(mt) || !sameContent(t, filepath.Join(src, rel), filepath.Join(target, rel)) {
			t.Errorf("%s: not restored exactly (%v)", rel, err)
		}
	}
}

// restoreSummary runs cairn --json with args, which must succeed, and
// returns its summary line.
func restoreSummary(t *testing.T, e *testEnv, args ...string) map[string]any {
	t.Helper()
	r := e.must(append([]string{"--json"}, args...)...)
	lines := jsonLines(t, r.stdout)
	if len(lines) == 0 || lines[len(lines)-1]["message_type"] != "summary" {
		t.Fatalf("no summary\n%s", r)
	}
	return lines[len(lines)-1]
}
