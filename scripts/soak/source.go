package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Faults of the main repository and of the mirror's log phase.

// damageSource damages one or two files of the main repository, as a
// failing disk or a careless hand would, just before the nightly mirror
// --prune: a pack the index lists or a log entry some entry names as its
// parent, which both copies hold intact (else nothing could heal it), or
// an index file (tonight's prune has mostly replaced them all, so the
// copies mostly do not hold it yet; a lost index is rebuilt from the
// packs). The mirror must keep the copies' good files, and must exit
// non-zero naming what it can tell is lost or damaged (a pack the index
// lists, a log entry the log names, an index file that does not open, an
// index file the copies hold that lists packs the source no longer
// indexes); check --read-data of the main repository must name all of
// it. Then the soak heals the main repository from a copy with "repair
// packs --from" (and "repair index" after index damage), after which
// check --read-data must find no damage. unindexed are the packs check
// called unindexed tonight: no index lists them, so they are no damage.
func (s *soak) damageSource(unindexed map[string]bool) {
	dmg, covered, atCopies := s.plantSourceDamage(unindexed)
	if len(dmg) == 0 {
		return
	}
	s.logf("damaged the main repository before mirror --prune: %v", dmg)
	byMirror := s.mirrorDamagedSource(dmg, covered, atCopies)

	// check --read-data must name the rest.
	cres, probs := s.check(s.main, noFaults, "--read-data")
	s.judgeDamage(s.main, "main (before mirror --prune)", dmg, cres, probs, unindexed, covered, byMirror)
	s.mu.Lock()
	for _, d := range dmg {
		if byMirror[d.file] {
			s.st.outcomes["source damage: named by mirror --prune (and kept at the copies)"]++
		}
	}
	s.mu.Unlock()
	s.healSource(dmg)
}

