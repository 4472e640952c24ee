package repo

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// addData saves n random blobs of 50 kB into r and flushes: new packs and
// an index file.
func addData(t *testing.T, r *Repository, seed int64, n int) {
	t.Helper()
	ctx := context.Background()
	rnd := rand.New(rand.NewSource(seed))
	for range n {
		data := randomBlob(rnd, 50000, false)
		if _, err := r.SaveBlob(ctx, pack.DataBlob, backend.Hash(data), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// handlesOf lists the files of type ft in be.
func handlesOf(be *mem.Backend, ft backend.FileType) []backend.Handle {
	var out []backend.Handle
	for h := range be.Files() {
		if h.Type == ft {
			out = append(out, h)
		}
	}
	return out
}

// dryRun plans a mirror, as "mirror --dry-run" does, and returns what the
// plan would do and the damage it found.
func dryRun(ctx context.Context, src, dst backend.Backend, opts MirrorOptions) (MirrorStats, error) {
	plan, err := PlanMirror(ctx, src, dst, opts)
	if err != nil {
		return MirrorStats{}, err
	}
	return plan.Stats(), plan.Err()
}

// warnings collects a mirror's warnings.
type warnings []string

func (w *warnings) add(msg string) { *w = append(*w, msg) }

func (w warnings) mention(s string) bool {
	for _, m := range w {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// TestMirrorPruneKeepsWhatTheSourceLost: a pack the source's index lists
// but the source lost is damage, not a drop. mirror --prune keeps it at the
// destination (and removes nothing else, not even a pack the source did
// prune), names it in its error, and still copies what is new. Once the
// source is healed, the pruned pack goes.
func TestMirrorPruneKeepsWhatTheSourceLost(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 2)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	packs := handlesOf(src, backend.PackFile)
	if len(packs) < 2 {
		t.Fatalf("%d packs: the test needs two", len(packs))
	}
	lost, pruned := packs[0], packs[1]
	// The source prunes one pack on purpose (out of the index, then
	// deleted) and loses another (deleted behind its back).
	prunedID, _ := backend.ParseID(pruned.Name)
	r.Index().RemovePacks(map[backend.ID]bool{prunedID: true})
	src.DeleteRaw(pruned)
	src.DeleteRaw(lost)
	// New data since the last mirror.
	addData(t, r, 77, 10)
	appendEntries(t, src, ident, 1)

	for _, dry := range []bool{true, false} {
		var w warnings
		run := Mirror
		if dry {
			run = dryRun
		}
		st, err := run(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs(), Warn: w.add})
		var me *MirrorError
		if !errors.As(err, &me) || !errors.Is(err, ErrSourceDamaged) || len(me.Missing) != 1 || me.Missing[0] != lost || !me.PruneSkipped {
			t.Fatalf("dry run %v: want a MirrorError naming %s only: %v", dry, lost, err)
		}
		if !strings.Contains(err.Error(), lost.String()) || !strings.Contains(err.Error(), "repair packs --from") {
			t.Fatalf("the error does not name the file and the cure: %v", err)
		}
		if st.FilesRemoved != 0 {
			t.Fatalf("dry run %v: %d files removed (or to remove) from the destination", dry, st.FilesRemoved)
		}
		if !dry && (st.FilesCopied == 0 || st.LogEntriesCopied != 1) {
			t.Fatalf("the new files were not copied: %+v", st)
		}
	}
	files := dst.Files()
	for _, h := range []backend.Handle{lost, pruned} {
		if _, ok := files[h]; !ok {
			t.Fatalf("the destination lost %s", h)
		}
	}
	for h := range src.Files() {
		if _, ok := files[h]; !ok && h.Type != backend.LockFile {
			t.Fatalf("%s was not copied", h)
		}
	}

	// Healed from the copy, the source is whole; now the pruned pack goes.
	if err := src.SetFile(lost, files[lost]); err != nil {
		t.Fatal(err)
	}
	st, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	if err != nil || st.FilesRemoved != 1 {
		t.Fatalf("after healing: %+v, %v", st, err)
	}
	sameFiles(t, src, dst)
}

// TestMirrorPruneKeepsWhenIndexDamaged: an index file of the source that
// does not open hides which packs the source still needs, so mirror
// --prune removes nothing and says why.
func TestMirrorPruneKeepsWhenIndexDamaged(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 1)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	idx := handlesOf(src, backend.IndexFile)[0]
	data := src.Files()[idx]
	data[len(data)/2] ^= 1 // still named by its old hash: damaged
	if err := src.SetFile(idx, data); err != nil {
		t.Fatal(err)
	}
	// A pack the destination has and the source no longer does, listed
	// by no index: pruned, were the index trustworthy.
	extra := backend.Handle{Type: backend.PackFile, Name: backend.Hash([]byte("old pack")).String()}
	if err := dst.SetFile(extra, []byte("old pack")); err != nil {
		t.Fatal(err)
	}
	r := testOpen(t, src, Options{Warn: func(string) {}})
	st, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	var me *MirrorError
	if !errors.As(err, &me) || len(me.Damaged) != 1 || me.Damaged[0] != idx || st.FilesRemoved != 0 {
		t.Fatalf("want the damaged index file named and nothing removed: %+v, %v", st, err)
	}
	if _, ok := dst.Files()[extra]; !ok {
		t.Fatal("removed a pack while the source's index is damaged")
	}
}

// TestMirrorSourceLostLogEntry: a log entry the source's own log names but
// the source lost is not a sign of divergence: the mirror goes on, keeps
// the destination's copy, and names it.
func TestMirrorSourceLostLogEntry(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 3)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	entries := logOf(t, src)
	var middle backend.Handle
	for id, e := range entries {
		if e.Seq == 2 {
			middle = backend.Handle{Type: backend.LogFile, Name: backend.ID(id).String()}
		}
	}
	src.DeleteRaw(middle)
	appendEntries(t, src, ident, 1)
	for _, prune := range []bool{false, true} {
		st, err := Mirror(ctx, src, dst, MirrorOptions{Prune: prune, Refs: r.MirrorRefs()})
		var me *MirrorError
		if errors.Is(err, ErrDiverged) || !errors.As(err, &me) || len(me.Missing) != 1 || me.Missing[0] != middle {
			t.Fatalf("prune %v: want the lost entry named: %+v, %v", prune, st, err)
		}
		if _, ok := dst.Files()[middle]; !ok {
			t.Fatalf("prune %v: the destination lost %s", prune, middle)
		}
	}
	if c := crypt.VerifyChain(logOf(t, dst)); len(c.Problems) != 0 || len(c.Entries) != 4 {
		t.Fatalf("the destination's log: %d entries, %v", len(c.Entries), c.Problems)
	}
}

// TestMirrorDamagedSourceFileCopiesTheRest: a source pack that does not
// match its name is not copied, and is named; everything else is copied,
// and nothing is removed.
func TestMirrorDamagedSourceFileCopiesTheRest(t *testing.T) {
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 2)
	bad := handlesOf(src, backend.PackFile)[0]
	if err := src.Corrupt(bad, 100); err != nil {
		t.Fatal(err)
	}
	dst := mem.New()
	st, err := Mirror(context.Background(), src, dst, MirrorOptions{})
	var me *MirrorError
	if !errors.As(err, &me) || !errors.Is(err, backend.ErrHashMismatch) || len(me.Damaged) != 1 || me.Damaged[0] != bad {
		t.Fatalf("want the damaged pack named: %+v, %v", st, err)
	}
	for h := range src.Files() {
		if _, ok := dst.Files()[h]; !ok && h != bad && h.Type != backend.LockFile {
			t.Fatalf("%s was not copied", h)
		}
	}
	if _, ok := dst.Files()[bad]; ok {
		t.Fatal("the damaged pack was copied")
	}
}

