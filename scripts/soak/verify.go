package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/policy"
)

// listSnapshots returns the live snapshots of loc by ID, as its own
// verifier reads them; ok is false (and a failure recorded) when the
// listing fails.
func (s *soak) listSnapshots(loc *location) (map[string]*snapshot.Snapshot, bool) {
	res := s.cairn("snapshots", loc.verifier, loc, noFaults, "--json", "snapshots")
	if res.code != 0 {
		s.unexpectedf("listing the snapshots of %s failed: %s", loc.name, res)
		return nil, false
	}
	var list []struct {
		snapshot.Snapshot
		IDText string `json:"id"`
	}
	if err := json.Unmarshal(res.stdout, &list); err != nil {
		s.unexpectedf("snapshots --json of %s: %v: %s", loc.name, err, res.stdout)
		return nil, false
	}
	out := make(map[string]*snapshot.Snapshot, len(list))
	for _, e := range list {
		id, err := backend.ParseID(e.IDText)
		if err != nil {
			s.unexpectedf("snapshots --json of %s: id %q: %v", loc.name, e.IDText, err)
			return nil, false
		}
		sn := e.Snapshot
		sn.ID = id
		out[e.IDText] = &sn
	}
	s.noteWarnings(loc.name+" snapshots", res)
	return out, true
}

// accountMain lists the main repository and checks that every snapshot
// it held at the last listing, and every one a backup reported since, is
// still there, unless forget's policy allowed its removal. It returns the
// listing.
func (s *soak) accountMain() (map[string]*snapshot.Snapshot, bool) {
	live, ok := s.listSnapshots(s.main)
	if !ok {
		return nil, false
	}
	for id, sn := range s.live {
		if _, ok := live[id]; !ok && !s.allowedGone[id] {
			s.lostf("snapshot %s (host %s, %s, tags %v) was live in the main repository and is gone, but the policy does not remove it",
				id[:8], sn.Hostname, sn.Time.Format(time.RFC3339), sn.Tags)
		}
	}
	for id, hostName := range s.pending {
		if _, ok := live[id]; !ok && !s.allowedGone[id] {
			s.lostf("snapshot %s of %s was reported made by backup but is not in the main repository", id[:8], hostName)
		}
	}
	s.live, s.pending, s.allowedGone = live, map[string]string{}, map[string]bool{}
	return live, true
}

// allowRemovals marks as legitimately gone what forget's policy removes
// from the snapshots before, and from before plus those that appeared
// meanwhile (a backup running at the same time).
func (s *soak) allowRemovals(before, after map[string]*snapshot.Snapshot) {
	union := map[string]*snapshot.Snapshot{}
	for id, sn := range before {
		union[id] = sn
	}
	for id, sn := range after {
		union[id] = sn
	}
	for _, set := range []map[string]*snapshot.Snapshot{before, union} {
		var list []*snapshot.Snapshot
		for _, sn := range set {
			list = append(list, sn)
		}
		for _, g := range policy.Group(list, policy.DefaultGroupBy) {
			_, remove, _ := policy.Apply(g.Snapshots, s.policy, s.sim)
			for _, sn := range remove {
				s.allowedGone[sn.ID.String()] = true
			}
		}
	}
}

// manifestOf finds the manifest a snapshot's tag names.
func (s *soak) manifestOf(sn *snapshot.Snapshot) (manifest, string, bool) {
	for _, t := range sn.Tags {
		if key, ok := strings.CutPrefix(t, "m-"); ok {
			m, ok := s.manifests[key]
			return m, key, ok
		}
	}
	return nil, "", false
}

