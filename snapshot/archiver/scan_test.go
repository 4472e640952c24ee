package archiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestScanCountsWhatSnapshotProcesses: the scanner's totals are the
// files and bytes the backup of the same paths with the same exclusions
// processes, so that a progress display reaches 100% at the end.
func TestScanCountsWhatSnapshotProcesses(t *testing.T) {
	root := t.TempDir()
	for i := range 40 {
		writeFile(t, filepath.Join(root, "a", fmt.Sprintf("d%d", i%5), fmt.Sprintf("f%d", i)), randomBytes(uint64(i), 100*i))
	}
	writeFile(t, filepath.Join(root, "a", "skip.o"), randomBytes(1, 5000))
	writeFile(t, filepath.Join(root, "a", "big"), randomBytes(2, 70000))
	writeFile(t, filepath.Join(root, "a", "SKIP.TMP"), randomBytes(3, 300))
	writeFile(t, filepath.Join(root, "tagged", CacheTagName), []byte(CacheTagSignature+"\n"))
	writeFile(t, filepath.Join(root, "tagged", "inside"), randomBytes(4, 9000))
	writeFile(t, filepath.Join(root, "b", "one"), randomBytes(5, 123))
	if err := os.Symlink("one", filepath.Join(root, "b", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := Options{Excludes: []string{"*.o"}, IExcludes: []string{"*.tmp"}, ExcludeCaches: true, ExcludeLargerThan: 60000}
	paths := []string{filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "tagged"), filepath.Join(root, "empty"),
		filepath.Join(root, "a", "d1")} // inside a: counted once

	var reports []ScanStats
	got, err := newArchiver(t, newFakeRepo(), opts).Scan(context.Background(), paths, func(s ScanStats) { reports = append(reports, s) })
	if err != nil {
		t.Fatal(err)
	}
	_, sum := snap(t, newArchiver(t, newFakeRepo(), opts), paths...)
	if got.Files != sum.TotalFilesProcessed || got.Bytes != sum.TotalBytesProcessed {
		t.Errorf("scan counted %d files, %d bytes; the backup processed %d files, %d bytes",
			got.Files, got.Bytes, sum.TotalFilesProcessed, sum.TotalBytesProcessed)
	}
	// a, its five subfolders, b, tagged, empty.
	if got.Dirs != 9 {
		t.Errorf("scan counted %d folders, want 9", got.Dirs)
	}
	if !got.Done || len(reports) == 0 || reports[len(reports)-1] != got {
		t.Errorf("last report %v, want the totals %+v with Done", reports, got)
	}
}

// TestScanReportsAsItGoes: on a tree larger than scanReportEvery the
// scanner reports running totals before the end, each larger than the
// one before.
func TestScanReportsAsItGoes(t *testing.T) {
	root := t.TempDir()
	for i := range 2*scanReportEvery + 10 {
		writeFile(t, filepath.Join(root, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%d", i)), []byte{1, 2, 3})
	}
	var reports []ScanStats
	got, err := newArchiver(t, newFakeRepo(), Options{}).Scan(context.Background(), []string{root}, func(s ScanStats) { reports = append(reports, s) })
	if err != nil {
		t.Fatal(err)
	}
	if got.Files != 2*scanReportEvery+10 || got.Bytes != 3*got.Files {
		t.Fatalf("totals %+v", got)
	}
	if len(reports) < 3 {
		t.Fatalf("%d reports, want at least two running ones and the last", len(reports))
	}
	for i, r := range reports[:len(reports)-1] {
		if r.Done || r.Files >= reports[i+1].Files {
			t.Fatalf("report %d: %+v, then %+v", i, r, reports[i+1])
		}
	}
}

// TestScanStopsWhenCancelled: a cancelled scan returns the context's error
// and makes no Done report.
func TestScanStopsWhenCancelled(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "d", "f"), []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := false
	_, err := newArchiver(t, newFakeRepo(), Options{}).Scan(ctx, []string{root}, func(s ScanStats) { done = done || s.Done })
	if !errors.Is(err, context.Canceled) || done {
		t.Fatalf("err %v, done report %v", err, done)
	}
}
