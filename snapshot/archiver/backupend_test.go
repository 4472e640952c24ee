package archiver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// slowFlushRepo is a repository whose Flush (the upload of the last
// packs) takes an hour of a fake clock.
type slowFlushRepo struct {
	*repo.Repository
	clock *fakeClock
}

func (r slowFlushRepo) Flush(ctx context.Context) error {
	err := r.Repository.Flush(ctx)
	r.clock.advance(time.Hour)
	return err
}

// fakeClock is a clock that moves only when told; safe for concurrent
// use (the archiver's workers read it).
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestBackupEndAfterFlush: a backup's summary (printed and stored in the
// snapshot) ends when its last pack is uploaded, not when the archiver
// has read the last file. It ended there before, so a backup whose
// upload took minutes said "processed ... in 0:00".
func TestBackupEndAfterFlush(t *testing.T) {
	be := mem.New()
	fx := newPacksFixture(t, be, be)
	ctx := context.Background()
	l, err := snapshot.LoadLog(ctx, fx.r)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)}
	sn, sum, err := Backup(ctx, slowFlushRepo{fx.r, clock}, l, BackupOptions{
		Paths: []string{fx.src}, Hostname: "h", Identity: fx.ident, Options: Options{Now: clock.Now},
	})
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]snapshot.Summary{"returned": sum, "stored": *sn.Summary} {
		if got := s.BackupEnd.Sub(s.BackupStart); got != time.Hour {
			t.Errorf("%s summary: backup took %v, want the hour of its flush", what, got)
		}
	}
}
