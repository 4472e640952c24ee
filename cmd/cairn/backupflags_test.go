package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statTimes returns a path's atime and ctime.
func statTimes(t *testing.T, p string) (atime, ctime time.Time) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return time.Unix(st.Atim.Unix()), time.Unix(st.Ctim.Unix())
}

// lsNodes lists a snapshot with ls --json and returns its nodes by path.
func (e *testEnv) lsNodes(snap string) map[string]map[string]any {
	e.t.Helper()
	r := e.must("--json", "ls", snap)
	nodes := map[string]map[string]any{}
	for _, m := range jsonLines(e.t, r.stdout) {
		if m["message_type"] == "node" {
			nodes[m["path"].(string)] = m
		}
	}
	return nodes
}

// TestBackupAtime: reading files and listing folders (which, on a
// relatime mount, moves their atime without touching their ctime) between
// two backups makes the second store no tree; --with-atime records the
// real access times.
func TestBackupAtime(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	makeTree(t, src, 3)
	// An atime older than the mtime is what relatime updates on the
	// next read.
	old := time.Now().Add(-72 * time.Hour)
	var dirs, files []string
	if err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			files = append(files, p)
		default:
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, fi.ModTime())
	}); err != nil {
		t.Fatal(err)
	}
	e.init()
	e.backupJSON(0, src)

	// Another program reads every file and lists every folder.
	before, ctimeBefore := statTimes(t, files[0])
	dirBefore, _ := statTimes(t, dirs[0])
	for _, f := range files {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dirs {
		if _, err := os.ReadDir(d); err != nil {
			t.Fatal(err)
		}
	}
	after, ctimeAfter := statTimes(t, files[0])
	dirAfter, _ := statTimes(t, dirs[0])
	if !after.After(before) || !dirAfter.After(dirBefore) || !ctimeAfter.Equal(ctimeBefore) {
		t.Fatalf("reading did not move the atime alone (file atime %v -> %v, ctime %v -> %v; folder atime %v -> %v): the test needs a relatime or strictatime mount",
			before, after, ctimeBefore, ctimeAfter, dirBefore, dirAfter)
	}

	// The folders above src (/tmp ...) may change meanwhile; every item
	// of src must be unchanged.
	second, r := e.backupJSON(0, "-v", src)
	items := 0
	for _, m := range jsonLines(t, r.stdout) {
		item, _ := m["item"].(string)
		if m["message_type"] != "verbose_status" || !strings.HasPrefix(item+"/", src+"/") {
			continue
		}
		items++
		if m["action"] != "unchanged" {
			t.Errorf("%s is %v after it was only read", item, m["action"])
		}
	}
	if items < len(files)+len(dirs) {
		t.Fatalf("%d items of src reported, want %d\n%s", items, len(files)+len(dirs), r)
	}
	id := second["snapshot_id"].(string)
	fi, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	node := e.lsNodes(id)[files[0]]
	if got, _ := time.Parse(time.RFC3339Nano, node["atime"].(string)); !got.Equal(fi.ModTime()) {
		t.Errorf("without --with-atime the atime recorded is %v, want the mtime %v", node["atime"], fi.ModTime())
	}

	third, r := e.backupJSON(0, "--with-atime", src)
	if third["tree_blobs"].(float64) == 0 {
		t.Fatalf("--with-atime stored no tree although every atime differs from the mtime\n%s", r)
	}
	node = e.lsNodes(third["snapshot_id"].(string))[files[0]]
	if got, _ := time.Parse(time.RFC3339Nano, node["atime"].(string)); !got.Equal(after) {
		t.Errorf("--with-atime recorded atime %v, want %v", node["atime"], after)
	}
}

