package snapshot

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// memLog is a LogRepository over a map, enough to test the log alone.
type memLog struct {
	keys  *crypt.KeyRing
	files map[backend.ID][]byte
}

func newMemLog(t *testing.T) *memLog {
	k, err := crypt.NewKeyRing()
	if err != nil {
		t.Fatal(err)
	}
	return &memLog{keys: k, files: map[backend.ID][]byte{}}
}

func (m *memLog) Keys() *crypt.KeyRing { return m.keys }
func (m *memLog) ListFiles(ctx context.Context, t backend.FileType, fn func(backend.ID, int64) error) error {
	for id, b := range m.files {
		if err := fn(id, int64(len(b))); err != nil {
			return err
		}
	}
	return nil
}
func (m *memLog) LoadFile(ctx context.Context, t backend.FileType, id backend.ID) ([]byte, error) {
	b, ok := m.files[id]
	if !ok {
		return nil, backend.ErrNotExist
	}
	if backend.Hash(b) != id {
		return nil, fmt.Errorf("hash mismatch")
	}
	return b, nil
}
func (m *memLog) SaveFile(ctx context.Context, t backend.FileType, data []byte) (backend.ID, error) {
	id := backend.Hash(data)
	m.files[id] = append([]byte(nil), data...)
	return id, nil
}

func (m *memLog) DeleteFile(ctx context.Context, t backend.FileType, id backend.ID) error {
	if _, ok := m.files[id]; !ok {
		return backend.ErrNotExist
	}
	delete(m.files, id)
	return nil
}

