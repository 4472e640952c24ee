package archiver

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkSnapshot archives a tree of mixed file sizes (many small files,
// a few multi-chunk ones) into an empty in-memory repository each round;
// the throughput is bytes of file content per second.
func BenchmarkSnapshot(b *testing.B) {
	dir := b.TempDir()
	var total int64
	for i := range 200 {
		size := 4 << 10 * (i%16 + 1) // 4 KiB..64 KiB
		if i%50 == 0 {
			size = 6 << 20
		}
		writeFile(b, filepath.Join(dir, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%d", i)), randomBytes(uint64(i), size))
		total += int64(size)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		repo := newFakeRepo()
		a, err := New(repo, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := a.Snapshot(context.Background(), []string{dir}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotUnchanged measures a second run with a parent: no file
// is read, so this is the cost of walking and rewriting trees.
func BenchmarkSnapshotUnchanged(b *testing.B) {
	dir := b.TempDir()
	for i := range 2000 {
		writeFile(b, filepath.Join(dir, fmt.Sprintf("d%d", i%20), fmt.Sprintf("f%d", i)), []byte{byte(i)})
	}
	repo := newFakeRepo()
	a, err := New(repo, Options{})
	if err != nil {
		b.Fatal(err)
	}
	parent, _, err := a.Snapshot(context.Background(), []string{dir})
	if err != nil {
		b.Fatal(err)
	}
	a, err = New(repo, Options{Parent: parent})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := a.Snapshot(context.Background(), []string{dir}); err != nil {
			b.Fatal(err)
		}
	}
}
