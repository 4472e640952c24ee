package main

import (
	"maps"
	"path/filepath"
	"testing"
)

// TestNoConfigDirRefusedClearly is issue 12 item 1: every command that
// needs this device's identity loads it through one helper
// (snapshot.Device), so without a config dir each fails alike, with one
// line saying how to give one, and changes nothing. forget used to try
// "./identity" and fail with "mkdir : no such file or directory".
func TestNoConfigDirRefusedClearly(t *testing.T) {
	e := newTestEnv(t)
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 50<<10, 6)
	e.init()
	e.must("backup", data)
	e.must("backup", "--force", data)
	// No $HOME, no $XDG_CONFIG_HOME, no --config-dir: no config dir.
	noDir := runOpts{env: []string{"HOME="}}
	for _, args := range [][]string{
		{"backup", data},
		{"forget", "--keep-last", "1"},
		{"repair", "snapshots", "--forget"},
		{"peer", "id"},
	} {
		before := repoFiles(t, e.repo)
		r := e.runWith(noDir, args...)
		if r.code != exitError {
			t.Fatalf("want exit %d\n%s", exitError, r)
		}
		checkOneErrorLine(t, r, `^cairn: no config dir for this device's identity \(use --config-dir or \$CAIRN_CONFIG_DIR\)$`)
		if after := repoFiles(t, e.repo); !maps.Equal(after, before) {
			t.Fatalf("a refused command changed the repository\n%s", r)
		}
	}
}
