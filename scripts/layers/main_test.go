package main

import (
	"bytes"
	"strings"
	"testing"
)

const mod = "example.org/m"

// p is a package of the module mod with its imports, module-relative
// where they start with "./".
func p(rel, name string, imports, testImports []string) pkg {
	abs := func(s []string) []string {
		var out []string
		for _, i := range s {
			if r, ok := strings.CutPrefix(i, "./"); ok {
				i = mod + "/" + r
			}
			out = append(out, i)
		}
		return out
	}
	return pkg{ImportPath: mod + "/" + rel, Name: name, Imports: abs(imports), TestImports: abs(testImports)}
}

func TestCheck(t *testing.T) {
	base := []pkg{
		p("crypt", "crypt", []string{"crypto/sha256"}, nil),
		p("backend", "backend", nil, []string{"./backend/mem"}),
		p("backend/mem", "mem", []string{"./backend"}, []string{"./backend/backendtest"}),
		p("backend/backendtest", "backendtest", []string{"./backend", "testing"}, nil),
		p("backend/sftp/sshd", "sshd", nil, nil),
		p("backend/sftp/sftptest", "sftptest", []string{"./backend/sftp/sshd"}, nil),
		p("backend/peer", "peer", []string{"./crypt", "./backend/local"}, nil),
		p("repo", "repo", []string{"./backend", "./crypt"}, []string{"./backend/mem"}),
		p("snapshot", "snapshot", []string{"./repo"}, nil),
		p("snapshot/archiver/benchtree", "benchtree", nil, nil),
		p("snapshot/archiver", "archiver", []string{"./snapshot"}, []string{"./snapshot/archiver/benchtree"}),
		p("cmd/cairn", "main", []string{"./snapshot", "./cmd/cairn/clidoc"}, []string{"./backend/sftp/sftptest"}),
		p("cmd/cairn/clidoc", "clidoc", nil, nil),
		p("scripts/soak", "main", []string{"./backend/sftp/sshd", "./snapshot", "github.com/x/latest"}, nil),
		p("scripts/bench/gen", "main", []string{"./snapshot/archiver/benchtree"}, nil),
	}
	if vs := check(mod, base); len(vs) != 0 {
		t.Fatalf("a graph that keeps the rules: %v", vs)
	}
	for _, tc := range []struct {
		name string
		add  pkg
		want string // the one violation expected
	}{
		{"soak imports a test helper", p("scripts/soak2", "main", []string{"./backend/sftp/sftptest"}, nil),
			"scripts/soak2 imports " + mod + "/backend/sftp/sftptest: a test helper"},
		{"product imports a test helper", p("repo/x", "x", []string{"./backend/backendtest"}, nil),
			"repo/x imports " + mod + "/backend/backendtest: a test helper"},
		{"product imports httptest", p("backend/y", "y", []string{"net/http/httptest"}, nil),
			"backend/y imports net/http/httptest: a test helper"},
		{"benchmark imports scripts", p("snapshot/z", "z", nil, []string{"./scripts/bench/gen"}),
			"snapshot/z imports " + mod + "/scripts/bench/gen (in a test): snapshot/ may not import the higher layer scripts/"},
		{"repo imports snapshot", p("repo/w", "w", []string{"./snapshot"}, nil),
			"repo/w imports " + mod + "/snapshot: repo/ may not import the higher layer snapshot/"},
		{"crypt imports backend", p("crypt/v", "v", []string{"./backend"}, nil),
			"crypt/v imports " + mod + "/backend: crypt/ may not import"},
		{"scripts imports cmd", p("scripts/u", "main", []string{"./cmd/cairn/clidoc"}, nil),
			"scripts/u imports " + mod + "/cmd/cairn/clidoc: nothing outside cmd/ imports cmd/"},
		{"product imports harness", p("cmd/cairn2", "main", []string{"./backend/sftp/sshd"}, nil),
			"cmd/cairn2 imports " + mod + "/backend/sftp/sshd: test infrastructure"},
		{"folder in no layer", p("internal/q", "q", []string{"./repo"}, nil),
			"internal/q imports " + mod + "/repo: internal/ is in no layer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := check(mod, append(append([]pkg{}, base...), tc.add))
			if len(vs) != 1 || !strings.HasPrefix(vs[0].String(), mod+"/"+tc.want) {
				t.Fatalf("got %v, want one: %s...", vs, tc.want)
			}
		})
	}
}

// TestModule checks this module: the same check as `make layers`.
func TestModule(t *testing.T) {
	var out, errw bytes.Buffer
	if code := run(&out, &errw, "../.."); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errw.String())
	}
}
