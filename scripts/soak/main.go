// Command soak runs the real cairn binary through simulated months of
// cron on a changing tree, with faults throughout, and checks that
// nothing is lost.
//
// Two hosts back their trees up hourly into one repository (host beta
// only in the daytime, sometimes at the same time as alpha); every night
// alpha runs forget --prune with a realistic policy, check
// --read-data-subset, and mirrors the repository to an SFTP server (a
// real sshd) and to a "cairn peer serve" peer, both through loopback
// proxies. Time is simulated: each run gets CAIRN_TESTONLY_CLOCK_SHIFT,
// so a cycle (one to four hours of cron) takes a second or so.
//
// Faults: kill -9 at a random moment of any command; the repository's
// disk (a small tmpfs) running full; random I/O errors, short reads,
// broken streams and lost acknowledgements from the fault-injecting
// backend (CAIRN_TESTONLY_FAULTS); TCP connections to the peers cut
// mid-transfer by the proxies; the peer server killed and restarted
// during mirrors; and files of the copies bit-flipped or deleted, which
// check must name before they are repaired. And, from issue 11: beta's
// clock off by hours, also while alpha's prune runs beside a paused
// backup of beta (skew.go); files of the main repository damaged right
// before mirror --prune, which must keep them at the copies and name
// them, then healed with repair packs --from a copy (source.go); mirrors
// killed in their log phase (source.go); and junk and fake key files put
// by a client into every location (junk.go).
//
// After each night every snapshot the main repository's log says is live
// is restored and compared, content and metadata, with the tree as it
// was when that snapshot was taken (each backup tags its snapshot with
// the key of a manifest of the tree), and so is every snapshot live on
// each copy. A snapshot gone that the policy does not remove, or a
// restore that differs, is a snapshot lost.
//
// Usage (from the module root, as root for the tmpfs):
//
//	go run ./scripts/soak [-cycles N] [-seed S] [-dir DIR] [-keep]
//
// SOAK_CYCLES, SOAK_SEED and SOAK_DIR set the defaults of the flags.
// The exit status is 0 only when no snapshot was lost, all injected
// damage was detected, no command panicked or hung, and every run
// without faults succeeded.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/policy"
)

// config is the run's settings.
type config struct {
	cycles   int
	seed     uint64
	dir      string
	keep     bool
	diskMB   int
	timeout  time.Duration
	parallel int
	verbose  bool
}

// stats are the figures printed at the end.
type stats struct {
	cycles, nights    int
	simStart, simEnd  time.Time
	commands          map[string]int
	faults            map[string]int
	snapshotsVerified int
	verifiedBy        map[string]int
	bytesRestored     int64
	snapshotsLost     int
	damageInjected    int
	damageDetected    int
	damageHarmless    int
	damageUndetected  int
	// damageSpread counts files a mirror removed from, or damaged at, a
	// copy after they were lost or damaged in the main repository.
	damageSpread int
	// outcomes count how the new fault kinds (clock skew, source damage,
	// mirrors killed in their log phase, junk) turned out.
	outcomes map[string]int
	// forgottenListed counts snapshots a copy listed, after a mirror
	// killed in its log phase, that the main repository had forgotten
	// and pruned before the mirror copied their data.
	forgottenListed int
	unexpected      int
	panics          int
	cleanWarnings   int
	junkWarnings    int // warnings in runs without faults about planted junk
	maxRepoBytes    int64
}

