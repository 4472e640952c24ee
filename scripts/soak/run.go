package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	// skew is how far the host's clock is off: its runs get the
	// simulated time plus skew.
	skew time.Duration
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
	return r.start(kind, h, at, plan, extraEnv, "", args...).wait()
}

// running is a cairn run started by runner.start.
type running struct {
	r         *runner
	kind      string
	at        time.Time
	plan      faultPlan
	args      []string
	cmd       *exec.Cmd
	ctx       context.Context
	cancel    context.CancelFunc
	started   time.Time
	startErr  error
	faultLog  string
	release   func()
	killTimer *time.Timer
	stdout    bytes.Buffer
	stderr    *watchedBuffer
	stdin     io.WriteCloser // nil unless start was given a marker

	exitMu sync.Mutex // guards exited
	exited bool
}

// watchedBuffer collects a command's stderr and closes seen when a line
// containing marker has arrived. Written by exec's copying goroutine,
// read after the command has exited.
type watchedBuffer struct {
	mu     sync.Mutex // guards buf and found
	buf    bytes.Buffer
	marker []byte
	found  bool
	seen   chan struct{}
}

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if !w.found && len(w.marker) > 0 && bytes.Contains(w.buf.Bytes(), w.marker) {
		w.found = true
		close(w.seen)
	}
	return n, err
}

func (w *watchedBuffer) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// start starts cairn as run does, without waiting for it. With a marker,
// the command's standard input is a pipe (for a test-only pause that
// waits for a line) and paused() is closed once stderr shows the marker.
func (r *runner) start(kind string, h *host, at time.Time, plan faultPlan, extraEnv []string, marker string, args ...string) *running {
	s := r.s
	env := append(cloneStrings(r.env), extraEnv...)
	if h != nil {
		env = append(env, "CAIRN_CONFIG_DIR="+h.configDir, "CAIRN_CACHE_DIR="+h.cacheDir)
	}
	env = append(env, "CAIRN_TESTONLY_CLOCK_SHIFT="+time.Until(at).Round(time.Millisecond).String())
	rn := &running{r: r, kind: kind, at: at, plan: plan, args: args,
		stderr: &watchedBuffer{marker: []byte(marker), seen: make(chan struct{})}}
	if plan.ioRate > 0 {
		f, err := os.CreateTemp(s.dir, "faults-*.log")
		if err == nil {
			rn.faultLog = f.Name()
			_ = f.Close()
		}
		env = append(env, fmt.Sprintf("CAIRN_TESTONLY_FAULTS=seed=%d,rate=%g,log=%s", plan.ioSeed, plan.ioRate, rn.faultLog))
	}
	if plan.diskFree >= 0 {
		rn.release = s.disk.fill(plan.diskFree)
	}

	rn.ctx, rn.cancel = context.WithTimeout(context.Background(), s.cfg.timeout)
	rn.cmd = exec.CommandContext(rn.ctx, r.bin, args...)
	rn.cmd.Env = env
	rn.cmd.Stdout, rn.cmd.Stderr = &rn.stdout, rn.stderr
	rn.cmd.WaitDelay = 5 * time.Second
	if marker != "" {
		var err error
		if rn.stdin, err = rn.cmd.StdinPipe(); err != nil {
			rn.startErr = err
			return rn
		}
	}
	rn.started = time.Now()
	if err := rn.cmd.Start(); err != nil {
		rn.startErr = err
		return rn
	}
	if plan.killAfter > 0 {
		rn.killTimer = time.AfterFunc(plan.killAfter, rn.kill)
	}
	return rn
}

// paused is closed when the marker given to start shows on stderr.
func (rn *running) paused() <-chan struct{} { return rn.stderr.seen }

// kill sends SIGKILL unless the command has exited.
func (rn *running) kill() {
	rn.exitMu.Lock()
	defer rn.exitMu.Unlock()
	if !rn.exited && rn.cmd.Process != nil {
		_ = rn.cmd.Process.Signal(syscall.SIGKILL) // it may have exited meanwhile
	}
}

// resume sends a line on standard input (a test-only pause goes on).
func (rn *running) resume() {
	if rn.stdin != nil {
		_, _ = io.WriteString(rn.stdin, "\n")
		_ = rn.stdin.Close()
	}
}

// wait waits for the command and records how it went.
func (rn *running) wait() result {
	r, s := rn.r, rn.r.s
	res := result{args: rn.args}
	defer rn.cancel()
	if rn.release != nil {
		defer rn.release()
	}
	if rn.faultLog != "" {
		defer os.Remove(rn.faultLog)
	}
	if rn.startErr != nil {
		res.code, res.stderr = -2, []byte(rn.startErr.Error())
		return res
	}
	err := rn.cmd.Wait()
	rn.exitMu.Lock()
	rn.exited = true
	rn.exitMu.Unlock()
	if rn.killTimer != nil {
		rn.killTimer.Stop()
	}
	res.dur = time.Since(rn.started)
	res.stdout, res.stderr = rn.stdout.Bytes(), rn.stderr.bytes()
	res.code = rn.cmd.ProcessState.ExitCode()
	res.hung = rn.ctx.Err() != nil
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !res.hung {
		res.stderr = append(res.stderr, []byte("\nsoak: "+err.Error())...)
	}
	// Killed means a SIGKILL of ours ended it: the wait status says so,
	// not a flag set when the signal was sent, which may have found it
	// exiting.
	if ws, ok := rn.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && !res.hung {
		res.killed = true
	}
	if rn.faultLog != "" {
		if b, err := os.ReadFile(rn.faultLog); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if line != "" {
					res.ioFaults = append(res.ioFaults, line)
				}
			}
		}
	}
	plan := rn.plan
	if !res.killed && !res.hung && plan.ioRate == 0 && plan.diskFree < 0 && rn.stdin == nil {
		r.record(rn.kind, res.dur)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.commands[rn.kind]++
	if res.killed && plan.killAfter > 0 {
		s.st.faults["kill -9 "+rn.kind]++
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
	s.logf("%s %s -> %d%s%s (%v)", rn.at.Format("2006-01-02 15:04"), strings.Join(rn.args, " "), res.code,
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
