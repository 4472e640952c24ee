package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

func diffFile(name string, content string, mtime int64) *Node {
	id := backend.Hash([]byte(content))
	return &Node{Name: name, Type: NodeFile, Mode: 0o644, Size: uint64(len(content)),
		Content: []backend.ID{id}, ModTime: time.Unix(mtime, 0)}
}

func diffDir(name string, id backend.ID) *Node {
	return &Node{Name: name, Type: NodeDir, Mode: os.ModeDir | 0o755, Subtree: &id}
}

func TestDiff(t *testing.T) {
	m := newMemTrees()
	ctx := context.Background()

	// A subtree shared by both snapshots that is NOT stored: Diff must not
	// load it, or it fails.
	shared := backend.Hash([]byte("never stored"))

	oldSub := m.tree(t, diffFile("keep", "k", 1), diffFile("gone", "g", 1))
	newSub := m.tree(t, diffFile("keep", "k", 1), diffFile("new", "n", 1))
	removedDir := m.tree(t, diffFile("inner", "i", 1))
	addedDir := m.tree(t, diffFile("fresh", "f", 1), diffDir("deeper", m.tree(t, diffFile("leaf", "l", 1))))

	chmod := diffFile("chmod", "c", 1)
	chmodNew := diffFile("chmod", "c", 1)
	chmodNew.Mode = 0o600
	xattr := diffFile("xattr", "x", 1)
	xattrNew := diffFile("xattr", "x", 1)
	xattrNew.ExtendedAttributes = []ExtendedAttribute{{Name: "user.a", Value: []byte("1")}}
	atimeOnly := diffFile("atime", "a", 1)
	atimeOnlyNew := diffFile("atime", "a", 1)
	atimeOnlyNew.AccessTime = time.Unix(99, 0)
	atimeOnlyNew.Inode = 42
	link := &Node{Name: "link", Type: NodeSymlink, LinkTarget: "a"}
	linkNew := &Node{Name: "link", Type: NodeSymlink, LinkTarget: "b"}
	dirMeta := diffDir("metadir", shared)
	dirMetaNew := diffDir("metadir", shared)
	dirMetaNew.UID = 1000

	rootA := m.tree(t,
		atimeOnly,
		chmod,
		diffFile("content", "old", 5),
		diffDir("dir", oldSub),
		link,
		dirMeta,
		diffDir("removed", removedDir),
		diffDir("same", shared),
		diffFile("typechange", "t", 1),
		xattr,
	)
	rootB := m.tree(t,
		diffDir("added", addedDir),
		atimeOnlyNew,
		chmodNew,
		diffFile("content", "new", 5),
		diffDir("dir", newSub),
		linkNew,
		dirMetaNew,
		diffDir("same", shared),
		diffDir("typechange", m.tree(t, diffFile("child", "c", 1))),
		xattrNew,
	)
	var got []string
	err := Diff(ctx, m, rootA, rootB, func(c Change) error {
		if (c.Kind == Added) != (c.Old == nil) || (c.Kind == Removed) != (c.New == nil) {
			t.Errorf("%s %s: Old/New = %v/%v", c.Kind, c.Path, c.Old, c.New)
		}
		got = append(got, fmt.Sprintf("%s %s", c.Kind, c.Path))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"+ /added",
		"+ /added/deeper",
		"+ /added/deeper/leaf",
		"+ /added/fresh",
		"U /chmod",
		"M /content",
		"- /dir/gone",
		"+ /dir/new",
		"M /link",
		"U /metadir",
		"- /removed",
		"- /removed/inner",
		"T /typechange",
		"+ /typechange/child",
		"U /xattr",
	}
	if !slices.Equal(got, want) {
		t.Errorf("diff\n got %q\nwant %q", got, want)
	}
	if m.loads[shared] != 0 {
		t.Errorf("identical subtree loaded %d times", m.loads[shared])
	}

	// Same root: nothing loaded, nothing reported.
	m.loads = map[backend.ID]int{}
	if err := Diff(ctx, m, rootA, rootA, func(c Change) error { t.Errorf("change %v", c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(m.loads) != 0 {
		t.Errorf("diff of a root with itself loaded %d trees", len(m.loads))
	}

	// fn's error stops Diff; a tree that fails to load is an error.
	stop := errors.New("stop")
	if err := Diff(ctx, m, rootA, rootB, func(Change) error { return stop }); err != stop {
		t.Errorf("Diff = %v, want stop", err)
	}
	broken := m.tree(t, diffDir("same", backend.Hash([]byte("x"))))
	if err := Diff(ctx, m, rootA, broken, func(Change) error { return nil }); err == nil {
		t.Error("Diff through a missing tree returned nil")
	}
	if ChangeKind('M').String() != "M" {
		t.Error("ChangeKind.String")
	}
}

// TestDiffWithStats counts what restic's diff statistics count: entries
// added and removed by type, files whose content changed, and the blobs
// (with their bytes) only the new or only the old entries use.
func TestDiffWithStats(t *testing.T) {
	m := newMemTrees()
	ctx := context.Background()
	shared := diffFile("shared", "shared content", 1) // in both, unchanged
	sub := m.tree(t, diffFile("inner", "inner", 1))
	rootA := m.tree(t, shared, diffFile("changed", "before", 1), diffFile("gone", "gone!", 1),
		diffDir("olddir", sub), &Node{Name: "oldlink", Type: NodeSymlink, LinkTarget: "x"})
	rootB := m.tree(t, shared, diffFile("changed", "after!!", 1), diffFile("new", "new", 1),
		diffDir("newdir", m.tree(t, diffFile("inner2", "inner2", 1))))
	sizes := map[backend.ID]uint64{}
	for _, s := range []string{"before", "after!!", "gone!", "new", "inner", "inner2"} {
		sizes[backend.Hash([]byte(s))] = uint64(len(s))
	}
	size := func(tp pack.BlobType, id backend.ID) (uint64, bool) {
		if tp == pack.TreeBlob {
			return 100, true
		}
		n, ok := sizes[id]
		return n, ok
	}
	var changes int
	st, err := DiffWithStats(ctx, m, size, rootA, rootB, func(Change) error { changes++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := DiffStats{ChangedFiles: 1, Modified: 1,
		// new, newdir, newdir/inner2; blobs "after!!", "new", "inner2"; trees rootB and newdir's
		Added: DiffStat{Files: 2, Dirs: 1, DataBlobs: 3, TreeBlobs: 2, Bytes: 7 + 3 + 6 + 200},
		// gone, olddir, olddir/inner, oldlink; blobs "before", "gone!", "inner"; trees rootA and olddir's
		Removed: DiffStat{Files: 2, Dirs: 1, Others: 1, DataBlobs: 3, TreeBlobs: 2, Bytes: 6 + 5 + 5 + 200}}
	if st != want {
		t.Errorf("stats\n%+v, want\n%+v", st, want)
	}
	if changes != 8 {
		t.Errorf("%d changes reported, want 8", changes)
	}
}
