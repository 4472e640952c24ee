package main

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

// findIDJSON is one match of "find --blob/--tree/--pack --json", with
// restic's field names.
type findIDJSON struct {
	MessageType string `json:"message_type"`
	ObjectType  string `json:"object_type"`
	ID          string `json:"id"`
	Path        string `json:"path"`
	Pack        string `json:"pack,omitempty"`
	Snapshot    string `json:"snapshot"`
	Time        string `json:"time"`
}

// runFindIDs is find with --blob, --tree or --pack: the arguments are IDs
// or ID prefixes.
func (e *appEnv) runFindIDs(c *cli.Context) error {
	if err := wantArgs(c, 1, -1); err != nil {
		return err
	}
	n := 0
	for _, name := range []string{"blob", "tree", "pack"} {
		if c.Bool(name) {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("--blob, --tree and --pack: give only one")
	}
	for _, name := range []string{"ignore-case", "oldest", "newest", "long"} {
		if c.IsSet(name) {
			return fmt.Errorf("--%s works only with name patterns, not with --blob, --tree or --pack", name)
		}
	}
	ids, err := snapshot.ParseIDPrefixes(c.Args().Slice())
	if err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		sels, err := findSnapshots(ctx, s, c)
		if err != nil {
			return err
		}
		var inPacks map[backend.ID]snapshot.BlobInPack
		match := func(t pack.BlobType, id backend.ID) bool {
			return (t == pack.DataBlob) == c.Bool("blob") && ids.Match(id)
		}
		if c.Bool("pack") {
			if inPacks, err = snapshot.BlobsInPacks(s.repo.Index(), ids); err != nil {
				return err
			}
			match = func(t pack.BlobType, id backend.ID) bool { b, ok := inPacks[id]; return ok && b.Type == t }
		}
		hits := 0
		for _, sel := range sels {
			err := snapshot.FindIDs(ctx, s.repo, sel.tree, match, func(p string, _ *snapshot.Node, t pack.BlobType, id backend.ID) error {
				hits++
				printFindID(s, sel.sn, p, t, id, inPacks)
				return nil
			})
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", sel.sn.ID.Str(), err)
			}
		}
		if !s.g.JSON && hits == 0 {
			s.p.Printf("no matches in %d snapshot(s)", len(sels))
		}
		return nil
	})
}

func printFindID(s *session, sn *snapshot.Snapshot, p string, t pack.BlobType, id backend.ID, inPacks map[backend.ID]snapshot.BlobInPack) {
	kind, where := "blob", "file"
	if t == pack.TreeBlob {
		kind, where = "tree", "folder"
	}
	packID := ""
	if b, ok := inPacks[id]; ok {
		packID = b.Pack.String()
	}
	when := sn.Time.Local().Format("2006-01-02 15:04:05")
	if s.g.JSON {
		s.p.JSON(findIDJSON{"match", kind, id.String(), p, packID, sn.ID.String(), sn.Time.Format("2006-01-02T15:04:05.999999999Z07:00")})
		return
	}
	s.p.Printf("Found %s %s", kind, id)
	s.p.Printf(" ... in %s %s", where, p)
	if packID != "" {
		s.p.Printf(" ... in pack %s", packID)
	}
	s.p.Printf(" ... in snapshot %s (%s)", sn.ID.Str(), when)
}
