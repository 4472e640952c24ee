package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// ErrBadIDPrefix is wrapped by ParseIDPrefixes' error.
var ErrBadIDPrefix = errors.New("not an ID or ID prefix")

// IDPrefixes matches IDs by their hex text: an ID matches if its text
// starts with one of the prefixes (a whole ID is a prefix of itself).
type IDPrefixes []string

// ParseIDPrefixes reads IDs or ID prefixes: 1 to 64 hex digits, in either
// case.
func ParseIDPrefixes(ss []string) (IDPrefixes, error) {
	var out IDPrefixes
	for _, s := range ss {
		t := strings.ToLower(s)
		if t == "" || len(t) > 2*len(backend.ID{}) || strings.Trim(t, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("%w: %q (want hex digits, e.g. 1a2b3c4d)", ErrBadIDPrefix, s)
		}
		out = append(out, t)
	}
	return out, nil
}

// Match reports whether id starts with one of the prefixes.
func (p IDPrefixes) Match(id backend.ID) bool {
	text := id.String()
	for _, pre := range p {
		if strings.HasPrefix(text, pre) {
			return true
		}
	}
	return false
}

// BlobInPack is a blob find --pack looks for: its type and the pack
// holding it.
type BlobInPack struct {
	Type pack.BlobType
	Pack backend.ID
}

// BlobsInPacks lists the blobs the index places in the packs packs
// matches, and the packs found. Each pack prefix must match a pack of the
// index, or it is an error.
func BlobsInPacks(idx *index.Index, packs IDPrefixes) (map[backend.ID]BlobInPack, error) {
	found := make(map[string]bool)
	out := make(map[backend.ID]BlobInPack)
	idx.Each(func(pb index.PackedBlob) bool {
		text := pb.PackID.String()
		for _, pre := range packs {
			if strings.HasPrefix(text, pre) {
				found[pre] = true
				out[pb.ID] = BlobInPack{pb.Type, pb.PackID}
				break
			}
		}
		return true
	})
	for _, pre := range packs {
		if !found[pre] {
			return nil, fmt.Errorf("no pack %s... in the index", pre)
		}
	}
	return out, nil
}

// IDMatchFunc is called by FindIDs for each match: a file at path holding
// the data blob id, or a folder at path whose tree is id (node is nil for
// the snapshot's root, path "/").
type IDMatchFunc func(path string, node *Node, t pack.BlobType, id backend.ID) error

// FindIDs walks the tree root and calls fn for every tree (the root
// included) and every data blob of a file that match reports true for.
// A tree that does not load is an error.
func FindIDs(ctx context.Context, repo TreeLoader, root backend.ID, match func(pack.BlobType, backend.ID) bool, fn IDMatchFunc) error {
	if match(pack.TreeBlob, root) {
		if err := fn("/", nil, pack.TreeBlob, root); err != nil {
			return err
		}
	}
	return Walk(ctx, repo, root, func(p string, n *Node, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if n.Type == NodeDir && n.Subtree != nil && match(pack.TreeBlob, *n.Subtree) {
			if err := fn(p, n, pack.TreeBlob, *n.Subtree); err != nil {
				return err
			}
		}
		for i, id := range n.Content {
			// A chunk repeated in a file is one match.
			if match(pack.DataBlob, id) && !slices.Contains(n.Content[:i], id) {
				if err := fn(p, n, pack.DataBlob, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
