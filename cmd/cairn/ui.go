package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/backend"
)

// printer writes a command's output. Text goes to stdout unless --quiet or
// --json; with --json each message is one JSON object on its own line.
// Warnings go to stderr in either mode. Progress is drawn only when stdout
// is a terminal and neither --quiet nor --json is set: off a terminal there
// are no progress lines and no control characters at all.
//
// Its methods are safe for concurrent use: progress callbacks run on many
// goroutines.
type printer struct {
	mu      sync.Mutex // guards writes to out and errw, and statusShown
	out     io.Writer
	errw    io.Writer
	json    bool
	quiet   bool
	verbose bool
	tty     bool
	// width gives the terminal's width in columns (0: unknown); nil
	// means unknown.
	width func() int
	// fps is $CAIRN_PROGRESS_FPS, 0 when unset (statusInterval).
	fps float64
	// statusShown is set while a status line is on screen.
	statusShown bool
}

func (e *appEnv) printer(g globalOptions) *printer {
	// A malformed value was refused before the command ran (app Before).
	fps, _ := progressFPS(e.getenv(envProgressFPS))
	return &printer{out: e.stdout, errw: e.stderr, json: g.JSON, quiet: g.Quiet, verbose: g.Verbose && !g.Quiet, tty: e.stdoutTTY,
		width: e.stdoutWidth, fps: fps}
}

// progress reports whether live progress should be drawn.
func (p *printer) progress() bool { return p.tty && !p.quiet && !p.json }

// Printf writes one line of text output (a trailing newline is added),
// unless --quiet or --json. Control characters are escaped.
func (p *printer) Printf(format string, args ...any) {
	if p.quiet || p.json {
		return
	}
	p.writeLine(p.out, fmt.Sprintf(format, args...))
}

// Verbosef is Printf for --verbose only.
func (p *printer) Verbosef(format string, args ...any) {
	if p.verbose {
		p.Printf(format, args...)
	}
}

// Warnf writes "cairn: warning: ..." to stderr; with --json it writes a
// JSON error message there instead.
func (p *printer) Warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.json {
		p.jsonLine(p.errw, jsonError{MessageType: "error", Error: jsonErrorText{Message: msg}})
		return
	}
	p.writeLine(p.errw, "cairn: warning: "+msg)
}

// ItemWarn reports a problem with one file, like Warnf, naming the file
// unless the error already does; with --json the message names the file
// and the phase as restic's does.
func (p *printer) ItemWarn(during, item string, err error) {
	msg := err.Error()
	if p.json {
		p.jsonLine(p.errw, jsonError{MessageType: "error", Error: jsonErrorText{Message: msg}, During: during, Item: item})
		return
	}
	if !strings.Contains(msg, item) {
		msg = item + ": " + msg
	}
	p.writeLine(p.errw, "cairn: warning: "+msg)
}

// Raw writes s to stdout as it is: part of a JSON document streamed
// piece by piece (find --json).
func (p *printer) Raw(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearStatusLocked()
	_, _ = io.WriteString(p.out, s)
}

// JSON writes v as one line of JSON to stdout.
func (p *printer) JSON(v any) { p.jsonLine(p.out, v) }

// Status draws the status line in place (terminal only), cut to the
// terminal's width so that it never wraps: a wrapped line could not be
// redrawn in place and would leave stale lines behind. The line is drawn
// from the start of the row and the rest of the row is erased; "" erases
// it.
func (p *printer) Status(line string) {
	if !p.progress() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cols := defaultWidth
	if p.width != nil {
		if w := p.width(); w > 0 {
			cols = w
		}
	}
	// One column short of the width: a line filling the last column
	// leaves some terminals' cursor on the next row.
	line = fitWidth(escapeControl(line), cols-1)
	if line == "" {
		p.clearStatusLocked()
		return
	}
	fmt.Fprintf(p.out, "\r%s\x1b[K", line)
	p.statusShown = true
}

// clearStatusLocked erases the status line; p.mu must be held.
func (p *printer) clearStatusLocked() {
	if p.statusShown {
		fmt.Fprint(p.out, "\r\x1b[K")
		p.statusShown = false
	}
}

func (p *printer) writeLine(w io.Writer, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearStatusLocked()
	fmt.Fprintln(w, escapeControl(s))
}

func (p *printer) jsonLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types reach here; they always marshal.
		panic("cairn: internal error: marshal JSON output: " + err.Error())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearStatusLocked()
	_, _ = w.Write(append(b, '\n'))
}

type jsonError struct {
	MessageType string        `json:"message_type"`
	Error       jsonErrorText `json:"error"`
	During      string        `json:"during,omitempty"`
	Item        string        `json:"item,omitempty"`
}

type jsonErrorText struct {
	Message string `json:"message"`
}

// escapeControl replaces control characters (C0, DEL, C1), and bytes that
// are not UTF-8, with \xNN or \u00NN escapes, so that a file name can
// neither break a line nor drive a terminal.
func escapeControl(s string) string {
	clean := true
	for _, r := range s {
		if isControl(r) || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case isControl(r):
			if r < 0x80 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f)
}

// formatBytes prints a byte count in binary units.
func formatBytes(n uint64) string { return backend.FormatSize(n, 3) }