// verifyLocation restores every live snapshot of loc and compares each
// with the tree as it was when the snapshot was taken. It returns the
// listing.
func (s *soak) verifyLocation(loc *location, live map[string]*snapshot.Snapshot) {
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	type job struct {
		id   string
		kill faultPlan // a restore killed first, as a user's ^C or a crash would
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for w := range s.cfg.parallel {
		wg.Go(func() {
			for j := range jobs {
				if j.kill.any() {
					target := filepath.Join(s.dir, "restore", fmt.Sprintf("%s-%d", loc.name, w))
					_ = os.RemoveAll(target)
					sn := live[j.id]
					s.cairn("restore", loc.verifier, loc, j.kill, "restore", j.id+":"+sn.Paths[0], "--target", target)
				}
				s.verifySnapshot(loc, live[j.id], w)
			}
		})
	}
	for _, id := range ids {
		j := job{id: id, kill: noFaults}
		if len(live[id].Paths) == 1 && s.rng.IntN(20) == 0 {
			j.kill.killAfter = time.Duration(s.rng.Int64N(int64(s.run.typicalDuration("restore")))) + time.Millisecond
		}
		jobs <- j
	}
	close(jobs)
	wg.Wait()
}

// verifySnapshot restores one snapshot from loc and compares it.
func (s *soak) verifySnapshot(loc *location, sn *snapshot.Snapshot, worker int) {
	id := sn.ID.String()
	s.mu.Lock()
	want, key, ok := s.manifestOf(sn)
	s.mu.Unlock()
	if !ok {
		s.mu.Lock()
		s.failf("SOAK BUG: snapshot %s in %s has no known manifest (tags %v)", id[:8], loc.name, sn.Tags)
		s.mu.Unlock()
		return
	}
	if len(sn.Paths) != 1 {
		s.lostf("snapshot %s in %s has paths %v, want one", id[:8], loc.name, sn.Paths)
		return
	}
	target := filepath.Join(s.dir, "restore", fmt.Sprintf("%s-%d", loc.name, worker))
	_ = os.RemoveAll(target)
	defer os.RemoveAll(target)
	res := s.cairn("restore", loc.verifier, loc, noFaults, "restore", id+":"+sn.Paths[0], "--target", target)
	if res.code != 0 {
		s.lostf("snapshot %s (host %s, %s) does not restore from %s: %s", id[:8], sn.Hostname, sn.Time.Format(time.RFC3339), loc.name, res)
		return
	}
	s.noteWarnings(loc.name+" restore", res)
	got, n, err := takeManifest(target)
	if err != nil {
		s.lostf("snapshot %s restored from %s: reading it back: %v", id[:8], loc.name, err)
		return
	}
	if d := want.diff(got, 8); len(d) > 0 {
		s.lostf("snapshot %s (host %s, %s, manifest %s) restored from %s differs from the tree it was taken of:\n  %s",
			id[:8], sn.Hostname, sn.Time.Format(time.RFC3339), key, loc.name, strings.Join(d, "\n  "))
		return
	}
	s.mu.Lock()
	s.st.snapshotsVerified++
	s.st.verifiedBy[loc.name]++
	s.st.bytesRestored += n
	s.mu.Unlock()
}

// problem is one line of "check --json".
type problem struct {
	MessageType string `json:"message_type"`
	Kind        string `json:"kind"`
	File        string `json:"file"`
	Snapshot    string `json:"snapshot"`
	Blob        string `json:"blob"`
	Warning     bool   `json:"warning"`
	Message     string `json:"message"`
}

// check runs check on loc (as its verifier) and returns the problems it
// printed, warnings included.
func (s *soak) check(loc *location, plan faultPlan, args ...string) (result, []problem) {
	res := s.cairn("check", loc.verifier, loc, plan, append([]string{"--json", "check"}, args...)...)
	var probs []problem
	sc := bufio.NewScanner(bytes.NewReader(res.stdout))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if p, ok := parseProblem(sc.Text()); ok {
			probs = append(probs, p)
		}
	}
	return res, probs
}

// parseProblem parses a line of "check --json" that is a problem.
func parseProblem(line string) (problem, bool) {
	var p problem
	if json.Unmarshal([]byte(line), &p) == nil && p.MessageType == "problem" {
		return p, true
	}
	return p, false
}

// coveredLog returns the log entries of loc that its newest checkpoint
// covers (by "log/<id>"): prune keeps them for a while, and deleting one
// is what prune does later, so it is no damage.
func (s *soak) coveredLog(loc *location) (map[string]bool, bool) {
	covered, _, ok := s.logGraph(loc)
	return covered, ok
}

// logGraph lists loc's log (as its verifier reads it) and returns the
// entries its newest checkpoint covers and the entries some entry names
// as a parent (so not heads), both by "log/<id>".
func (s *soak) logGraph(loc *location) (covered, named map[string]bool, ok bool) {
	res := s.cairn("log", loc.verifier, loc, noFaults, "--json", "log")
	if res.code != 0 {
		s.unexpectedf("log of %s failed: %s", loc.name, res)
		return nil, nil, false
	}
	var entries []struct {
		ID      string   `json:"id"`
		Seq     uint64   `json:"seq"`
		Op      string   `json:"op"`
		Parents []string `json:"parents"`
	}
	if err := json.Unmarshal(res.stdout, &entries); err != nil {
		s.unexpectedf("log --json of %s: %v", loc.name, err)
		return nil, nil, false
	}
	byID := map[string][]string{}
	newest, seq := "", uint64(0)
	named = map[string]bool{}
	for _, e := range entries {
		byID[e.ID] = e.Parents
		if e.Op == "checkpoint" && e.Seq >= seq {
			newest, seq = e.ID, e.Seq
		}
		for _, p := range e.Parents {
			named["log/"+p] = true
		}
	}
	covered = map[string]bool{}
	stack := byID[newest]
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		parents, ok := byID[id]
		if !ok || covered["log/"+id] {
			continue
		}
		covered["log/"+id] = true
		stack = append(stack, parents...)
	}
	return covered, named, true
}

