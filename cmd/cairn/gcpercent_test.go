package main

import (
	"io"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestBackupGCPercent: the backup command sets backupGCPercent before it
// runs, unless GOGC is set in the environment.
func TestBackupGCPercent(t *testing.T) {
	app := newApp(strings.NewReader(""), io.Discard, io.Discard)
	var backup *cli.Command
	for _, c := range app.Commands {
		if c.Name == "backup" {
			backup = c
		}
	}
	if backup == nil || backup.Before == nil {
		t.Fatal("no backup command, or it sets nothing before it runs")
	}
	old := debug.SetGCPercent(gcPercent)
	defer debug.SetGCPercent(old)

	t.Setenv("GOGC", "")
	if err := backup.Before(nil); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(gcPercent); got != backupGCPercent {
		t.Errorf("backup runs at GOGC %d, want %d", got, backupGCPercent)
	}

	t.Setenv("GOGC", "80")
	if err := backup.Before(nil); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(gcPercent); got != gcPercent {
		t.Errorf("backup with GOGC in the environment changed it to %d", got)
	}
}
