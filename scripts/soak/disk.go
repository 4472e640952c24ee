package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// disk is the small file system the main repository lives on, so that it
// can run full: a tmpfs, else an ext4 loop file system, else (without
// root) a plain folder, where the disk-full fault is not available.
type disk struct {
	dir  string // the mount point
	kind string // "tmpfs", "loop" or "folder"

	mu      sync.Mutex // guards fillers
	fillers int        // runs that want the disk full; the filler lives while > 0
}

// setupDisk mounts a file system of sizeMB at dir.
func setupDisk(dir string, sizeMB int, logf func(string, ...any)) (*disk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &disk{dir: dir}
	err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0700", sizeMB))
	if err == nil {
		d.kind = "tmpfs"
		return d, nil
	}
	logf("tmpfs mount: %v; trying a loop file system", err)
	img := dir + ".img"
	if f, ferr := os.Create(img); ferr == nil {
		ferr = f.Truncate(int64(sizeMB) << 20)
		_ = f.Close()
		if ferr == nil {
			out, merr := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput()
			if merr == nil {
				out, merr = exec.Command("mount", "-o", "loop", img, dir).CombinedOutput()
			}
			if merr == nil {
				d.kind = "loop"
				return d, nil
			}
			logf("loop file system: %v: %s", merr, out)
		}
	}
	_ = os.Remove(img)
	logf("no small file system for the repository: the disk-full fault is off")
	d.kind = "folder"
	return d, nil
}

// canFill says whether the disk-full fault works here.
func (d *disk) canFill() bool { return d.kind != "folder" }

// filler is the file that takes the space.
func (d *disk) filler() string { return filepath.Join(d.dir, "soak-filler") }

// fill takes all but free bytes of the disk until release is called. When
// runs overlap, the first fill stands until the last release.
func (d *disk) fill(free int64) (release func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fillers++
	if d.fillers == 1 && d.canFill() {
		if avail, err := statfsFree(d.dir); err == nil && avail > free {
			if f, err := os.Create(d.filler()); err == nil {
				_ = unix.Fallocate(int(f.Fd()), 0, 0, avail-free) // best effort: a short filler is a smaller fault
				_ = f.Close()
			}
		}
	}
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.fillers--
		if d.fillers == 0 {
			_ = os.Remove(d.filler())
		}
	}
}

// close unmounts what setupDisk mounted.
func (d *disk) close() {
	if d.kind == "tmpfs" || d.kind == "loop" {
		_ = unix.Unmount(d.dir, 0)
		if d.kind == "loop" {
			_ = os.Remove(d.dir + ".img")
		}
	}
}
