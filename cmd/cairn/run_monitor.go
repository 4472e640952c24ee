package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/cmd/cairn/monitor"
	"github.com/cairn-backup/cairn/snapshot"
)

// runMirror is what the state dir keeps of one mirror destination, to
// tell its lag when a later mirror to it fails.
type runMirror struct {
	// LastSuccess is when the destination was last mirrored completely.
	LastSuccess string `json:"last_success,omitempty"`
	// LogEntries is how many log entries the repository had then (0:
	// not counted, the run wrote no metrics).
	LogEntries int `json:"log_entries,omitempty"`
}

// jobFacts are what the metrics need beyond the steps: the backup's
// summary, and the repository's figures after the job.
type jobFacts struct {
	backup     *snapshot.Summary
	snapshots  int
	repoBytes  int64
	logEntries int
	counted    bool // snapshots, repoBytes and logEntries were read
}

// maxFactsOutput caps what the in-process stats command may print: a
// single JSON object.
const maxFactsOutput = 64 << 10

// countFacts reads the repository's snapshot count, pack bytes and log
// entries after the job, without a lock (as "stats --no-lock" and "list
// log --no-lock" do). A failure is a warning: the metrics then report
// zeros for them.
func (j *job) countFacts(ctx context.Context) {
	var buf cappedBuffer
	buf.max = maxFactsOutput
	if err := j.inProcess(ctx, &buf, "stats", "--json", "--no-lock"); err != nil {
		fmt.Fprintf(j.log, "cairn: run %s: warning: metrics: stats: %s\n", j.name, escapeControl(err.Error()))
		return
	}
	var st struct {
		Snapshots int   `json:"snapshots_count"`
		PackBytes int64 `json:"total_pack_size"`
	}
	if err := json.Unmarshal(buf.buf.Bytes(), &st); err != nil {
		fmt.Fprintf(j.log, "cairn: run %s: warning: metrics: stats output: %v\n", j.name, err)
		return
	}
	var lines lineCounter
	if err := j.inProcess(ctx, &lines, "list", "log", "--no-lock"); err != nil {
		fmt.Fprintf(j.log, "cairn: run %s: warning: metrics: list log: %s\n", j.name, escapeControl(err.Error()))
		return
	}
	j.facts.snapshots, j.facts.repoBytes, j.facts.logEntries, j.facts.counted = st.Snapshots, st.PackBytes, int(lines), true
}

// inProcess runs "cairn CMD GLOBALS... ARGS..." with its output to out,
// its messages to the job's log.
func (j *job) inProcess(ctx context.Context, out interface{ Write([]byte) (int, error) }, cmd string, args ...string) error {
	sub := *j.e
	sub.stdout, sub.stderr, sub.onBackup, sub.stdinTTY = out, j.log, nil, false
	return runApp(ctx, sub.newApp(), append(append([]string{"cairn", cmd}, j.globals...), args...))
}

// lineCounter counts the lines written to it.
type lineCounter int

func (n *lineCounter) Write(p []byte) (int, error) {
	*n += lineCounter(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// trackMirrors updates the summary's mirror states from this run's
// steps, carrying over what the previous run's summary knew.
func (j *job) trackMirrors(prev map[string]runMirror) {
	j.sum.Mirrors = map[string]runMirror{}
	for _, dest := range j.p.Mirror {
		m := prev[dest]
		if st, ok := j.stepNamed("mirror:" + dest); ok && st.OK && !st.Skipped {
			m = runMirror{LastSuccess: j.sum.End, LogEntries: j.facts.logEntries}
		}
		j.sum.Mirrors[dest] = m
	}
}

func (j *job) stepNamed(name string) (runStep, bool) {
	for _, st := range j.sum.Steps {
		if st.Name == name {
			return st, true
		}
	}
	return runStep{}, false
}

// previousSummary reads the profile's last summary from the state dir;
// a missing or unreadable one reads as empty.
func previousSummary(dir, profile string) runSummary {
	var s runSummary
	b, err := os.ReadFile(filepath.Join(dir, "runs", profile+".json"))
	if err == nil {
		_ = json.Unmarshal(b, &s) // a damaged file is as good as none
	}
	return s
}

// monitorJob is the job as the monitor package reports it.
func (j *job) monitorJob() monitor.Job {
	end := j.end
	mj := monitor.Job{Profile: j.name, Start: j.start, End: end, OK: j.sum.OK, ExitCode: j.sum.ExitCode,
		Snapshots: j.facts.snapshots, RepoBytes: j.facts.repoBytes}
	for _, st := range j.sum.Steps {
		mj.Steps = append(mj.Steps, monitor.Step{Name: st.Name, OK: st.OK, Skipped: st.Skipped, Seconds: st.Seconds, Err: st.Error})
	}
	if b := j.facts.backup; b != nil {
		mj.FilesProcessed, mj.BytesProcessed = int64(b.TotalFilesProcessed), int64(b.TotalBytesProcessed)
		mj.FilesAdded, mj.BytesAdded = int64(b.FilesNew+b.FilesChanged), int64(b.DataAdded)
	}
	if st, ok := j.stepNamed("check"); ok && !st.Skipped {
		mj.CheckOK = &st.OK
	}
	for _, dest := range j.p.Mirror {
		st, _ := j.stepNamed("mirror:" + dest)
		m := monitor.Mirror{Dest: dest, OK: st.OK && !st.Skipped}
		if m.OK {
			m.LastSuccess = end
		} else {
			// Entries added since the destination was last complete (all
			// of them when it never was).
			m.LagEntries = max(j.facts.logEntries-j.sum.Mirrors[dest].LogEntries, 0)
		}
		mj.Mirrors = append(mj.Mirrors, m)
	}
	return mj
}

// report writes the metrics file and sends the end ping; their
// failures are warnings, never the job's.
func (j *job) report(ctx context.Context, pinger *monitor.Pinger) {
	if j.metricsFile != "" {
		if err := monitor.WriteMetrics(j.metricsFile, j.monitorJob()); err != nil {
			fmt.Fprintf(j.log, "cairn: run %s: warning: %s\n", j.name, escapeControl(err.Error()))
		}
	}
	if pinger == nil {
		return
	}
	var err error
	if j.code == 0 {
		err = pinger.Success(ctx)
	} else {
		err = pinger.Fail(ctx, j.log.Tail())
	}
	if err != nil {
		fmt.Fprintf(j.log, "cairn: run %s: warning: %s\n", j.name, escapeControl(err.Error()))
	}
}
