package snapshot

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypt"
)

// TestPruneKeepsParentsOfLaterEntries is the soak test's finding: a
// backup whose view of the log lacked entries (a read of one failed)
// appended, after a checkpoint, an entry naming old entries as parents;
// pruning under the checkpoint deleted those, which left the new entry
// with broken links, and then every prune refused to run. Pruning must
// wait until a later checkpoint covers the entry naming them.
func TestPruneKeepsParentsOfLaterEntries(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	buildLog(t, r, ident, 4)
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

	stale := mustLoad(t, r) // a writer that reads the log now and writes later
	l := mustLoad(t, r)
	for i := range 3 {
		at := now.Add(time.Duration(i) * time.Hour)
		if _, err := l.AddSnapshot(ctx, r, ident, &Snapshot{Time: at, Hostname: "h", Paths: []string{"/d"}}, at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.WriteCheckpoint(ctx, r, ident, now.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	at := now.Add(5 * time.Hour)
	late, err := stale.AddSnapshot(ctx, r, ident, &Snapshot{Time: at, Hostname: "h", Paths: []string{"/d"}}, at)
	if err != nil {
		t.Fatal(err)
	}

	l = mustLoad(t, r)
	if len(l.Problems) != 0 {
		t.Fatalf("problems before pruning: %v", l.Problems)
	}
	n, err := l.PruneCovered(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	l = mustLoad(t, r)
	if len(l.Problems) != 0 {
		t.Fatalf("pruning %d entries left problems: %v", n, l.Problems)
	}
	if len(l.Snapshots()) != 8 || l.Snapshots()[len(l.Snapshots())-1].ID != late {
		t.Fatalf("%d snapshots after pruning, want 8 ending with the late one", len(l.Snapshots()))
	}
	if n != 0 {
		t.Fatalf("pruned %d entries while a later entry names some of them", n)
	}

	// A later checkpoint covers the late entry; then its old parents go.
	if _, err := l.WriteCheckpoint(ctx, r, ident, now.Add(6*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PruneCovered(ctx, r); err != nil {
		t.Fatal(err)
	}
	l = mustLoad(t, r)
	if len(l.Problems) != 0 || len(l.Entries) != 1 || len(l.Snapshots()) != 8 {
		t.Fatalf("after the second checkpoint: %d entries, %d snapshots, problems %v", len(l.Entries), len(l.Snapshots()), l.Problems)
	}
}
