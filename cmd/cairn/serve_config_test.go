package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerServeConfig: "peer serve" takes allow, quota and max-repos from
// the [serve] section of the file --config names, flags winning over the
// file (its root here is never used); a file without the section, or
// with a bad value, is refused with one line.
func TestPeerServeConfig(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "a"), 20<<10, 9)
	e.init()
	e.must("backup", src)
	owner := peerID(t, e, "")
	unused := filepath.Join(e.dir, "file-root-not-used")
	cfg := writeConfig(t, e, fmt.Sprintf("[serve]\nroot = %q\nallow = [\"%s:read-write\"]\nquota = \"10M\"\nmax-repos = 2\n", unused, owner))
	root := filepath.Join(e.dir, "friend-root")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), root, "--config", cfg)
	if !friend.logged("its quota is 10.0 MiB") {
		t.Fatalf("the quota from the file is not in force\n%s", friend.log.String())
	}
	e.must("mirror", friend.loc("laptop"))
	if got, want := repoFiles(t, friend.folder(owner, "laptop")), repoFiles(t, e.repo); !sameSizes(got, want) {
		t.Fatalf("the friend holds %v\nthe source %v", got, want)
	}
	if _, err := os.Stat(unused); err == nil {
		t.Fatal("the file's root was used although --root was given")
	}
	// max-repos = 2: a third repository is refused.
	e.must("mirror", friend.loc("second"))
	if r := e.run("mirror", friend.loc("third")); r.code != exitError {
		t.Fatalf("a third repository was accepted with max-repos = 2 from the file\n%s", r)
	}

	noServe := writeConfig(t, e, "[profile.a]\n")
	r := e.run("--config", noServe, "peer", "serve", "--root", root, "--allow", owner)
	checkOneErrorLine(t, r, `^cairn: peer serve: .*cairn\.toml has no \[serve\] section$`)
	badAllow := writeConfig(t, e, "[serve]\nroot = \"/tmp\"\nallow = [\"not-a-peer-id\"]\n")
	r = e.run("--config", badAllow, "peer", "serve")
	if r.code != exitError || !strings.HasPrefix(r.stderr, "cairn: --allow: ") {
		t.Fatalf("a bad allow in the file\n%s", r)
	}
	checkOneErrorLine(t, r, `not-a-peer-id`)
}
