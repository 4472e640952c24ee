package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

// memTrees is an in-memory TreeLoader that counts loads.
type memTrees struct {
	mu    sync.Mutex
	blobs map[backend.ID][]byte
	loads map[backend.ID]int
}

func newMemTrees() *memTrees {
	return &memTrees{blobs: map[backend.ID][]byte{}, loads: map[backend.ID]int{}}
}

func (m *memTrees) LoadBlob(_ context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads[id]++
	b, ok := m.blobs[id]
	if !ok || t != pack.TreeBlob {
		return nil, fmt.Errorf("%s blob %s: not found", t, id.Str())
	}
	return append(buf[:0], b...), nil
}

func (m *memTrees) putRaw(b []byte) backend.ID {
	id := backend.Hash(b)
	m.blobs[id] = b
	return id
}

// treeSpec describes a node for buildTree: children make a directory.
type treeSpec struct {
	name     string
	typ      NodeType
	content  []backend.ID
	size     uint64
	mode     uint32
	mtime    int64
	children []treeSpec
}

func (m *memTrees) build(t *testing.T, nodes []treeSpec) backend.ID {
	t.Helper()
	var tree Tree
	for _, x := range nodes {
		n := &Node{Name: x.name, Type: x.typ, Content: x.content, Size: x.size, ModTime: time.Unix(x.mtime, 0)}
		if x.mode != 0 {
			n.Mode = os.FileMode(x.mode)
		}
		if x.typ == "" {
			n.Type = NodeFile
		}
		if x.typ == NodeDir {
			id := m.build(t, x.children)
			n.Subtree = &id
		}
		if err := tree.Insert(n); err != nil {
			t.Fatal(err)
		}
	}
	b, err := EncodeTree(&tree)
	if err != nil {
		t.Fatal(err)
	}
	return m.putRaw(b)
}

// tree stores a tree of the given nodes.
func (m *memTrees) tree(t *testing.T, nodes ...*Node) backend.ID {
	t.Helper()
	var tree Tree
	for _, n := range nodes {
		if err := tree.Insert(n); err != nil {
			t.Fatal(err)
		}
	}
	b, err := EncodeTree(&tree)
	if err != nil {
		t.Fatal(err)
	}
	return m.putRaw(b)
}

func walkSampleTree(t *testing.T, m *memTrees) backend.ID {
	return m.build(t, []treeSpec{
		{name: "b.txt"},
		{name: "a", typ: NodeDir, children: []treeSpec{
			{name: "z"},
			{name: "y", typ: NodeDir, children: []treeSpec{{name: "deep.txt"}}},
			{name: "x.TXT"},
		}},
		{name: "c", typ: NodeDir},
		{name: "link", typ: NodeSymlink},
	})
}

