package snapshot

import (
	"context"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

// DiffStat counts one side of a diff, as restic's diff statistics do:
// the entries added (or removed) by type, and the blobs only that side's
// entries use, with their plaintext bytes.
type DiffStat struct {
	Files     int    `json:"files"`
	Dirs      int    `json:"dirs"`
	Others    int    `json:"others"`
	DataBlobs int    `json:"data_blobs"`
	TreeBlobs int    `json:"tree_blobs"`
	Bytes     uint64 `json:"bytes"`
}

// count adds an added or removed entry.
func (s *DiffStat) count(n *Node) {
	switch n.Type {
	case NodeFile:
		s.Files++
	case NodeDir:
		s.Dirs++
	default:
		s.Others++
	}
}

// DiffStats sum up a Diff. ChangedFiles are the regular files whose
// content changed; Added and Removed count the entries only in the new
// (old) tree, and the blobs the changed entries of the new (old) tree use
// that those of the other do not: the data a backup added, or a forget
// and prune of the old snapshot could free. Blobs are looked at only in
// the entries that differ (and the trees above them), so a blob that a
// removed file shares with a file left unchanged counts as removed.
type DiffStats struct {
	ChangedFiles int
	Added        DiffStat
	Removed      DiffStat
	// Modified, MetadataChanged and TypeChanged count the changes of
	// those kinds (cairn's; restic has none of them).
	Modified, MetadataChanged, TypeChanged int
}

// BlobSizer returns the plaintext size of a blob; ok is false when the
// repository does not know it (it then counts no bytes).
type BlobSizer func(t pack.BlobType, id backend.ID) (size uint64, ok bool)

type blobKey struct {
	t  pack.BlobType
	id backend.ID
}

// DiffWithStats is Diff, and it also sums the differences up. Memory for
// the sums follows the size of the difference (the blobs of changed
// entries), not the size of the snapshots.
func DiffWithStats(ctx context.Context, repo TreeLoader, size BlobSizer, rootA, rootB backend.ID, fn func(Change) error) (DiffStats, error) {
	var st DiffStats
	before, after := map[blobKey]bool{}, map[blobKey]bool{}
	content := func(set map[blobKey]bool, n *Node) {
		if n != nil && n.Type == NodeFile {
			for _, id := range n.Content {
				set[blobKey{pack.DataBlob, id}] = true
			}
		}
	}
	d := &differ{repo: repo, trees: func(oldID, newID *backend.ID) {
		if oldID != nil {
			before[blobKey{pack.TreeBlob, *oldID}] = true
		}
		if newID != nil {
			after[blobKey{pack.TreeBlob, *newID}] = true
		}
	}}
	d.fn = func(ch Change) error {
		switch ch.Kind {
		case Added:
			st.Added.count(ch.New)
		case Removed:
			st.Removed.count(ch.Old)
		case Modified:
			st.Modified++
			if ch.New.Type == NodeFile {
				st.ChangedFiles++
			}
		case MetadataChanged:
			st.MetadataChanged++
		case TypeChanged:
			st.TypeChanged++
		}
		content(before, ch.Old)
		content(after, ch.New)
		return fn(ch)
	}
	if err := d.compare(ctx, "/", rootA, rootB); err != nil {
		return st, err
	}
	only := func(s *DiffStat, set, other map[blobKey]bool) {
		for k := range set {
			if other[k] {
				continue
			}
			if k.t == pack.TreeBlob {
				s.TreeBlobs++
			} else {
				s.DataBlobs++
			}
			if n, ok := size(k.t, k.id); ok {
				s.Bytes += n
			}
		}
	}
	only(&st.Added, after, before)
	only(&st.Removed, before, after)
	return st, nil
}
