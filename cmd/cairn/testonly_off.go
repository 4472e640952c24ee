//go:build !cairn_testonly

package main

import (
	"context"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/repo"
)

// The release build's test seams: testonly.go's functions, inert. This
// build reads none of the CAIRN_TESTONLY_* variables (a run with one set
// behaves as without it) and links no fault injector. The tests and the
// soak build with the cairn_testonly tag, which compiles testonly.go
// instead.

// now is the clock for everything cairn records or decides by time.
func (e *appEnv) now() time.Time { return time.Now() }

// testFastKDF is false: new key files get the default derivation.
func (e *appEnv) testFastKDF() bool { return false }

// testHostname is "": the real hostname counts.
func (e *appEnv) testHostname() string { return "" }

// testFaultSpec is "": no fault injection.
func (e *appEnv) testFaultSpec() string { return "" }

// testThrottle is 0: no backend is slowed.
func (e *appEnv) testThrottle() int64 { return 0 }

// testPeerDialer is the peer client's default dialer.
func (e *appEnv) testPeerDialer() peer.Dialer { return peer.Dialer{} }

// checkTestSeams has nothing to check.
func (e *appEnv) checkTestSeams() error { return nil }

// testIndexInterval is 0: repo.DefaultIndexInterval.
func (e *appEnv) testIndexInterval() time.Duration { return 0 }

// testPause never pauses.
func (e *appEnv) testPause(string) func(ctx context.Context) error { return nil }

// testPauseInit never pauses.
func (e *appEnv) testPauseInit() func(ctx context.Context) { return nil }

// restoreSwapSeam swaps nothing.
func (e *appEnv) restoreSwapSeam(string, string) func(string, bool) { return nil }

// testOnlyMirrorPause returns next as it is.
func (e *appEnv) testOnlyMirrorPause(_ context.Context, _ *printer, next func(repo.MirrorStats)) func(repo.MirrorStats) {
	return next
}

// injectTestFaults returns be and err as they are.
func (env locEnv) injectTestFaults(be backend.Backend, err error) (backend.Backend, error) {
	return be, err
}