func walkCollect(t *testing.T, m *memTrees, root backend.ID, skip map[string]error) []string {
	t.Helper()
	var got []string
	err := Walk(context.Background(), m, root, func(p string, n *Node, err error) error {
		if err != nil {
			got = append(got, "ERR "+p)
			return nil
		}
		got = append(got, p)
		return skip[p]
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWalkOrder(t *testing.T) {
	m := newMemTrees()
	root := walkSampleTree(t, m)
	got := walkCollect(t, m, root, nil)
	want := []string{"/a", "/a/x.TXT", "/a/y", "/a/y/deep.txt", "/a/z", "/b.txt", "/c", "/link"}
	if !slices.Equal(got, want) {
		t.Errorf("walk order\n got %q\nwant %q", got, want)
	}
	// SkipDir on a directory prunes it; on a file it ends its directory.
	got = walkCollect(t, m, root, map[string]error{"/a/y": SkipDir, "/b.txt": SkipDir})
	want = []string{"/a", "/a/x.TXT", "/a/y", "/a/z", "/b.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("walk with SkipDir\n got %q\nwant %q", got, want)
	}
	// Another error stops the walk and is returned.
	stop := errors.New("stop")
	err := Walk(context.Background(), m, root, func(p string, n *Node, err error) error {
		if p == "/a/y" {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Errorf("Walk = %v, want stop", err)
	}
}

func TestWalkBrokenTrees(t *testing.T) {
	m := newMemTrees()
	bad := m.putRaw([]byte(`{"nodes":[{"name":"../x","type":"file"}]}`))
	missing := backend.Hash([]byte("nothing"))
	var tree Tree
	for _, n := range []*Node{
		{Name: "bad", Type: NodeDir, Subtree: &bad},
		{Name: "gone", Type: NodeDir, Subtree: &missing},
		{Name: "ok", Type: NodeFile},
	} {
		if err := tree.Insert(n); err != nil {
			t.Fatal(err)
		}
	}
	b, err := EncodeTree(&tree)
	if err != nil {
		t.Fatal(err)
	}
	root := m.putRaw(b)
	var got []string
	err = Walk(context.Background(), m, root, func(p string, n *Node, err error) error {
		if err != nil {
			if p == "/bad" && !errors.Is(err, ErrFormat) {
				t.Errorf("bad tree error %v, want ErrFormat", err)
			}
			got = append(got, "ERR "+p)
			return nil
		}
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/bad", "ERR /bad", "/gone", "ERR /gone", "/ok"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// A root that cannot be loaded is reported as "/" with a nil node.
	err = Walk(context.Background(), m, missing, func(p string, n *Node, err error) error {
		if p != "/" || n != nil || err == nil {
			t.Errorf("root failure: %q %v %v", p, n, err)
		}
		return err
	})
	if err == nil {
		t.Error("Walk of a missing root returned nil")
	}
}

func TestWalkCancelled(t *testing.T) {
	m := newMemTrees()
	root := walkSampleTree(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Walk(ctx, m, root, func(string, *Node, error) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Walk = %v, want context.Canceled", err)
	}
}

func TestFindSubtree(t *testing.T) {
	m := newMemTrees()
	root := walkSampleTree(t, m)
	ctx := context.Background()
	for _, sub := range []string{"", "/", ".", "//./"} {
		id, err := FindSubtree(ctx, m, root, sub)
		if err != nil || id != root {
			t.Errorf("FindSubtree(%q) = %v, %v; want root", sub, id.Str(), err)
		}
	}
	id, err := FindSubtree(ctx, m, root, "/a/y/")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := LoadTree(ctx, m, id)
	if err != nil || len(tree.Nodes) != 1 || tree.Nodes[0].Name != "deep.txt" {
		t.Fatalf("subtree a/y: %v %v", tree, err)
	}
	if _, err := FindSubtree(ctx, m, root, "a/nope"); !errors.Is(err, ErrPathNotFound) || !strings.Contains(err.Error(), "/a/nope") {
		t.Errorf("missing path: %v", err)
	}
	if _, err := FindSubtree(ctx, m, root, "a/z"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as subtree: %v", err)
	}
	if _, err := FindSubtree(ctx, m, root, "a/../a"); err == nil {
		t.Error("\"..\" accepted")
	}
}

func TestFindNodes(t *testing.T) {
	m := newMemTrees()
	root := walkSampleTree(t, m)
	ctx := context.Background()
	find := func(patterns []string, opts FindOptions) []string {
		t.Helper()
		var got []string
		err := FindNodes(ctx, m, root, patterns, opts, func(p string, n *Node, err error) error {
			if err != nil {
				return err
			}
			got = append(got, p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	tests := []struct {
		patterns []string
		opts     FindOptions
		want     []string
	}{
		{[]string{"*.txt"}, FindOptions{}, []string{"/a/y/deep.txt", "/b.txt"}},
		{[]string{"*.txt"}, FindOptions{IgnoreCase: true}, []string{"/a/x.TXT", "/a/y/deep.txt", "/b.txt"}},
		{[]string{"y/*"}, FindOptions{}, []string{"/a/y/deep.txt"}},
		{[]string{"/a/*"}, FindOptions{}, []string{"/a/x.TXT", "/a/y", "/a/z"}},
		{[]string{"/*"}, FindOptions{}, []string{"/a", "/b.txt", "/c", "/link"}},
		{[]string{"z", "link"}, FindOptions{}, []string{"/a/z", "/link"}},
		{[]string{"/**/deep*"}, FindOptions{}, []string{"/a/y/deep.txt"}},
	}
	for _, tt := range tests {
		if got := find(tt.patterns, tt.opts); !slices.Equal(got, tt.want) {
			t.Errorf("find %q %+v = %q, want %q", tt.patterns, tt.opts, got, tt.want)
		}
	}
	if err := FindNodes(ctx, m, root, []string{"[x"}, FindOptions{}, nil); !errors.Is(err, ErrBadPattern) {
		t.Errorf("bad pattern: %v", err)
	}
	if err := FindNodes(ctx, m, root, nil, FindOptions{}, nil); !errors.Is(err, ErrBadPattern) {
		t.Errorf("no pattern: %v", err)
	}
}

// deepChain stores a chain of depth directories named "d" with a file "f"
// at the bottom and returns the root tree.
func deepChain(t *testing.T, m *memTrees, depth int) backend.ID {
	t.Helper()
	id := m.tree(t, &Node{Name: "f", Type: NodeFile})
	for range depth - 1 {
		sub := id
		id = m.tree(t, &Node{Name: "d", Type: NodeDir, Subtree: &sub})
	}
	sub := id
	return m.tree(t, &Node{Name: "d", Type: NodeDir, Subtree: &sub})
}

// walkLiveHeap walks a chain of depth directories and returns the live
// heap (after a collection) measured when Walk reaches the bottom, less
// the live heap before the walk: what Walk keeps for the levels above.
func walkLiveHeap(t *testing.T, depth int) uint64 {
	t.Helper()
	m := newMemTrees()
	root := deepChain(t, m, depth)
	live := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := live()
	var atBottom uint64
	var paths int
	want := strings.Repeat("/d", depth) + "/f"
	err := Walk(context.Background(), m, root, func(p string, n *Node, err error) error {
		if err != nil {
			return err
		}
		paths++
		if n.Type == NodeFile {
			if p != want {
				t.Fatalf("bottom at %.40q..., want %.40q...", p, want)
			}
			atBottom = live()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if paths != depth+1 || atBottom == 0 {
		t.Fatalf("walked %d nodes, want %d", paths, depth+1)
	}
	return atBottom - min(atBottom, before)
}

// TestWalkDeepTreeLinearMemory: what Walk holds at the bottom of a chain
// of directories grows with the depth, not with its square (one path
// string per level, each as long as the depth, is quadratic: 50 MB at
// 5,000 levels).
func TestWalkDeepTreeLinearMemory(t *testing.T) {
	h1 := walkLiveHeap(t, 1000)
	h5 := walkLiveHeap(t, 5000)
	t.Logf("live heap at the bottom: %d KiB at 1,000 levels, %d KiB at 5,000", h1>>10, h5>>10)
	// Linear: about 5 times; quadratic: 25 times. 1 MiB of slack for the
	// noise of a small heap.
	if h5 > 8*h1+1<<20 {
		t.Errorf("Walk holds %d KiB at 5,000 levels, %d KiB at 1,000: more than linear", h5>>10, h1>>10)
	}
}
