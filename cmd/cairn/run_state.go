package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// runStep is one step of "cairn run" in its summary: a command
// (backup, forget, prune, check, mirror:DEST) or a hook (hook:before,
// hook:backup:after, ...).
type runStep struct {
	Name     string  `json:"name"`
	OK       bool    `json:"ok"`
	Skipped  bool    `json:"skipped"`
	ExitCode int     `json:"exit_code"`
	Seconds  float64 `json:"seconds"`
	Error    string  `json:"error"`
}

// runSummary is what "cairn run --json" prints and what it keeps in
// $XDG_STATE_HOME/cairn/runs/PROFILE.json for "cairn schedule status".
type runSummary struct {
	Profile  string    `json:"profile"`
	Start    string    `json:"start"` // RFC 3339
	End      string    `json:"end"`
	OK       bool      `json:"ok"`
	ExitCode int       `json:"exit_code"`
	Steps    []runStep `json:"steps"`
	// LastPrune is when the profile's last successful prune ended (RFC
	// 3339), "" when it never pruned.
	LastPrune string `json:"last_prune,omitempty"`
	// Mirrors are the profile's mirror destinations' states.
	Mirrors map[string]runMirror `json:"mirrors,omitempty"`
}

// stateDir is $XDG_STATE_HOME/cairn, else ~/.local/state/cairn, else "".
func stateDir(getenv func(string) string) string {
	return userDir(getenv, "XDG_STATE_HOME", filepath.Join(".local", "state"))
}

// writeFileAtomic replaces name with data: a temporary file in the same
// folder, synced, renamed over name, and the folder synced, so a reader
// sees the old file or the new one, never a part.
func writeFileAtomic(name string, data []byte) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeRunSummary keeps the summary in the state dir's runs/PROFILE.json.
func writeRunSummary(dir string, s runSummary) error {
	if dir == "" {
		return fmt.Errorf("run summary: no state dir ($XDG_STATE_HOME and $HOME are not set)")
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "runs", s.Profile+".json"), append(data, '\n')); err != nil {
		return fmt.Errorf("run summary: %w", err)
	}
	return nil
}

// lastPrune reads when the profile last pruned: the zero time when it
// never did (or the file is unreadable: then the prune is due, which is
// the safe side).
func lastPrune(dir, profile string) time.Time {
	b, err := os.ReadFile(filepath.Join(dir, "prune", profile))
	if err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}
	}
	return t
}

// setLastPrune records a successful prune's time.
func setLastPrune(dir, profile string, t time.Time) error {
	if dir == "" {
		return fmt.Errorf("last prune: no state dir ($XDG_STATE_HOME and $HOME are not set)")
	}
	return writeFileAtomic(filepath.Join(dir, "prune", profile), []byte(t.UTC().Format(time.RFC3339)+"\n"))
}

// tailWriter passes writes on to w and keeps the last max bytes: the
// job's log tail, sent with a failure ping. Hooks write to it from the
// goroutines os/exec starts, so mu guards it.
type tailWriter struct {
	mu   sync.Mutex // guards w's writes and tail
	w    interface{ Write([]byte) (int, error) }
	tail []byte
	max  int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tail = append(t.tail, p...)
	if over := len(t.tail) - t.max; over > 0 {
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	return t.w.Write(p)
}

// Tail returns a copy of the last bytes written.
func (t *tailWriter) Tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.tail)
}