// TestBackupMissingPath: a backup path that does not exist is reported,
// left out of the snapshot's paths (so the next backup of the same
// command line finds the snapshot as its parent) and makes the exit
// status 3; when no path exists, no snapshot is made (exit 1).
func TestBackupMissingPath(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	makeTree(t, src, 4)
	gone := filepath.Join(e.dir, "gone")
	e.init()
	first, r := e.backupJSON(3, src, gone)
	if !strings.Contains(r.stderr, gone+" does not exist, skipping") {
		t.Errorf("no warning naming the missing path\n%s", r)
	}
	if first["error_count"].(float64) != 1 {
		t.Errorf("error_count %v, want 1", first["error_count"])
	}
	snaps := e.snapshotsJSON()
	if paths := snaps[0]["paths"].([]any); len(paths) != 1 || paths[0] != src {
		t.Fatalf("snapshot paths %v, want only %s", paths, src)
	}
	second, r := e.backupJSON(3, src, gone)
	if second["files_new"].(float64) != 0 || second["files_unmodified"] != first["total_files_processed"] {
		t.Fatalf("the second backup found no parent: %v\n%s", second, r)
	}
	r = e.run("backup", gone)
	if r.code != 1 || len(e.snapshotsJSON()) != 2 {
		t.Fatalf("a backup of only missing paths: want exit 1 and no snapshot\n%s", r)
	}
}

// TestBackupStdin: --stdin and --stdin-from-command store a stream as one
// file that restores byte for byte; a command that fails makes no
// snapshot and exit status 1.
func TestBackupStdin(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	data := make([]byte, 3<<20+12345) // several chunks
	rnd := testRand(t)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	restored := func(snap, name string) []byte {
		t.Helper()
		target := filepath.Join(e.dir, "r-"+snap)
		e.must("restore", snap, "--target", target)
		got, err := os.ReadFile(filepath.Join(target, name))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(filepath.Join(target, name))
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s restored with mode %v, want 0644", name, fi.Mode())
		}
		return got
	}

	stdinBackup := func(args ...string) string {
		t.Helper()
		r := e.runWith(runOpts{stdin: string(data)}, append([]string{"--json", "backup", "--stdin"}, args...)...)
		if r.code != 0 {
			t.Fatalf("backup --stdin\n%s", r)
		}
		msgs := jsonLines(t, r.stdout)
		return msgs[len(msgs)-1]["snapshot_id"].(string)
	}
	for _, c := range []struct {
		args []string
		name string
	}{
		{nil, "stdin"},
		{[]string{"--stdin-filename", "db/dump.sql"}, "db/dump.sql"},
	} {
		id := stdinBackup(c.args...)
		if got := restored(id, c.name); string(got) != string(data) {
			t.Fatalf("--stdin %q: restored %d bytes differ from the %d given", c.args, len(got), len(data))
		}
		snaps := e.snapshotsJSON()
		if paths := snaps[len(snaps)-1]["paths"].([]any); len(paths) != 1 || paths[0] != "/"+c.name {
			t.Errorf("snapshot paths %v, want [/%s]", paths, c.name)
		}
	}

	// --stdin-from-command: the database-dump case.
	src := filepath.Join(e.dir, "dump")
	if err := os.WriteFile(src, data[:1<<20], 0o600); err != nil {
		t.Fatal(err)
	}
	sum, _ := e.backupJSON(0, "--stdin-from-command", "--stdin-filename", "dump.sql", "--", "cat", src)
	if got := restored(sum["snapshot_id"].(string), "dump.sql"); string(got) != string(data[:1<<20]) {
		t.Fatalf("--stdin-from-command: restored content differs")
	}

	before := len(e.snapshotsJSON())
	for _, args := range [][]string{
		{"sh", "-c", "head -c 100000 " + src + "; echo dump failed >&2; exit 3"},
		{filepath.Join(e.dir, "no-such-program")},
	} {
		r := e.run(append([]string{"backup", "--stdin-from-command", "--"}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "no snapshot saved") && !strings.Contains(r.stderr, "start") {
			t.Errorf("a failing command: want exit 1 and why\n%s", r)
		}
		if n := len(e.snapshotsJSON()); n != before {
			t.Fatalf("a failing command made a snapshot (%d, was %d)\n%s", n, before, r)
		}
	}
	if r := e.run("backup", "--stdin-from-command", "--", "sh", "-c", "echo dump failed >&2; exit 3"); !strings.Contains(r.stderr, "dump failed") || !strings.Contains(r.stderr, "exit status 3") {
		t.Errorf("the command's stderr and exit status are not shown\n%s", r)
	}

	for _, bad := range [][]string{
		{"backup", "--stdin", src},
		{"backup", "--stdin-filename", "x", src},
		{"backup", "--stdin-from-command"},
		{"backup", "--stdin", "--stdin-filename", "/"},
		{"backup", "--stdin", "--stdin-from-command", "--", "true"},
	} {
		if r := e.run(bad...); r.code != 1 {
			t.Errorf("want exit 1\n%s", r)
		}
	}
}

