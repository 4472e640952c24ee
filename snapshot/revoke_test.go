package snapshot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// TestRevokedDeviceRejected: after A revokes B, B's entries that A had
// seen stay valid; B's entries on a branch A never saw (a stale view: a
// registration again and a snapshot) are rejected and named, also after
// A writes a checkpoint (which lists B as revoked); B cannot write on a fresh view; a device cannot
// revoke itself.
func TestRevokedDeviceRejected(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	a, b := newIdent(t), newIdent(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	snap := func(l *Log, who string, i int) backend.ID {
		t.Helper()
		ident := a
		if who == "b" {
			ident = b
		}
		sn := &Snapshot{Time: t0.Add(time.Duration(i) * time.Minute), Hostname: who, Paths: []string{"/d"}, Tree: backend.Hash([]byte{byte(i)})}
		id, err := l.AddSnapshot(ctx, r, ident, sn, sn.Time)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	load := func() *Log {
		t.Helper()
		l, err := LoadLog(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	snap(load(), "a", 1)
	stale := load() // B not registered yet in this view
	seen := snap(load(), "b", 2)
	l := load()
	if _, err := l.Revoke(ctx, r, a, []byte(a.Public()), t0.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "itself") {
		t.Fatalf("a device revoking itself: %v", err)
	}
	if _, err := l.Revoke(ctx, r, a, []byte(b.Public()), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	forged := snap(stale, "b", 3) // registers B again, then adds
	for round, l := range []*Log{load(), nil} {
		if round == 1 {
			cl := load()
			if _, err := cl.WriteCheckpoint(ctx, r, a, t0.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			// The checkpoint merged the forged branch; its state leaves
			// the forged snapshot out. A new forgery on the stale branch
			// is rejected by the checkpoint's list of revoked devices.
			forged = snap(stale, "b", 4)
			l = load()
		}
		ids := map[backend.ID]bool{}
		for _, sn := range l.Snapshots() {
			ids[sn.ID] = true
		}
		if len(ids) != 2 || !ids[seen] || ids[forged] {
			t.Errorf("round %d: live snapshots %v, want A's and B's seen one, not the forged one", round, ids)
		}
		if round == 0 && len(l.Rejected) != 2 {
			t.Errorf("round %d: rejected %v, want the registration and the snapshot", round, l.Rejected)
		}
		if round == 1 && (len(l.Rejected) != 1 || l.Rejected[0] != forged) {
			t.Errorf("after a checkpoint the forged entries must stay rejected: %v", l.Problems)
		}
		if !strings.Contains(strings.Join(l.Problems, "\n"), "after it was revoked") {
			t.Errorf("round %d: problems %v", round, l.Problems)
		}
		var revoked int
		for _, d := range l.KnownDevices() {
			if d.Revoked {
				revoked++
			}
		}
		if revoked != 1 {
			t.Errorf("round %d: %d revoked devices", round, revoked)
		}
		sn := &Snapshot{Time: t0.Add(3 * time.Hour), Hostname: "b", Paths: []string{"/d"}, Tree: backend.Hash([]byte{9})}
		if _, err := l.AddSnapshot(ctx, r, b, sn, sn.Time); !errors.Is(err, ErrDeviceRevoked) {
			t.Errorf("round %d: the revoked device writing: %v, want ErrDeviceRevoked", round, err)
		}
	}
}
