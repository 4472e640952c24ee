package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// restoreFlagsTree writes a small tree under e.dir/src whose names differ
// in case and extension, backs it up and returns src.
func restoreFlagsTree(t *testing.T, e *testEnv) string {
	t.Helper()
	src := filepath.Join(e.dir, "src")
	files := map[string]string{
		"docs/a.txt":  "a text\n",
		"docs/B.TXT":  "B TEXT\n",
		"docs/c.md":   "# c\n",
		"img/x.JPG":   "x jpeg\n",
		"img/y.jpg":   "y jpeg\n",
		"img/z.png":   "z png\n",
		"notes.txt":   "notes\n",
		"Docs2/d.txt": "d text\n",
	}
	for name, content := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		e.writeFile(p, content)
	}
	e.init()
	e.must("backup", src)
	return src
}

// restoredFiles lists the regular files under root, relative and sorted.
func restoredFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, name := range treeNames(t, root) {
		if fi, err := os.Lstat(filepath.Join(root, name)); err == nil && fi.Mode().IsRegular() {
			out = append(out, name)
		}
	}
	return out
}

// TestRestoreIncludeExcludeFlags restores a snapshot with each pattern
// flag (--include, --exclude, their case-insensitive --iinclude and
// --iexclude, and the four -file forms) and checks that exactly the
// right files come back, each with its content.
func TestRestoreIncludeExcludeFlags(t *testing.T) {
	e := newTestEnv(t)
	src := restoreFlagsTree(t, e)
	patFile := func(name string, lines ...string) string {
		p := filepath.Join(e.dir, name)
		e.writeFile(p, strings.Join(lines, "\n")+"\n")
		return p
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"include", []string{"--include", "*.txt"}, []string{"Docs2/d.txt", "docs/a.txt", "notes.txt"}},
		{"iinclude", []string{"--iinclude", "*.txt"}, []string{"Docs2/d.txt", "docs/B.TXT", "docs/a.txt", "notes.txt"}},
		{"include ignore-case", []string{"--ignore-case", "--include", "*.TXT"}, []string{"Docs2/d.txt", "docs/B.TXT", "docs/a.txt", "notes.txt"}},
		{"exclude", []string{"--exclude", "*.jpg", "--exclude", "docs"},
			[]string{"Docs2/d.txt", "img/x.JPG", "img/z.png", "notes.txt"}},
		{"iexclude", []string{"--iexclude", "*.jpg", "--iexclude", "DOCS"}, []string{"Docs2/d.txt", "img/z.png", "notes.txt"}},
		{"include and iexclude", []string{"--include", "*.txt", "--iexclude", "NOTES.TXT"}, []string{"Docs2/d.txt", "docs/a.txt"}},
		{"include-file", []string{"--include-file", patFile("inc", "# markdown and one png", "", "*.md", "  "+filepath.Join(src, "img/z.png")+"  ")},
			[]string{"docs/c.md", "img/z.png"}},
		{"exclude-file", []string{"--exclude-file", patFile("exc", "docs", "*.png")},
			[]string{"Docs2/d.txt", "img/x.JPG", "img/y.jpg", "notes.txt"}},
		{"iinclude-file", []string{"--iinclude-file", patFile("iinc", "*.JPG")}, []string{"img/x.JPG", "img/y.jpg"}},
		{"iexclude-file", []string{"--iexclude-file", patFile("iexc", "IMG", "DOCS")}, []string{"Docs2/d.txt", "notes.txt"}},
		{"files and flags together", []string{"--include-file", patFile("inc2", "*.jpg"), "--iinclude", "*.PNG", "--exclude-file", patFile("exc2", "y.*")},
			[]string{"img/z.png"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := filepath.Join(e.dir, "restore", string(rune('a'+i)))
			e.must(append([]string{"restore", "latest", "--target", target}, c.args...)...)
			root := filepath.Join(target, src)
			got := restoredFiles(t, root)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("restored %q, want %q", got, want)
			}
			for _, name := range got {
				if !sameContent(t, filepath.Join(src, name), filepath.Join(root, name)) {
					t.Errorf("%s: content differs", name)
				}
			}
		})
	}

	// A missing pattern file and a malformed pattern are one-line errors,
	// before anything is restored.
	target := filepath.Join(e.dir, "restore", "bad")
	r := e.run("restore", "latest", "--target", target, "--iexclude-file", filepath.Join(e.dir, "nope"))
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `^cairn: --iexclude-file: pattern file: open .*nope: no such file or directory$`)
	r = e.run("restore", "latest", "--target", target, "--iinclude", "[")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `^cairn: --iinclude: malformed pattern: "\["$`)
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a failed restore made its target: %v", err)
	}
}
