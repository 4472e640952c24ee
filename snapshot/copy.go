package snapshot

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
)

// CopyOptions configure Copy; the zero value works.
type CopyOptions struct {
	// Now is the clock for the log entries; nil means time.Now.
	Now func() time.Time
	// Progress, if set, gets the progress of each snapshot's blob copy
	// (repo.Repository.CopyBlobs).
	Progress repo.ProgressFunc
	// Done, if set, is called as each snapshot is copied or found
	// copied already, before the next one starts.
	Done func(CopiedSnapshot)
	// TestOnlyBeforeSnapshot, if set, runs once a snapshot's data is in
	// the destination and before its log entry is written (tests kill
	// the process there).
	TestOnlyBeforeSnapshot func(ctx context.Context) error
}

// CopiedSnapshot says what Copy did with one snapshot of the source.
type CopiedSnapshot struct {
	// Snapshot is the snapshot in the source.
	Snapshot backend.ID `json:"snapshot"`
	// New is its copy in the destination: the one made, or, when
	// Skipped, the one found there.
	New backend.ID `json:"new"`
	// Skipped says the destination held a copy already.
	Skipped bool `json:"skipped"`
	// Blobs and Bytes count the blobs the destination lacked and got for
	// this snapshot, and their plaintext size.
	Blobs int    `json:"blobs"`
	Bytes uint64 `json:"bytes"`
}

// CopyResult is what Copy did, the snapshots in the order given.
type CopyResult struct {
	Snapshots []CopiedSnapshot `json:"snapshots"`
}

// Copy copies the snapshots snaps of the repository src into dst, another
// repository with its own keys, whose log is dstLog: for each snapshot it
// walks the snapshot's trees in src, copies the tree and data blobs dst
// lacks (repo.Repository.CopyBlobs: re-encrypted under dst's keys,
// compressed with dst's mode, deduplicated against what dst holds), then
// records the snapshot in dstLog, signed by ident, with no Parent (it names
// an entry of src's log) and Original set to the source snapshot's
// Original, or its ID if it has none.
//
// Copy is idempotent: a snapshot whose copy dst already holds live (a
// snapshot with the same Original, or whose ID is that Original, with the
// same time, tree, host, user, paths, excludes and tags: restic's test) is
// skipped, and blobs dst holds are not copied again. A snapshot's data is
// flushed into dst before its entry is written, so an interrupted copy
// leaves only unused blobs, which the next run reuses.
//
// Blob IDs are hashes of the plaintext, so blobs are copied as they are:
// when the two repositories' chunker polynomials differ, the copied files
// keep src's chunks, and files backed up into dst later are chunked
// differently and do not deduplicate against them.
//
// The caller holds a shared lock on src and at least an append lock on
// dst.
func Copy(ctx context.Context, src, dst *repo.Repository, dstLog *Log, ident *crypt.Identity, snaps []*Snapshot, opts CopyOptions) (CopyResult, error) {
	res := CopyResult{Snapshots: []CopiedSnapshot{}}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	// dst's snapshots by Original and by ID: a source snapshot copied
	// from dst in the first place has dst's snapshot ID as Original.
	byOriginal := map[backend.ID][]*Snapshot{}
	for _, sn := range dstLog.Snapshots() {
		byOriginal[sn.ID] = append(byOriginal[sn.ID], sn)
		if sn.Original != nil && *sn.Original != sn.ID {
			byOriginal[*sn.Original] = append(byOriginal[*sn.Original], sn)
		}
	}
	visited := repo.NewBlobSet() // trees walked in this run
	for _, sn := range snaps {
		key := persistentID(sn)
		var cs CopiedSnapshot
		if found := findCopied(byOriginal[key], sn); found != nil {
			cs = CopiedSnapshot{Snapshot: sn.ID, New: found.ID, Skipped: true}
		} else {
			var ns *Snapshot
			var err error
			if cs, ns, err = copySnapshot(ctx, src, dst, dstLog, ident, sn, visited, opts, now); err != nil {
				return res, fmt.Errorf("copy snapshot %s: %w", sn.ID.Str(), err)
			}
			byOriginal[key] = append(byOriginal[key], ns)
		}
		res.Snapshots = append(res.Snapshots, cs)
		if opts.Done != nil {
			opts.Done(cs)
		}
	}
	return res, nil
}

