package snapshot

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// buildLog writes n snapshots from one device and returns their IDs.
func buildLog(t *testing.T, r *memLog, ident *crypt.Identity, n int) []backend.ID {
	t.Helper()
	l, err := LoadLog(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ids []backend.ID
	for i := 0; i < n; i++ {
		at := t0.Add(time.Duration(i) * time.Hour)
		id, err := l.AddSnapshot(context.Background(), r, ident, &Snapshot{Time: at, Hostname: "h", Paths: []string{"/d"}}, at)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func mustLoad(t *testing.T, r *memLog) *Log {
	t.Helper()
	l, err := LoadLog(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantProblem(t *testing.T, problems []string, substr string) {
	t.Helper()
	for _, p := range problems {
		if strings.Contains(p, substr) {
			return
		}
	}
	t.Fatalf("no problem mentioning %q in %q", substr, problems)
}

func TestTamperRollbackDetected(t *testing.T) {
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	ids := buildLog(t, r, ident, 5)
	seen := mustLoad(t, r).Seen()
	path := SeenFile(t.TempDir(), "repo")
	if err := SaveSeen(path, seen); err != nil {
		t.Fatal(err)
	}
	// The newest two entries vanish: the chain itself is still intact.
	delete(r.files, ids[4])
	delete(r.files, ids[3])
	l := mustLoad(t, r)
	if len(l.Problems) != 0 {
		t.Fatalf("a cut chain looks intact on its own, got %v", l.Problems)
	}
	remembered, err := LoadSeen(path)
	if err != nil {
		t.Fatal(err)
	}
	problems := l.CheckSeen(remembered)
	wantProblem(t, problems, "rolled back")
	wantProblem(t, problems, "missing")
	// The remembered state never moves backwards.
	if remembered.Merge(l.Seen()).MaxSeq != remembered.MaxSeq {
		t.Fatal("merge lowered the remembered sequence")
	}
}

func TestTamperSignatureSwapDetected(t *testing.T) {
	r := newMemLog(t)
	owner, _ := crypt.NewIdentity()
	ids := buildLog(t, r, owner, 3)
	// An attacker without the password re-signs the last entry (same
	// parents, same sealed body) with its own key.
	data := r.files[ids[2]]
	env, err := crypt.DecodeEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	attacker, _ := crypt.NewIdentity()
	env.Device = nil
	forged, err := attacker.EncodeEntry(env)
	if err != nil {
		t.Fatal(err)
	}
	delete(r.files, ids[2])
	r.files[backend.Hash(forged)] = forged
	l := mustLoad(t, r)
	wantProblem(t, l.Problems, "does not list as a writer")
	if len(l.Snapshots()) != 2 {
		t.Fatalf("forged snapshot counted: %d live", len(l.Snapshots()))
	}
}

func TestTamperReplayFromAnotherRepository(t *testing.T) {
	ident, _ := crypt.NewIdentity()
	a := newMemLog(t)
	b := newMemLog(t)
	buildLog(t, a, ident, 2)
	idsB := buildLog(t, b, ident, 2)
	// Entries of repository a are copied into b.
	for id, data := range a.files {
		b.files[id] = data
	}
	l := mustLoad(t, b)
	wantProblem(t, l.Problems, "another repository")
	if len(l.Snapshots()) != 2 || l.Snapshots()[0].ID != idsB[0] {
		t.Fatalf("replayed entries counted: %d live", len(l.Snapshots()))
	}
}

func TestTamperEditedEntryDetected(t *testing.T) {
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	ids := buildLog(t, r, ident, 3)
	for _, region := range []int{20, 40, 100} { // header, parents/device, body
		data := append([]byte(nil), r.files[ids[1]]...)
		data[region] ^= 1
		r2 := newMemLog(t)
		r2.keys = r.keys
		for id, d := range r.files {
			r2.files[id] = d
		}
		delete(r2.files, ids[1])
		r2.files[backend.Hash(data)] = data
		l := mustLoad(t, r2)
		if len(l.Problems) == 0 {
			t.Fatalf("edit at byte %d went unnoticed", region)
		}
		wantProblem(t, l.Problems, "broken link")
	}
}

func TestCheckpointAndPrune(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	ids := buildLog(t, r, ident, 6)
	l := mustLoad(t, r)
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if _, err := l.Forget(ctx, r, ident, ids[:2], now); err != nil {
		t.Fatal(err)
	}
	seenBefore := l.Seen()
	if _, err := l.WriteCheckpoint(ctx, r, ident, now); err != nil {
		t.Fatal(err)
	}
	n, err := l.PruneCovered(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 { // writer + 6 adds + forget
		t.Fatalf("pruned %d entries", n)
	}
	// A later backup, then a fresh reader.
	if _, err := l.AddSnapshot(ctx, r, ident, &Snapshot{Time: now}, now); err != nil {
		t.Fatal(err)
	}
	l2 := mustLoad(t, r)
	if len(l2.Problems) != 0 {
		t.Fatalf("problems after checkpoint: %v", l2.Problems)
	}
	if len(l2.Entries) != 2 || len(l2.Snapshots()) != 5 {
		t.Fatalf("entries %d snapshots %d", len(l2.Entries), len(l2.Snapshots()))
	}
	if l2.Snapshots()[0].ID != ids[2] {
		t.Fatal("snapshot IDs changed through the checkpoint")
	}
	// Pruned entries are not a rollback for a client that saw them.
	if p := l2.CheckSeen(seenBefore); len(p) != 0 {
		t.Fatalf("checkpointed entries reported missing: %v", p)
	}
}

func TestSeenFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x", "seen.json")
	s := Seen{MaxSeq: 7, Heads: []SeenHead{{ID: backend.Hash([]byte("a")), Seq: 7}}}
	if err := SaveSeen(path, s); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSeen(path)
	if err != nil || got.MaxSeq != 7 || len(got.Heads) != 1 || got.Heads[0] != s.Heads[0] {
		t.Fatalf("got %+v, %v", got, err)
	}
	if z, err := LoadSeen(filepath.Join(t.TempDir(), "none")); err != nil || z.MaxSeq != 0 {
		t.Fatal("missing file should be the zero state")
	}
}