// soak is one run.
type soak struct {
	cfg  config
	dir  string
	bin  string
	rng  *rand.Rand // used by the main goroutine only
	run  *runner
	disk *disk

	alpha, beta *host
	main        *location
	sftp        *location
	peer        *location
	peerSrv     *peerServer
	password    string

	policy     policy.Policy
	policyArgs []string

	sim time.Time // the simulated clock

	sshHome string // the SFTP account's home: its client key, known_hosts

	// overlaps and freshDevices number the clock-skew overlaps and the
	// new devices made so far (main goroutine only).
	overlaps, freshDevices int
	evidence               int // folders kept by keepEvidence

	mu        sync.Mutex // guards st, failures, manifests, junk, junkKind, evidence
	st        stats
	failures  []string
	manifests map[string]manifest
	// junk are the files the soak planted as a client could ("log/<id>",
	// "keys/<id>"), in any location.
	junk map[string]bool
	// junkKind says what each junk file is.
	junkKind map[string]string

	logMu   sync.Mutex // guards logFile
	logFile *os.File

	// The main repository's snapshots as last listed, those backups
	// reported since, and those forget's policy may have removed since.
	live        map[string]*snapshot.Snapshot
	pending     map[string]string
	allowedGone map[string]bool

	cleanups []func()
}

