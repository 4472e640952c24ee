package main

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The fixture is a small repository written by this version of cairn and
// committed under testdata/. Later versions must keep reading it: the
// repository format freezes with the first release. Regenerate it only on
// a deliberate format change, with:
//
//	go test ./cmd/cairn -run TestFixtureRepository -update-fixture
var updateFixture = flag.Bool("update-fixture", false, "rewrite testdata/repo-v1 with this version of cairn")

const fixturePassword = "fixture password"

// fixtureFiles is the content backed up into the fixture, by path under
// the backed-up folder "/fixture-src".
var fixtureFiles = map[string]string{
	"hello.txt":       "hello, cairn\n",
	"sub/notes.md":    "# notes\nthe format is pinned by this repository\n",
	"sub/deeper/data": string(make([]byte, 70000)) + "tail",
	"empty":           "",
}

var fixtureTime = time.Date(2026, 11, 1, 12, 0, 0, 123456789, time.UTC)

func TestFixtureRepository(t *testing.T) {
	e := newTestEnv(t)
	e.writeFile(e.pwFile, fixturePassword+"\n")
	fixture, err := filepath.Abs(filepath.Join("testdata", "repo-v1"))
	if err != nil {
		t.Fatal(err)
	}
	if *updateFixture {
		writeFixture(t, e, fixture)
	}
	if _, err := os.Stat(filepath.Join(fixture, "config")); err != nil {
		t.Fatalf("fixture missing (run with -update-fixture once): %v", err)
	}
	// Work on a copy: even reading takes a lock, which writes a file. Copy
	// files only, as a git clone has them: no empty folders.
	e.repo = filepath.Join(e.dir, "fixture-copy")
	copyFiles(t, fixture, e.repo)
	e.env = append(e.env, envRepository+"="+e.repo)

	snaps := e.snapshotsJSON()
	if len(snaps) != 1 || snaps[0]["hostname"] != "fixture-host" {
		t.Fatalf("fixture snapshots: %v", snaps)
	}
	e.must("check", "--read-data")
	dst := filepath.Join(e.dir, "restored")
	e.must("restore", "latest:/fixture-src", "--target", dst)
	for name, content := range fixtureFiles {
		p := filepath.Join(dst, name)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("%s: restored content differs (%v)", name, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(fixtureTime) || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mtime %v mode %v, want %v 0640", name, fi.ModTime(), fi.Mode().Perm(), fixtureTime)
		}
	}
}

// writeFixture makes the fixture repository from fixtureFiles.
func writeFixture(t *testing.T, e *testEnv, fixture string) {
	src := "/fixture-src"
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(src)
	for name, content := range fixtureFiles {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, fixtureTime, fixtureTime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(fixture); err != nil {
		t.Fatal(err)
	}
	e.repo = fixture
	e.env = append(e.env, envRepository+"="+fixture)
	e.must("init")
	e.must("backup", "--host", "fixture-host", src)
	// Leave no lock or cache behind in the committed fixture.
	if err := os.RemoveAll(filepath.Join(fixture, "locks")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(fixture, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
}

// copyFiles copies the regular files under src to dst, making the folders
// they need.
func copyFiles(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
