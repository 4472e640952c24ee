package archiver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"unicode/utf8"
)

// ScanStats count what a backup of some paths will look at: the regular
// files (and their bytes) and the directories it records, after the
// exclusions. They are the totals a progress display shows the backup's
// work against.
type ScanStats struct {
	Files, Dirs, Bytes uint64
	// Done is set on the last report, once the scan has seen every path.
	Done bool
}

// scanReportEvery is how many items the scanner counts between reports,
// besides one per directory of that many entries or more: often enough
// for a display refreshed ten times a second, rarely enough that the
// callback costs nothing.
const scanReportEvery = 1000

// Scan walks paths as Snapshot would, with the same exclusions, and counts
// what it finds without reading any file's content or building any node:
// one lstat per item. It calls report with the running totals every
// thousand items or so and once at the end with Done set, and returns the
// totals. Items that cannot be listed or stat'ed are left out silently:
// Snapshot reports them. Memory follows the listings of the directories on
// the current path, not the number of files. It stops
// when ctx ends, with ctx's error and no Done report.
//
// A backup runs it on a goroutine of its own, ahead of the archiver
// (BackupOptions.Scanned), so that progress can show percentages and an
// ETA while the archiver works.
func (a *Archiver) Scan(ctx context.Context, paths []string, report func(ScanStats)) (ScanStats, error) {
	if report == nil {
		report = func(ScanStats) {}
	}
	top, err := buildTargets(paths)
	if err != nil {
		return ScanStats{}, err
	}
	s := &scanner{a: a, devices: targetDevices(top.all), report: report}
	if err := s.targets(ctx, "/", top); err != nil {
		return s.stats, err
	}
	s.stats.Done = true
	report(s.stats)
	return s.stats, nil
}

// scanner is the state of one Scan.
type scanner struct {
	a       *Archiver
	devices map[uint64]bool
	report  func(ScanStats)
	stats   ScanStats
	// since counts the items seen since the last report.
	since int
}

// targets counts the targets below the virtual directory d at path.
func (s *scanner) targets(ctx context.Context, path string, d *vdir) error {
	if d.target {
		fi, err := os.Lstat(path)
		if err != nil || s.a.sel.excluded(path, fi) {
			return nil
		}
		return s.item(ctx, path, fi)
	}
	for name, c := range d.children {
		if err := s.targets(ctx, filepath.Join(path, name), c); err != nil {
			return err
		}
	}
	return nil
}

// item counts one item that is not excluded, and what lies below it.
func (s *scanner) item(ctx context.Context, path string, fi os.FileInfo) error {
	switch {
	case fi.Mode().IsRegular():
		s.stats.Files++
		s.stats.Bytes += uint64(fi.Size())
	case fi.IsDir():
		s.stats.Dirs++
		if s.a.enters(s.devices, fi) {
			return s.dir(ctx, path)
		}
	}
	if s.since++; s.since >= scanReportEvery {
		s.since = 0
		s.report(s.stats)
	}
	return nil
}

// dir counts the entries of the directory at path, depth first.
func (s *scanner) dir(ctx context.Context, path string) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	names, err := s.list(path)
	if err != nil {
		return nil
	}
	slices.Sort(names)
	keep := s.a.sel.tagFilter(path, names, nil)
	for _, name := range names {
		if keep != nil && !keep(name) || !utf8.ValidString(name) {
			continue
		}
		p := filepath.Join(path, name)
		fi, err := os.Lstat(p)
		if err != nil || s.a.sel.excluded(p, fi) {
			continue
		}
		if err := s.item(ctx, p, fi); err != nil {
			return err
		}
	}
	return nil
}

// list returns the names in a directory, opened as the walker opens it:
// without following a symlink and without updating its atime.
func (s *scanner) list(path string) ([]string, error) {
	flag := os.O_RDONLY | syscall.O_DIRECTORY | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
	f, err := s.a.open(path, flag|syscall.O_NOATIME)
	if err != nil {
		f, err = s.a.open(path, flag)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
