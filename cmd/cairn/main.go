// Command cairn backs files up into an encrypted, deduplicated, compressed
// repository and restores them.
//
// This package is the command line only: flags, environment variables,
// output and exit codes. Everything it does is a call into snapshot or repo.
// main alone turns errors into exit codes (see exitCode), so a command's
// action just returns its error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// version is set at build time with -ldflags "-X main.version=...": the
// Makefile gives "git describe --tags". programVersion (cmd_version.go)
// says what counts when it is not set.
var version = ""

// Exit codes. They are part of cairn's interface: cron jobs and monitoring
// branch on them, so they never change meaning.
const (
	exitOK          = 0
	exitError       = 1
	exitPartial     = 3   // backup made, but some files could not be read
	exitNoRepo      = 10  // the repository does not exist, or its init was interrupted
	exitLocked      = 11  // the repository is locked by another process
	exitWrongPass   = 12  // no key file opens with the password
	exitAuditFailed = 17  // peer audit: the peer failed to prove it holds sampled packs
	exitAcks        = 21  // the copy read serves less than it acknowledged (rolled back, frozen) or forked from another
	exitStale       = 22  // peer status: a destination is unreachable or older than --max-age
	exitUnderCopies = 23  // peer status: a snapshot is whole on fewer than --min-copies destinations
	exitInterrupted = 130 // SIGINT or SIGTERM (128 + SIGINT, as shells report)
)

// exitStatusHelp is the EXIT STATUS section every command's help shows.
const exitStatusHelp = `EXIT STATUS:
   0    success
   1    error (bad flag or argument, damaged repository, I/O failure, ...)
   3    backup only: the snapshot was made, but some files could not be read
   10   the repository does not exist (or its init was interrupted: run init again)
   11   the repository is locked by another process
   12   wrong password (no key file opens with it)
   17   peer audit only: the peer failed to prove it holds some sampled packs
   20   run only: the profile's before hook failed, so nothing ran
   21   the copy read is rolled back, frozen or forked: it serves less than its
        destination acknowledged in a signed receipt (or mirror record), or lacks a
        head another destination acknowledged (see docs/peers.md)
   22   peer status only: a destination is unreachable or was last mirrored to
        before --max-age
   23   peer status only: a snapshot is whole on fewer than --min-copies
        destinations
   130  interrupted (SIGINT or SIGTERM)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, cancellation runs its course (locks are
	// removed); restoring the default handling lets a second signal end
	// the process at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	setGCPercent()
	stopProfiling := startProfiling()
	js := os.Getenv(envJournalStream) // journal.go: priority prefixes under systemd
	err := runApp(ctx, newApp(os.Stdin, journalWriter(os.Stdout, js, sdInfo), journalWriter(os.Stderr, js, sdWarning)), os.Args)
	interrupted := ctx.Err() != nil
	stop()
	stopProfiling()
	code := exitCode(err, interrupted)
	warnTreeDecoderMisses(journalWriter(os.Stderr, js, sdWarning), snapshot.TreeDecoderMisses())
	if err != nil {
		printError(journalWriter(os.Stderr, js, errorPriority(err)), err, interrupted)
	}
	os.Exit(code)
}

// warnTreeDecoderMisses reports tree blobs in cairn's own encoding that
// the fast tree decoder refused (snapshot.TreeDecoderMisses). That is a
// bug in cairn which costs speed only: the trees were read correctly, so
// the run's result and exit status stand, but the line asks for a report
// rather than leaving every later restore silently slower.
func warnTreeDecoderMisses(w io.Writer, n uint64) {
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "cairn: warning: %d tree blob(s) in cairn's own format were read correctly but by the slow decoder: a bug in cairn %s, please report it\n", n, programVersion().Version)
}

// gcPercent is cairn's GOGC unless the environment sets one. Most of a
// backup's or restore's heap is a few large byte buffers (packs being
// filled and uploaded, chunks in flight) without pointers, so a collection
// costs little, while Go's default (a heap up to twice the live data) would
// set the process's peak RSS. 50 caps the heap at 1.5 times the live data:
// measured on a backup of a GOROOT copy, peak RSS fell from 151 to 122 MiB
// and a restore's from 120 to 101 MiB, at the same CPU time.
const gcPercent = 50

// backupGCPercent is the backup command's: 1.25 times the live data.
// Initial backups of the bench trees (with the archiver's and packer's
// buffers trimmed), 50 -> 25: peak RSS 111 -> 99 MiB (GOROOT copy), 124
// -> 104 (mixed), 83 -> 76 (25,000 small files), CPU time within 1%. At
// 15 the mixed tree's backup took 5% more CPU time, mostly collections and
// page faults on memory the runtime had just returned; a restore at 25
// took 5% more CPU time than at 50 for 9 MiB less, so other commands keep
// gcPercent.
const backupGCPercent = 25

func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// useGCPercent returns a command's Before that sets its GOGC, unless the
// environment sets one.
func useGCPercent(percent int) cli.BeforeFunc {
	return func(*cli.Context) error {
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(percent)
		}
		return nil
	}
}

// exitCode maps the error a command returned to cairn's exit code. It is
// the one place where errors become codes; interrupted says a signal
// cancelled the run.
func exitCode(err error, interrupted bool) int {
	var partial *partialBackupError
	var locked *repo.LockedError
	var job *runError
	var audit *auditFailedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &job):
		return job.code
	case interrupted || errors.Is(err, errInterrupted):
		return exitInterrupted
	case errors.Is(err, backend.ErrNoRepository):
		return exitNoRepo
	case errors.As(err, &locked):
		return exitLocked
	case errors.Is(err, crypt.ErrWrongPassword):
		return exitWrongPass
	case errors.As(err, &partial):
		return exitPartial
	case errors.As(err, &audit):
		return exitAuditFailed
	case errors.Is(err, repo.ErrAcks):
		return exitAcks
	case errors.Is(err, errStale):
		return exitStale
	case errors.Is(err, errUnderReplicated):
		return exitUnderCopies
	}
	return exitError
}

// errInterrupted reports a run stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

// printError writes the error as one line, "cairn: <message>", with any
// control character (a newline in a file name, say) escaped so the line
// stays one line and a terminal is never driven by a file name.
func printError(w io.Writer, err error, interrupted bool) {
	msg := err.Error()
	if interrupted && !errors.Is(err, errInterrupted) {
		msg = "interrupted: " + msg
	}
	var partial *partialBackupError
	if errors.As(err, &partial) {
		// Not a failure of the run: the snapshot exists. The warnings
		// for each file were printed as they happened.
		msg = "warning: " + msg
	}
	fmt.Fprintf(w, "cairn: %s\n", escapeControl(msg))
}
