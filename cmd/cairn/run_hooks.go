package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/cmd/cairn/jobconf"
)

// hookResult is what a hook is told, in its environment, about what it
// follows: the job's or the step's result so far.
type hookResult struct {
	step     string // "" for the job's own hooks
	ran      bool   // false for before hooks: nothing to report yet
	ok       bool
	exitCode int
	err      string
}

// hookEnv is the environment a hook adds to the job's: CAIRN_PROFILE,
// CAIRN_STEP (empty for the job's own hooks), CAIRN_HOOK, and after a
// job or step ran, CAIRN_RESULT (success or failure), CAIRN_EXIT_CODE
// and CAIRN_ERROR (the first error, empty on success).
func (j *job) hookEnv(kind string, r hookResult) []string {
	env := []string{"CAIRN_PROFILE=" + j.name, "CAIRN_STEP=" + r.step, "CAIRN_HOOK=" + kind}
	if r.ran {
		result := "success"
		if !r.ok {
			result = "failure"
		}
		env = append(env, "CAIRN_RESULT="+result, "CAIRN_EXIT_CODE="+strconv.Itoa(r.exitCode), "CAIRN_ERROR="+r.err)
	}
	return env
}

// hookTimeout is the profile's hook-timeout, else the default.
func (j *job) hookTimeout() time.Duration {
	if d, err := time.ParseDuration(j.p.HookTimeout); err == nil && d > 0 {
		return d
	}
	return jobconf.DefaultHookTimeout
}

// runHook runs one hook command with sh -c, its output going to the
// job's log, and records it as the step "hook:[STEP:]KIND". A hook that
// outlives hook-timeout is killed with its process group. It returns
// whether the hook succeeded; an empty command is not run (true).
func (j *job) runHook(ctx context.Context, kind, command string, r hookResult) bool {
	if command == "" {
		return true
	}
	name := "hook:" + kind
	if r.step != "" {
		name = "hook:" + r.step + ":" + kind
	}
	start := j.e.now()
	timeout := j.hookTimeout()
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(), j.hookEnv(kind, r)...)
	cmd.Stdout, cmd.Stderr = j.log, j.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child the hook left running may hold the log pipe open: stop
	// waiting for it soon after the hook itself ended.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	st := runStep{Name: name, OK: err == nil, Seconds: j.e.now().Sub(start).Seconds()}
	if err != nil {
		var ee *exec.ExitError
		st.ExitCode = exitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			st.ExitCode = ee.ExitCode()
		}
		st.Error = fmt.Sprintf("%s hook: %v", kind, err)
		if errors.Is(hctx.Err(), context.DeadlineExceeded) {
			st.Error = fmt.Sprintf("%s hook: killed after hook-timeout %s", kind, timeout)
		}
		fmt.Fprintf(j.log, "cairn: run %s: %s\n", j.name, escapeControl(st.Error))
	}
	j.record(st)
	return err == nil
}

// runAfterHooks runs on-success or on-failure, then after, for a job
// or a step that ran with result r.
func (j *job) runAfterHooks(ctx context.Context, h *jobconf.HookSet, r hookResult) {
	if h == nil {
		return
	}
	if r.ok {
		j.runHook(ctx, "on-success", h.OnSuccess, r)
	} else {
		j.runHook(ctx, "on-failure", h.OnFailure, r)
	}
	j.runHook(ctx, "after", h.After, r)
}
