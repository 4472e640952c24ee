package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-backup/cairn/cmd/cairn/jobconf"
)

// The job's steps: what runs, what is skipped after which failure, and
// how the job ends.

// run runs the job's steps in order (see runCommand's description).
func (j *job) run(ctx context.Context) {
	j.start = j.e.now()
	j.sum = runSummary{Profile: j.name, Start: j.start.UTC().Format(timeRFC3339)}
	hooks := j.p.Hooks
	var jobHooks *jobconf.HookSet
	if hooks != nil {
		jobHooks = &hooks.HookSet
	}
	if jobHooks != nil && !j.runHook(ctx, "before", jobHooks.Before, hookResult{}) {
		j.code = exitHookBefore
		j.runAfterHooks(ctx, jobHooks, j.result())
		return
	}
	backup := j.step(ctx, "backup", "backup", j.p.BackupArgs())
	// The backup could not open the repository: forget, prune and check
	// would fail the same way (after as long a wait for a lock).
	noOpen := backup.ExitCode == exitNoRepo || backup.ExitCode == exitLocked || backup.ExitCode == exitWrongPass
	reason := fmt.Sprintf("skipped: the backup could not open the repository (exit %d)", backup.ExitCode)
	forgetOK := true
	if j.p.HasRetention() {
		if noOpen {
			j.skip("forget", reason)
			forgetOK = false
		} else {
			forgetOK = j.step(ctx, "forget", "forget", j.p.ForgetArgs()).OK
		}
	}
	j.prune(ctx, noOpen, forgetOK, reason)
	if noOpen {
		j.skip("check", reason)
	} else {
		j.step(ctx, "check", "check", j.p.CheckArgs())
	}
	for _, dest := range j.p.Mirror {
		if backup.ExitCode == exitNoRepo {
			j.skip("mirror:"+dest, reason)
			continue
		}
		j.step(ctx, "mirror:"+dest, "mirror", []string{"--", dest})
	}
	if jobHooks != nil && ctx.Err() == nil {
		j.runAfterHooks(ctx, jobHooks, j.result())
	}
}

// prune runs the prune step when prune-every says it is due: when the
// job that last pruned started at least prune-every ago, less a tenth, so
// that a daily job with prune-every = "1d" prunes every day though its
// start time wanders (a timer's randomized delay, a slow backup).
func (j *job) prune(ctx context.Context, noOpen, forgetOK bool, reason string) {
	if j.p.PruneEvery == "" {
		return
	}
	every, _ := jobconf.ParseEvery(j.p.PruneEvery) // checked by Validate
	dir := stateDir(j.e.getenv)
	last := lastPrune(dir, j.name)
	switch {
	case noOpen:
		j.skip("prune", reason)
	case !forgetOK:
		j.skip("prune", "skipped: forget failed")
	case !last.IsZero() && j.start.Sub(last) < every-every/10:
		j.sum.Steps = append(j.sum.Steps, runStep{Name: "prune", OK: true, Skipped: true})
	default:
		if j.step(ctx, "prune", "prune", nil).OK {
			if err := setLastPrune(dir, j.name, j.start); err != nil {
				fmt.Fprintf(j.log, "cairn: run %s: warning: %v (the next run prunes again)\n", j.name, err)
			}
		}
	}
	if t := lastPrune(dir, j.name); !t.IsZero() {
		j.sum.LastPrune = t.UTC().Format(timeRFC3339)
	}
}

// timeRFC3339 is the summary's time format.
const timeRFC3339 = "2006-01-02T15:04:05Z07:00"

// result is the job's result so far, for its after hooks.
func (j *job) result() hookResult {
	return hookResult{ran: true, ok: j.code == 0, exitCode: j.code, err: j.firstErr}
}

// skip records a step not run because an earlier one failed; an
// interrupted job records nothing more.
func (j *job) skip(name, reason string) {
	j.sum.Steps = append(j.sum.Steps, runStep{Name: name, Skipped: true, Error: reason})
}

