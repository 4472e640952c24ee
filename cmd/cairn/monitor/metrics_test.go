package monitor

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics parses a metrics file with Prometheus's own text parser.
func parseMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, data)
	}
	return fams
}

// value is the gauge value of the sample of name whose labels include want
// (name, value pairs); it fails the test unless exactly one matches.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	if f.GetType() != dto.MetricType_GAUGE {
		t.Fatalf("%s is %v, want a gauge", name, f.GetType())
	}
	var found []float64
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				match = false
			}
		}
		if match {
			found = append(found, m.GetGauge().GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d samples, want 1", name, want, len(found))
	}
	return found[0]
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.001 }

func sampleJob() Job {
	start := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	checkOK := true
	return Job{
		Profile:  `home "main"`,
		Start:    start,
		End:      start.Add(95*time.Second + 250*time.Millisecond),
		OK:       true,
		ExitCode: 0,
		Steps: []Step{
			{Name: "backup", OK: true, Seconds: 60.5},
			{Name: "prune", Skipped: true},
			{Name: "mirror:sftp:alice@host:/srv/cairn", OK: true, Seconds: 30},
		},
		FilesProcessed: 12345,
		BytesProcessed: 9876543210,
		FilesAdded:     17,
		BytesAdded:     1048576,
		Snapshots:      42,
		RepoBytes:      123456789012,
		Mirrors: []Mirror{
			{Dest: "sftp:alice@host:/srv/cairn", OK: true, LastSuccess: start.Add(95*time.Second + 250*time.Millisecond)},
			{Dest: "peer:bob.example:7474/home", OK: false, LagEntries: 3},
		},
		CheckOK: &checkOK,
	}
}

func TestWriteMetricsParsesAndMatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cairn.prom")
	j := sampleJob()
	if err := WriteMetrics(path, j); err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, path)
	p := []string{"profile", j.Profile}
	end := float64(j.End.UnixMilli()) / 1000
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{metricLastRun, p, end},
		{metricLastSuccess, p, end},
		{metricSuccess, p, 1},
		{metricExitCode, p, 0},
		{metricDuration, p, 95.25},
		{metricFilesProcessed, p, 12345},
		{metricBytesProcessed, p, 9876543210},
		{metricFilesAdded, p, 17},
		{metricBytesAdded, p, 1048576},
		{metricSnapshots, p, 42},
		{metricRepoBytes, p, 123456789012},
		{metricCheckSuccess, p, 1},
		{metricStepSuccess, append(p, "step", "backup"), 1},
		{metricStepDuration, append(p, "step", "backup"), 60.5},
		{metricStepSkipped, append(p, "step", "prune"), 1},
		{metricStepSuccess, append(p, "step", "prune"), 0},
		{metricMirrorSuccess, append(p, "destination", "sftp:alice@host:/srv/cairn"), 1},
		{metricMirrorLast, append(p, "destination", "sftp:alice@host:/srv/cairn"), end},
		{metricMirrorLag, append(p, "destination", "sftp:alice@host:/srv/cairn"), 0},
		{metricMirrorSuccess, append(p, "destination", "peer:bob.example:7474/home"), 0},
		{metricMirrorLast, append(p, "destination", "peer:bob.example:7474/home"), 0},
		{metricMirrorLag, append(p, "destination", "peer:bob.example:7474/home"), 3},
	} {
		if got := value(t, fams, c.name, c.labels...); !near(got, c.want) {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("metrics file mode %v, want 0644 (a collector runs as another user)", st.Mode().Perm())
	}
}

