package snapshot

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

var _ RewriteRepository = (*repo.Repository)(nil)

// excludeName leaves out every node named one of names.
func excludeName(names ...string) func(string, *Node) bool {
	return func(_ string, n *Node) bool { return slices.Contains(names, n.Name) }
}

// treeBlobs counts the tree blobs the index lists.
func treeBlobs(r *repo.Repository) int {
	n := 0
	r.Index().Each(func(pb index.PackedBlob) bool {
		if pb.Type == pack.TreeBlob {
			n++
		}
		return true
	})
	return n
}

func TestRewrite(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	shared := dirSpec{"keep": "k-1", "deep": dirSpec{"x": "x-1"}}
	s1 := m.snap(l, dirSpec{"home": dirSpec{"a": "a-1", "secret": "s-1|s-2", "sub": dirSpec{"secret": "s-3", "keep": "k"}, "shared": shared}})
	s2 := m.snap(l, dirSpec{"home": dirSpec{"a": "a-2", "shared": shared}})
	s3 := m.snap(l, dirSpec{"home": dirSpec{"secret": dirSpec{"f": "s-4", "g": "s-5|s-6"}, "shared": shared}})
	entries := len(m.log().Entries)
	trees := treeBlobs(m.r)
	var removed []string
	opts := RewriteOptions{Exclude: excludeName("secret"), DryRun: true, Now: func() time.Time { return m.now },
		Removed: func(p string, _ *Node) { removed = append(removed, p) }}

	// A dry run says what would change and writes nothing.
	dry, err := Rewrite(ctx, m.r, l, m.ident, []*Snapshot{s1, s2, s3}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Unchanged != 1 || len(dry.Snapshots) != 2 {
		t.Fatalf("dry run: %+v", dry)
	}
	want := []RewrittenSnapshot{
		{Snapshot: s1.ID, Excluded: 2, Files: 2, Bytes: 3 * 3},
		{Snapshot: s3.ID, Excluded: 1, Files: 2, Bytes: 3 * 3},
	}
	if !slices.Equal(dry.Snapshots, want) {
		t.Fatalf("dry run: %+v, want %+v", dry.Snapshots, want)
	}
	slices.Sort(removed)
	if want := []string{"/home/secret", "/home/secret", "/home/sub/secret"}; !slices.Equal(removed, want) {
		t.Fatalf("removed %q, want %q", removed, want)
	}
	if n := len(m.log().Entries); n != entries {
		t.Fatalf("a dry run wrote %d log entries", n-entries)
	}
	if n := treeBlobs(m.r); n != trees {
		t.Fatalf("a dry run saved %d trees", n-trees)
	}

	// The real run records new snapshots, tagged, with the original's ID,
	// and writes only the trees on the way to what it left out.
	opts.DryRun, opts.Removed = false, nil
	res, err := Rewrite(ctx, m.r, l, m.ident, []*Snapshot{s1, s2, s3}, opts)
	if err != nil {
		t.Fatal(err)
	}
	// s1: root, home, home/sub; s3: root, home.
	if n := treeBlobs(m.r); n != trees+5 {
		t.Fatalf("%d new trees, want 5 (the folders on the way to each secret)", n-trees)
	}
	live := map[backend.ID]*Snapshot{}
	for _, sn := range l.Snapshots() {
		live[sn.ID] = sn
	}
	if len(live) != 5 {
		t.Fatalf("%d live snapshots, want the 3 originals and 2 new", len(live))
	}
	wantFiles := map[backend.ID][]string{
		s1.ID: {"/home/a=a-1", "/home/shared/deep/x=x-1", "/home/shared/keep=k-1", "/home/sub/keep=k"},
		s3.ID: {"/home/shared/deep/x=x-1", "/home/shared/keep=k-1"},
	}
	for i, rs := range res.Snapshots {
		orig := []*Snapshot{s1, s3}[i]
		ns := live[rs.New]
		if ns == nil || rs.Snapshot != orig.ID || rs.Forgotten || rs.Reused {
			t.Fatalf("result %+v", rs)
		}
		if ns.Original == nil || *ns.Original != orig.ID || !ns.Time.Equal(orig.Time) || ns.Hostname != orig.Hostname ||
			!ns.SamePaths(orig.Paths) || !slices.Equal(ns.Tags, []string{RewriteTag}) {
			t.Fatalf("new snapshot %+v of %+v", ns, orig)
		}
		if got := m.files(m.r, ns); !slices.Equal(got, wantFiles[orig.ID]) {
			t.Fatalf("new snapshot of %s holds %q, want %q", orig.ID.Str(), got, wantFiles[orig.ID])
		}
	}
	if live[s1.ID] == nil || live[s3.ID] == nil {
		t.Fatal("an original was forgotten without --forget")
	}

	// Rewriting again changes nothing: the new snapshots hold no secret,
	// and the originals' copies are found.
	opts.Forget = true
	again, err := Rewrite(ctx, m.r, l, m.ident, l.Snapshots(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Unchanged != 3 || len(again.Snapshots) != 2 || !again.Snapshots[0].Reused || !again.Snapshots[1].Forgotten {
		t.Fatalf("second run: %+v", again)
	}
	if n := len(m.log().Snapshots()); n != 3 {
		t.Fatalf("%d live snapshots after --forget, want 3", n)
	}
}

// TestRewriteSummary checks that the totals of a snapshot's summary lose
// what was left out, and the other figures stay.
func TestRewriteSummary(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	sn := m.snap(l, dirSpec{"home": dirSpec{"a": "aaaa", "secret": dirSpec{"x": "xx|yy", "y": "zzz"}}})
	sn.Summary = &Summary{TotalFilesProcessed: 3, TotalBytesProcessed: 11, FilesNew: 3, DataAdded: 11}
	res, err := Rewrite(ctx, m.r, l, m.ident, []*Snapshot{sn}, RewriteOptions{Exclude: excludeName("secret"), Forget: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Snapshots) != 1 || res.Snapshots[0].Files != 2 || res.Snapshots[0].Bytes != 7 {
		t.Fatalf("result %+v", res)
	}
	got := m.log().Snapshots()
	if len(got) != 1 || got[0].ID != res.Snapshots[0].New {
		t.Fatalf("live snapshots %v", got)
	}
	want := Summary{TotalFilesProcessed: 1, TotalBytesProcessed: 4, FilesNew: 3, DataAdded: 11}
	if got[0].Summary == nil || *got[0].Summary != want || len(got[0].Tags) != 0 {
		t.Fatalf("new snapshot %+v, summary %+v, want %+v and no tag (--forget)", got[0], got[0].Summary, want)
	}
}

// TestRewriteByPath checks that a folder whose tree appears at two paths
// is rewritten per path: an anchored pattern removes the secret from one
// of them only.
func TestRewriteByPath(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	twin := dirSpec{"secret": "s-1", "keep": "k"}
	sn := m.snap(l, dirSpec{"home": dirSpec{"x": twin, "y": twin}})
	exclude := func(p string, _ *Node) bool { return p == "/home/x/secret" }
	res, err := Rewrite(ctx, m.r, l, m.ident, []*Snapshot{sn}, RewriteOptions{Exclude: exclude})
	if err != nil {
		t.Fatal(err)
	}
	var ns *Snapshot
	for _, s := range l.Snapshots() {
		if s.ID == res.Snapshots[0].New {
			ns = s
		}
	}
	want := []string{"/home/x/keep=k", "/home/y/keep=k", "/home/y/secret=s-1"}
	if got := m.files(m.r, ns); !slices.Equal(got, want) {
		t.Fatalf("rewritten snapshot holds %q, want %q", got, want)
	}
}

// TestRewriteInterrupted stops a rewrite with --forget after it recorded
// the new snapshots and before it forgot the originals: both stay
// restorable, and the next run forgets the originals without a second
// copy.
func TestRewriteInterrupted(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	s1 := m.snap(l, dirSpec{"home": dirSpec{"a": "a-1", "secret": "s-1"}})
	s2 := m.snap(l, dirSpec{"home": dirSpec{"a": "a-2", "secret": "s-2"}})
	stop := errors.New("killed")
	opts := RewriteOptions{Exclude: excludeName("secret"), Forget: true,
		TestOnlyBeforeForget: func(context.Context) error { return stop }}
	if _, err := Rewrite(ctx, m.r, l, m.ident, []*Snapshot{s1, s2}, opts); !errors.Is(err, stop) {
		t.Fatalf("interrupted run: %v", err)
	}
	// Read back from the repository, as the next process would.
	l = m.log()
	if n := len(l.Snapshots()); n != 4 {
		t.Fatalf("%d live snapshots after the interruption, want the 2 originals and their 2 copies", n)
	}
	adds := 0
	for _, e := range l.Entries {
		if e.Snapshot != nil {
			adds++
		}
	}
	opts.TestOnlyBeforeForget = nil
	res, err := Rewrite(ctx, m.r, l, m.ident, l.Snapshots(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Snapshots) != 2 || !res.Snapshots[0].Reused || !res.Snapshots[1].Reused {
		t.Fatalf("second run made new copies: %+v", res)
	}
	l = m.log()
	var got []string
	for _, sn := range l.Snapshots() {
		if sn.Original == nil {
			t.Fatalf("original %s still live", sn.ID.Str())
		}
		got = append(got, strings.Join(m.files(m.r, sn), ","))
	}
	if want := []string{"/home/a=a-1", "/home/a=a-2"}; !slices.Equal(got, want) {
		t.Fatalf("live snapshots hold %q, want %q", got, want)
	}
	for _, e := range l.Entries {
		if e.Snapshot != nil {
			adds--
		}
	}
	if adds != 0 {
		t.Fatalf("the second run added %d snapshots", -adds)
	}
}

// TestRewriteDamaged checks that a tree that does not load stops the
// rewrite with an error naming the folder, before anything is recorded.
func TestRewriteDamaged(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	sn := m.snap(l, dirSpec{"home": dirSpec{"lost!": dirSpec{}, "secret": "s"}})
	entries := len(l.Entries)
	_, err := Rewrite(ctx, m.r, l, m.ident, []*Snapshot{sn}, RewriteOptions{Exclude: excludeName("secret"), Forget: true})
	if !errors.Is(err, repo.ErrBlobNotFound) || !strings.Contains(err.Error(), "/home/lost") {
		t.Fatalf("rewrite of a damaged snapshot: %v", err)
	}
	if n := len(m.log().Entries); n != entries {
		t.Fatalf("a failed rewrite wrote %d log entries", n-entries)
	}
	if _, err := Rewrite(ctx, m.r, l, m.ident, []*Snapshot{sn}, RewriteOptions{}); err == nil {
		t.Fatal("a rewrite without exclusion ran")
	}
}