func main() {
	cfg := config{}
	flag.IntVar(&cfg.cycles, "cycles", envInt("SOAK_CYCLES", 60), "cycles (1 to 4 simulated hours of cron each) to run")
	flag.Uint64Var(&cfg.seed, "seed", uint64(envInt("SOAK_SEED", int(time.Now().UnixNano()%1e9))), "random seed")
	flag.StringVar(&cfg.dir, "dir", os.Getenv("SOAK_DIR"), "work folder (default: a new temporary folder)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work folder")
	flag.IntVar(&cfg.diskMB, "disk-mb", 160, "size of the repository's file system in MiB")
	flag.DurationVar(&cfg.timeout, "timeout", 3*time.Minute, "a command running longer has hung")
	flag.IntVar(&cfg.parallel, "parallel", 2, "restores verified at once")
	flag.BoolVar(&cfg.verbose, "v", false, "print every command")
	flag.Parse()
	os.Exit(runSoak(cfg))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func runSoak(cfg config) int {
	s := &soak{cfg: cfg, manifests: map[string]manifest{}, live: map[string]*snapshot.Snapshot{},
		pending: map[string]string{}, allowedGone: map[string]bool{}, junk: map[string]bool{},
		junkKind: map[string]string{}}
	s.st.commands, s.st.faults, s.st.verifiedBy = map[string]int{}, map[string]int{}, map[string]int{}
	s.st.outcomes = map[string]int{}
	s.rng = rand.New(rand.NewPCG(cfg.seed, 0x50a6))
	// Signals end the run in an orderly way: unmount, stop servers.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	interrupted := make(chan struct{})
	go func() {
		<-sigs
		close(interrupted)
	}()
	defer func() {
		for i := len(s.cleanups) - 1; i >= 0; i-- {
			s.cleanups[i]()
		}
	}()
	if err := s.setup(); err != nil {
		fmt.Fprintf(os.Stderr, "soak: setup: %v\n", err)
		return 2
	}
	fmt.Printf("soak: %d cycles, seed %d, work folder %s (log: %s)\n", cfg.cycles, cfg.seed, s.dir, s.logFile.Name())
	start := time.Now()
	nextNight := time.Date(s.sim.Year(), s.sim.Month(), s.sim.Day()+1, 3, 0, 0, 0, time.UTC)
	for c := 1; c <= cfg.cycles; c++ {
		select {
		case <-interrupted:
			fmt.Println("soak: interrupted")
			cfg.cycles = c - 1
			c = cfg.cycles + 1
			continue
		default:
		}
		s.cycle()
		s.st.cycles = c
		if !s.sim.Before(nextNight) || c == cfg.cycles {
			at := s.sim
			if s.sim.Before(nextNight) { // the last cycle ends the run with a night
				at = s.sim.Add(time.Hour)
			}
			s.night(at)
			nextNight = time.Date(s.sim.Year(), s.sim.Month(), s.sim.Day()+1, 3, 0, 0, 0, time.UTC)
		}
		if c%10 == 0 || c == cfg.cycles {
			s.mu.Lock()
			fmt.Printf("soak: cycle %d/%d, %s simulated, %v real; %d snapshots verified, %d lost, %d failures\n",
				c, cfg.cycles, s.sim.Format("2006-01-02 15:04"), time.Since(start).Round(time.Second),
				s.st.snapshotsVerified, s.st.snapshotsLost, len(s.failures))
			s.mu.Unlock()
		}
	}
	s.st.simEnd = s.sim
	s.peerSrv.stop(syscall.SIGTERM) // its log is checked for panics
	return s.report(time.Since(start))
}

// setup builds the binary and makes the repository, the hosts, the
// copies and the servers.
func (s *soak) setup() error {
	dir := s.cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "cairn-soak-")
		if err != nil {
			return err
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s.dir = dir
	if !s.cfg.keep && s.cfg.dir == "" {
		s.cleanups = append(s.cleanups, func() { _ = os.RemoveAll(dir) })
	}
	if s.logFile, err = os.Create(filepath.Join(dir, "soak.log")); err != nil {
		return err
	}
	if !s.cfg.keep && s.cfg.dir == "" {
		// The log outlives the work folder when anything failed.
		s.logFile.Close()
		if s.logFile, err = os.CreateTemp("", "cairn-soak-*.log"); err != nil {
			return err
		}
	}

	s.bin = filepath.Join(dir, "cairn")
	build := exec.Command("go", "build", "-tags", "cairn_testonly", "-o", s.bin, "./cmd/cairn")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/cairn (run the soak from the module root): %w", err)
	}
	s.password = filepath.Join(dir, "password")
	if err := os.WriteFile(s.password, []byte("soak password\n"), 0o600); err != nil {
		return err
	}
	s.run = &runner{s: s, bin: s.bin, typical: map[string]time.Duration{}}
	s.run.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"TZ=UTC",
		"CAIRN_PASSWORD_FILE=" + s.password,
		"CAIRN_TESTONLY_FAST_KDF=1",
	}
	if t := os.Getenv("TMPDIR"); t != "" {
		s.run.env = append(s.run.env, "TMPDIR="+t)
	}

	if s.disk, err = setupDisk(filepath.Join(dir, "disk"), s.cfg.diskMB, s.logf); err != nil {
		return err
	}
	s.cleanups = append(s.cleanups, s.disk.close)

	s.policy = policy.Policy{Hourly: 4, Daily: 5, Weekly: 3, Monthly: 2}
	s.policyArgs = []string{"--keep-hourly", "4", "--keep-daily", "5", "--keep-weekly", "3", "--keep-monthly", "2"}
	// The simulation starts on a Monday in early 2024; nothing depends
	// on the real date.
	s.sim = time.Date(2024, 1, 8, 9, 0, 0, 0, time.UTC)
	s.st.simStart = s.sim

	mkHost := func(name string, seed uint64, files, minFiles, maxFiles, big int) (*host, error) {
		h := &host{name: name, configDir: filepath.Join(dir, name, "config"), cacheDir: filepath.Join(dir, name, "cache")}
		h.tree = &tree{root: filepath.Join(dir, name, "tree"), rng: rand.New(rand.NewPCG(s.cfg.seed, seed)),
			minFiles: minFiles, maxFiles: maxFiles, ops: map[string]int{}}
		if err := os.MkdirAll(h.tree.root, 0o755); err != nil {
			return nil, err
		}
		return h, h.tree.populate(files, big)
	}
	if s.alpha, err = mkHost("alpha", 1, 100, 60, 160, 4<<20); err != nil {
		return err
	}
	if s.beta, err = mkHost("beta", 2, 50, 30, 100, 0); err != nil {
		return err
	}
	// beta's clock starts off by hours, and drifts (driftBeta).
	s.beta.skew = s.drawSkew()
	// beta shares some files with alpha: deduplication across hosts.
	files, _ := s.alpha.tree.list()
	for _, f := range files[:min(20, len(files))] {
		b, err := os.ReadFile(filepath.Join(s.alpha.tree.root, f))
		if err == nil {
			_ = os.WriteFile(filepath.Join(s.beta.tree.root, "shared-"+filepath.Base(f)), b, 0o644)
		}
	}

	s.main = &location{name: "main", url: filepath.Join(s.disk.dir, "repo"), dir: filepath.Join(s.disk.dir, "repo")}
	if s.sftp, s.sshHome, err = s.setupSFTP(); err != nil {
		return err
	}
	s.run.env = append(s.run.env, "HOME="+s.sshHome)
	// alpha's identity is made here, so that the peer server can allow it.
	if s.peer, s.peerSrv, err = s.setupPeer(s.alpha); err != nil {
		return err
	}
	for _, loc := range []*location{s.main, s.sftp, s.peer} {
		loc.verifier = &host{name: "verify-" + loc.name,
			configDir: filepath.Join(dir, "verify", loc.name, "config"),
			cacheDir:  filepath.Join(dir, "verify", loc.name, "cache")}
		// The verifier reaches the peer as alpha: the server allows
		// only alpha's identity.
		if err := copyFile(filepath.Join(s.alpha.configDir, "identity"), filepath.Join(loc.verifier.configDir, "identity")); err != nil {
			return err
		}
	}
	res := s.cairn("init", s.alpha, s.main, noFaults, "init")
	if res.code != 0 {
		return fmt.Errorf("init: %s", res)
	}
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// cairn runs the binary on loc as host h.
func (s *soak) cairn(kind string, h *host, loc *location, plan faultPlan, args ...string) result {
	full := append([]string{"-r", loc.url}, args...)
	return s.run.run(kind, h, s.sim, plan, nil, full...)
}