// snapshotPaths returns the newest snapshot's paths.
func (e *testEnv) snapshotPaths() []string {
	e.t.Helper()
	snaps := e.snapshotsJSON()
	var out []string
	for _, p := range snaps[len(snaps)-1]["paths"].([]any) {
		out = append(out, p.(string))
	}
	return out
}

// TestBackupFileLists: --files-from (globs, comments, "-" for stdin),
// --files-from-verbatim and --files-from-raw name the paths to back up.
func TestBackupFileLists(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	for _, f := range []string{"a.txt", "b.log", "dir/c.txt", "sp ace.txt ", "#hash"} {
		mkdirAll(t, filepath.Dir(filepath.Join(src, f)))
		e.writeFile(filepath.Join(src, f), f)
	}
	e.init()
	abs := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(src, n))
		}
		slices.Sort(out)
		return out
	}
	list := filepath.Join(e.dir, "list")
	check := func(want []string, o runOpts, args ...string) {
		t.Helper()
		r := e.runWith(o, append([]string{"backup"}, args...)...)
		if r.code != 0 {
			t.Fatalf("want exit 0\n%s", r)
		}
		if got := e.snapshotPaths(); !slices.Equal(got, want) {
			t.Fatalf("snapshot paths %q, want %q\n%s", got, want, r)
		}
	}
	// Globs relative to the working folder, white space and comments.
	e.writeFile(list, "  src/*.txt  \n# src/b.log\n\nsrc/nomatch*\n")
	r := e.runWith(runOpts{}, "backup", "--files-from", list)
	if !strings.Contains(r.stderr, `pattern "src/nomatch*" matches no file, skipping`) {
		t.Errorf("no warning for a glob that matches nothing\n%s", r)
	}
	if got := e.snapshotPaths(); !slices.Equal(got, abs("a.txt")) {
		t.Fatalf("--files-from: paths %q", got)
	}
	check(abs("a.txt", "b.log"), runOpts{stdin: "src/b.log\n"}, "--files-from", "-", filepath.Join(src, "a.txt"))
	// Verbatim: no globbing, no trimming, no comments.
	e.writeFile(list, "src/sp ace.txt \n\nsrc/#hash\n")
	check(abs("sp ace.txt ", "#hash"), runOpts{}, "--files-from-verbatim", list)
	// Raw: NUL-terminated.
	e.writeFile(list, "src/dir\x00src/b.log\x00")
	check(abs("dir", "b.log"), runOpts{}, "--files-from-raw", list)
	e.writeFile(list, "src/dir\x00src/b.log")
	if r := e.run("backup", "--files-from-raw", list); r.code != 1 || !strings.Contains(r.stderr, "NUL") {
		t.Errorf("a raw list without its last NUL: want exit 1\n%s", r)
	}
	e.writeFile(list, "# nothing\n")
	if r := e.run("backup", "--files-from", list); r.code != 1 {
		t.Errorf("an empty list: want exit 1\n%s", r)
	}
}

// TestBackupExcludeFiles: $VAR and ${VAR} are expanded in exclude files,
// --iexclude-file ignores case, and a later "!pattern" re-includes what
// an earlier one excluded.
func TestBackupExcludeFiles(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	for _, f := range []string{"a.txt", "keep.txt", "B.LOG", "cache/x", "tmp/y", "z"} {
		mkdirAll(t, filepath.Dir(filepath.Join(src, f)))
		e.writeFile(filepath.Join(src, f), f)
	}
	e.init()
	ex := filepath.Join(e.dir, "ex")
	iex := filepath.Join(e.dir, "iex")
	e.writeFile(ex, "$SKIP/cache\n${SKIP}/tmp/\n*.txt\n!keep.txt\n")
	e.writeFile(iex, "*.log\n")
	r := e.runWith(runOpts{env: []string{"SKIP=" + src}}, "--json", "backup", "--exclude-file", ex, "--iexclude-file", iex, src)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	var got []string
	for p := range e.lsNodes("latest") {
		if rel, err := filepath.Rel(src, p); err == nil && !strings.HasPrefix(rel, "..") && rel != "." {
			got = append(got, rel)
		}
	}
	slices.Sort(got)
	if want := []string{"keep.txt", "z"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot holds %q, want %q", got, want)
	}

	// --iexclude and --exclude-larger-than on the command line.
	e.writeFile(filepath.Join(src, "big"), strings.Repeat("x", 2048))
	e.must("backup", "--iexclude", "*.TXT", "--iexclude", "/"+strings.ToUpper(src[1:])+"/CACHE", "--exclude-larger-than", "1K", src)
	got = nil
	for p := range e.lsNodes("latest") {
		if rel, err := filepath.Rel(src, p); err == nil && !strings.HasPrefix(rel, "..") && rel != "." {
			got = append(got, rel)
		}
	}
	slices.Sort(got)
	if want := []string{"B.LOG", "tmp", "tmp/y", "z"}; !slices.Equal(got, want) {
		t.Fatalf("--iexclude, --exclude-larger-than: snapshot holds %q, want %q", got, want)
	}
}

