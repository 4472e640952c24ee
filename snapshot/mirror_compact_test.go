package snapshot

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo"
)

// TestMirrorAcrossLogCompaction is the soak test's finding: a copy
// mirrored before the source wrote a checkpoint and deleted the entries it
// covers looked diverged to every later mirror, because the entries that
// linked the copy's log to the checkpoint were gone, so the copy was
// never updated again. PruneCoveredBefore keeps them for a retention
// period; since the copy's older entries count as cut off from the
// checkpoint (crypt.Orphans), PruneCovered, deleting them at once, no longer
// strands the copy either.
func TestMirrorAcrossLogCompaction(t *testing.T) {
	for _, c := range []struct {
		name      string
		immediate bool
	}{{"retained", false}, {"pruned at once", true}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			m := newMaintRepo(t)
			dst := mem.New()
			l, err := LoadLog(ctx, m.r)
			if err != nil {
				t.Fatal(err)
			}
			day := 24 * time.Hour
			add := func(n int) {
				for range n {
					m.now = m.now.Add(time.Hour)
					if _, err := l.AddSnapshot(ctx, m.r, m.ident, &Snapshot{Time: m.now, Hostname: "h", Paths: []string{"/d"}}, m.now); err != nil {
						t.Fatal(err)
					}
				}
			}
			mirror := func() error {
				_, err := repo.Mirror(ctx, m.be, dst, repo.MirrorOptions{Prune: true, Refs: m.r.MirrorRefs()})
				return err
			}
			compact := func() int {
				if _, err := l.WriteCheckpoint(ctx, m.r, m.ident, m.now); err != nil {
					t.Fatal(err)
				}
				var n int
				var err error
				if c.immediate {
					n, err = l.PruneCovered(ctx, m.r)
				} else {
					n, err = l.PruneCoveredBefore(ctx, m.r, m.now.Add(-7*day))
				}
				if err != nil {
					t.Fatal(err)
				}
				return n
			}

			add(5)
			if err := mirror(); err != nil {
				t.Fatal(err)
			}
			// Backups the copy has not seen yet, then compaction.
			add(5)
			pruned := compact()
			err = mirror()
			if c.immediate {
				// The copy's entries, older than the checkpoint, no
				// longer link to it: they are cut off from it, and the
				// copy holds them as orphans (crypt.Orphans), so the mirror
				// removes them instead of refusing the copy.
				if pruned == 0 || err != nil {
					t.Fatalf("pruned %d at once, mirror: %v; want entries pruned and the copy updated", pruned, err)
				}
				return
			}
			if pruned != 0 || err != nil {
				t.Fatalf("pruned %d under a new checkpoint, mirror: %v; want nothing pruned and the copy updated", pruned, err)
			}
			// A week on: more backups, a second checkpoint, and the
			// entries under the first go. The copy, mirrored since the
			// first checkpoint, still links to the source.
			m.now = m.now.Add(8 * day)
			add(5)
			if pruned := compact(); pruned == 0 {
				t.Fatal("nothing pruned under a checkpoint over a week old")
			}
			if err := mirror(); err != nil {
				t.Fatalf("mirror after the entries under the old checkpoint went: %v", err)
			}
			l2, err := LoadLog(ctx, m.r)
			if err != nil {
				t.Fatal(err)
			}
			if len(l2.Problems) != 0 || len(l2.Snapshots()) != 15 {
				t.Fatalf("source log: %d snapshots, problems %v", len(l2.Snapshots()), l2.Problems)
			}
		})
	}
}