// TestMirrorSkipsJunkLogFiles: a file under log/ that is not a log entry
// (named by its own hash, as a peer server accepts it), on the source or
// the destination, is skipped with a warning naming it; the mirror does
// not fail, does not copy it, and --prune leaves it where it is.
func TestMirrorSkipsJunkLogFiles(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 2)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	junk := func(be *mem.Backend, content string) backend.Handle {
		h := backend.Handle{Type: backend.LogFile, Name: backend.Hash([]byte(content)).String()}
		if err := be.SetFile(h, []byte(content)); err != nil {
			t.Fatal(err)
		}
		return h
	}
	appendEntries(t, src, ident, 1)
	valid := src.Files()[handlesOf(src, backend.LogFile)[0]]
	atDst := junk(dst, "not a log entry, put by some client")
	atSrc := junk(src, "CAIRNLOG but not much else")
	// A destination file under log/ whose content is not what its name
	// says, and whose name is not at the source either.
	wrong := backend.Handle{Type: backend.LogFile, Name: backend.Hash([]byte("x")).String()}
	if err := dst.SetFile(wrong, []byte("y")); err != nil {
		t.Fatal(err)
	}
	// A valid entry under a name that is not its hash (this once made
	// mirror panic).
	misnamed := backend.Handle{Type: backend.LogFile, Name: backend.Hash([]byte("z")).String()}
	if err := dst.SetFile(misnamed, valid); err != nil {
		t.Fatal(err)
	}
	var w warnings
	st, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs(), Warn: w.add})
	if err != nil {
		t.Fatalf("mirror with junk under log/: %v", err)
	}
	if st.LogEntriesCopied != 1 || st.FilesRemoved != 0 {
		t.Fatalf("stats %+v: want the new entry copied and nothing removed", st)
	}
	for _, h := range []backend.Handle{atDst, atSrc, wrong, misnamed} {
		if !w.mention(h.String()) {
			t.Errorf("no warning names %s: %q", h, w)
		}
	}
	files := dst.Files()
	if _, ok := files[atSrc]; ok {
		t.Fatal("the source's junk was copied")
	}
	if _, ok := files[atDst]; !ok {
		t.Fatal("the destination's junk was removed")
	}
}

