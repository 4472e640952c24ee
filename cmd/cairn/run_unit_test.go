package main

import (
	"io"
	"strings"
	"sync"
	"testing"
)

// TestTailWriterKeepsLastBytes: the job's log keeps its last max bytes
// for the failure ping, whatever goroutines write to it (hooks' output
// is copied by os/exec's goroutines); run under -race.
func TestTailWriterKeepsLastBytes(t *testing.T) {
	var sink strings.Builder
	w := &tailWriter{w: &sink, max: 10}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = io.WriteString(w, "abc")
			}
		})
	}
	wg.Wait()
	if sink.Len() != 1200 {
		t.Fatalf("passed on %d bytes, want 1200", sink.Len())
	}
	if got := w.Tail(); len(got) != 10 || strings.Trim(got, "abc") != "" {
		t.Fatalf("tail %q", got)
	}
	_, _ = io.WriteString(w, "0123456789XY")
	if got := w.Tail(); got != "23456789XY" {
		t.Fatalf("tail %q, want the last 10 bytes", got)
	}
}

// TestExitCodeOfRunError: a job's failure maps to its own status, before
// any other rule of exitCode.
func TestExitCodeOfRunError(t *testing.T) {
	for _, code := range []int{exitPartial, exitNoRepo, exitLocked, exitHookBefore, exitError} {
		if got := exitCode(&runError{code: code, msg: "x"}, false); got != code {
			t.Errorf("runError %d -> exit %d", code, got)
		}
	}
}
