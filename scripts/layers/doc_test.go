package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckDoc checks that the code map check finds each kind of stale
// reference, and accepts what it cannot check.
func TestCheckDoc(t *testing.T) {
	root := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("repo/a/a.go", `package a

type T struct{ F int }

func (t *T) M() {}

func G() {}

type u struct{}

func (u) m() {}

const C = 1
`)
	write("repo/a/a_test.go", "package a_test\n\nfunc TestX() {}\n")
	write("repo/a/testdata/x.go", "package broken {")
	good := "`repo/a` `repo/a/a.go` `repo/a/a.go:G` `repo/a/a.go:T.M` `repo/a/a.go:u.m` `a.G` `a.T.F` `a.T.M()` " +
		"`T.M` `u.m` `G` `TestX` `C` `errgroup.Group.SetLimit` `ctx.Done()` `_test.go` `cmd/cairn/cmd_NAME.go` `--dry-run` `make layers`\n"
	dirs := []string{"repo/a", "scripts/tool"}

	for _, tc := range []struct {
		doc  string
		want string // the one problem expected, "" for none
	}{
		{good, ""},
		{"`repo/a/a.go`", "does not name the package repo/a"},
		{good + "`repo/a/b.go`", "`repo/a/b.go`: no such Go file"},
		{good + "`repo/a/a.go:H`", "`repo/a/a.go:H`: not declared in repo/a/a.go"},
		{good + "`repo/a/a.go:T.N`", "not declared in repo/a/a.go"},
		{good + "`a.H`", "`a.H`: not declared in package a"},
		{good + "`a.T.G`", "not declared in package a"},
		{good + "`T.N`", "`T.N`: no such method or field"},
		{good + "`u.n`", "`u.n`: no such method or field"},
		{good + "`walkRoot`", "`walkRoot`: no such Go name"},
		{good + "`repo/b`", "`repo/b`: no such file or folder"},
	} {
		write(archDoc, tc.doc)
		got, err := checkDoc(root, dirs)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == "" {
			if len(got) != 0 {
				t.Errorf("doc %q: %q, want no problem", tc.doc, got)
			}
			continue
		}
		if len(got) != 1 || !strings.Contains(got[0], tc.want) {
			t.Errorf("doc %q: %q, want one problem with %q", tc.doc, got, tc.want)
		}
	}
}
