package restorer

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/snapshot/archiver/benchtree"
)

// BenchmarkRestoreLocal restores small versions of scripts/bench's trees
// (the mixed tree at 3%, 3,000 small files) from a repository on local
// disk into an empty folder, as `cairn restore` does. Throughput is bytes
// of file content per second; cpu-ms/op is the process's CPU time.
func BenchmarkRestoreLocal(b *testing.B) {
	trees := []struct {
		name string
		gen  func(dir string) (benchtree.Stats, error)
	}{
		{"mixed", func(dir string) (benchtree.Stats, error) { return benchtree.Mixed(dir, 0.03, 1) }},
		{"small", func(dir string) (benchtree.Stats, error) { return benchtree.Small(dir, 3000, 1) }},
	}
	for _, tc := range trees {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			src := filepath.Join(dir, "src")
			st, err := tc.gen(src)
			if err != nil {
				b.Fatal(err)
			}
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
			defer r.Close()
			a, err := archiver.New(r, archiver.Options{})
			if err != nil {
				b.Fatal(err)
			}
			root, _, err := a.Snapshot(ctx, []string{src})
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Bytes)
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				target, err := os.MkdirTemp(dir, "t")
				if err != nil {
					b.Fatal(err)
				}
				res, err := New(r, root, Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				c0 := processCPU()
				if _, err := res.Restore(ctx, target); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU() - c0
				b.StopTimer()
				_ = os.RemoveAll(target)
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(st.Bytes)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
		})
	}
}

// processCPU is the process's CPU time so far (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail for RUSAGE_SELF
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
