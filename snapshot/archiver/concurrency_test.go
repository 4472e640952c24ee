package archiver

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// closeCounter is an open file that counts itself out on Close.
type closeCounter struct {
	fsFile
	open *atomic.Int32
}

func (c *closeCounter) Close() error {
	c.open.Add(-1)
	return c.fsFile.Close()
}

// TestReadConcurrency: Options.ReadConcurrency is the number of files
// open for reading at once, no more and no fewer. Each open waits until
// that many are open (at most ten seconds), so a larger pool would show
// more at once and a smaller one would never get there.
func TestReadConcurrency(t *testing.T) {
	dir := t.TempDir()
	for i := range 12 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), []byte(fmt.Sprintf("file %d", i)))
	}
	for _, n := range []int{1, 3} {
		a := newArchiver(t, newFakeRepo(), Options{ReadConcurrency: n})
		inner := a.open
		var open, peak atomic.Int32
		reached := make(chan struct{})
		var once sync.Once
		a.open = func(name string, flag int) (fsFile, error) {
			f, err := inner(name, flag)
			if err != nil || flag&syscall.O_DIRECTORY != 0 {
				return f, err
			}
			cur := open.Add(1)
			for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
			}
			if cur >= int32(n) {
				once.Do(func() { close(reached) })
			}
			select {
			case <-reached:
			case <-time.After(10 * time.Second):
			}
			return &closeCounter{fsFile: f, open: &open}, nil
		}
		snap(t, a, dir)
		if got := peak.Load(); got != int32(n) {
			t.Errorf("ReadConcurrency %d: %d files open at once", n, got)
		}
	}
}
