package repo

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// recorder is a destination that records, in order, the files stored
// (with their sizes) and removed.
type recorder struct {
	backend.Backend

	mu      sync.Mutex // guards puts and deletes
	puts    []MirrorCopy
	deletes []backend.Handle
}

func (r *recorder) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	r.mu.Lock()
	r.puts = append(r.puts, MirrorCopy{Handle: h, Size: rd.Length()})
	r.mu.Unlock()
	return r.Backend.Put(ctx, h, rd)
}

func (r *recorder) Delete(ctx context.Context, h backend.Handle) error {
	r.mu.Lock()
	r.deletes = append(r.deletes, h)
	r.mu.Unlock()
	return r.Backend.Delete(ctx, h)
}

// TestMirrorExecutesItsPlan plans a mirror --prune to a destination that
// lacks new files, holds one of the wrong size, and holds files of each
// kind the source dropped on purpose; then carries the plan out and checks
// that exactly the planned files were stored, with the planned sizes, in
// the planned order (phase by phase, log entries in the plan's order), and
// exactly the planned files removed, in order; and that the destination
// is then the same as the source, so a new plan is empty.
func TestMirrorExecutesItsPlan(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 0)
	first := putEntry(t, src, ident, 1)
	second := putEntry(t, src, ident, 2, first)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}

	// The source prunes a pack and replaces the index file that lists
	// it, compacts its log under a checkpoint, and backs up again.
	pruned := handlesOf(src, backend.PackFile)[0]
	prunedID, _ := backend.ParseID(pruned.Name)
	r.Index().RemovePacks(map[backend.ID]bool{prunedID: true})
	src.DeleteRaw(pruned)
	oldIndex := handlesOf(src, backend.IndexFile)[0]
	addData(t, r, 3, 12)
	src.DeleteRaw(oldIndex)
	cp := &crypt.Entry{Seq: 3, Time: time.Now().UnixNano(), Op: crypt.OpCheckpoint, Parents: [][32]byte{second}, Body: []byte("opaque sealed body")}
	data, err := ident.EncodeEntry(cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.SetFile(backend.Handle{Type: backend.LogFile, Name: backend.Hash(data).String()}, data); err != nil {
		t.Fatal(err)
	}
	compacted := backend.Handle{Type: backend.LogFile, Name: backend.ID(first).String()}
	src.DeleteRaw(compacted)
	putEntry(t, src, ident, 4, crypt.EntryID(data))
	// A key the source removed, and a pack damaged at the destination.
	oldKey := backend.Handle{Type: backend.KeyFile, Name: backend.Hash([]byte("old key")).String()}
	if err := dst.SetFile(oldKey, []byte("old key")); err != nil {
		t.Fatal(err)
	}
	short := handlesOf(src, backend.PackFile)[0]
	if err := dst.SetFile(short, src.Files()[short][:100]); err != nil {
		t.Fatal(err)
	}

	plan, err := PlanMirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[backend.Handle]RemoveReason{}
	for _, rm := range plan.Remove {
		reasons[rm.Handle] = rm.Reason
	}
	want := map[backend.Handle]RemoveReason{pruned: RemovePackPruned, oldIndex: RemoveIndexReplaced, compacted: RemoveLogCompacted, oldKey: RemoveKeyRemoved}
	if len(reasons) != len(want) {
		t.Fatalf("plan removes %v, want %v", reasons, want)
	}
	for h, why := range want {
		if reasons[h] != why {
			t.Errorf("plan removes %s for %q, want %q", h, reasons[h], why)
		}
	}
	replaced := 0
	phases := map[int]bool{}
	for _, c := range plan.Copy {
		phases[MirrorPhase(c.Handle.Type)] = true
		if c.Replace {
			replaced++
			if c.Handle != short || c.DestSize != 100 {
				t.Errorf("plan replaces %s (%d bytes there)", c.Handle, c.DestSize)
			}
		}
	}
	if replaced != 1 || len(phases) != 3 {
		t.Fatalf("plan copies %d files in phases %v, replacing %d: want new packs, index files and log entries, one replaced", len(plan.Copy), phases, replaced)
	}
	if len(plan.Missing)+len(plan.Damaged)+len(plan.Junk)+len(plan.Held) != 0 || plan.PruneSkipped {
		t.Fatalf("plan finds problems in a sound source: %+v", plan)
	}

	rec := &recorder{Backend: dst}
	st, err := ExecuteMirror(ctx, src, rec, plan, MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkCopiedAsPlanned(t, plan.Copy, rec.puts)
	if len(rec.deletes) != len(plan.Remove) {
		t.Fatalf("removed %v, the plan %d files", rec.deletes, len(plan.Remove))
	}
	for i, rm := range plan.Remove {
		if rec.deletes[i] != rm.Handle {
			t.Fatalf("removal %d was %s, the plan says %s", i, rec.deletes[i], rm.Handle)
		}
	}
	ps := plan.Stats()
	if st.FilesCopied != ps.FilesToCopy || st.BytesCopied != ps.BytesToCopy || st.FilesRemoved != ps.FilesRemoved ||
		st.BytesRemoved != ps.BytesRemoved || st.FilesReplaced != 1 || st.FilesSkipped != ps.FilesSkipped {
		t.Fatalf("stats %+v, plan %+v", st, ps)
	}
	sameFiles(t, src, dst)
	again, err := PlanMirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	if err != nil || len(again.Copy)+len(again.Remove) != 0 {
		t.Fatalf("a plan after the mirror: %+v, %v", again, err)
	}
}

// checkCopiedAsPlanned checks that puts are exactly the planned copies,
// with their sizes: each phase's files (in any order within the phase,
// since they go several at once) before the next phase's, and log entries
// in the plan's order.
func checkCopiedAsPlanned(t *testing.T, plan, puts []MirrorCopy) {
	t.Helper()
	if len(puts) != len(plan) {
		t.Fatalf("stored %d files, the plan copies %d", len(puts), len(plan))
	}
	for i := 0; i < len(plan); {
		end := i
		phase := MirrorPhase(plan[i].Handle.Type)
		want := map[backend.Handle]int64{}
		for end < len(plan) && MirrorPhase(plan[end].Handle.Type) == phase {
			want[plan[end].Handle] = plan[end].Size
			end++
		}
		for j := i; j < end; j++ {
			p := puts[j]
			size, ok := want[p.Handle]
			if !ok || size != p.Size {
				t.Fatalf("store %d was %s (%d bytes); the plan copies it in another phase, or with another size, or not at all", j, p.Handle, p.Size)
			}
			delete(want, p.Handle)
			if phase == MirrorPhase(backend.LogFile) && p.Handle != plan[j].Handle {
				t.Fatalf("log entry %s stored before %s, against the plan's order", p.Handle, plan[j].Handle)
			}
		}
		i = end
	}
}

// failFirstPut is a destination allowing three connections whose first
// pack put fails once all three are under way; the others wait for their
// context to end, counting whether it did (or give up after a minute:
// they were not cancelled).
type failFirstPut struct {
	*mem.Backend

	mu        sync.Mutex // guards the counts
	entered   int        // pack puts started
	running   int        // pack puts not yet returned
	cancelled int        // pack puts that saw their context end
	allIn     chan struct{}
}

var errFirstPut = errors.New("first put fails")

func (f *failFirstPut) Properties() backend.Properties {
	return backend.Properties{Connections: 3}
}

func (f *failFirstPut) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if h.Type != backend.PackFile {
		return f.Backend.Put(ctx, h, rd)
	}
	f.mu.Lock()
	f.entered++
	f.running++
	n := f.entered
	if n == 3 {
		close(f.allIn)
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	if n == 1 {
		<-f.allIn
		return errFirstPut
	}
	select {
	case <-ctx.Done():
		f.mu.Lock()
		f.cancelled++
		f.mu.Unlock()
		return ctx.Err()
	case <-time.After(time.Minute):
		return nil
	}
}

// TestMirrorFirstErrorCancelsTheRest: when one copy of a phase fails, the
// copies under way are cancelled, no more start, the mirror returns that
// error, and only once every copy has ended.
func TestMirrorFirstErrorCancelsTheRest(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 1)
	addData(t, r, 4, 60)
	if n := len(handlesOf(src, backend.PackFile)); n < 5 {
		t.Fatalf("%d packs: the test needs more than three", n)
	}
	dst := &failFirstPut{Backend: mem.New(), allIn: make(chan struct{})}
	_, err := Mirror(ctx, src, dst, MirrorOptions{})
	if !errors.Is(err, errFirstPut) {
		t.Fatalf("mirror returned %v, want the first put's error", err)
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if dst.entered != 3 || dst.cancelled != 2 || dst.running != 0 {
		t.Fatalf("%d pack puts started, %d cancelled, %d still running when the mirror returned; want 3, 2, 0", dst.entered, dst.cancelled, dst.running)
	}
	for h := range dst.Files() {
		if h.Type != backend.PackFile {
			t.Fatalf("%s copied after a pack failed", h)
		}
	}
}
