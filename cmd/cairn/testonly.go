package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/peer"
)

// Test-only seams of the binary, for the soak test (scripts/soak), which
// runs the real binary through simulated months of cron with faults.
// Neither is documented for users, and neither weakens anything a normal
// run does: without the variables cairn behaves exactly as without this
// file.
const (
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
	// envTestPeerTimeouts shortens the peer client's timeouts
	// (peer.Dialer), so that a test of a server that hangs sees the
	// client give up in seconds: "connect=D,stream=D" with Go durations,
	// either part left out for its default.
	envTestPeerTimeouts = "CAIRN_TESTONLY_PEER_TIMEOUTS"
)

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
	if _, err := parsePeerTimeouts(e.getenv(envTestPeerTimeouts)); err != nil {
		return fmt.Errorf("$%s: %w", envTestPeerTimeouts, err)
	}
	return nil
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
// $CAIRN_TESTONLY_FAULTS is set (see envTestFaults); otherwise it returns
// be as it is. It passes err through, so it can wrap an open's result.
func (env locEnv) injectTestFaults(be backend.Backend, err error) (backend.Backend, error) {
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
