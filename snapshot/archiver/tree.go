package archiver

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// future is the node of an item that may still be in the works: a file
// being read or a directory whose tree is not saved yet. Whoever completes
// it sets node (nil for an item that was skipped after an error) and then
// closes done; readers wait for done before they look at node.
type future struct {
	done chan struct{}
	node *snapshot.Node
}

func newFuture() *future { return &future{done: make(chan struct{})} }

// doneFuture returns a future that is already complete.
func doneFuture(n *snapshot.Node) *future {
	f := newFuture()
	f.complete(n)
	return f
}

func (f *future) complete(n *snapshot.Node) {
	f.node = n
	close(f.done)
}

func (f *future) wait(ctx context.Context) (*snapshot.Node, error) {
	select {
	case <-f.done:
		return f.node, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// treeJob asks a tree saver to assemble and save a directory once all its
// children are complete.
type treeJob struct {
	path     string
	node     *snapshot.Node // the directory's node; nil for the root tree
	prev     *snapshot.Node // the parent snapshot's node, or nil
	children []*future      // in name order
	fut      *future
	// prevTree is the parent snapshot's tree for this directory and
	// prevID its blob ID, or nil: if the new tree's nodes all equal it,
	// the tree is that blob and need not be encoded again.
	prevTree *snapshot.Tree
	prevID   backend.ID
}

// submitTree queues a directory for the tree savers and returns its future.
//
// The walker submits a directory after all its children (post-order), and
// the savers take jobs in submission order, so every child a saver waits on
// was queued before its parent: either it is done or some worker is on
// it. That is why a fixed number of tree savers cannot deadlock.
func (r *run) submitTree(ctx context.Context, path string, node, prev *snapshot.Node, prevTree *snapshot.Tree, children []*future) (*future, error) {
	job := &treeJob{path: path, node: node, prev: prev, children: children, fut: newFuture()}
	if prevTree != nil {
		switch {
		case node == nil: // the root tree
			job.prevTree, job.prevID = prevTree, r.a.opts.Parent
		case prev != nil && prev.Subtree != nil:
			job.prevTree, job.prevID = prevTree, *prev.Subtree
		}
	}
	if err := send(ctx, r.treeCh, job); err != nil {
		return nil, err
	}
	return job.fut, nil
}

// treeSaver assembles trees bottom-up until treeCh is closed or ctx ends.
func (r *run) treeSaver(ctx context.Context) {
	for {
		job, ok := receive(ctx, r.treeCh)
		if !ok {
			return
		}
		if err := r.saveTree(ctx, job); err != nil {
			r.fail(err)
			return
		}
	}
}

func (r *run) saveTree(ctx context.Context, job *treeJob) error {
	tree := &snapshot.Tree{Nodes: make([]*snapshot.Node, 0, len(job.children))}
	for _, c := range job.children {
		n, err := c.wait(ctx)
		if err != nil {
			return err
		}
		if n != nil {
			tree.Nodes = append(tree.Nodes, n)
		}
	}
	id, ok := r.unchangedTree(job, tree)
	if !ok {
		data, err := snapshot.EncodeTree(tree)
		if err != nil {
			return fmt.Errorf("encode tree of %s: %w", job.path, err)
		}
		id = backend.Hash(data)
		known, err := r.repo.SaveBlob(ctx, pack.TreeBlob, id, data)
		if err != nil {
			return fmt.Errorf("save tree of %s: %w", job.path, err)
		}
		if !known {
			r.stats.treeBlobs.Add(1)
			r.stats.dataAdded.Add(uint64(len(data)))
		}
	}
	node := job.node
	if node == nil {
		node = &snapshot.Node{Type: snapshot.NodeDir}
	}
	node.Subtree = &id
	if job.node != nil {
		r.countDir(job.path, node, statusOf(node, job.prev))
	}
	job.fut.complete(node)
	return nil
}

// unchangedTree returns the parent snapshot's blob for a tree whose nodes
// all equal the parent's, in the same order, when the repository still
// holds it. nodeEqual compares every field a node encodes, so encoding
// the tree again would give the same bytes, or bytes that decode to the
// same tree if an older version encoded the parent: either way the parent's
// blob stands for it. This spares an unchanged backup the encoding and
// hashing of every tree.
func (r *run) unchangedTree(job *treeJob, tree *snapshot.Tree) (backend.ID, bool) {
	prev := job.prevTree
	if prev == nil || job.prevID.IsNull() || len(prev.Nodes) != len(tree.Nodes) {
		return backend.ID{}, false
	}
	for i, n := range tree.Nodes {
		if !nodeEqual(n, prev.Nodes[i]) {
			return backend.ID{}, false
		}
	}
	if !r.repo.Has(pack.TreeBlob, job.prevID) {
		return backend.ID{}, false
	}
	return job.prevID, true
}