// plan draws the faults of one run of a command of kind.
func (s *soak) plan(kind string, killP, ioP, fullP float64) faultPlan {
	p := noFaults
	if s.rng.Float64() < killP {
		typ := s.run.typicalDuration(kind)
		p.killAfter = time.Duration(s.rng.Int64N(int64(typ)*5/4)) + time.Millisecond
	}
	if s.rng.Float64() < ioP {
		p.ioSeed, p.ioRate = s.rng.Uint64(), 0.005+s.rng.Float64()*0.045
	}
	if s.disk.canFill() && s.rng.Float64() < fullP {
		// Mostly so full that any write fails; sometimes room for a
		// little, so that a command fails part-way.
		if s.rng.IntN(10) < 7 {
			p.diskFree = s.rng.Int64N(16 << 10)
		} else {
			p.diskFree = s.rng.Int64N(1 << 20)
		}
		s.mu.Lock()
		s.st.faults["disk full "+kind]++
		s.mu.Unlock()
	}
	return p
}

// cycle is one run of the hourly cron job: the trees change, then the
// hosts back up.
func (s *soak) cycle() {
	// Mostly an hour; sometimes the machines were off for a while.
	step := time.Hour
	if s.rng.IntN(3) == 0 {
		step += time.Duration(1+s.rng.IntN(3)) * time.Hour
	}
	s.sim = s.sim.Add(step)
	betaOn := s.sim.Hour() >= 8 && s.sim.Hour() < 22
	s.mutate(s.alpha, 2+s.rng.IntN(6))
	if betaOn {
		s.mutate(s.beta, 1+s.rng.IntN(4))
		s.driftBeta()
	}
	planA := s.plan("backup", 0.12, 0.12, 0.06)
	if !betaOn {
		s.backup(s.alpha, planA, s.sim)
		return
	}
	planB := s.plan("backup", 0.12, 0.12, 0.06)
	if s.rng.IntN(4) == 0 { // both at once
		var wg sync.WaitGroup
		wg.Go(func() { s.backup(s.alpha, planA, s.sim) })
		wg.Go(func() { s.backup(s.beta, planB, s.sim) })
		wg.Wait()
		return
	}
	s.backup(s.alpha, planA, s.sim)
	s.backup(s.beta, planB, s.sim.Add(5*time.Minute))
}

// mutate changes h's tree.
func (s *soak) mutate(h *host, n int) {
	if err := h.tree.mutate(n); err != nil {
		s.mu.Lock()
		s.failf("SOAK BUG: changing the tree of %s: %v", h.name, err)
		s.mu.Unlock()
	}
}

