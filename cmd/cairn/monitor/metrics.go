package monitor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Job is what one run of a profile did, as the metrics file and the ping
// report it. Zero values mean "not done": a job without a mirror step has
// no Mirrors, one without a check step a nil CheckOK.
type Job struct {
	// Profile names the job; it is the profile label of every metric.
	Profile string
	// Start and End bound the run; End-Start is the duration.
	Start, End time.Time
	// OK is true when every step succeeded; ExitCode is the run's.
	OK       bool
	ExitCode int
	// Steps are the run's steps in the order they ran.
	Steps []Step
	// FilesProcessed and BytesProcessed count what the backup read,
	// FilesAdded and BytesAdded what it stored as new.
	FilesProcessed, BytesProcessed, FilesAdded, BytesAdded int64
	// Snapshots is the repository's snapshot count after the run, and
	// RepoBytes the size of its packs.
	Snapshots int
	RepoBytes int64
	// Mirrors has one entry per mirror destination.
	Mirrors []Mirror
	// CheckOK is the check step's result, nil when no check ran.
	CheckOK *bool
}

// Step is one step of a run: backup, forget, prune, check, mirror:DEST or
// a hook.
type Step struct {
	Name    string
	OK      bool
	Skipped bool
	Seconds float64
	// Err is the step's error, one line, empty when OK.
	Err string
}

// Mirror is one mirror destination's state after the run.
type Mirror struct {
	// Dest names the destination as the profile does (its location
	// string with any password removed).
	Dest string
	OK   bool
	// LastSuccess is when this destination was last mirrored completely;
	// zero when the caller does not know, in which case the metrics file
	// keeps the time it held before (on success the caller passes the
	// job's end).
	LastSuccess time.Time
	// LagEntries is how many log entries the destination is behind the
	// source after the run (0 when up to date).
	LagEntries int
}

// Metric names written by WriteMetrics. Each sample carries a profile
// label; the step metrics add step, the mirror metrics destination.
const (
	metricLastRun        = "cairn_job_last_run_timestamp_seconds"
	metricLastSuccess    = "cairn_job_last_success_timestamp_seconds"
	metricSuccess        = "cairn_job_success"
	metricExitCode       = "cairn_job_exit_code"
	metricDuration       = "cairn_job_duration_seconds"
	metricStepSuccess    = "cairn_step_success"
	metricStepSkipped    = "cairn_step_skipped"
	metricStepDuration   = "cairn_step_duration_seconds"
	metricFilesProcessed = "cairn_backup_processed_files"
	metricBytesProcessed = "cairn_backup_processed_bytes"
	metricFilesAdded     = "cairn_backup_added_files"
	metricBytesAdded     = "cairn_backup_added_bytes"
	metricSnapshots      = "cairn_repository_snapshots"
	metricRepoBytes      = "cairn_repository_size_bytes"
	metricMirrorSuccess  = "cairn_mirror_success"
	metricMirrorLast     = "cairn_mirror_last_success_timestamp_seconds"
	metricMirrorLag      = "cairn_mirror_lag_entries"
	metricCheckSuccess   = "cairn_check_success"
)

// maxPreviousFile caps how much of an existing metrics file WriteMetrics
// reads back for the previous success times: ours are a few KB.
const maxPreviousFile = 1 << 20

// WriteMetrics writes j to path in the Prometheus text exposition format,
// atomically: a temporary file in path's folder is written, synced and
// renamed over path, so a collector never reads a partial file. The file
// holds one profile's metrics (give each profile its own file, named
// *.prom for node_exporter's textfile collector).
//
// A failed job keeps the last success time (of the job and of each mirror
// whose LastSuccess is zero) that the existing file at path held.
func WriteMetrics(path string, j Job) error {
	prev, err := readPrevious(path)
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	var b bytes.Buffer
	writeJobMetrics(&b, j, prev)
	if err := writeAtomic(path, b.Bytes()); err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	return nil
}

// family is one metric family being written: its samples must be
// contiguous in the file, after one HELP and one TYPE line.
type family struct {
	w    *bytes.Buffer
	name string
}

func newFamily(w *bytes.Buffer, name, help string) family {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	return family{w: w, name: name}
}

func (f family) sample(labels []string, v string) {
	f.w.WriteString(sampleKey(f.name, labels))
	f.w.WriteByte(' ')
	f.w.WriteString(v)
	f.w.WriteByte('\n')
}