// refusingReplace refuses to store over an existing file, as an
// append-only peer does.
type refusingReplace struct{ *mem.Backend }

func (b refusingReplace) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if _, err := b.Stat(ctx, h); err == nil {
		return backend.ErrAppendOnly
	}
	return b.Backend.Put(ctx, h, rd)
}

// TestMirrorWrongSizeAtDestination: a destination file whose size does
// not match the source's is replaced, with a warning; a destination that
// refuses is reported, and everything else is still copied.
func TestMirrorWrongSizeAtDestination(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 2)
	truncated := func(dst *mem.Backend) backend.Handle {
		if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
			t.Fatal(err)
		}
		h := handlesOf(dst, backend.PackFile)[0]
		if err := dst.SetFile(h, dst.Files()[h][:1000]); err != nil {
			t.Fatal(err)
		}
		return h
	}

	dst := mem.New()
	h := truncated(dst)
	appendEntries(t, src, ident, 1)
	var w warnings
	st, err := Mirror(ctx, src, dst, MirrorOptions{Warn: w.add})
	if err != nil || st.FilesReplaced != 1 || !w.mention(h.String()) {
		t.Fatalf("replace: %+v, %v, warnings %q", st, err, w)
	}
	sameFiles(t, src, dst)

	ao := mem.New()
	h = truncated(ao)
	appendEntries(t, src, ident, 1)
	addData(t, r, 5, 3)
	st, err = Mirror(ctx, src, refusingReplace{ao}, MirrorOptions{})
	var me *MirrorError
	if !errors.As(err, &me) || !errors.Is(err, ErrReplaceRefused) || len(me.Refused) != 1 || me.Refused[0] != h || errors.Is(err, ErrSourceDamaged) {
		t.Fatalf("refused: want the file named: %+v, %v", st, err)
	}
	for f := range src.Files() {
		if _, ok := ao.Files()[f]; !ok && f.Type != backend.LockFile {
			t.Fatalf("%s was not copied past the refused file", f)
		}
	}
}