// damageOnly returns the problems that are not warnings.
func damageOnly(probs []problem) []problem {
	var out []problem
	for _, p := range probs {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// unindexed returns the packs that problems call unindexed.
func unindexed(probs []problem) map[string]bool {
	out := map[string]bool{}
	for _, p := range probs {
		if p.Kind == "pack_unindexed" {
			out[p.File] = true
		}
	}
	return out
}

// judgeDamage compares what check on loc reported with the damage
// injected: every damaged file must be named, and every problem must
// follow from the damage. before are the packs check called unindexed
// before the damage.
//
// A deleted index file cannot be named: nothing refers to index files.
// What check can and must say is which packs no index lists any more (as
// warnings); the trees and blobs in them then count as damage until
// "cairn repair index" (restic behaves the same). An index whose packs
// other index files list too may go without a trace.
//
// A deleted log entry that the newest checkpoint covers is no damage
// either: prune deletes those entries itself once they are old enough.
//
// alsoNamed are damaged files that another command (mirror) named; they
// count as detected too. label names the place in the statistics.
func (s *soak) judgeDamage(loc *location, label string, dmg []damage, res result, all []problem, before, covered, alsoNamed map[string]bool) {
	probs := damageOnly(all)
	named := map[string]bool{}
	for f := range alsoNamed {
		named[f] = true
	}
	packs, logs, indexGone := false, false, false
	damaged := map[string]bool{}
	for _, d := range dmg {
		damaged[d.file] = true
		packs = packs || strings.HasPrefix(d.file, "data/")
		logs = logs || strings.HasPrefix(d.file, "log/")
		indexGone = indexGone || strings.HasPrefix(d.file, "index/") && d.kind == "delete"
	}
	newlyUnindexed := 0
	for f := range unindexed(all) {
		if !before[f] && !damaged[f] {
			newlyUnindexed++
		}
	}
	harmless := map[string]bool{}
	for _, d := range dmg {
		if strings.HasPrefix(d.file, "index/") && d.kind == "delete" && (newlyUnindexed > 0 || len(probs) == 0) {
			named[d.file] = true
		}
		if d.kind == "delete" && covered[d.file] {
			harmless[d.file] = true
		}
	}
	for _, p := range probs {
		switch {
		case p.File != "" && damaged[p.File]:
			named[p.File] = true
		case p.Kind == "log":
			for _, d := range dmg {
				if id, ok := strings.CutPrefix(d.file, "log/"); ok && strings.Contains(p.Message, id[:8]) {
					named[d.file] = true
				}
			}
			if !logs {
				s.unexpectedf("check of %s reported a log problem no injected damage explains: %s", loc.name, p.Message)
			}
		case p.Kind == "blob_missing" || p.Kind == "tree_damaged":
			// A damaged pack loses blobs; a damaged or deleted log entry
			// can bring back snapshots a forget entry retired, whose
			// data prune removed; a deleted index hides its packs.
			if !packs && !logs && !(indexGone && newlyUnindexed > 0) {
				s.unexpectedf("check of %s reported %s (%s) with no pack damaged", loc.name, p.Kind, p.Message)
			}
		default:
			s.unexpectedf("check of %s reported damage no injected damage explains: %+v", loc.name, p)
		}
	}
	if len(probs) > 0 && res.code != 1 {
		s.unexpectedf("check of damaged %s exited %d, want 1: %s", loc.name, res.code, res)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range dmg {
		s.st.damageInjected++
		kind := label + " " + d.kind + " " + strings.SplitN(d.file, "/", 2)[0]
		if harmless[d.file] {
			kind += " (covered by a checkpoint: no damage)"
		}
		s.st.faults[kind]++
		if harmless[d.file] {
			s.st.damageHarmless++
			continue
		}
		if named[d.file] {
			s.st.damageDetected++
			continue
		}
		s.st.damageUndetected++
		s.failf("UNDETECTED: %s of %s in %s was not named by check (or mirror):\n%s", d.kind, d.file, loc.name, res)
	}
}

// noteWarnings counts warnings printed by a run without faults.
func (s *soak) noteWarnings(what string, res result) {
	n, junk := 0, 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range strings.Split(string(res.stderr), "\n") {
		if !strings.Contains(line, "warning") {
			continue
		}
		if s.junkWarning(line) {
			junk++
			continue
		}
		n++
		if n == 1 {
			s.logf("warning in a run without faults (%s): %s", what, line)
		}
	}
	s.st.cleanWarnings += n
	s.st.junkWarnings += junk
}