// backup records h's tree in a manifest and backs it up, tagging the
// snapshot with the manifest's key. With beside, an exclusive lock of a
// command running beside it may refuse the backup. h's clock is off by
// its skew.
func (s *soak) backup(h *host, plan faultPlan, at time.Time, beside ...bool) result {
	args, ok := s.backupArgs(h)
	if !ok {
		return result{}
	}
	if h.skew != 0 {
		s.mu.Lock()
		s.st.faults["clock skew: a backup of "+h.name+" with its clock off"]++
		s.mu.Unlock()
	}
	res := s.run.run("backup", h, at.Add(h.skew), plan, nil, args...)
	s.judge("backup", res, plan, beside...)
	s.noteBackup(h, res)
	return res
}

// backupArgs records h's tree in a manifest and returns the arguments of
// a backup of it, its snapshot tagged with the manifest's key (and
// extraTags).
func (s *soak) backupArgs(h *host, extraTags ...string) ([]string, bool) {
	m, _, err := takeManifest(h.tree.root)
	if err != nil {
		s.mu.Lock()
		s.failf("SOAK BUG: manifest of %s: %v", h.name, err)
		s.mu.Unlock()
		return nil, false
	}
	key := m.key()
	s.mu.Lock()
	s.manifests[key] = m
	s.mu.Unlock()
	args := []string{"-r", s.main.url, "--json", "backup", "--host", h.name, "--tag", "m-" + key}
	return append(append(args, extraTags...), h.tree.root), true
}

// noteBackup remembers the snapshot a successful backup reported: it
// must be in the main repository from now on (unless forget's policy
// removes it).
func (s *soak) noteBackup(h *host, res result) {
	if res.code != 0 {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(res.stdout))
	for sc.Scan() {
		var sum struct {
			MessageType string `json:"message_type"`
			SnapshotID  string `json:"snapshot_id"`
		}
		if json.Unmarshal(sc.Bytes(), &sum) == nil && sum.MessageType == "summary" && sum.SnapshotID != "" {
			s.mu.Lock()
			s.pending[sum.SnapshotID] = h.name
			s.mu.Unlock()
		}
	}
}

// judge checks a run's exit status: a run without faults must succeed,
// except that a conflicting lock held by a concurrent run is allowed when
// allowLocked; a full disk the repository grew into by itself is a fault
// of the environment, counted as such.
func (s *soak) judge(kind string, res result, plan faultPlan, allowLocked ...bool) bool {
	if res.code == 0 || plan.any() || res.hung {
		return res.code == 0
	}
	if res.code == 11 && len(allowLocked) > 0 && allowLocked[0] {
		return false
	}
	if bytes.Contains(res.stderr, []byte("no space left on device")) {
		s.mu.Lock()
		s.st.faults["disk full (repository grew into it) "+kind]++
		s.mu.Unlock()
		return false
	}
	s.unexpectedf("%s without faults failed: %s", kind, res)
	return false
}

// night runs the nightly jobs at simulated time at, then verifies.
func (s *soak) night(at time.Time) {
	s.sim = at
	s.mu.Lock()
	s.st.nights++
	s.mu.Unlock()
	s.logf("--- night of %s", at.Format("2006-01-02"))

	ev := s.nightEvents()
	s.logf("night events: %+v", ev)
	if !s.nightForget(ev) {
		return
	}

	// check --read-data-subset: one seventh of the packs a night.
	s.sim = s.sim.Add(20 * time.Minute)
	subset := fmt.Sprintf("%d/7", s.sim.YearDay()%7+1)
	plan := s.plan("check", 0.1, 0, 0)
	cres, probs := s.check(s.main, plan, "--read-data-subset", subset)
	if cres.code != 0 && plan.any() {
		cres, probs = s.check(s.main, noFaults, "--read-data-subset", subset)
	}
	if cres.code != 0 || len(damageOnly(probs)) > 0 {
		s.unexpectedf("check of the main repository found damage nobody injected: %s\n%s", cres, cres.stdout)
	}

	// Junk and fake key files, put by a client.
	if ev.junk {
		s.junkNight()
	}
	// Mirrors, with the network and the peer misbehaving; sometimes a
	// mirror killed in its log phase first, sometimes the main repository
	// damaged first.
	s.sim = s.sim.Add(20 * time.Minute)
	if ev.mirrorLogKill {
		s.killMirrorInLogPhase()
	}
	if ev.sourceDamage {
		s.damageSource(unindexed(probs))
		s.sim = s.sim.Add(10 * time.Minute)
	}
	s.mirror()

	// Damage to the copies, which check must name.
	for _, loc := range []*location{s.sftp, s.peer} {
		if s.rng.IntN(10) < 3 {
			s.damageCopy(loc)
		}
	}
	s.verifyNight()
}