// record adds a finished step (or hook) to the summary; the first
// failure sets the job's exit status (1 for a hook).
func (j *job) record(st runStep) {
	j.sum.Steps = append(j.sum.Steps, st)
	if st.OK || st.Skipped || j.code != 0 {
		return
	}
	j.code, j.firstErr = st.ExitCode, st.Name+": "+st.Error
	if strings.HasPrefix(st.Name, "hook:") {
		j.code, j.firstErr = exitError, st.Error
	}
}

// step runs one command of the job in this process, as "cairn CMD
// GLOBALS... ARGS..." would run, between the step's hooks.
func (j *job) step(ctx context.Context, name, cmd string, args []string) runStep {
	if ctx.Err() != nil {
		st := runStep{Name: name, Skipped: true, Error: "skipped: interrupted"}
		j.sum.Steps = append(j.sum.Steps, st)
		if j.code == 0 {
			j.code, j.firstErr = exitInterrupted, "interrupted"
		}
		return st
	}
	base, _, _ := strings.Cut(name, ":")
	hooks := j.p.Hooks.Step(base)
	if hooks != nil && !j.runHook(ctx, "before", hooks.Before, hookResult{step: name}) {
		st := runStep{Name: name, Skipped: true, Error: "skipped: its before hook failed"}
		j.sum.Steps = append(j.sum.Steps, st)
		return st
	}
	if !globalQuiet(j.globals) {
		fmt.Fprintf(j.out, "cairn run %s: %s\n", j.name, escapeControl(name))
	}
	sub := *j.e
	sub.stdout, sub.stderr = j.out, j.log
	// A job never prompts: each step would ask again.
	sub.stdinTTY = false
	argv := append(append([]string{"cairn", cmd}, j.globals...), args...)
	start := j.e.now()
	err := runApp(ctx, sub.newApp(), argv)
	st := runStep{Name: name, OK: err == nil, ExitCode: exitCode(err, ctx.Err() != nil), Seconds: j.e.now().Sub(start).Seconds()}
	if err != nil {
		st.Error = escapeControl(err.Error())
		printError(j.log, fmt.Errorf("run %s: %s: %w", j.name, name, err), ctx.Err() != nil)
	}
	j.record(st)
	j.runAfterHooks(ctx, hooks, hookResult{step: name, ran: true, ok: st.OK, exitCode: st.ExitCode, err: st.Error})
	return st
}

func globalQuiet(args []string) bool {
	for _, a := range args {
		if a == "--quiet" {
			return true
		}
	}
	return false
}

// finish ends the job: the summary printed and kept in the state dir,
// and the job's error carrying its exit status.
func (j *job) finish(asJSON bool, prevMirrors map[string]runMirror) error {
	j.end = j.e.now()
	j.sum.End = j.end.UTC().Format(timeRFC3339)
	j.sum.OK, j.sum.ExitCode = j.code == 0, j.code
	j.trackMirrors(prevMirrors)
	if err := writeRunSummary(stateDir(j.e.getenv), j.sum); err != nil {
		fmt.Fprintf(j.log, "cairn: run %s: warning: %v\n", j.name, err)
	}
	if asJSON {
		(&printer{out: j.e.stdout, json: true}).JSON(j.sum)
	} else if !globalQuiet(j.globals) {
		printRunSummary(j.e.stdout, j.sum)
	}
	if j.code == 0 {
		return nil
	}
	return &runError{code: j.code, msg: fmt.Sprintf("run %s: %s", j.name, j.firstErr)}
}

// printRunSummary prints one line per step.
func printRunSummary(w io.Writer, s runSummary) {
	fmt.Fprintf(w, "cairn run %s: ", s.Profile)
	if s.OK {
		fmt.Fprintln(w, "ok")
	} else {
		fmt.Fprintf(w, "failed (exit status %d)\n", s.ExitCode)
	}
	for _, st := range s.Steps {
		state := "ok"
		switch {
		case st.Skipped && st.OK:
			state = "not due"
		case st.Skipped:
			state = "skipped"
		case !st.OK:
			state = fmt.Sprintf("FAILED (%d)", st.ExitCode)
		}
		fmt.Fprintf(w, "  %-32s %-12s %7.1fs\n", escapeControl(st.Name), state, st.Seconds)
	}
}
