package archiver

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot/archiver/benchtree"
)

// benchTrees are small versions of scripts/bench's trees: the mixed tree
// at 3% (48 MB: random files, logs, text) and 3,000 small files.
var benchTrees = []struct {
	name string
	gen  func(dir string) (benchtree.Stats, error)
}{
	{"mixed", func(dir string) (benchtree.Stats, error) { return benchtree.Mixed(dir, 0.03, 1) }},
	{"small", func(dir string) (benchtree.Stats, error) { return benchtree.Small(dir, 3000, 1) }},
}

// localRepo creates a repository on local disk as the CLI does: default
// pack size and compression, a local cache; only the KDF is cheap.
func localRepo(b *testing.B, dir string) *repo.Repository {
	b.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		b.Fatal(err)
	}
	opts := repo.InitOptions{KDF: crypt.FastKDFParamsForTests()}
	opts.CacheDir = filepath.Join(dir, "cache")
	r, err := repo.Init(ctx, be, []byte("pw"), opts)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// backupOnce backs src up into r and flushes, as `cairn backup` does
// (without the snapshot log entry).
func backupOnce(b *testing.B, r *repo.Repository, src string, parent backend.ID) backend.ID {
	b.Helper()
	a, err := New(r, Options{Parent: parent})
	if err != nil {
		b.Fatal(err)
	}
	root, _, err := a.Snapshot(context.Background(), []string{src})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	return root
}

// cpuMeter adds up the process's CPU time (user + system) over the timed
// parts of a benchmark. On a shared machine wall time depends on the other
// load; CPU time per operation much less, so the benchmarks report both.
type cpuMeter struct {
	total time.Duration
	begin time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail for RUSAGE_SELF
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *cpuMeter) start() { m.begin = processCPU() }
func (m *cpuMeter) stop()  { m.total += processCPU() - m.begin }

// report adds cpu-ms/op and the CPU throughput (MB per CPU second).
func (m *cpuMeter) report(b *testing.B, bytes int64) {
	n := float64(b.N)
	b.ReportMetric(float64(m.total.Milliseconds())/n, "cpu-ms/op")
	if bytes > 0 && m.total > 0 {
		b.ReportMetric(float64(bytes)*n/m.total.Seconds()/1e6, "MB/cpu-s")
	}
}

// BenchmarkBackupLocal backs each tree up into a fresh repository on local
// disk (fsync per pack included), so profiles taken with -cpuprofile show
// the whole backup path. Throughput is bytes of file content per second.
func BenchmarkBackupLocal(b *testing.B) {
	for _, tc := range benchTrees {
		b.Run(tc.name, func(b *testing.B) {
			src := filepath.Join(b.TempDir(), "src")
			st, err := tc.gen(src)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Bytes)
			var cpu cpuMeter
			for b.Loop() {
				b.StopTimer()
				dir, err := os.MkdirTemp(b.TempDir(), "r")
				if err != nil {
					b.Fatal(err)
				}
				r := localRepo(b, dir)
				b.StartTimer()
				cpu.start()
				backupOnce(b, r, src, backend.ID{})
				cpu.stop()
				b.StopTimer()
				r.Close()
				_ = os.RemoveAll(dir)
				b.StartTimer()
			}
			cpu.report(b, st.Bytes)
		})
	}
}

// BenchmarkBackupLocalUnchanged backs up a tree that has not changed since
// its parent snapshot: the walk, parent tree loads and tree encoding.
func BenchmarkBackupLocalUnchanged(b *testing.B) {
	for _, tc := range benchTrees {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			src := filepath.Join(dir, "src")
			st, err := tc.gen(src)
			if err != nil {
				b.Fatal(err)
			}
			r := localRepo(b, dir)
			defer r.Close()
			parent := backupOnce(b, r, src, backend.ID{})
			b.SetBytes(st.Bytes)
			var cpu cpuMeter
			b.ResetTimer()
			cpu.start()
			for b.Loop() {
				backupOnce(b, r, src, parent)
			}
			cpu.stop()
			cpu.report(b, st.Bytes)
		})
	}
}