func TestLogAddForgetReload(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	l, err := LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ids []backend.ID
	for i := 0; i < 5; i++ {
		sn := &Snapshot{Time: t0.Add(time.Duration(i) * time.Hour), Hostname: "h", Paths: []string{"/d"}, Tree: backend.Hash([]byte{byte(i)})}
		id, err := l.AddSnapshot(ctx, r, ident, sn, sn.Time)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := l.Forget(ctx, r, ident, ids[:2], t0.Add(10*time.Hour)); err != nil {
		t.Fatal(err)
	}
	l2, err := LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(l2.Problems) != 0 {
		t.Fatalf("problems: %v", l2.Problems)
	}
	snaps := l2.Snapshots()
	if len(snaps) != 3 || snaps[0].ID != ids[2] || snaps[2].ID != ids[4] {
		t.Fatalf("live snapshots wrong: %d", len(snaps))
	}
	if len(l2.Heads) != 1 {
		t.Fatalf("heads: %v", l2.Heads)
	}
	ord := l2.Ordered()
	if len(ord) != 7 || ord[0].Op != OpWriter {
		t.Fatalf("want a writer registration and 6 entries, got %d", len(ord))
	}
	for i, e := range ord {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
	}
}

func TestLogConcurrentWritersMerge(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	a, _ := crypt.NewIdentity()
	b, _ := crypt.NewIdentity()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	base, _ := LoadLog(ctx, r)
	if _, err := base.AddSnapshot(ctx, r, a, &Snapshot{Time: now}, now); err != nil {
		t.Fatal(err)
	}
	// Two writers read the same state and both append.
	la, _ := LoadLog(ctx, r)
	lb, _ := LoadLog(ctx, r)
	if _, err := la.AddSnapshot(ctx, r, a, &Snapshot{Time: now.Add(time.Minute)}, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.AddSnapshot(ctx, r, b, &Snapshot{Time: now.Add(time.Minute)}, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	l, _ := LoadLog(ctx, r)
	if len(l.Heads) != 2 || len(l.Snapshots()) != 3 {
		t.Fatalf("heads %d snapshots %d", len(l.Heads), len(l.Snapshots()))
	}
	// The next writer merges both heads.
	if _, err := l.AddSnapshot(ctx, r, a, &Snapshot{Time: now.Add(2 * time.Minute)}, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l, _ = LoadLog(ctx, r)
	if len(l.Heads) != 1 || len(l.Snapshots()) != 4 || len(l.Problems) != 0 {
		t.Fatalf("after merge: heads %d snapshots %d problems %v", len(l.Heads), len(l.Snapshots()), l.Problems)
	}
	// Writer b registered itself first: w(a)=1 add=2 | add(a)=3 ; w(b)=3 add(b)=4 ; merge=5.
	if e := l.Entries[l.Heads[0]]; len(e.Parents) != 2 || e.Seq != 5 {
		t.Fatalf("merge entry: parents %d seq %d", len(e.Parents), e.Seq)
	}
	if len(l.Writers()) != 2 {
		t.Fatalf("writers: %d", len(l.Writers()))
	}
}

func TestLogMissingMiddleEntryIsABrokenLink(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	l, _ := LoadLog(ctx, r)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ids []backend.ID
	for i := 0; i < 3; i++ {
		id, err := l.AddSnapshot(ctx, r, ident, &Snapshot{Time: now}, now)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	delete(r.files, ids[1])
	l2, _ := LoadLog(ctx, r)
	if len(l2.Problems) == 0 || !strings.Contains(strings.Join(l2.Problems, "\n"), "broken link") {
		t.Fatalf("problems: %v", l2.Problems)
	}
}

func TestLogEditedEntryRejected(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	l, _ := LoadLog(ctx, r)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	id, err := l.AddSnapshot(ctx, r, ident, &Snapshot{Time: now}, now)
	if err != nil {
		t.Fatal(err)
	}
	// Re-sign nothing: flip a body byte and store it under its new hash.
	b := append([]byte(nil), r.files[id]...)
	b[len(b)-80] ^= 1
	delete(r.files, id)
	r.files[backend.Hash(b)] = b
	l2, _ := LoadLog(ctx, r)
	if len(l2.Snapshots()) != 0 || len(l2.Problems) != 1 {
		t.Fatalf("edited entry: snapshots %d problems %v", len(l2.Snapshots()), l2.Problems)
	}
}

// TestLogWriterClocks: writers whose clocks are wrong cannot make the log
// look damaged. A device 2 hours behind dates its entry at the newest
// parent's time (its snapshot keeps the device's own time); a device a
// year ahead dates its entry a year ahead, and entries written after it
// on a right clock are dated no earlier. Either way the log verifies with
// no problem. An entry that is dated more than crypt.MaxClockSkew before
// its parent (which no cairn writes) is named as backdated.
func TestLogWriterClocks(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	right, behind, ahead := newIdent(t), newIdent(t), newIdent(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	load := func() *Log {
		t.Helper()
		l, err := LoadLog(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	add := func(ident *crypt.Identity, clock time.Time) *LogEntry {
		t.Helper()
		l := load()
		id, err := l.AddSnapshot(ctx, r, ident, &Snapshot{Time: clock, Hostname: "h", Paths: []string{"/d"}}, clock)
		if err != nil {
			t.Fatal(err)
		}
		return l.Entries[id]
	}

	first := add(right, now)
	late := add(behind, now.Add(-2*time.Hour+time.Minute))
	if late.Time != first.Time {
		t.Errorf("entry of the device behind dated %v, want its parent's %v", time.Unix(0, late.Time).UTC(), time.Unix(0, first.Time).UTC())
	}
	if want := now.Add(-2*time.Hour + time.Minute); !late.Snapshot.Time.Equal(want) {
		t.Errorf("snapshot of the device behind dated %v, want its own clock's %v", late.Snapshot.Time, want)
	}
	future := add(ahead, now.Add(365*24*time.Hour))
	after := add(right, now.Add(5*time.Minute))
	if after.Time != future.Time {
		t.Errorf("entry after the device ahead dated %v, want %v", time.Unix(0, after.Time).UTC(), time.Unix(0, future.Time).UTC())
	}
	l := load()
	if len(l.Problems) != 0 || len(l.Snapshots()) != 4 {
		t.Fatalf("problems %q, %d snapshots; want none and 4", l.Problems, len(l.Snapshots()))
	}

	// An entry dated an hour before its parent, as a writer that does not
	// raise its time would date it.
	plain := fmt.Appendf(nil, `{"snapshot":{"time":%q,"tree":%q,"paths":["/d"],"hostname":"h"}}`,
		now.Format(time.RFC3339), backend.Hash([]byte("tree")))
	env := &crypt.Entry{Seq: after.Seq + 1, Time: after.Time - int64(time.Hour), Op: OpAdd,
		Parents: [][32]byte{[32]byte(after.ID)}, Body: r.Keys().SealFile(kindLogBody, plain)}
	data, err := right.EncodeEntry(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveFile(ctx, backend.LogFile, data); err != nil {
		t.Fatal(err)
	}
	l = load()
	if len(l.Problems) != 1 || !strings.Contains(l.Problems[0], "(backdated)") {
		t.Fatalf("problems %q, want one naming the backdated entry", l.Problems)
	}
}

func newIdent(t *testing.T) *crypt.Identity {
	t.Helper()
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
