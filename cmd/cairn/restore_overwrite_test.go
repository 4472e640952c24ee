package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The files of the overwrite tests: what the snapshot holds, and what the
// target holds before the restore.
var (
	owSnapTime = time.Date(2024, 1, 1, 12, 0, 0, 500, time.UTC)
	owSnap     = map[string]string{
		"same":        "snapshot same\n",
		"older":       "snapshot older\n",
		"newer":       "snapshot newer\n",
		"samesize":    "snapshot samesize\n",
		"samecontent": "snapshot samecontent\n",
		"missing":     "snapshot missing\n",
	}
)

// owTargetFile is a file the target holds before the restore.
type owTargetFile struct {
	content string
	mtime   time.Time
	mode    os.FileMode
}

func owTarget() map[string]owTargetFile {
	return map[string]owTargetFile{
		"same":        {owSnap["same"], owSnapTime, 0o644},
		"older":       {"target, older\n", owSnapTime.Add(-time.Hour), 0o644},
		"newer":       {"target, newer\n", owSnapTime.Add(time.Hour), 0o644},
		"samesize":    {"SNAPSHOT SAMESIZE\n", owSnapTime, 0o644}, // same size and mtime, other bytes
		"samecontent": {owSnap["samecontent"], owSnapTime.Add(-2 * time.Hour), 0o600},
		"extra":       {"only in the target\n", owSnapTime, 0o644},
	}
}

// writeOwTarget writes the target's files and returns their inode numbers.
func writeOwTarget(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	inodes := map[string]uint64{}
	for name, f := range owTarget() {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
			t.Fatal(err)
		}
		inodes[name] = inode(t, p)
	}
	return inodes
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// restoreActions runs a restore with --json -v and returns the action of
// each path (relative to the restored folder) and the summary.
func restoreActions(t *testing.T, e *testEnv, root string, args ...string) (map[string]string, map[string]any) {
	t.Helper()
	r := e.must(append([]string{"--json", "-v", "restore"}, args...)...)
	actions := map[string]string{}
	var summary map[string]any
	for _, m := range jsonLines(t, r.stdout) {
		switch m["message_type"] {
		case "verbose_status":
			rel := strings.TrimPrefix(m["item"].(string), root+"/")
			if _, dup := actions[rel]; dup {
				t.Errorf("%s reported twice\n%s", rel, r)
			}
			actions[rel] = m["action"].(string)
		case "summary":
			summary = m
		}
	}
	if summary == nil {
		t.Fatalf("no summary\n%s", r)
	}
	return actions, summary
}

// TestRestoreOverwrite restores one snapshot into a target that already
// holds files the same as the snapshot's, older, newer, of the same size
// and time but other bytes, of the same content but other mode and time,
// and one the snapshot does not have, with each --overwrite mode: first
// with --dry-run (which changes nothing and announces what the real run
// then does), then for real; every file ends with exactly the content,
// mode and time the mode calls for, files kept stay the same file, and the
// summary counts agree.
func TestRestoreOverwrite(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range owSnap {
		p := filepath.Join(src, name)
		e.writeFile(p, content)
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, owSnapTime, owSnapTime); err != nil {
			t.Fatal(err)
		}
	}
	e.init()
	e.must("backup", src)

	// want[mode][file]: the action, and whether the file ends as the
	// snapshot's (content, mode 0644, mtime) or stays the target's.
	type outcome struct {
		action string
		snap   bool // content from the snapshot
		meta   bool // mode and mtime from the snapshot
	}
	var (
		restored  = outcome{"restored", true, true}
		updated   = outcome{"updated", true, true}
		unchanged = outcome{"unchanged", false, true} // kept: its content is (taken for) the snapshot's
		skipped   = outcome{"skipped", false, false}
	)
	want := map[string]map[string]outcome{
		"always": {"same": unchanged, "older": updated, "newer": updated, "samesize": updated,
			"samecontent": unchanged, "missing": restored},
		"if-changed": {"same": unchanged, "older": updated, "newer": updated, "samesize": unchanged,
			"samecontent": unchanged, "missing": restored},
		"if-newer": {"same": skipped, "older": updated, "newer": skipped, "samesize": skipped,
			"samecontent": updated, "missing": restored},
		"never": {"same": skipped, "older": skipped, "newer": skipped, "samesize": skipped,
			"samecontent": skipped, "missing": restored},
	}
	for _, mode := range []string{"always", "if-changed", "if-newer", "never"} {
		t.Run(mode, func(t *testing.T) {
			target := filepath.Join(e.dir, "target-"+mode)
			inodes := writeOwTarget(t, target)
			before := listing(t, target)
			args := []string{"latest:" + src, "--target", target, "--overwrite", mode}

			dry, drySum := restoreActions(t, e, src, append(args, "--dry-run")...)
			if after := listing(t, target); after != before {
				t.Fatalf("--dry-run changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			real, sum := restoreActions(t, e, src, args...)

			counts := map[string]int{}
			for name, w := range want[mode] {
				counts[w.action]++
				if dry[name] != w.action || real[name] != w.action {
					t.Errorf("%s: dry run says %q, restore says %q, want %q", name, dry[name], real[name], w.action)
				}
				p := filepath.Join(target, name)
				got, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				tf, inTarget := owTarget()[name]
				wantContent, wantMode, wantTime := owSnap[name], os.FileMode(0o644), owSnapTime
				if !w.snap {
					wantContent = tf.content
				}
				if !w.meta {
					wantMode, wantTime = tf.mode, tf.mtime
				}
				fi, _ := os.Lstat(p)
				if string(got) != wantContent || fi.Mode() != wantMode || !fi.ModTime().Equal(wantTime) {
					t.Errorf("%s: %q %v %v, want %q %v %v", name, got, fi.Mode(), fi.ModTime(), wantContent, wantMode, wantTime)
				}
				// (A file replaced may get the inode number just freed:
				// only the files kept are checked.)
				if inTarget && w.action != "updated" && inode(t, p) != inodes[name] {
					t.Errorf("%s: %s, but replaced by another file", name, w.action)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(target, "extra")); string(got) != owTarget()["extra"].content {
				t.Errorf("a file the snapshot does not have changed without --delete: %q", got)
			}
			if _, ok := real["extra"]; ok {
				t.Errorf("extra reported: %v", real)
			}
			for _, s := range []map[string]any{drySum, sum} {
				if int(s["files_restored"].(float64)) != counts["restored"]+counts["updated"] ||
					int(s["files_updated"].(float64)) != counts["updated"] ||
					int(s["files_unchanged"].(float64)) != counts["unchanged"] ||
					int(s["files_skipped"].(float64)) != counts["skipped"] {
					t.Errorf("summary %v, want %v", s, counts)
				}
			}
			if drySum["dry_run"] != true || sum["dry_run"] != nil {
				t.Errorf("dry_run: %v, %v", drySum["dry_run"], sum["dry_run"])
			}
		})
	}
	r := e.run("restore", "latest", "--target", filepath.Join(e.dir, "x"), "--overwrite", "sometimes")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `^cairn: --overwrite: invalid overwrite mode "sometimes" \(want always, if-changed, if-newer, never\)$`)
}
