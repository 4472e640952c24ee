package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// host is one machine backing up into the repository: its device
// identity (config dir), cache and tree.
type host struct {
	name      string
	configDir string
	cacheDir  string
	tree      *tree
}

// faultPlan says which faults one command run gets. It is drawn in the
// main goroutine (the random source is not shared), then the run may go
// on another.
type faultPlan struct {
	// killAfter, when positive, is when the command gets SIGKILL.
	killAfter time.Duration
	// ioSeed and ioRate, when ioRate > 0, turn on the binary's random
	// backend faults.
	ioSeed uint64
	ioRate float64
	// diskFree, when non-negative, fills the repository's disk so that
	// only this many bytes stay free while the command runs.
	diskFree int64
}

func (p faultPlan) any() bool { return p.killAfter > 0 || p.ioRate > 0 || p.diskFree >= 0 }

var noFaults = faultPlan{diskFree: -1}

// result is how one command run went.
type result struct {
	args   []string
	code   int // -1 when killed by a signal
	killed bool
	hung   bool
	stdout []byte
	stderr []byte
	dur    time.Duration
	// ioFaults are the lines the fault injector logged.
	ioFaults []string
}

func (r result) String() string {
	return fmt.Sprintf("cairn %s: exit %d (killed %v, %v)\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.killed, r.dur.Round(time.Millisecond), r.stderr)
}

// panicRE recognises a Go panic or runtime crash in a command's output.
var panicRE = regexp.MustCompile(`(?m)^(panic: |fatal error: |goroutine \d+ \[)`)

// runner runs the cairn binary.
type runner struct {
	s   *soak
	bin string
	// env is what every run gets.
	env []string

	mu      sync.Mutex // guards typical
	typical map[string]time.Duration
}

// typicalDuration is an average of kind's runs that were not killed, for
// choosing kill moments; a first guess before any.
func (r *runner) typicalDuration(kind string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.typical[kind]; ok {
		return d
	}
	return 300 * time.Millisecond
}

func (r *runner) record(kind string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.typical[kind]; ok {
		d = (old*7 + d) / 8
	}
	r.typical[kind] = d
}

// run runs cairn with args as host h (nil: the verifier's dirs given in
// extraEnv) at simulated time at, with the faults of plan. kind names the
// command for statistics.
func (r *runner) run(kind string, h *host, at time.Time, plan faultPlan, extraEnv []string, args ...string) result {
	s := r.s
	env := append(cloneStrings(r.env), extraEnv...)
	if h != nil {
		env = append(env, "CAIRN_CONFIG_DIR="+h.configDir, "CAIRN_CACHE_DIR="+h.cacheDir)
	}
	env = append(env, "CAIRN_TESTONLY_CLOCK_SHIFT="+time.Until(at).Round(time.Millisecond).String())
	var faultLog string
	if plan.ioRate > 0 {
		f, err := os.CreateTemp(s.dir, "faults-*.log")
		if err == nil {
			faultLog = f.Name()
			_ = f.Close()
			defer os.Remove(faultLog)
		}
		env = append(env, fmt.Sprintf("CAIRN_TESTONLY_FAULTS=seed=%d,rate=%g,log=%s", plan.ioSeed, plan.ioRate, faultLog))
	}
	if plan.diskFree >= 0 {
		release := s.disk.fill(plan.diskFree)
		defer release()
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	res := result{args: args}
	if err := cmd.Start(); err != nil {
		res.code, res.stderr = -2, []byte(err.Error())
		return res
	}
	var exitMu sync.Mutex // guards exited
	exited := false
	var killTimer *time.Timer
	if plan.killAfter > 0 {
		killTimer = time.AfterFunc(plan.killAfter, func() {
			exitMu.Lock()
			defer exitMu.Unlock()
			if !exited {
				_ = cmd.Process.Signal(syscall.SIGKILL) // it may have exited meanwhile
			}
		})
	}
	err := cmd.Wait()
	exitMu.Lock()
	exited = true
	exitMu.Unlock()
	if killTimer != nil {
		killTimer.Stop()
	}
	res.dur = time.Since(start)
	res.stdout, res.stderr = stdout.Bytes(), stderr.Bytes()
	res.code = cmd.ProcessState.ExitCode()
	res.hung = ctx.Err() != nil
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !res.hung {
		res.stderr = append(res.stderr, []byte("\nsoak: "+err.Error())...)
	}
	// Killed means our SIGKILL ended it: the wait status says so, not a
	// flag set when the signal was sent, which may have found it exiting.
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && !res.hung {
		res.killed = true
	}
	if faultLog != "" {
		if b, err := os.ReadFile(faultLog); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if line != "" {
					res.ioFaults = append(res.ioFaults, line)
				}
			}
		}
	}
	if !res.killed && !res.hung && plan.ioRate == 0 && plan.diskFree < 0 {
		r.record(kind, res.dur)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.commands[kind]++
	if res.killed {
		s.st.faults["kill -9 "+kind]++
	}
	for _, f := range res.ioFaults {
		fields := strings.Fields(f)
		if len(fields) >= 2 {
			s.st.faults["io "+fields[0]+" "+fields[1]]++
		}
	}
	if res.hung {
		s.failf("HANG: %s", res)
	}
	if panicRE.Match(res.stderr) || panicRE.Match(res.stdout) {
		s.st.panics++
		s.failf("PANIC: %s", res)
	}
	s.logf("%s %s -> %d%s%s (%v)", at.Format("2006-01-02 15:04"), strings.Join(args, " "), res.code,
		map[bool]string{true: " killed"}[res.killed], faultNote(plan, res), res.dur.Round(time.Millisecond))
	return res
}

func faultNote(p faultPlan, r result) string {
	var parts []string
	if p.ioRate > 0 {
		parts = append(parts, fmt.Sprintf("%d io faults", len(r.ioFaults)))
	}
	if p.diskFree >= 0 {
		parts = append(parts, fmt.Sprintf("disk full (%d KiB free)", p.diskFree>>10))
	}
	if len(parts) == 0 {
		return ""
	}
	return " [" + strings.Join(parts, ", ") + "]"
}

func cloneStrings(s []string) []string { return append([]string(nil), s...) }