// nightForget runs the night's forget --prune, sometimes while beta's
// backup runs, and accounts for what it removed; false when the night
// cannot go on.
func (s *soak) nightForget(ev nightEvents) bool {
	before, ok := s.accountMain()
	if !ok {
		return false
	}
	plan := s.plan("forget", 0.15, 0.12, 0.06)
	forgetArgs := append([]string{"-r", s.main.url, "forget", "--prune"}, s.policyArgs...)
	var res result
	if ev.overlap {
		res = s.forgetBesidePausedBackup(forgetArgs)
	} else if s.rng.IntN(6) == 0 {
		s.mutate(s.beta, 2)
		var wg sync.WaitGroup
		wg.Go(func() { res = s.run.run("forget", s.alpha, s.sim, plan, nil, forgetArgs...) })
		wg.Go(func() { s.backup(s.beta, noFaults, s.sim, true) })
		wg.Wait()
		s.judge("forget", res, plan, true)
	} else {
		res = s.run.run("forget", s.alpha, s.sim, plan, nil, forgetArgs...)
		s.judge("forget", res, plan)
	}
	if res.code != 0 {
		// The next run must clean up after the failed one.
		s.sim = s.sim.Add(10 * time.Minute)
		res = s.run.run("forget", s.alpha, s.sim, noFaults, nil, forgetArgs...)
		s.judge("forget", res, noFaults)
	}
	after, ok := s.listSnapshots(s.main)
	if !ok {
		return false
	}
	s.allowRemovals(before, after)
	if _, ok := s.accountMain(); !ok {
		return false
	}
	s.mu.Lock()
	s.st.maxRepoBytes = max(s.st.maxRepoBytes, dirSize(s.main.dir))
	s.mu.Unlock()
	return true
}

// verifyNight ends a night: it restores and compares every live
// snapshot, from every place, checks the copies, and forgets the
// manifests no snapshot anywhere refers to any more.
func (s *soak) verifyNight() {
	s.sim = s.sim.Add(20 * time.Minute)
	mainLive, ok := s.accountMain()
	if !ok {
		return
	}
	s.verifyLocation(s.main, mainLive)
	referenced := map[string]bool{}
	for _, sn := range mainLive {
		if _, key, ok := s.manifestOf(sn); ok {
			referenced[key] = true
		}
	}
	for _, loc := range []*location{s.sftp, s.peer} {
		cres, probs := s.check(loc, noFaults)
		if cres.code != 0 || len(damageOnly(probs)) > 0 {
			s.unexpectedf("check of %s found damage nobody injected: %s\n%s", loc.name, cres, cres.stdout)
		}
		live, ok := s.listSnapshots(loc)
		if !ok {
			continue
		}
		s.verifyLocation(loc, live)
		for _, sn := range live {
			if _, key, ok := s.manifestOf(sn); ok {
				referenced[key] = true
			}
		}
	}
	// Forget the manifests no snapshot anywhere refers to any more.
	s.mu.Lock()
	for key := range s.manifests {
		if !referenced[key] {
			delete(s.manifests, key)
		}
	}
	s.mu.Unlock()
}