// copySnapshot copies one snapshot's missing blobs and records it in dst,
// returning the copy.
func copySnapshot(ctx context.Context, src, dst *repo.Repository, dstLog *Log, ident *crypt.Identity, sn *Snapshot,
	visited *repo.BlobSet, opts CopyOptions, now func() time.Time) (CopiedSnapshot, *Snapshot, error) {
	need := repo.NewBlobSet()
	if err := missingBlobs(ctx, src, dst, sn.Tree, visited, need); err != nil {
		return CopiedSnapshot{}, nil, err
	}
	st, err := dst.CopyBlobs(ctx, src, need, opts.Progress)
	if err != nil {
		return CopiedSnapshot{}, nil, err
	}
	if opts.TestOnlyBeforeSnapshot != nil {
		if err := opts.TestOnlyBeforeSnapshot(ctx); err != nil {
			return CopiedSnapshot{}, nil, err
		}
	}
	ns := *sn
	ns.ID = backend.ID{}
	ns.Parent = nil
	orig := persistentID(sn)
	ns.Original = &orig
	ns.Paths = slices.Clone(sn.Paths)
	ns.Tags = slices.Clone(sn.Tags)
	ns.Excludes = slices.Clone(sn.Excludes)
	if sn.Summary != nil {
		s := *sn.Summary
		ns.Summary = &s
	}
	id, err := dstLog.AddSnapshot(ctx, dst, ident, &ns, now())
	if err != nil {
		return CopiedSnapshot{}, nil, err
	}
	return CopiedSnapshot{Snapshot: sn.ID, New: id, Blobs: st.Blobs, Bytes: st.Bytes}, &ns, nil
}

// missingBlobs adds to need the blobs of the tree id, and of everything
// under it, that dst lacks, skipping trees in visited (walked earlier in
// this run, their blobs copied already) and adding the others to it. Every
// tree is walked even when dst holds it: an interrupted copy may have
// stored a tree without all its data.
func missingBlobs(ctx context.Context, src, dst *repo.Repository, id backend.ID, visited, need *repo.BlobSet) error {
	if !visited.Insert(pack.TreeBlob, id) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !dst.Has(pack.TreeBlob, id) {
		need.Insert(pack.TreeBlob, id)
	}
	t, err := LoadTree(ctx, src, id)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes {
		switch n.Type {
		case NodeFile:
			for _, c := range n.Content {
				if !dst.Has(pack.DataBlob, c) {
					need.Insert(pack.DataBlob, c)
				}
			}
		case NodeDir:
			if err := missingBlobs(ctx, src, dst, *n.Subtree, visited, need); err != nil {
				return err
			}
		}
	}
	return nil
}

// persistentID is what identifies a snapshot across copies: its Original,
// else its own ID.
func persistentID(sn *Snapshot) backend.ID {
	if sn.Original != nil {
		return *sn.Original
	}
	return sn.ID
}

// findCopied returns the candidate that is a copy of sn: the same time,
// tree, host, user, paths, excludes and tags.
func findCopied(cands []*Snapshot, sn *Snapshot) *Snapshot {
	for _, c := range cands {
		if c.Time.Equal(sn.Time) && c.Tree == sn.Tree && c.Hostname == sn.Hostname &&
			c.Username == sn.Username && c.UID == sn.UID && c.GID == sn.GID &&
			c.SamePaths(sn.Paths) && slices.Equal(c.Excludes, sn.Excludes) && sameTags(c.Tags, sn.Tags) {
			return c
		}
	}
	return nil
}

func sameTags(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
