package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged user root tests run cairn as.
const nobody = 65534

// TestRoundTrip backs a sample tree up, restores it and compares every
// byte and every piece of metadata; run as root, it does the same again
// as an unprivileged user.
func TestRoundTrip(t *testing.T) {
	t.Run("as invoking user", func(t *testing.T) { roundTrip(t, false) })
	if os.Geteuid() == 0 {
		t.Run("as unprivileged user", func(t *testing.T) { roundTrip(t, true) })
	}
}

func roundTrip(t *testing.T, unprivileged bool) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	xattrs := makeTree(t, src, 1)
	if unprivileged {
		chownTree(t, e.dir, nobody, nobody)
		e.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	e.init()
	sum, r := e.backupJSON(0, src)
	checkNoControl(t, "backup stderr", r.stderr)
	if r.stderr != "" {
		t.Fatalf("backup warned\n%s", r)
	}
	if n := sum["total_files_processed"].(float64); n < 10 {
		t.Fatalf("backed up %v files\n%s", n, r)
	}

	// Everything: the snapshot's absolute paths appear under the target.
	full := filepath.Join(e.dir, "restore-full")
	r = e.must("restore", "latest", "--target", full)
	compareTrees(t, src, filepath.Join(full, src), xattrs)

	// A subfolder's contents at the target root, with --verify.
	sub := filepath.Join(e.dir, "restore-sub")
	r = e.must("restore", "--verify", "latest:"+filepath.Join(src, "sub"), "--target", sub)
	compareTrees(t, filepath.Join(src, "sub"), sub, xattrs)
	if !strings.Contains(r.stdout, "verified") {
		t.Errorf("restore --verify did not say it verified\n%s", r)
	}

	// diff(1) agrees on content too.
	if out, err := exec.Command("diff", "-r", "--no-dereference", "-x", "fifo", src, filepath.Join(full, src)).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%s", err, out)
	}
}

// TestBackupDedup checks that a second backup of an unchanged tree, and a
// backup of a copy of it under another path, add almost nothing.
func TestBackupDedup(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	makeTree(t, src, 2)
	e.init()
	first, _ := e.backupJSON(0, src)
	if first["data_added"].(float64) < 3<<20 {
		t.Fatalf("first backup added only %v bytes", first["data_added"])
	}
	second, _ := e.backupJSON(0, src)
	if second["files_new"].(float64) != 0 || second["files_changed"].(float64) != 0 ||
		second["files_unmodified"] != first["total_files_processed"] || second["data_blobs"].(float64) != 0 {
		t.Fatalf("second backup of an unchanged tree: %v", second)
	}
	if second["data_added"].(float64) > 64<<10 {
		t.Fatalf("second backup added %v bytes", second["data_added"])
	}
	copyDir := filepath.Join(e.dir, "copy")
	if out, err := exec.Command("cp", "-a", src, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	third, _ := e.backupJSON(0, copyDir)
	if third["data_blobs"].(float64) != 0 || third["data_added"].(float64) > 64<<10 {
		t.Fatalf("backup of a copy: %v", third)
	}
	snaps := e.snapshotsJSON()
	if len(snaps) != 3 {
		t.Fatalf("%d snapshots, want 3", len(snaps))
	}
	if snaps[1]["parent"] != snaps[0]["id"] {
		t.Errorf("second snapshot's parent is %v, want %v", snaps[1]["parent"], snaps[0]["id"])
	}
}

// TestUnreadableFile checks exit status 3: the snapshot is made, the
// unreadable file is named on stderr and left out. Root reads any file,
// so as root cairn runs as an unprivileged user for this test.
func TestUnreadableFile(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "ok.txt"), "fine\n")
	locked := filepath.Join(src, "d", "locked.txt")
	e.writeFile(locked, "you cannot read me\n")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		chownTree(t, e.dir, nobody, nobody)
		e.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	e.init()
	r := e.run("backup", src)
	if r.code != 3 {
		t.Fatalf("want exit 3\n%s", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "locked.txt") || !strings.Contains(lines[0], "permission denied") ||
		!matches(`^cairn: warning: snapshot [0-9a-f]{8} saved, but 1 file\(s\) could not be read$`, lines[1]) {
		t.Fatalf("stderr\n%s", r)
	}
	checkNoControl(t, "stdout", r.stdout)
	// --json: the error is a JSON line on stderr, the summary counts it.
	sum, r := e.backupJSON(3, src)
	if sum["error_count"].(float64) != 1 {
		t.Fatalf("summary: %v", sum)
	}
	errs := jsonLines(t, r.stderr[:strings.LastIndex(strings.TrimSuffix(r.stderr, "\n"), "\n")+1])
	if len(errs) != 1 || errs[0]["message_type"] != "error" || !strings.HasSuffix(errs[0]["item"].(string), "locked.txt") {
		t.Fatalf("stderr\n%s", r)
	}
	snaps := e.snapshotsJSON()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want 2", len(snaps))
	}
	r = e.must("ls", "latest")
	if strings.Contains(r.stdout, "locked.txt") || !strings.Contains(r.stdout, "ok.txt") {
		t.Fatalf("ls\n%s", r)
	}
}