// TestMirrorDryRunWithoutPrune: a dry run without Prune (and so without
// Refs) plans no removal, whatever the destination holds.
func TestMirrorDryRunWithoutPrune(t *testing.T) {
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 1)
	dst := mem.New()
	extra := backend.Handle{Type: backend.PackFile, Name: backend.Hash([]byte("old pack")).String()}
	if err := dst.SetFile(extra, []byte("old pack")); err != nil {
		t.Fatal(err)
	}
	st, err := dryRun(context.Background(), src, dst, MirrorOptions{})
	if err != nil || st.FilesRemoved != 0 || st.FilesToCopy == 0 {
		t.Fatalf("%+v, %v", st, err)
	}
}

// TestMirrorDestinationEntriesCutOff is the 1,000-cycle soak's second
// finding: a mirror killed while it removed compacted entries from a copy
// (or a gap below the checkpoint, dropped at the copy) left older
// entries there that nothing names any more. The source's checkpoint
// counts them as compacted (crypt.Orphans): the next mirror must remove them, not refuse
// the copy as diverged.
func TestMirrorDestinationEntriesCutOff(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 5)
	appendOps(t, src, ident, 1, crypt.OpCheckpoint)
	appendEntries(t, src, ident, 1)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	// The source compacts: the five entries under the checkpoint go.
	// The copy lost only the newer three, as a mirror killed while
	// removing them in another order would leave it.
	for id, e := range logOf(t, src) {
		h := backend.Handle{Type: backend.LogFile, Name: backend.ID(id).String()}
		if e.Op == crypt.OpCheckpoint || e.Seq > 5 {
			continue
		}
		src.DeleteRaw(h)
		if e.Seq >= 3 {
			dst.DeleteRaw(h)
		}
	}
	appendEntries(t, src, ident, 1)
	st, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	if err != nil {
		t.Fatalf("mirror to a copy holding entries cut off from the checkpoint: %+v, %v", st, err)
	}
	sameFiles(t, src, dst)
}

// TestMirrorCoveredGapIsDamage is the 1,000-cycle soak's finding: an
// entry the checkpoint covers, lost from the middle of the source's log
// (rot, a hand), was taken for compaction: mirror --prune removed it from
// every copy, and the entries before it, cut off from the checkpoint,
// brought back snapshots forgotten long before. The source still holds
// its parent, so prune did not drop it (prune deletes oldest first): the
// mirror must name it and keep it at the copy, and repair packs --from
// the copy must fetch it back, while entries compaction dropped stay
// dropped.
func TestMirrorCoveredGapIsDamage(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 6)
	appendOps(t, src, ident, 1, crypt.OpCheckpoint)
	appendEntries(t, src, ident, 1)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	// Compaction dropped the two oldest at the source; rot took seq 5.
	var gap backend.Handle
	for id, e := range logOf(t, src) {
		h := backend.Handle{Type: backend.LogFile, Name: backend.ID(id).String()}
		switch {
		case e.Seq <= 2:
			src.DeleteRaw(h)
		case e.Seq == 5:
			gap = h
			src.DeleteRaw(h)
		}
	}
	_, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	var me *MirrorError
	if !errors.As(err, &me) || len(me.Missing) != 1 || me.Missing[0] != gap {
		t.Fatalf("mirror --prune from a source with a gap: want %s named, got %v", gap, err)
	}
	if _, ok := dst.Files()[gap]; !ok {
		t.Fatal("mirror --prune removed the lost entry from the copy")
	}

	plan, _, err := lockedRepairPacks(ctx, r, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Files) != 1 || plan.Files[0].File != gap.String() || !plan.Files[0].Available {
		t.Fatalf("repair plan: want only %s fetched (not the entries compaction dropped), got %+v", gap, plan.Files)
	}
	if _, ok := src.Files()[gap]; !ok {
		t.Fatal("repair packs did not fetch the lost entry back")
	}
	if _, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()}); err != nil {
		t.Fatalf("mirror after the repair: %v", err)
	}
	sameFiles(t, src, dst)
}