// sampleKey is a sample's name and label set as the file spells it, which
// is also how readPrevious finds it again. labels alternate name, value.
func sampleKey(name string, labels []string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(labels[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func intValue(v int64) string { return strconv.FormatInt(v, 10) }

func boolValue(ok bool) string {
	if ok {
		return "1"
	}
	return "0"
}

// timeValue is t in Unix seconds, with milliseconds; 0 for the zero time.
func timeValue(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

func secondsValue(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }

func writeJobMetrics(w *bytes.Buffer, j Job, prev map[string]string) {
	p := []string{"profile", j.Profile}
	newFamily(w, metricLastRun, "End of the profile's last run, Unix seconds.").sample(p, timeValue(j.End))
	last := timeValue(j.End)
	if !j.OK {
		last = previousOr(prev, sampleKey(metricLastSuccess, p), "0")
	}
	newFamily(w, metricLastSuccess, "End of the profile's last successful run, Unix seconds (0: none known).").sample(p, last)
	newFamily(w, metricSuccess, "1 if the last run succeeded, else 0.").sample(p, boolValue(j.OK))
	newFamily(w, metricExitCode, "Exit code of the last run.").sample(p, intValue(int64(j.ExitCode)))
	newFamily(w, metricDuration, "Duration of the last run.").sample(p, secondsValue(j.End.Sub(j.Start).Seconds()))
	writeStepMetrics(w, j)
	newFamily(w, metricFilesProcessed, "Files the last run's backup read.").sample(p, intValue(j.FilesProcessed))
	newFamily(w, metricBytesProcessed, "Bytes the last run's backup read.").sample(p, intValue(j.BytesProcessed))
	newFamily(w, metricFilesAdded, "New files the last run's backup stored.").sample(p, intValue(j.FilesAdded))
	newFamily(w, metricBytesAdded, "New bytes the last run's backup stored.").sample(p, intValue(j.BytesAdded))
	newFamily(w, metricSnapshots, "Snapshots in the repository after the last run.").sample(p, intValue(int64(j.Snapshots)))
	newFamily(w, metricRepoBytes, "Size of the repository's packs after the last run.").sample(p, intValue(j.RepoBytes))
	writeMirrorMetrics(w, j, prev)
	if j.CheckOK != nil {
		newFamily(w, metricCheckSuccess, "1 if the last run's check found no damage, else 0.").sample(p, boolValue(*j.CheckOK))
	}
}

func writeStepMetrics(w *bytes.Buffer, j Job) {
	if len(j.Steps) == 0 {
		return
	}
	labels := func(s Step) []string { return []string{"profile", j.Profile, "step", s.Name} }
	f := newFamily(w, metricStepSuccess, "1 if the step succeeded in the last run, else 0.")
	for _, s := range j.Steps {
		f.sample(labels(s), boolValue(s.OK))
	}
	f = newFamily(w, metricStepSkipped, "1 if the step was skipped in the last run, else 0.")
	for _, s := range j.Steps {
		f.sample(labels(s), boolValue(s.Skipped))
	}
	f = newFamily(w, metricStepDuration, "Duration of the step in the last run.")
	for _, s := range j.Steps {
		f.sample(labels(s), secondsValue(s.Seconds))
	}
}

func writeMirrorMetrics(w *bytes.Buffer, j Job, prev map[string]string) {
	if len(j.Mirrors) == 0 {
		return
	}
	ms := append([]Mirror(nil), j.Mirrors...)
	sort.SliceStable(ms, func(a, b int) bool { return ms[a].Dest < ms[b].Dest })
	labels := func(m Mirror) []string { return []string{"profile", j.Profile, "destination", m.Dest} }
	f := newFamily(w, metricMirrorSuccess, "1 if the last run mirrored to the destination completely, else 0.")
	for _, m := range ms {
		f.sample(labels(m), boolValue(m.OK))
	}
	f = newFamily(w, metricMirrorLast, "When the destination was last mirrored completely, Unix seconds (0: none known).")
	for _, m := range ms {
		v := timeValue(m.LastSuccess)
		if m.LastSuccess.IsZero() {
			v = previousOr(prev, sampleKey(metricMirrorLast, labels(m)), "0")
		}
		f.sample(labels(m), v)
	}
	f = newFamily(w, metricMirrorLag, "Log entries the destination is behind the repository after the last run.")
	for _, m := range ms {
		f.sample(labels(m), intValue(int64(m.LagEntries)))
	}
}

func previousOr(prev map[string]string, key, def string) string {
	if v, ok := prev[key]; ok {
		return v
	}
	return def
}

// readPrevious reads the success times of an existing metrics file at
// path: sample key (as sampleKey spells it) to value. A missing file gives
// an empty map; so do lines it does not understand, which are skipped.
func readPrevious(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parsePrevious(io.LimitReader(f, maxPreviousFile))
}

// parsePrevious keeps the samples of the last-success metrics whose value
// is a finite, non-negative number, as written by timeValue.
func parsePrevious(r io.Reader) (map[string]string, error) {
	prev := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metricLastSuccess+"{") && !strings.HasPrefix(line, metricMirrorLast+"{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil || v < 0 || v > 1e12 {
			continue
		}
		prev[line[:i]] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	if err := sc.Err(); err != nil && err != bufio.ErrTooLong {
		return nil, err
	}
	return prev, nil
}

// writeAtomic replaces path with data: a temporary file in the same folder
// is written, synced, made world-readable (a collector usually runs as
// another user) and renamed over path, then the folder is synced.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err = d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