// TestJSONOutputs checks that every command's --json output parses and
// uses restic's field names.
func TestJSONOutputs(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	makeTree(t, src, 3)
	e.init()
	sum, _ := e.backupJSON(0, "--tag", "daily", "--tag", "home", src)
	for _, f := range []string{"files_new", "files_changed", "files_unmodified", "dirs_new", "dirs_changed", "dirs_unmodified",
		"data_blobs", "tree_blobs", "data_added", "total_files_processed", "total_bytes_processed", "total_duration", "snapshot_id"} {
		if _, ok := sum[f]; !ok {
			t.Errorf("backup summary lacks %q: %v", f, sum)
		}
	}
	e.writeFile(filepath.Join(src, "new.txt"), "new file\n")
	e.writeFile(filepath.Join(src, "a.txt"), "changed\n")
	e.backupJSON(0, src)

	snaps := e.snapshotsJSON()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots", len(snaps))
	}
	for _, f := range []string{"id", "short_id", "time", "hostname", "username", "paths", "tags", "tree", "summary"} {
		if _, ok := snaps[0][f]; !ok {
			t.Errorf("snapshots --json lacks %q: %v", f, snaps[0])
		}
	}
	if snaps[1]["parent"] != snaps[0]["id"] || snaps[0]["id"] != sum["snapshot_id"] ||
		snaps[0]["short_id"] != snaps[0]["id"].(string)[:8] || !slices.Equal(toStrings(snaps[0]["tags"]), []string{"daily", "home"}) ||
		!slices.Equal(toStrings(snaps[0]["paths"]), []string{src}) {
		t.Errorf("snapshots --json: %v", snaps)
	}
	if s := snaps[0]["summary"].(map[string]any); s["total_files_processed"] != sum["total_files_processed"] {
		t.Errorf("snapshot summary %v, backup summary %v", s, sum)
	}

	msgs := jsonLines(t, e.must("ls", "--json", "latest").stdout)
	if msgs[0]["message_type"] != "snapshot" || msgs[0]["id"] != snaps[1]["id"] {
		t.Errorf("ls --json first line: %v", msgs[0])
	}
	found := false
	for _, m := range msgs[1:] {
		if m["message_type"] != "node" {
			t.Fatalf("ls --json line: %v", m)
		}
		if m["path"] == filepath.Join(src, "run.sh") {
			found = true
			if m["type"] != "file" || m["permissions"] != "-rwxr-xr-x" || m["size"].(float64) != 18 {
				t.Errorf("ls --json node: %v", m)
			}
		}
	}
	if !found {
		t.Errorf("ls --json did not list run.sh")
	}

	msgs = jsonLines(t, e.must("diff", "--json", snaps[0]["short_id"].(string), "latest").stdout)
	changes := map[string]string{}
	for _, m := range msgs[:len(msgs)-1] {
		changes[m["path"].(string)] = m["modifier"].(string)
	}
	if changes[filepath.Join(src, "new.txt")] != "+" || changes[filepath.Join(src, "a.txt")] != "M" {
		t.Errorf("diff --json changes: %v", changes)
	}
	if st := msgs[len(msgs)-1]; st["message_type"] != "statistics" || st["added"].(map[string]any)["files"].(float64) != 1 || st["changed_files"].(float64) != 1 {
		t.Errorf("diff --json statistics: %v", st)
	}

	// restic's find: one array, an object per snapshot with matches.
	var matched []struct {
		Matches  []map[string]any `json:"matches"`
		Hits     int              `json:"hits"`
		Snapshot string           `json:"snapshot"`
	}
	if err := json.Unmarshal([]byte(e.must("find", "--json", "*.txt").stdout), &matched); err != nil {
		t.Fatal(err)
	}
	if len(matched) != 2 || matched[0].Hits < 3 || len(matched[0].Matches) != matched[0].Hits || len(matched[0].Snapshot) != 64 || matched[0].Matches[0]["path"] == "" {
		t.Errorf("find --json: %+v", matched)
	}
	if out := e.must("find", "--json", "nothing-matches-this").stdout; out != "[]\n" {
		t.Errorf("find --json without matches: %q", out)
	}

	var st map[string]any
	if err := json.Unmarshal([]byte(e.must("stats", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st["snapshots_count"].(float64) != 2 || st["data_blobs"].(float64) < 1 || st["total_size"].(float64) < 3<<20 {
		t.Errorf("stats --json: %v", st)
	}

	var keys []map[string]any
	if err := json.Unmarshal([]byte(e.must("key", "list", "--json").stdout), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0]["current"] != true || len(keys[0]["id"].(string)) != 64 {
		t.Errorf("key list --json: %v", keys)
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, s := range l {
			out = append(out, s.(string))
		}
	}
	return out
}

// TestRoundTripGoRoot backs up the Go installation (about 17,000 files)
// as a real data set, restores it and compares everything; a second
// backup must add almost nothing. Skipped with -short.
func TestRoundTripGoRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("go env GOROOT: %v", err)
	}
	goroot := strings.TrimSpace(string(out))
	e := newTestEnv(t)
	e.init()
	sum, r := e.backupJSON(0, goroot)
	if r.stderr != "" {
		t.Fatalf("backup warned\n%s", r)
	}
	if sum["total_files_processed"].(float64) < 1000 {
		t.Fatalf("backed up only %v files of %s", sum["total_files_processed"], goroot)
	}
	again, _ := e.backupJSON(0, goroot)
	if again["files_new"].(float64) != 0 || again["data_blobs"].(float64) != 0 || again["data_added"].(float64) > 1<<20 {
		t.Fatalf("second backup of %s: %v", goroot, again)
	}
	target := filepath.Join(e.dir, "restored")
	e.must("restore", "latest:"+goroot, "--target", target)
	compareTrees(t, goroot, target, false)
}
