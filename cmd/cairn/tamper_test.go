package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/crypt"
)

// logEntryFile is one entry of "cairn log --json", with its file.
type logEntryFile struct {
	ID   string `json:"id"`
	Seq  uint64 `json:"seq"`
	Op   string `json:"op"`
	path string
}

// logEntries lists the log in sequence order.
func (e *testEnv) logEntries() []logEntryFile {
	e.t.Helper()
	r := e.must("--json", "log")
	var entries []logEntryFile
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		e.t.Fatalf("log --json: %v\n%s", err, r)
	}
	for i := range entries {
		entries[i].path = filepath.Join(e.repo, "log", entries[i].ID)
	}
	return entries
}

// resign re-signs the entry in file path with a new identity (same
// parents, same sealed body), as someone without the password but with
// write access to the storage could, and stores it under its new name.
func resign(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env, err := crypt.DecodeEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	attacker, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	env.Device = nil
	forged, err := attacker.EncodeEntry(env)
	if err != nil {
		t.Fatal(err)
	}
	id := crypt.EntryID(forged)
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), hex.EncodeToString(id[:])), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestLogTampering changes the log behind cairn's back in each way a
// storage server or peer could: "cairn check" must exit 1 naming the
// problem, and every command that reads snapshots must warn on stderr
// and still work. (TestRollbackWarning shows that the rollback warning
// keeps coming on later runs.)
func TestLogTampering(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	e.init()
	for _, content := range []string{"one\n", "two\n", "three\n"} {
		e.writeFile(filepath.Join(src, "f"), content)
		e.must("backup", src)
	}
	entries := e.logEntries()
	// Writer registration, then the three snapshots.
	if len(entries) != 4 || entries[0].Op != "writer" || entries[3].Op != "add" {
		t.Fatalf("unexpected log: %+v", entries)
	}
	e.must("check")
	e.saveState("clean")

	// A second repository written by the same device, for replays.
	other := filepath.Join(e.dir, "other")
	e.must("-r", other, "init")
	e.must("-r", other, "backup", src)
	otherLog, err := filepath.Glob(filepath.Join(other, "log", "*"))
	if err != nil || len(otherLog) != 2 {
		t.Fatalf("other repository's log: %v %v", otherLog, err)
	}

	middle, newest := entries[2], entries[3]
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T)
		// problem is what check names (a regular expression), and
		// snapshots must still list this many.
		problem   string
		snapshots int
	}{
		{"middle entry removed", func(t *testing.T) {
			if err := os.Remove(middle.path); err != nil {
				t.Fatal(err)
			}
		}, `error: log entry [0-9a-f]{8} \(seq 4\): parent ` + middle.ID[:8] + ` is missing \(broken link\)`, 2},
		{"newest entry removed", func(t *testing.T) {
			if err := os.Remove(newest.path); err != nil {
				t.Fatal(err)
			}
		}, `error: log rolled back: newest entry has sequence 3, but this client saw sequence 4 before`, 2},
		{"entry edited in place", func(t *testing.T) {
			b, err := os.ReadFile(middle.path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-100] ^= 1 // in the sealed body
			if err := os.WriteFile(middle.path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, `error: log entry ` + middle.ID[:8] + `: load log/` + middle.ID + `: damaged: content does not match its name`, 2},
		{"entry edited and renamed to its new hash", func(t *testing.T) {
			b, err := os.ReadFile(middle.path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-100] ^= 1
			id := crypt.EntryID(b)
			if err := os.WriteFile(filepath.Join(e.repo, "log", hex.EncodeToString(id[:])), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(middle.path); err != nil {
				t.Fatal(err)
			}
		}, `error: log entry [0-9a-f]{8}: decode log entry from device [A-Z0-9]{7}: bad signature`, 2},
		{"signature swapped", func(t *testing.T) {
			resign(t, newest.path)
		}, `error: log entry [0-9a-f]{8}: from device [A-Z0-9]{7} the repository does not list as a writer`, 2},
		{"entries replayed from another repository", func(t *testing.T) {
			for _, p := range otherLog {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(e.repo, "log", filepath.Base(p)), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, `error: log entry [0-9a-f]{8}: body open file: sealed with a key this key ring lacks \(added by a key rotation after this key file was revoked, or from another repository\)`, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.restoreState("clean")
			tc.tamper(t)
			r := e.run("check")
			if r.code != exitError || !matches(tc.problem, r.stdout) {
				t.Fatalf("check must exit 1 naming %q\n%s", tc.problem, r)
			}
			// check reports each problem once, on stdout; stderr has
			// only the one error line (not the warnings other commands
			// print for the same problems).
			if want := "cairn: check found damage"; !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("stderr must be the one line %q...\n%s", want, r)
			}
			said := map[string]bool{}
			for line := range strings.Lines(r.stdout) {
				if said[line] {
					t.Fatalf("check said %q twice\n%s", line, r)
				}
				said[line] = true
			}
			for _, args := range [][]string{{"snapshots"}, {"log"}, {"ls", "latest"}} {
				r := e.run(args...)
				if r.code != 0 || !strings.Contains(r.stderr, "cairn: warning: snapshot log: ") {
					t.Fatalf("want exit 0 and a warning\n%s", r)
				}
				for line := range strings.Lines(r.stderr) {
					if !strings.HasPrefix(line, "cairn: warning: ") {
						t.Errorf("stray stderr line %q", line)
					}
				}
			}
			if n := len(e.snapshotsJSON()); n != tc.snapshots {
				t.Errorf("%d snapshots listed, want %d", n, tc.snapshots)
			}
			// Prune refuses to decide what to delete from such a log.
			if r := e.run("prune"); r.code != exitError || !strings.Contains(r.stderr, "refusing to run") {
				t.Fatalf("prune must refuse\n%s", r)
			}
			// Writing on top of the tampered log does not hide it: the
			// next check still fails.
			if r := e.run("backup", src); r.code != 0 || !strings.Contains(r.stderr, "cairn: warning: snapshot log: ") {
				t.Fatalf("backup must warn and work\n%s", r)
			}
			if r := e.run("check"); r.code != exitError {
				t.Fatalf("check after a backup on top of the tampered log\n%s", r)
			}
		})
	}
}
