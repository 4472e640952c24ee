//go:build cairn_testonly

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/repo"
)

// Test-only seams of the binary, for the soak test (scripts/soak), which
// runs the real binary through simulated months of cron with faults, and
// for the CLI tests. None is documented for users, and none weakens
// anything a normal run does: without the variables cairn behaves exactly
// as without this file.
//
// This file builds only with the cairn_testonly tag, which the tests, the
// soak and the Makefile's test targets pass; a release build (make build,
// plain go build) compiles testonly_off.go instead, whose seams are all
// inert, so the release binary holds neither the fault injector
// (backend/faulty) nor the names of these variables
// (TestReleaseBinaryHasNoTestSeams checks both).
const (
	// envTestFastKDF, set to "1", makes init, key add and key passwd
	// derive the new key with crypt.FastKDFParamsForTests, which gives no
	// protection against password guessing. The CLI tests use it so that
	// each of their many runs opens a repository in microseconds. It only
	// ever weakens keys it creates, never reads of existing ones.
	envTestFastKDF = "CAIRN_TESTONLY_FAST_KDF"
	// envTestClockShift is added to the real clock wherever cairn reads
	// the time for what it records or decides: snapshot and log entry
	// times, forget's policy, lock times, key creation. A Go duration such
	// as "-8760h". Progress displays keep the real clock.
	envTestClockShift = "CAIRN_TESTONLY_CLOCK_SHIFT"
	// envTestFaults wraps every backend the run opens in a fault injector
	// (backend/faulty) that fails calls at random, seeded for replay:
	// "seed=N,rate=R[,log=FILE]" with 0 < R ≤ 1. With log, each fault
	// injected appends a line "METHOD KIND FILE" to FILE. A remote
	// backend gets the faults below its retry wrapper, as a flaky network
	// would give them; a local one has no retry, so its faults fail the
	// command, as a failing disk would.
	envTestFaults = "CAIRN_TESTONLY_FAULTS"
	// envTestHostname replaces this machine's hostname wherever cairn
	// records or compares it (lock files, key files, snapshots), so that
	// a test can play a second host on one machine.
	envTestHostname = "CAIRN_TESTONLY_HOSTNAME"
	// envTestPause stops the run at a named point until a line (or EOF)
	// arrives on standard input, after printing "cairn: testonly: paused
	// at POINT" on stderr, so that a test can act on the repository
	// while the run holds its lock. The points: "before-snapshot":
	// backup, after its files are archived and their packs uploaded,
	// before it confirms the packs it relies on and writes the snapshot;
	// "rewrite-before-forget": rewrite --forget, after it recorded the new
	// snapshots, before it forgets the originals; "copy-before-snapshot":
	// copy, once a snapshot's data is in the destination, before its log
	// entry.
	envTestPause = "CAIRN_TESTONLY_PAUSE"
	// envTestRestoreSwap makes restore play another user writing in the
	// target: "PATH=LINK" swaps the node at PATH (inside the snapshot,
	// absolute) for a symlink to LINK right after the restore made it,
	// moving the node to PATH.swapped. The restore must then refuse to
	// set the node's metadata through that name.
	envTestRestoreSwap = "CAIRN_TESTONLY_RESTORE_SWAP"
	// envTestPeerTimeouts shortens the peer client's timeouts
	// (peer.Dialer), so that a test of a server that hangs sees the
	// client give up in seconds: "connect=D,stream=D" with Go durations,
	// either part left out for its default.
	envTestPeerTimeouts = "CAIRN_TESTONLY_PEER_TIMEOUTS"
	// envTestThrottle slows every backend the run opens to about N bytes
	// a second per request: a Put waits its length's worth before it
	// starts, a Get's content is handed over at that pace. The progress
	// tests use it to watch a backup and a restore that last seconds on
	// a tree of a few MiB.
	envTestThrottle = "CAIRN_TESTONLY_THROTTLE"
)

// testPausePoints are the values envTestPause accepts.
var testPausePoints = []string{"before-snapshot", "rewrite-before-forget", "copy-before-snapshot"}

