package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// When systemd runs cairn (a service of `cairn schedule install`), its
// stdout and stderr are usually a stream to the journal, and systemd says
// which one in $JOURNAL_STREAM ("DEV:INO" of that stream, systemd.exec(5)).
// A stream that is the journal gets a syslog priority prefix on each line
// (sd-daemon(3)), which journald strips and keeps as the line's priority:
// stdout's lines are info, stderr's warnings, and the final error line
// (main's printError) an error; a backup's partial-success line stays a
// warning. Nothing else changes: such a stream is no terminal, so no
// progress line is drawn on it.
const envJournalStream = "JOURNAL_STREAM"

// Priority prefixes of sd-daemon(3).
const (
	sdError   = "<3>"
	sdWarning = "<4>"
	sdInfo    = "<6>"
)

// onJournal reports whether f is the stream $JOURNAL_STREAM names: the
// variable alone is not enough, since a child may inherit it with its
// output redirected elsewhere.
func onJournal(f *os.File, journalStream string) bool {
	if journalStream == "" {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && journalStream == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// journalWriter is f, or when f is the journal stream a writer that puts
// prio before each line written to f.
func journalWriter(f *os.File, journalStream, prio string) io.Writer {
	if !onJournal(f, journalStream) {
		return f
	}
	return &prefixWriter{w: f, prefix: []byte(prio), lineStart: true}
}

// prefixWriter puts prefix at the start of every line. Its writes may come
// from several goroutines (the printer, a child process's output copier).
type prefixWriter struct {
	w      io.Writer
	prefix []byte

	mu        sync.Mutex // guards lineStart and writes to w
	lineStart bool       // the next byte starts a line
}

func (pw *prefixWriter) Write(b []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	out := make([]byte, 0, len(b)+len(pw.prefix))
	for _, c := range b {
		if pw.lineStart {
			out = append(out, pw.prefix...)
		}
		out = append(out, c)
		pw.lineStart = c == '\n'
	}
	if _, err := pw.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// errorPriority is the journal priority of the line printError writes for
// err: a warning for a backup that made its snapshot, else an error.
func errorPriority(err error) string {
	var partial *partialBackupError
	if errors.As(err, &partial) {
		return sdWarning
	}
	return sdError
}