// nightEvents are the faults of the new kinds a night gets.
type nightEvents struct {
	overlap       bool // forget --prune while beta's backup, clock off, holds its lock
	junk          bool // junk and fake key files put by a client
	sourceDamage  bool // the main repository damaged before mirror --prune
	mirrorLogKill bool // a mirror killed in its log phase
}

// nightEvents draws tonight's events. The first two nights get two kinds
// each, so that even a short run (make soak-ci: 16 cycles, two nights)
// has every kind.
func (s *soak) nightEvents() nightEvents {
	switch s.st.nights {
	case 1:
		return nightEvents{junk: true, mirrorLogKill: true}
	case 2:
		return nightEvents{overlap: true, sourceDamage: true}
	}
	return nightEvents{
		overlap:       s.rng.IntN(100) < 25,
		junk:          s.rng.IntN(100) < 25,
		sourceDamage:  s.rng.IntN(100) < 30,
		mirrorLogKill: s.rng.IntN(100) < 30,
	}
}

// mirror copies the repository to both copies, perhaps with faults, and
// again without faults when that failed; then each copy must hold exactly
// the main repository's live snapshots.
func (s *soak) mirror() {
	args := []string{"-r", s.main.url, "mirror", "--prune", s.sftp.url, s.peer.url}
	plan := s.plan("mirror", 0.15, 0.1, 0)
	cut := s.rng.IntN(10) < 3
	restart := s.rng.IntN(10) < 2
	for _, loc := range []*location{s.sftp, s.peer} {
		loc.proxy.setCutting(cut)
	}
	cutsBefore := s.sftp.proxy.cuts.Load() + s.peer.proxy.cuts.Load()
	var restarted sync.WaitGroup
	if restart {
		delay := time.Duration(s.rng.Int64N(int64(s.run.typicalDuration("mirror"))))
		sig := []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM}[s.rng.IntN(2)]
		restarted.Go(func() {
			time.Sleep(delay)
			if err := s.peerSrv.restart(sig); err != nil {
				s.unexpectedf("restarting the peer server: %v", err)
				return
			}
			s.mu.Lock()
			s.st.faults["peer server restarted ("+sig.String()+")"]++
			s.mu.Unlock()
		})
	}
	res := s.run.run("mirror", s.alpha, s.sim, plan, nil, args...)
	restarted.Wait()
	for _, loc := range []*location{s.sftp, s.peer} {
		loc.proxy.setCutting(false)
	}
	cuts := s.sftp.proxy.cuts.Load() + s.peer.proxy.cuts.Load() - cutsBefore
	s.mu.Lock()
	s.st.faults["tcp connection cut"] += int(cuts)
	s.mu.Unlock()
	if plan.any() || cut || restart {
		if res.code == 0 {
			return
		}
		s.sim = s.sim.Add(10 * time.Minute)
		res = s.run.run("mirror", s.alpha, s.sim, noFaults, nil, args...)
	}
	s.judge("mirror", res, noFaults)
}

// damageCopy damages one or two files of a copy, checks that check names
// them, then repairs the copy (removes the damaged files and mirrors).
func (s *soak) damageCopy(loc *location) {
	// The owner's client has read the copy before (so a deleted newest
	// log entry is a rollback it can tell), and it was sound.
	res, probs := s.check(loc, noFaults)
	if res.code != 0 || len(damageOnly(probs)) > 0 {
		s.unexpectedf("check of %s before damage found damage: %s\n%s", loc.name, res, res.stdout)
		return
	}
	before := unindexed(probs)
	covered, ok := s.coveredLog(loc)
	if !ok {
		return
	}
	dmg, err := s.injectDamage(loc.dir, 1+s.rng.IntN(2))
	if err != nil {
		s.mu.Lock()
		s.failf("SOAK BUG: damaging %s: %v", loc.name, err)
		s.mu.Unlock()
		return
	}
	if len(dmg) == 0 {
		return
	}
	s.logf("damaged %s: %v", loc.name, dmg)
	res, probs = s.check(loc, noFaults, "--read-data")
	s.judgeDamage(loc, loc.name, dmg, res, probs, before, covered, nil)
	if err := repairDamage(loc.dir, dmg); err != nil {
		s.mu.Lock()
		s.failf("SOAK BUG: repairing %s: %v", loc.name, err)
		s.mu.Unlock()
		return
	}
	res = s.run.run("mirror", s.alpha, s.sim, noFaults, nil, "-r", s.main.url, "mirror", "--prune", loc.url)
	s.judge("mirror", res, noFaults)
}