// testPause returns the function a run calls at the pause point named
// point: it stops there when $CAIRN_TESTONLY_PAUSE names the point, and
// is nil otherwise. It waits for a line on stdin or for ctx; a reader
// left waiting when ctx ends goes with the process.
func (e *appEnv) testPause(point string) func(ctx context.Context) error {
	if e.getenv(envTestPause) != point {
		return nil
	}
	return func(ctx context.Context) error {
		fmt.Fprintf(e.stderr, "cairn: testonly: paused at %s\n", point)
		got := make(chan struct{})
		go func() {
			_, _ = bufio.NewReader(e.stdin).ReadString('\n')
			close(got)
		}()
		select {
		case <-got:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// now is the clock for everything cairn records or decides by time: the
// real clock, shifted by $CAIRN_TESTONLY_CLOCK_SHIFT when that is set. It
// is safe for concurrent use.
func (e *appEnv) now() time.Time {
	t := time.Now()
	if s := e.getenv(envTestClockShift); s != "" {
		// An unparsable shift was refused before the command ran
		// (checkTestSeams); here it can only be valid.
		d, _ := time.ParseDuration(s)
		t = t.Add(d)
	}
	return t
}

// testFastKDF says $CAIRN_TESTONLY_FAST_KDF asks new key files to be
// derived with the fast, weak test parameters (see envTestFastKDF).
func (e *appEnv) testFastKDF() bool { return e.getenv(envTestFastKDF) == "1" }

// testHostname is $CAIRN_TESTONLY_HOSTNAME (see envTestHostname): "" when
// unset, and then the real hostname counts.
func (e *appEnv) testHostname() string { return e.getenv(envTestHostname) }

// testFaultSpec is $CAIRN_TESTONLY_FAULTS (see envTestFaults), for
// locEnv.TestFaults.
func (e *appEnv) testFaultSpec() string { return e.getenv(envTestFaults) }

// testPeerDialer is the peer client's dialer: the default timeouts,
// unless $CAIRN_TESTONLY_PEER_TIMEOUTS shortens them.
func (e *appEnv) testPeerDialer() peer.Dialer {
	// An unparsable value was refused before the command ran
	// (checkTestSeams): here it can only be valid.
	d, _ := parsePeerTimeouts(e.getenv(envTestPeerTimeouts))
	return d
}

// checkTestSeams refuses malformed test-only settings before anything
// runs, so that a typo cannot make a test pass on the real clock.
func (e *appEnv) checkTestSeams() error {
	if s := e.getenv(envTestClockShift); s != "" {
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Errorf("$%s: %w", envTestClockShift, err)
		}
	}
	if s := e.getenv(envTestFaults); s != "" {
		if _, err := parseTestFaults(s); err != nil {
			return fmt.Errorf("$%s: %w", envTestFaults, err)
		}
	}
	if s := e.getenv(envTestPause); s != "" && !slices.Contains(testPausePoints, s) {
		return fmt.Errorf("$%s: unknown point %q (known: %s)", envTestPause, s, strings.Join(testPausePoints, ", "))
	}
	if s := e.getenv(envTestMirrorPause); s != "" {
		if n, err := strconv.Atoi(s); err != nil || n < 1 {
			return fmt.Errorf("$%s: %q is not a count of log entries", envTestMirrorPause, s)
		}
	}
	if s := e.getenv(envTestRestoreSwap); s != "" {
		if p, link, ok := strings.Cut(s, "="); !ok || !path.IsAbs(p) || link == "" {
			return fmt.Errorf("$%s: want ABSOLUTE-PATH=LINK-TARGET", envTestRestoreSwap)
		}
	}
	if _, err := parsePeerTimeouts(e.getenv(envTestPeerTimeouts)); err != nil {
		return fmt.Errorf("$%s: %w", envTestPeerTimeouts, err)
	}
	if s := e.getenv(envTestThrottle); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err != nil || n < 1 {
			return fmt.Errorf("$%s: %q is not a number of bytes a second", envTestThrottle, s)
		}
	}
	return e.checkIndexIntervalSeam()
}

// restoreSwapSeam returns restorer.Options.TestOnlyBetween for
// $CAIRN_TESTONLY_RESTORE_SWAP (see envTestRestoreSwap), or nil if it is
// not set. The restore's target is target, and rootPath the path inside
// the snapshot restored there.
func (e *appEnv) restoreSwapSeam(target, rootPath string) func(string, bool) {
	s := e.getenv(envTestRestoreSwap)
	if s == "" {
		return nil
	}
	node, link, _ := strings.Cut(s, "=") // checked by checkTestSeams
	rel, ok := strings.CutPrefix(node, rootPath)
	if !ok {
		return nil
	}
	at := filepath.Join(target, rel)
	var once sync.Once
	return func(p string, made bool) {
		if !made || p != node {
			return
		}
		// Failures are left to the test to see: the node is then
		// restored, and no error is reported for it.
		once.Do(func() {
			if err := os.Rename(at, at+".swapped"); err == nil {
				_ = os.Symlink(link, at)
			}
		})
	}
}

// parsePeerTimeouts reads $CAIRN_TESTONLY_PEER_TIMEOUTS; "" gives the
// defaults.
func parsePeerTimeouts(s string) (peer.Dialer, error) {
	var d peer.Dialer
	if s == "" {
		return d, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return d, fmt.Errorf("%q is not key=value", part)
		}
		t, err := time.ParseDuration(v)
		if err == nil && t <= 0 {
			err = fmt.Errorf("%v is not positive", t)
		}
		switch {
		case err != nil:
		case k == "connect":
			d.ConnectTimeout = t
		case k == "stream":
			d.StreamTimeout = t
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

// testFaults is a parsed $CAIRN_TESTONLY_FAULTS.
type testFaults struct {
	seed uint64
	rate float64
	log  string
}

func parseTestFaults(s string) (testFaults, error) {
	var f testFaults
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return f, fmt.Errorf("%q is not key=value", part)
		}
		var err error
		switch k {
		case "seed":
			f.seed, err = strconv.ParseUint(v, 10, 64)
		case "rate":
			f.rate, err = strconv.ParseFloat(v, 64)
			if err == nil && !(f.rate > 0 && f.rate <= 1) {
				err = fmt.Errorf("rate %v not in (0, 1]", f.rate)
			}
		case "log":
			f.log = v
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return f, err
		}
	}
	if f.rate == 0 {
		return f, fmt.Errorf("no rate")
	}
	return f, nil
}

// injectTestFaults wraps be in a random fault injector when
// $CAIRN_TESTONLY_FAULTS is set (see envTestFaults), and in a throttle
// when $CAIRN_TESTONLY_THROTTLE is (envTestThrottle); otherwise it
// returns be as it is. It passes err through, so it can wrap an open's
// result.
func (env locEnv) injectTestFaults(be backend.Backend, err error) (backend.Backend, error) {
	if err == nil && env.TestThrottle > 0 {
		be = &throttledBackend{Backend: be, rate: env.TestThrottle}
	}
	if err != nil || env.TestFaults == "" {
		return be, err
	}
	tf, perr := parseTestFaults(env.TestFaults)
	if perr != nil {
		_ = be.Close()
		return nil, fmt.Errorf("$%s: %w", envTestFaults, perr)
	}
	f := faulty.New(be)
	// The wrapper calls this with its lock held: appends never interleave.
	f.InjectRandomly(tf.seed, tf.rate, func(m faulty.Method, kind string, h backend.Handle) {
		if tf.log == "" {
			return
		}
		lf, err := os.OpenFile(tf.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return // the count is for the test's report; the fault happens regardless
		}
		fmt.Fprintf(lf, "%v %s %s\n", m, kind, h)
		_ = lf.Close()
	})
	return f, nil
}

// envTestPauseInit is a test-only seam for the crash tests of init: set to
// "1", init stops between writing its key file and writing the config,
// prints testPauseInitLine to stderr, and waits there until it is killed
// or interrupted, so that a test can SIGKILL it at exactly that moment.
const envTestPauseInit = "CAIRN_TESTONLY_PAUSE_INIT"

// testPauseInitLine is what a paused init prints (see envTestPauseInit).
const testPauseInitLine = "testonly: init paused between key file and config"

// testPauseInit returns the hook for repo.InitOptions.TestOnlyAfterKeyFile:
// nil unless $CAIRN_TESTONLY_PAUSE_INIT is "1".
func (e *appEnv) testPauseInit() func(ctx context.Context) {
	if e.getenv(envTestPauseInit) != "1" {
		return nil
	}
	return func(ctx context.Context) {
		fmt.Fprintln(e.stderr, testPauseInitLine)
		<-ctx.Done()
	}
}

// The mirror pause: a seam of its own, for the CLI tests that kill a
// mirror in the middle of its log phase (cmd/cairn/mirror_order_test.go).
// Like the seams above it is not for users and changes nothing when unset.

// envTestMirrorPause, set to N, makes "mirror" stop after copying its Nth
// log entry to a destination: it prints "testonly: mirror paused after N
// log entries" on stderr and waits until it is killed or interrupted.
// Mirror copies log entries one at a time and calls Progress after each
// before the next, so the destination then holds exactly N new entries.
const envTestMirrorPause = "CAIRN_TESTONLY_MIRROR_PAUSE"

// testOnlyMirrorPause wraps a mirror's progress callback with the pause
// of $CAIRN_TESTONLY_MIRROR_PAUSE; unset, it returns next as it is.
func (e *appEnv) testOnlyMirrorPause(ctx context.Context, p *printer, next func(repo.MirrorStats)) func(repo.MirrorStats) {
	n, err := strconv.Atoi(e.getenv(envTestMirrorPause))
	if err != nil || n < 1 {
		return next // unset (a malformed value was refused by checkTestSeams)
	}
	return func(st repo.MirrorStats) {
		if next != nil {
			next(st)
		}
		if st.LogEntriesCopied == n {
			p.Warnf("testonly: mirror paused after %d log entries", n)
			<-ctx.Done()
		}
	}
}

// testThrottle is $CAIRN_TESTONLY_THROTTLE (see envTestThrottle), for
// locEnv.TestThrottle: 0 when unset.
func (e *appEnv) testThrottle() int64 {
	n, _ := strconv.ParseInt(e.getenv(envTestThrottle), 10, 64) // checked by checkTestSeams
	return n
}

// throttledBackend slows Put and Get to about rate bytes a second per
// request (see envTestThrottle).
type throttledBackend struct {
	backend.Backend
	rate int64
}

// Unwrap returns the wrapped backend (the backend.Wrapper convention).
func (b *throttledBackend) Unwrap() backend.Backend { return b.Backend }

func (b *throttledBackend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := sleepCtx(ctx, time.Duration(float64(rd.Length())/float64(b.rate)*float64(time.Second))); err != nil {
		return err
	}
	return b.Backend.Put(ctx, h, rd)
}

func (b *throttledBackend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	return b.Backend.Get(ctx, h, length, offset, func(r io.Reader) error {
		return fn(&throttledReader{ctx: ctx, r: r, rate: b.rate, start: time.Now()})
	})
}

// throttledReader hands r's bytes over at about rate bytes a second.
type throttledReader struct {
	ctx   context.Context
	r     io.Reader
	rate  int64
	start time.Time
	read  int64
}

func (t *throttledReader) Read(p []byte) (int, error) {
	if step := max(t.rate/10, 1); int64(len(p)) > step {
		p = p[:step]
	}
	n, err := t.r.Read(p)
	t.read += int64(n)
	due := t.start.Add(time.Duration(float64(t.read) / float64(t.rate) * float64(time.Second)))
	if serr := sleepCtx(t.ctx, time.Until(due)); serr != nil {
		return n, serr
	}
	return n, err
}

// sleepCtx waits for d or for ctx to end (backend.Sleep), and then
// returns the context's cause.
func sleepCtx(ctx context.Context, d time.Duration) error {
	err := backend.Sleep(ctx, d)
	if err != nil && d > 0 {
		return context.Cause(ctx)
	}
	return err
}
