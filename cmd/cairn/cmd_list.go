package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/urfave/cli/v2"
)

// listType is one kind of thing "cairn list" lists: name is the
// argument, item the JSON message type, files the repository folder it
// reads (0 for snapshots, from the log, and blobs, from the index).
type listType struct {
	name, item string
	files      backend.FileType
}

var listTypes = []listType{
	{"keys", "key", backend.KeyFile},
	{"locks", "lock", backend.LockFile},
	{"snapshots", "snapshot", 0},
	{"index", "index", backend.IndexFile},
	{"packs", "pack", backend.PackFile},
	{"blobs", "blob", 0},
	{"log", "log", backend.LogFile},
	{"meta", "meta", backend.MetaFile},
}

func listTypeNames() string {
	var names []string
	for _, t := range listTypes {
		names = append(names, t.name)
	}
	return strings.Join(names, "|")
}

func (e *appEnv) listCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list the IDs of the repository's files, snapshots or blobs",
		ArgsUsage: listTypeNames(),
		Description: "Prints one ID a line, in no particular order, as restic's list does: keys,\n" +
			"locks, index and packs are the files in keys/, locks/, index/ and data/;\n" +
			"log the snapshot log's entries (log/); snapshots the IDs of the live\n" +
			"snapshots, oldest first; blobs \"TYPE ID\" (TYPE data or tree) for each blob\n" +
			"the index lists, once for each pack that holds it. Listing locks takes no\n" +
			"lock, so this command's own lock is not among them. With --json each line is\n" +
			"an object: {\"message_type\": \"key\", \"id\": ...}; a blob adds \"type\" and \"pack\".",
		Action: e.runList,
	}
}

// listItemJSON is one line of "list --json".
type listItemJSON struct {
	MessageType string `json:"message_type"`
	ID          string `json:"id"`
	Type        string `json:"type,omitempty"`
	Pack        string `json:"pack,omitempty"`
}

func (e *appEnv) runList(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	name := c.Args().First()
	i := slices.IndexFunc(listTypes, func(t listType) bool { return t.name == name })
	if i < 0 {
		return fmt.Errorf("list: unknown type %q (want %s)", name, listTypeNames())
	}
	lt := listTypes[i]
	mode := sharedLock
	if lt.name == "locks" {
		mode = noLock
	}
	return e.withRepo(c, mode, func(ctx context.Context, s *session) error {
		// The list is the command's result: printed with --quiet too.
		s.p.quiet = false
		emit := func(j listItemJSON) {
			switch {
			case s.g.JSON:
				s.p.JSON(j)
			case j.Type != "":
				s.p.Printf("%s %s", j.Type, j.ID)
			default:
				s.p.Printf("%s", j.ID)
			}
		}
		switch lt.name {
		case "snapshots":
			l, err := loadLog(ctx, s)
			if err != nil {
				return err
			}
			for _, sn := range l.Snapshots() {
				emit(listItemJSON{MessageType: lt.item, ID: sn.ID.String()})
			}
			return nil
		case "blobs":
			s.repo.Index().Each(func(pb index.PackedBlob) bool {
				emit(listItemJSON{MessageType: lt.item, ID: pb.ID.String(), Type: pb.Type.String(), Pack: pb.PackID.String()})
				return ctx.Err() == nil
			})
			return ctx.Err()
		}
		return s.repo.ListFiles(ctx, lt.files, func(id backend.ID, _ int64) error {
			emit(listItemJSON{MessageType: lt.item, ID: id.String()})
			return nil
		})
	})
}
