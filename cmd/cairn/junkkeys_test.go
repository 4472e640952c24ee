package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckJunkKeyFiles puts under keys/ what a client that can add files
// could (named by their hash): random bytes, a well-formed fake key file
// and one beyond the cost limit. check names the random bytes and the
// costly file as warnings and exits 0 (nothing is lost, opening skips
// them), here and at a copy the mirror brought them to; the fake one
// cannot be told from another password's key without that password.
func TestCheckJunkKeyFiles(t *testing.T) {
	e := newTestEnv(t)
	t.Parallel()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 100_000, 1)
	e.init()
	e.must("backup", data)
	random := e.addKeyFile(fakeKeyFile(t, fakeRandom))
	e.addKeyFile(fakeKeyFile(t, fakeNewest))
	costly := e.addKeyFile(fakeKeyFile(t, fakeTooCostly))

	friend := filepath.Join(e.dir, "friend")
	e.must("mirror", friend)
	for _, loc := range []string{e.repo, friend} {
		r := e.run("-r", loc, "check")
		if r.code != 0 || !strings.Contains(r.stdout, "warning: keys/"+random+": not a key file") ||
			!strings.Contains(r.stdout, "warning: keys/"+costly+": kdf params: KDF parameters exceed the cost limit") ||
			!strings.Contains(r.stdout, "no damage found (2 warning(s))") {
			t.Fatalf("check of %s with junk key files: want exit 0 and two warnings\n%s", loc, r)
		}
	}
}
