//go:build cairn_testonly

package main

import (
	"fmt"
	"time"
)

// envTestIndexInterval replaces repo.DefaultIndexInterval, how long an
// uploaded pack waits at most for an index file to list it: a Go duration
// such as "200ms". The tests of an interrupted backup shorten it so that
// a backup killed with SIGKILL has written index files to find.
const envTestIndexInterval = "CAIRN_TESTONLY_INDEX_INTERVAL"

// testIndexInterval is $CAIRN_TESTONLY_INDEX_INTERVAL, or 0 (the default)
// when unset.
func (e *appEnv) testIndexInterval() time.Duration {
	// An unparsable value was refused before the command ran
	// (checkIndexIntervalSeam).
	d, _ := time.ParseDuration(e.getenv(envTestIndexInterval))
	return d
}

// checkIndexIntervalSeam refuses a malformed or non-positive interval.
func (e *appEnv) checkIndexIntervalSeam() error {
	s := e.getenv(envTestIndexInterval)
	if s == "" {
		return nil
	}
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		return fmt.Errorf("$%s: %q is not a positive duration", envTestIndexInterval, s)
	}
	return nil
}