// plantSourceDamage damages one or two files of the main repository for
// damageSource, and returns them; covered are the log entries the newest
// checkpoint covers, atCopies the damaged files both copies hold intact.
func (s *soak) plantSourceDamage(unindexed map[string]bool) (dmg []damage, covered, atCopies map[string]bool) {
	mainFiles, err1 := repoFiles(s.main.dir)
	sftpFiles, err2 := repoFiles(s.sftp.dir)
	peerFiles, err3 := repoFiles(s.peer.dir)
	if err := firstErr(err1, err2, err3); err != nil {
		s.mu.Lock()
		s.failf("SOAK BUG: listing files for source damage: %v", err)
		s.mu.Unlock()
		return nil, nil, nil
	}
	covered, named, ok := s.logGraph(s.main)
	if !ok {
		return nil, nil, nil
	}
	// Candidates: not junk; packs and log entries intact at both copies
	// (so a copy can heal them).
	byDir := map[string][]string{}
	sizes := map[string]int64{}
	atCopies = map[string]bool{}
	for name, p := range mainFiles {
		dir, _, _ := strings.Cut(name, "/")
		s.mu.Lock()
		junk := s.junk[name]
		s.mu.Unlock()
		if junk || unindexed[name] || (dir == "log" && !named[name]) {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		good := true
		for _, other := range []map[string]string{sftpFiles, peerFiles} {
			q, ok := other[name]
			if !ok || !intact(q, name) {
				good = false
			}
		}
		if good || dir == "index" {
			byDir[dir] = append(byDir[dir], name)
			sizes[name] = fi.Size()
			atCopies[name] = good
		}
	}
	for _, l := range byDir {
		sort.Strings(l)
	}
	for range 1 + s.rng.IntN(4)/3 {
		// Packs most (they are most of the bytes), then log entries,
		// then index files.
		var dirs []string
		for dir, weight := range map[string]int{"data": 5, "log": 3, "index": 2} {
			if len(byDir[dir]) > 0 {
				for range weight {
					dirs = append(dirs, dir)
				}
			}
		}
		if len(dirs) == 0 {
			break
		}
		sort.Strings(dirs) // map order is random; the seed must replay
		dir := dirs[s.rng.IntN(len(dirs))]
		l := byDir[dir]
		i := s.rng.IntN(len(l))
		name := l[i]
		byDir[dir] = append(l[:i], l[i+1:]...)
		kind := "delete"
		if s.rng.IntN(2) == 0 && sizes[name] > 0 {
			kind = "bit-flip"
		}
		if err := damageFile(mainFiles[name], kind, s.rng.Int64N(max(sizes[name], 1)), uint(s.rng.IntN(8))); err != nil {
			s.mu.Lock()
			s.failf("SOAK BUG: damaging %s of the main repository: %v", name, err)
			s.mu.Unlock()
			return nil, nil, nil
		}
		dmg = append(dmg, damage{file: name, kind: kind})
	}
	return dmg, covered, atCopies
}

// mirrorDamagedSource runs mirror --prune from the damaged main
// repository: it must keep the copies' good files and name what it can
// tell is lost. It returns the damaged files the mirror named.
func (s *soak) mirrorDamagedSource(dmg []damage, covered, atCopies map[string]bool) map[string]bool {
	res := s.run.run("mirror", s.alpha, s.sim, noFaults, nil, "-r", s.main.url, "mirror", "--prune", s.sftp.url, s.peer.url)
	s.logOutput(res)
	byMirror := map[string]bool{}
	mustName := 0
	for _, d := range dmg {
		dir, _, _ := strings.Cut(d.file, "/")
		switch {
		case d.kind == "delete" && dir == "log" && covered[d.file]:
			// Prune deletes such entries itself: a drop, not damage.
		case d.kind == "delete" && dir == "index" && !atCopies[d.file]:
			// Lost before any copy had it: nothing tells a mirror it was
			// ever there (check names the packs it indexed).
		case d.kind == "delete" || dir == "index":
			// Lost packs, lost log entries the log names, lost index files
			// the copies hold, index files that do not open: the mirror can
			// tell them all.
			mustName++
			if strings.Contains(string(res.stderr), d.file) {
				byMirror[d.file] = true
			} else {
				s.unexpectedf("mirror --prune from a main repository that lost %s (%s) does not name it: %s", d.file, d.kind, res)
			}
		default:
			// A bit-flipped pack or log entry the copies already hold is
			// not read again by a mirror; check names it.
			if strings.Contains(string(res.stderr), d.file) {
				byMirror[d.file] = true
			}
		}
	}
	if mustName > 0 && res.code == 0 {
		s.unexpectedf("mirror --prune from a damaged main repository exited 0: %s", res)
	}
	if res.code != 0 && res.code != 1 {
		s.unexpectedf("mirror --prune from a damaged main repository: want exit 1, got %s", res)
	}
	spread := false
	for _, d := range dmg {
		if d.kind == "delete" && covered[d.file] || !atCopies[d.file] {
			continue
		}
		for _, loc := range []*location{s.sftp, s.peer} {
			files, err := repoFiles(loc.dir)
			if err != nil {
				s.mu.Lock()
				s.failf("SOAK BUG: listing %s: %v", loc.name, err)
				s.mu.Unlock()
				continue
			}
			if p, ok := files[d.file]; !ok || !intact(p, d.file) {
				s.mu.Lock()
				s.st.damageSpread++
				spread = true
				s.failf("SPREAD: mirror --prune removed or damaged %s at %s after it was %s in the main repository: %s", d.file, loc.name, d.kind+"d", res)
				s.mu.Unlock()
			}
		}
	}

	if spread {
		s.keepEvidence("spread", s.main, s.sftp, s.peer)
	}
	return byMirror
}

// healSource heals the main repository, damaged with dmg, from a copy
// with repair packs --from (and repair index after index damage); check
// --read-data must then find no damage.
func (s *soak) healSource(dmg []damage) {
	from := []*location{s.sftp, s.peer}[s.rng.IntN(2)]
	rres := s.run.run("repair", s.alpha, s.sim, noFaults, nil, "-r", s.main.url, "repair", "packs", "--from", from.url)
	s.logOutput(rres)
	indexDamaged := false
	for _, d := range dmg {
		indexDamaged = indexDamaged || strings.HasPrefix(d.file, "index/")
	}
	// Only an index file the copy lacks may be beyond its reach.
	for _, line := range strings.Split(string(rres.stdout), "\n") {
		if strings.Contains(line, "; cannot be fetched: ") && !strings.HasPrefix(line, "index/") {
			s.unexpectedf("repair packs --from %s could not fetch what it holds: %s\n%s", from.name, rres, rres.stdout)
			return
		}
	}
	if rres.code != 0 && !indexDamaged {
		s.unexpectedf("repair packs --from %s failed: %s\n%s", from.name, rres, rres.stdout)
		return
	}
	s.mu.Lock()
	s.st.outcomes["source damage: healed with repair packs --from "+from.name]++
	s.mu.Unlock()
	if indexDamaged {
		// Which index files a repository should have is written
		// nowhere, and a copy may not have them yet: "repair index"
		// rebuilds them from the packs.
		ires := s.run.run("repair", s.alpha, s.sim, noFaults, nil, "-r", s.main.url, "repair", "index")
		if ires.code != 0 {
			s.unexpectedf("repair index after index damage failed: %s", ires)
			return
		}
		s.mu.Lock()
		s.st.outcomes["source damage: index rebuilt with repair index"]++
		s.mu.Unlock()
	}
	cres, probs := s.check(s.main, noFaults, "--read-data")
	if cres.code != 0 || len(damageOnly(probs)) > 0 {
		s.keepEvidence("unhealed", s.main, from)
		s.unexpectedf("check --read-data of the main repository after repair packs --from %s still finds damage: %s\n%s", from.name, cres, cres.stdout)
	}
}

// keepEvidence copies the folders of locs (the main repository lives on a
// file system that goes with the run) to the work folder, when it is
// kept, so that a failure can be looked into.
func (s *soak) keepEvidence(what string, locs ...*location) {
	if !s.cfg.keep {
		return
	}
	s.mu.Lock()
	s.evidence++
	dir := filepath.Join(s.dir, fmt.Sprintf("evidence-%d-%s", s.evidence, what))
	_ = os.MkdirAll(dir, 0o700)
	s.mu.Unlock()
	for _, loc := range locs {
		if err := exec.Command("cp", "-a", loc.dir, filepath.Join(dir, loc.name)).Run(); err != nil {
			s.logf("keeping evidence in %s: %v", dir, err)
			return
		}
	}
	s.logf("evidence kept in %s", dir)
}

// hasRepo says whether loc holds a repository (its config) yet.
func hasRepo(loc *location) bool {
	_, err := os.Stat(filepath.Join(loc.dir, "config"))
	return err == nil
}

// logOutput writes what a run printed to the soak's log.
func (s *soak) logOutput(res result) {
	s.logf("  stdout: %s\n  stderr: %s", strings.TrimSpace(string(res.stdout)), strings.TrimSpace(string(res.stderr)))
}

// intact says whether the file at p still hashes to its repository name
// ("data/<id>").
func intact(p, name string) bool {
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(b)
	_, id, _ := strings.Cut(name, "/")
	return hex.EncodeToString(sum[:]) == id
}

// damageFile deletes the file at p, or flips bit of its byte at off.
func damageFile(p, kind string, off int64, bit uint) error {
	if kind == "delete" {
		return os.Remove(p)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		f.Close()
		return err
	}
	b[0] ^= 1 << bit
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// killMirrorInLogPhase runs the nightly mirror --prune with the test-only
// pause after N log entries (CAIRN_TESTONLY_MIRROR_PAUSE, N at random up
// to the entries the SFTP copy lacks) and kills it with SIGKILL there.
// Each copy must then hold a valid log, a prefix of the main one: check
// of it, as alpha (who has seen the newer entries at home), must exit 0,
// saying at most that it is behind. The nightly mirror that follows must
// complete it.
func (s *soak) killMirrorInLogPhase() {
	mainFiles, err1 := repoFiles(s.main.dir)
	sftpFiles, err2 := repoFiles(s.sftp.dir)
	if err := firstErr(err1, err2); err != nil {
		s.mu.Lock()
		s.failf("SOAK BUG: listing files for the mirror kill: %v", err)
		s.mu.Unlock()
		return
	}
	lacking := 0
	s.mu.Lock()
	for name := range mainFiles {
		if _, ok := sftpFiles[name]; !ok && strings.HasPrefix(name, "log/") && !s.junk[name] {
			lacking++
		}
	}
	s.mu.Unlock()
	if lacking == 0 {
		return
	}
	// Mostly part-way; now and then after the last entry the first copy
	// lacks.
	n := 1 + s.rng.IntN(lacking)
	if lacking > 1 && n == lacking && s.rng.IntN(2) == 0 {
		n = 1 + s.rng.IntN(lacking-1)
	}
	marker := fmt.Sprintf("testonly: mirror paused after %d log entries", n)
	rn := s.run.start("mirror", s.alpha, s.sim, noFaults, []string{"CAIRN_TESTONLY_MIRROR_PAUSE=" + strconv.Itoa(n)}, marker,
		"-r", s.main.url, "mirror", "--prune", s.sftp.url, s.peer.url)
	done := make(chan result, 1)
	go func() { done <- rn.wait() }()
	var res result
	select {
	case <-rn.paused():
		rn.kill()
		res = <-done
	case res = <-done:
	}
	if !res.killed {
		s.unexpectedf("mirror with a pause after %d of the %d log entries the SFTP copy lacks did not pause: %s", n, lacking, res)
		return
	}
	s.mu.Lock()
	s.st.faults["kill -9 mirror in its log phase"]++
	s.mu.Unlock()
	s.logf("killed the mirror after %d of %d log entries", n, lacking)
	s.logOutput(res)
	for _, loc := range []*location{s.sftp, s.peer} {
		if !hasRepo(loc) {
			// A first mirror killed before it reached this copy.
			s.mu.Lock()
			s.st.outcomes["mirror killed in its log phase: a copy not made yet (a first mirror)"]++
			s.mu.Unlock()
			continue
		}
		// As the copy's own verifier, which has not seen the main
		// repository, and as alpha, who has (its newer entries make the
		// copy behind, a warning). Either way the log must be valid and
		// every snapshot the main repository holds live must be sound.
		cres, probs := s.check(loc, noFaults)
		ares := s.cairn("check", s.alpha, loc, noFaults, "--json", "check")
		var aprobs []problem
		for _, line := range strings.Split(string(ares.stdout), "\n") {
			if p, ok := parseProblem(line); ok {
				aprobs = append(aprobs, p)
			}
		}
		forgotten := map[string]bool{}
		for i, c := range []struct {
			res   result
			probs []problem
		}{{cres, probs}, {ares, aprobs}} {
			var other []problem
			for _, p := range damageOnly(c.probs) {
				// A snapshot the main repository has forgotten, whose
				// data its prune removed before this mirror copied it:
				// the copy lists it until the forget entry arrives (a
				// limit of the log, see docs/reliability.md).
				if p.Snapshot != "" && (p.Kind == "tree_damaged" || p.Kind == "blob_missing") && s.live[p.Snapshot] == nil {
					forgotten[p.Snapshot] = true
					continue
				}
				other = append(other, p)
			}
			who := []string{"its verifier", "the owner's device"}[i]
			if len(other) > 0 || (c.res.code != 0 && len(forgotten) == 0) || (c.res.code != 0 && c.res.code != 1) {
				s.keepEvidence("mirror-killed", s.main, loc)
				s.unexpectedf("check of %s as %s after a mirror killed in its log phase (after %d entries): want exit 0 (behind at most), or damage only in snapshots the main repository forgot: %s\n%s",
					loc.name, who, n, c.res, c.res.stdout)
			}
		}
		s.mu.Lock()
		switch {
		case len(forgotten) > 0:
			s.st.outcomes["mirror killed in its log phase: copy lists snapshots the source forgot and pruned (check exit 1)"]++
			s.st.forgottenListed += len(forgotten)
		case strings.Contains(string(ares.stdout), "behind by"):
			s.st.outcomes["mirror killed in its log phase: copy behind, check exit 0"]++
		default:
			s.st.outcomes["mirror killed in its log phase: copy complete, check exit 0"]++
		}
		s.mu.Unlock()
	}
	s.sim = s.sim.Add(5 * time.Minute)
}
