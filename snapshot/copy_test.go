package snapshot

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

// packCount counts the packs in a maintRepo's backend.
func packCount(m *maintRepo) int {
	n := 0
	for h := range m.be.Files() {
		if h.Type == backend.PackFile {
			n++
		}
	}
	return n
}

// TestCopy copies snapshots between two repositories with their own keys:
// the copies hold the same files, carry the source snapshot as Original
// and no Parent; copying again copies nothing; a new snapshot brings only
// its new blobs; copying back finds everything there.
func TestCopy(t *testing.T) {
	ctx := context.Background()
	src, dst := newMaintRepo(t), newMaintRepo(t)
	srcLog, dstLog := src.log(), dst.log()
	shared := dirSpec{"keep": "k-1|k-2", "deep": dirSpec{"x": "x-1"}}
	s1 := src.snap(srcLog, dirSpec{"home": dirSpec{"a": "a-1", "s": shared}})
	s2 := src.snap(srcLog, dirSpec{"home": dirSpec{"a": "a-2", "s": shared, "t": shared}})
	parent := s1.ID
	s2.Parent = &parent
	s2.Tags = []string{"x"}

	var done []CopiedSnapshot
	res, err := Copy(ctx, src.r, dst.r, dstLog, dst.ident, []*Snapshot{s1, s2},
		CopyOptions{Now: func() time.Time { return dst.now }, Done: func(c CopiedSnapshot) { done = append(done, c) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Snapshots) != 2 || !slices.Equal(done, res.Snapshots) {
		t.Fatalf("result %+v, reported %+v", res, done)
	}
	// s1: its 2 trees, "s" and "deep", and a-1, k-1, k-2, x-1; s2 adds
	// its root, "home", and a-2.
	if res.Snapshots[0].Blobs != 8 || res.Snapshots[1].Blobs != 3 {
		t.Fatalf("blobs copied: %+v", res.Snapshots)
	}
	// Read back from a fresh load of dst's log.
	copies := dst.log().Snapshots()
	if len(copies) != 2 {
		t.Fatalf("%d snapshots in the destination, want 2", len(copies))
	}
	for i, c := range copies {
		orig := []*Snapshot{s1, s2}[i]
		if c.Original == nil || *c.Original != orig.ID || c.Parent != nil || c.Tree != orig.Tree ||
			!c.Time.Equal(orig.Time) || !slices.Equal(c.Tags, orig.Tags) || c.ID == orig.ID {
			t.Fatalf("copy %+v of %+v", c, orig)
		}
		if got, want := dst.files(dst.r, c), src.files(src.r, orig); !slices.Equal(got, want) {
			t.Fatalf("copy of %s holds %q, want %q", orig.ID.Str(), got, want)
		}
	}

	// Again: both skipped, nothing stored.
	packs := packCount(dst)
	again, err := Copy(ctx, src.r, dst.r, dstLog, dst.ident, []*Snapshot{s1, s2}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range again.Snapshots {
		if !c.Skipped || c.New != copies[i].ID || c.Blobs != 0 {
			t.Fatalf("second copy: %+v", again.Snapshots)
		}
	}
	if n := packCount(dst); n != packs {
		t.Fatalf("second copy wrote %d packs", n-packs)
	}

	// A new snapshot: only its new blobs go (root, home, a-3).
	s3 := src.snap(srcLog, dirSpec{"home": dirSpec{"a": "a-3", "s": shared}})
	third, err := Copy(ctx, src.r, dst.r, dstLog, dst.ident, []*Snapshot{s1, s2, s3}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !third.Snapshots[0].Skipped || !third.Snapshots[1].Skipped || third.Snapshots[2].Skipped || third.Snapshots[2].Blobs != 3 {
		t.Fatalf("copy after a new snapshot: %+v", third.Snapshots)
	}

	// Back to the source: every snapshot is found there by its Original.
	back, err := Copy(ctx, dst.r, src.r, srcLog, src.ident, dst.log().Snapshots(), CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range back.Snapshots {
		if !c.Skipped {
			t.Fatalf("copying back made a copy: %+v", back.Snapshots)
		}
	}
	// A copy of a copy keeps the first Original.
	other := newMaintRepo(t)
	chain, err := Copy(ctx, dst.r, other.r, other.log(), other.ident, dst.log().Snapshots()[:1], CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := other.log().Snapshots(); len(got) != 1 || *got[0].Original != s1.ID || chain.Snapshots[0].Skipped {
		t.Fatalf("copy of a copy: %+v", got)
	}
}

// TestCopyInterrupted stops a copy after a snapshot's data is in the
// destination and before its log entry: nothing is recorded, and the next
// run stores no blob again and records the snapshot. A damaged source blob
// fails the copy, recording nothing.
func TestCopyInterrupted(t *testing.T) {
	ctx := context.Background()
	src, dst := newMaintRepo(t), newMaintRepo(t)
	srcLog := src.log()
	sn := src.snap(srcLog, dirSpec{"home": dirSpec{"a": "a-1|a-2", "b": dirSpec{"c": "c-1"}}})
	// The destination holds the root tree and nothing below, as a copy
	// killed after storing a tree pack and before the data may leave it.
	root, err := src.r.LoadBlob(ctx, pack.TreeBlob, sn.Tree, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.r.SaveBlob(ctx, pack.TreeBlob, sn.Tree, root); err != nil {
		t.Fatal(err)
	}
	if err := dst.r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("killed")
	_, err = Copy(ctx, src.r, dst.r, dst.log(), dst.ident, []*Snapshot{sn},
		CopyOptions{TestOnlyBeforeSnapshot: func(context.Context) error { return stop }})
	if !errors.Is(err, stop) {
		t.Fatalf("interrupted copy: %v", err)
	}
	if n := len(dst.log().Snapshots()); n != 0 {
		t.Fatalf("an interrupted copy recorded %d snapshots", n)
	}
	packs := packCount(dst)
	res, err := Copy(ctx, src.r, dst.r, dst.log(), dst.ident, []*Snapshot{sn}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Snapshots[0].Skipped || res.Snapshots[0].Blobs != 0 || packCount(dst) != packs {
		t.Fatalf("the run after the interruption copied data again: %+v", res.Snapshots)
	}
	copies := dst.log().Snapshots()
	if len(copies) != 1 {
		t.Fatalf("%d snapshots, want 1", len(copies))
	}
	if got, want := dst.files(dst.r, copies[0]), src.files(src.r, sn); !slices.Equal(got, want) {
		t.Fatalf("copy holds %q, want %q", got, want)
	}

	// A source whose tree is lost: the copy fails and records nothing.
	lost := src.snap(srcLog, dirSpec{"home": dirSpec{"gone!": dirSpec{}}})
	empty := newMaintRepo(t)
	if _, err := Copy(ctx, src.r, empty.r, empty.log(), empty.ident, []*Snapshot{lost}, CopyOptions{}); err == nil {
		t.Fatal("a snapshot with a lost tree was copied")
	}
	if n := len(empty.log().Entries); n != 0 {
		t.Fatalf("a failed copy wrote %d log entries", n)
	}
}
