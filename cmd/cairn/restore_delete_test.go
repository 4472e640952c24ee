package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRestoreDelete restores into targets that hold files, folders and a
// symlink the snapshot does not have, and a folder where the snapshot has
// a file: --delete removes exactly the extra entries within the folders
// restored (only those the patterns select, all below an extra folder,
// a symlink and not what it points to), replaces the folder by the file,
// and --dry-run removes nothing but lists what would go.
func TestRestoreDelete(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	for name, content := range map[string]string{
		"a.txt": "a\n", "d/b.txt": "b\n", "d/sub/c.txt": "c\n", "keep/k.txt": "k\n", "d/isdir": "a file\n",
	} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		e.writeFile(p, content)
	}
	e.init()
	e.must("backup", src)
	outside := filepath.Join(e.dir, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(outside, "precious"), "not in any target\n")

	// prepare makes a target holding the snapshot's files and the extras;
	// root is where the snapshot's src folder lies in it.
	prepare := func(name, sub string) (target, root string) {
		target = filepath.Join(e.dir, name)
		root = filepath.Join(target, sub)
		e.must("restore", "latest", "--target", target)
		for _, f := range []string{"extra.txt", "d/extra.log", "d/sub/extra2.txt", "d/xdir/y/z.txt", "keep/extra.txt", "d/isdir/inside"} {
			p := filepath.Join(target, src, f)
			if f == "d/isdir/inside" {
				if err := os.Remove(filepath.Dir(p)); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			e.writeFile(p, "extra\n")
		}
		if err := os.Symlink(outside, filepath.Join(target, src, "d", "link")); err != nil {
			t.Fatal(err)
		}
		return target, root
	}
	snapshotFiles := []string{"a.txt", "d", "d/b.txt", "d/isdir", "d/sub", "d/sub/c.txt", "keep", "keep/k.txt"}
	extras := []string{"d/extra.log", "d/link", "d/sub/extra2.txt", "d/xdir", "d/xdir/y", "d/xdir/y/z.txt", "extra.txt", "keep/extra.txt"}
	with := func(base []string, more ...string) []string {
		out := append(slices.Clone(base), more...)
		slices.Sort(out)
		return out
	}
	check := func(t *testing.T, root string, want []string) {
		t.Helper()
		if got := treeNames(t, root); !slices.Equal(got, want) {
			t.Errorf("target holds\n%q\nwant\n%q", got, want)
		}
		if got, err := os.ReadFile(filepath.Join(outside, "precious")); err != nil || string(got) != "not in any target\n" {
			t.Errorf("outside the target: %q, %v", got, err)
		}
	}

	t.Run("without --delete", func(t *testing.T) {
		target, root := prepare("t-none", src)
		r := e.run("restore", "latest", "--target", target)
		if r.code != 1 || !strings.Contains(r.stderr, "d/isdir: refusing to replace an existing directory") {
			t.Fatalf("want exit 1 and the folder refused\n%s", r)
		}
		check(t, root, with(snapshotFiles, append(extras, "d/isdir/inside")...))
	})
	t.Run("dry run", func(t *testing.T) {
		target, root := prepare("t-dry", src)
		before := listing(t, target)
		r := e.must("restore", "latest", "--target", target, "--delete", "--dry-run")
		if listing(t, target) != before {
			t.Fatalf("--dry-run changed the target\n%s", r)
		}
		var deleted []string
		for line := range strings.Lines(r.stdout) {
			if rest, ok := strings.CutPrefix(line, "deleted   "+src+"/"); ok {
				deleted = append(deleted, strings.Fields(rest)[0])
			}
		}
		slices.Sort(deleted)
		if want := []string{"d/extra.log", "d/link", "d/sub/extra2.txt", "d/xdir", "extra.txt", "keep/extra.txt"}; !slices.Equal(deleted, want) {
			t.Errorf("dry run would delete %q, want %q\n%s", deleted, want, r)
		}
		if !strings.Contains(r.stdout, "updated   "+src+"/d/isdir") {
			t.Errorf("dry run does not say the folder d/isdir is replaced\n%s", r)
		}
		check(t, root, with(snapshotFiles, append(extras, "d/isdir/inside")...))
	})
	t.Run("all", func(t *testing.T) {
		target, root := prepare("t-all", src)
		r := e.must("restore", "latest", "--target", target, "--delete")
		if !strings.Contains(r.stdout, " 6 deleted;") {
			t.Errorf("summary\n%s", r)
		}
		check(t, root, snapshotFiles)
		if got, _ := os.ReadFile(filepath.Join(root, "d/isdir")); string(got) != "a file\n" {
			t.Errorf("d/isdir: %q", got)
		}
	})
	t.Run("include", func(t *testing.T) {
		target, root := prepare("t-inc", src)
		e.must("restore", "latest", "--target", target, "--delete", "--include", filepath.Join(src, "d"))
		check(t, root, with(snapshotFiles, "extra.txt", "keep/extra.txt"))
	})
	t.Run("exclude", func(t *testing.T) {
		target, root := prepare("t-exc", src)
		e.must("restore", "latest", "--target", target, "--delete", "--exclude", "*.log", "--exclude", "keep")
		check(t, root, with(snapshotFiles, "d/extra.log", "keep/extra.txt"))
	})
	t.Run("subfolder", func(t *testing.T) {
		target, root := prepare("t-sub", src)
		e.must("restore", "latest:"+filepath.Join(src, "d"), "--target", filepath.Join(target, src, "d"), "--delete")
		check(t, root, with(snapshotFiles, "extra.txt", "keep/extra.txt"))
	})

	// Into / it needs a pattern: it would delete everything else.
	r := e.run("restore", "latest", "--target", "/", "--delete", "--dry-run")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `^cairn: refusing to delete what the snapshot does not hold from / without --include or --exclude$`)
}
