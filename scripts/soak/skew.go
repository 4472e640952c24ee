package main

import (
	"fmt"
	"strings"
	"time"
)

// Clock skew: host beta (the laptop) has a clock that is hours off now
// and then (a wrong time zone, a dead clock battery). Every run of beta
// gets the simulated time plus beta's skew, so its snapshots, log
// entries and lock files carry that time. Locks must be judged by what
// the reader observes, never by comparing clocks, so nothing may be lost.

// maxSkew bounds beta's clock error.
const maxSkew = 3 * time.Hour

// drawSkew draws a clock error of at least 30 minutes either way.
func (s *soak) drawSkew() time.Duration {
	d := 30*time.Minute + time.Duration(s.rng.Int64N(int64(maxSkew-30*time.Minute)))
	if s.rng.IntN(3) != 0 { // mostly behind: its locks then look old to other hosts
		d = -d
	}
	return d.Round(time.Minute)
}

// driftBeta changes beta's clock error now and then: set wrong, or right
// again.
func (s *soak) driftBeta() {
	if s.rng.IntN(10) != 0 {
		return
	}
	old := s.beta.skew
	if s.rng.IntN(4) == 0 {
		s.beta.skew = 0
	} else {
		s.beta.skew = s.drawSkew()
	}
	if s.beta.skew != old {
		s.logf("clock skew: beta's clock is now off by %v", s.beta.skew)
		s.mu.Lock()
		s.st.outcomes["clock skew: beta's clock changed"]++
		s.mu.Unlock()
	}
}

// forgetBesidePausedBackup runs alpha's nightly forget --prune while a
// backup of beta, its clock off by hours, holds its lock: the backup is
// stopped just before it confirms its packs and records its snapshot
// (CAIRN_TESTONLY_PAUSE=before-snapshot), under its own host name
// (CAIRN_TESTONLY_HOSTNAME), so that only what alpha observes of its lock
// can keep the prune from deleting data the backup relies on. Mostly the
// prune must refuse (exit 11: beta's lock is live however old its time
// looks); sometimes a careless user removes the lock first ("unlock
// --remove-all"), and the prune runs. Then the backup goes on: its
// snapshot must restore exactly (it is verified with the rest), or it
// must fail non-zero and record nothing. It returns forget's result.
func (s *soak) forgetBesidePausedBackup(forgetArgs []string) result {
	s.mutate(s.beta, 2)
	if s.beta.skew == 0 {
		s.beta.skew = s.drawSkew()
		s.logf("clock skew: beta's clock is now off by %v", s.beta.skew)
	}
	s.mu.Lock()
	s.overlaps++
	tag := fmt.Sprintf("overlap-%d", s.overlaps)
	s.mu.Unlock()
	args, ok := s.backupArgs(s.beta, "--tag", tag)
	if !ok {
		return s.run.run("forget", s.alpha, s.sim, noFaults, nil, forgetArgs...)
	}
	// Locks left by runs the soak killed name this machine's real host
	// name; to beta, now a host of its own, they would look live (it
	// cannot tell their processes are gone) and refuse it. alpha's cron
	// removes them first, as "cairn unlock" does: those whose process is
	// gone from this host.
	ures := s.run.run("unlock", s.alpha, s.sim, noFaults, nil, "-r", s.main.url, "unlock")
	s.judge("unlock", ures, noFaults)
	const marker = "cairn: testonly: paused at before-snapshot"
	rn := s.run.start("backup", s.beta, s.sim.Add(s.beta.skew), noFaults,
		[]string{"CAIRN_TESTONLY_PAUSE=before-snapshot", "CAIRN_TESTONLY_HOSTNAME=beta"}, marker, args...)
	done := make(chan result, 1)
	go func() { done <- rn.wait() }()
	select {
	case <-rn.paused():
	case bres := <-done:
		s.unexpectedf("beta's backup with a pause before its snapshot ended without pausing: %s", bres)
		s.noteBackup(s.beta, bres)
		return s.run.run("forget", s.alpha, s.sim, noFaults, nil, forgetArgs...)
	}
	s.mu.Lock()
	s.st.faults["clock skew: forget --prune while beta's backup (clock off) waits to record its snapshot"]++
	s.mu.Unlock()

	unlocked := s.rng.IntN(10) < 3
	var res result
	if unlocked {
		ures := s.run.run("unlock", s.alpha, s.sim, noFaults, nil, "-r", s.main.url, "unlock", "--remove-all")
		s.judge("unlock", ures, noFaults)
		res = s.run.run("forget", s.alpha, s.sim, noFaults, nil, forgetArgs...)
		s.judge("forget", res, noFaults)
	} else {
		res = s.run.run("forget", s.alpha, s.sim, noFaults, nil, forgetArgs...)
		switch res.code {
		case 11:
			s.mu.Lock()
			s.st.outcomes["clock skew: prune refused beside beta's live lock (exit 11)"]++
			s.mu.Unlock()
		case 0:
			s.unexpectedf("forget --prune ran while beta's backup held its lock (beta's clock off by %v): %s", s.beta.skew, res)
		default:
			s.unexpectedf("forget --prune beside beta's live lock: want exit 11: %s", res)
		}
	}

	s.logOutput(res)
	rn.resume()
	bres := <-done
	s.logOutput(bres)
	switch {
	case bres.code == 0:
		s.noteBackup(s.beta, bres)
		s.mu.Lock()
		switch {
		case unlocked && strings.Contains(string(bres.stderr), "backing the paths up again"):
			s.st.outcomes["clock skew: lock removed, prune ran, the backup then completed (uploading again what the prune deleted)"]++
		case unlocked:
			s.st.outcomes["clock skew: lock removed, prune ran, the backup then completed"]++
		default:
			s.st.outcomes["clock skew: the paused backup completed after the refused prune"]++
		}
		s.mu.Unlock()
	case !unlocked:
		s.unexpectedf("beta's backup after a refused prune failed: %s", bres)
	default:
		// It may fail, but must record nothing.
		live, ok := s.listSnapshots(s.main)
		if !ok {
			return res
		}
		for id, sn := range live {
			for _, t := range sn.Tags {
				if t == tag {
					s.unexpectedf("beta's backup failed (%s) but recorded snapshot %s", bres, id[:8])
				}
			}
		}
		s.mu.Lock()
		s.st.outcomes["clock skew: lock removed, prune ran, the backup then failed and recorded nothing"]++
		s.mu.Unlock()
		s.logf("the paused backup failed after the prune: %s", bres)
	}
	return res
}