// logf writes a line to the run's log (and to stdout with -v).
func (s *soak) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.logFile != nil {
		fmt.Fprintln(s.logFile, line)
	}
	if s.cfg.verbose {
		fmt.Println(line)
	}
}

// failf records a failure of the run; s.mu must be held.
func (s *soak) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.failures = append(s.failures, msg)
	s.logf("FAILURE: %s", msg)
	if len(s.failures) <= 20 {
		fmt.Fprintf(os.Stderr, "soak: %s\n", msg)
	}
}

// lostf records a snapshot lost.
func (s *soak) lostf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.snapshotsLost++
	s.failf("LOST: "+format, args...)
}

// unexpectedf records a run that went wrong without a fault to explain it.
func (s *soak) unexpectedf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.unexpected++
	s.failf("UNEXPECTED: "+format, args...)
}

// report prints the figures and returns the exit status.
func (s *soak) report(real time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("")
	w("cairn soak: seed %d, %s real", s.cfg.seed, real.Round(time.Second))
	w("cycles run:            %d (%s to %s simulated, %d nights)", st.cycles,
		st.simStart.Format("2006-01-02"), st.simEnd.Format("2006-01-02"), st.nights)
	w("repository disk:       %s, %d MiB; largest repository %.1f MiB", s.disk.kind, s.cfg.diskMB, float64(st.maxRepoBytes)/(1<<20))
	w("commands run:          %s", countList(st.commands))
	var total int
	for _, n := range st.faults {
		total += n
	}
	w("faults injected:       %d", total)
	for _, k := range sortedKeys(st.faults) {
		w("  %-48s %d", k, st.faults[k])
	}
	ops := map[string]int{}
	for _, h := range []*host{s.alpha, s.beta} {
		for k, n := range h.tree.ops {
			ops[k] += n
		}
	}
	w("tree changes:          %s", countList(ops))
	w("snapshots verified:    %d (%s)", st.snapshotsVerified, countList(st.verifiedBy))
	w("bytes restored:        %d (%.1f GiB)", st.bytesRestored, float64(st.bytesRestored)/(1<<30))
	w("fault outcomes:")
	width := 0
	for k := range st.outcomes {
		width = max(width, len(k))
	}
	for _, k := range sortedKeys(st.outcomes) {
		w("  %-*s %d", width, k, st.outcomes[k])
	}
	w("damage injected:       %d, detected %d, harmless %d (deleted log entries a checkpoint covers)",
		st.damageInjected, st.damageDetected, st.damageHarmless)
	w("damage spread to copies: %d", st.damageSpread)
	w("forgotten snapshots listed by a copy after a killed mirror, without their pruned data: %d", st.forgottenListed)
	w("warnings in runs without faults: %d (and %d about the junk planted)", st.cleanWarnings, st.junkWarnings)
	w("snapshots lost:        %d", st.snapshotsLost)
	w("damage undetected:     %d", st.damageUndetected)
	w("panics:                %d", st.panics)
	w("other failures:        %d", len(s.failures)-st.snapshotsLost-st.damageUndetected-st.panics-st.damageSpread)
	fmt.Print(b.String())
	s.logf("%s", b.String())
	if len(s.failures) > 0 {
		fmt.Printf("FAIL: %d failures; see %s\n", len(s.failures), s.logFile.Name())
		return 1
	}
	if s.logFile != nil && !s.cfg.keep && s.cfg.dir == "" {
		_ = os.Remove(s.logFile.Name())
	}
	fmt.Println("PASS")
	return 0
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func countList(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