// A failed run keeps the previous success times, read back from the file.
func TestWriteMetricsFailureKeepsLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cairn.prom")
	ok := sampleJob()
	if err := WriteMetrics(path, ok); err != nil {
		t.Fatal(err)
	}
	failed := sampleJob()
	failed.Start = ok.End.Add(time.Hour)
	failed.End = failed.Start.Add(10 * time.Second)
	failed.OK = false
	failed.ExitCode = 3
	failed.Mirrors[0].OK = false
	failed.Mirrors[0].LastSuccess = time.Time{}
	checkFailed := false
	failed.CheckOK = &checkFailed
	if err := WriteMetrics(path, failed); err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, path)
	p := []string{"profile", ok.Profile}
	okEnd := float64(ok.End.UnixMilli()) / 1000
	if got := value(t, fams, metricLastSuccess, p...); !near(got, okEnd) {
		t.Errorf("last success after a failure = %v, want the earlier %v", got, okEnd)
	}
	if got := value(t, fams, metricLastRun, p...); !near(got, float64(failed.End.UnixMilli())/1000) {
		t.Errorf("last run = %v, want the failed run's end", got)
	}
	if got := value(t, fams, metricExitCode, p...); got != 3 {
		t.Errorf("exit code %v, want 3", got)
	}
	if got := value(t, fams, metricCheckSuccess, p...); got != 0 {
		t.Errorf("check success %v, want 0", got)
	}
	d := append(p, "destination", "sftp:alice@host:/srv/cairn")
	if got := value(t, fams, metricMirrorLast, d...); !near(got, okEnd) {
		t.Errorf("mirror last success after a failure = %v, want the earlier %v", got, okEnd)
	}
	if got := value(t, fams, metricMirrorSuccess, d...); got != 0 {
		t.Errorf("mirror success %v, want 0", got)
	}

	// A first run that fails has no success time to keep.
	fresh := filepath.Join(t.TempDir(), "fresh.prom")
	if err := WriteMetrics(fresh, failed); err != nil {
		t.Fatal(err)
	}
	if got := value(t, parseMetrics(t, fresh), metricLastSuccess, p...); got != 0 {
		t.Errorf("last success of a first failed run = %v, want 0", got)
	}
}

// Without a check or mirror step the file has no such metrics (an absent
// series, not a misleading 0).
func TestWriteMetricsOmitsStepsNotRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cairn.prom")
	j := sampleJob()
	j.CheckOK = nil
	j.Mirrors = nil
	if err := WriteMetrics(path, j); err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, path)
	for _, name := range []string{metricCheckSuccess, metricMirrorLag, metricMirrorLast, metricMirrorSuccess} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s present without its step", name)
		}
	}
}

// A reader never sees a partial file: while one goroutine rewrites the
// metrics file, every read of it parses whole, and no temporary file is
// left behind.
func TestWriteMetricsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cairn.prom")
	j := sampleJob()
	// Many steps make the file large enough (about 100 KB) that a
	// non-atomic write would be seen half done.
	for i := 0; i < 500; i++ {
		j.Steps = append(j.Steps, Step{Name: "hook:" + strings.Repeat("x", 40) + string(rune('a'+i%26)) + time.Duration(i).String(), OK: true})
	}
	if err := WriteMetrics(path, j); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	var writeErr error
	wg.Go(func() {
		defer done.Store(true)
		for i := 0; i < 30; i++ {
			if err := WriteMetrics(path, j); err != nil {
				writeErr = err
				return
			}
		}
	})
	reads := 0
	for !done.Load() || reads == 0 {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read while rewriting: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes while rewriting, want the whole %d-byte file", len(got), len(want))
		}
		reads++
	}
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want only cairn.prom", names)
	}
	t.Logf("%d reads of a %d-byte file during 30 rewrites", reads, len(want))
}

// A write that cannot finish leaves the old file and no temporary file.
func TestWriteMetricsErrorLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cairn.prom")
	if err := WriteMetrics(path, sampleJob()); err != nil {
		t.Fatal(err)
	}
	if err := WriteMetrics(filepath.Join(dir, "missing", "x.prom"), sampleJob()); err == nil {
		t.Fatal("writing into a missing folder succeeded")
	}
	// A folder in the way of the rename.
	blocked := filepath.Join(dir, "blocked.prom")
	if err := os.MkdirAll(filepath.Join(blocked, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteMetrics(blocked, sampleJob())
	if err == nil {
		t.Fatal("renaming over a non-empty folder succeeded")
	}
	if !strings.Contains(err.Error(), blocked) {
		t.Errorf("error %q does not name the file", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("folder holds %d entries after failed writes, want 2 (no temporary file)", len(ents))
	}
	parseMetrics(t, path)
}

func FuzzParsePrevious(f *testing.F) {
	var b bytes.Buffer
	writeJobMetrics(&b, sampleJob(), map[string]string{})
	f.Add(b.Bytes())
	f.Add([]byte(metricLastSuccess + `{profile="a"} NaN` + "\n" + metricMirrorLast + "{ 1e400\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		prev, err := parsePrevious(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		// Whatever value it keeps is written back as a valid sample value
		// (the keys are only looked up with what sampleKey makes).
		for k, v := range prev {
			var out bytes.Buffer
			out.WriteString("# TYPE " + metricLastSuccess + " gauge\n")
			out.WriteString(sampleKey(metricLastSuccess, []string{"profile", "p"}) + " " + v + "\n")
			p := expfmt.NewTextParser(model.UTF8Validation)
			if _, err := p.TextToMetricFamilies(&out); err != nil {
				t.Fatalf("kept value %q for %q does not parse back: %v", v, k, err)
			}
		}
	})
}