// TestBackupChangeFlags: --time dates the snapshot, --skip-if-unchanged
// makes none when nothing changed, --ignore-ctime and --ignore-inode keep
// a file whose ctime or inode alone changed from being read again, and
// --read-concurrency is checked.
func TestBackupChangeFlags(t *testing.T) {
	e := newTestEnv(t)
	// The folders above the paths are part of the tree: /tmp, where the
	// test's folder is, changes as other tests run; /var/tmp seldom does.
	stable, err := os.MkdirTemp("/var/tmp", "cairn-skip-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(stable) })
	src := filepath.Join(stable, "src")
	mkdirAll(t, src)
	f := filepath.Join(src, "f")
	e.writeFile(f, "content")
	e.init()
	e.backupJSON(0, "--time", "2024-02-03 04:05:06", "--read-concurrency", "1", src)
	snaps := e.snapshotsJSON()
	if got := snaps[0]["time"].(string); !strings.HasPrefix(got, "2024-02-03T04:05:06") {
		t.Errorf("--time: snapshot time %s", got)
	}

	sum, r := e.backupJSON(0, "--skip-if-unchanged", src)
	if _, ok := sum["snapshot_id"]; ok || len(e.snapshotsJSON()) != 1 {
		t.Fatalf("--skip-if-unchanged made a snapshot of an unchanged tree\n%s", r)
	}
	if r := e.must("backup", "--skip-if-unchanged", src); !strings.Contains(r.stdout, "skipped creating snapshot") {
		t.Errorf("no word of the skipped snapshot\n%s", r)
	}
	e.writeFile(filepath.Join(src, "g"), "new")
	e.backupJSON(0, "--skip-if-unchanged", src)
	if n := len(e.snapshotsJSON()); n != 2 {
		t.Fatalf("--skip-if-unchanged after a change: %d snapshots, want 2", n)
	}

	// The ctime alone changes: read again unless --ignore-ctime.
	changes := func(args ...string) float64 {
		t.Helper()
		sum, _ := e.backupJSON(0, append(args, src)...)
		return sum["files_changed"].(float64)
	}
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := changes("--ignore-ctime"); n != 0 {
		t.Errorf("--ignore-ctime: %v files read again after a ctime change", n)
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := changes(); n != 1 {
		t.Errorf("without --ignore-ctime: %v files read again after a ctime change, want 1", n)
	}
	// A new inode (cp -p and rename keep size and mtime).
	if out, err := exec.Command("cp", "-p", f, f+".new").CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.Rename(f+".new", f); err != nil {
		t.Fatal(err)
	}
	if n := changes("--ignore-ctime"); n != 1 {
		t.Errorf("--ignore-ctime: %v files read again after an inode change, want 1", n)
	}
	if out, err := exec.Command("cp", "-p", f, f+".new").CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.Rename(f+".new", f); err != nil {
		t.Fatal(err)
	}
	if n := changes("--ignore-inode"); n != 0 {
		t.Errorf("--ignore-inode: %v files read again after an inode change", n)
	}

	for _, bad := range [][]string{
		{"backup", "--time", "yesterday", src},
		{"backup", "--read-concurrency", "-1", src},
	} {
		if r := e.run(bad...); r.code != 1 {
			t.Errorf("want exit 1\n%s", r)
		}
	}
	if r := e.runWith(runOpts{env: []string{envReadConcurrency + "=x"}}, "backup", src); r.code != 1 {
		t.Errorf("a bad $%s: want exit 1\n%s", envReadConcurrency, r)
	}
}
