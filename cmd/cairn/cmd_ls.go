package main

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list the files in a snapshot",
		ArgsUsage: "SNAPSHOT[:SUBPATH] [DIR...]",
		Description: "Lists every file and folder in the snapshot, one path a line. Given DIRs\n" +
			"(absolute paths in the snapshot), it lists each DIR and what it holds\n" +
			"directly; --recursive lists everything below them too. --long adds mode,\n" +
			"owner, group, size and modification time. With --json the first line describes the snapshot\n" +
			"(message_type \"snapshot\") and each further line is one node\n" +
			"(message_type \"node\"; name, type, path, uid, gid, size, mode, permissions,\n" +
			"mtime, atime, ctime, inode).\n\n" + selectorHelp,
		Flags: append(filterFlags(),
			&cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "show mode, owner, size and time"},
			&cli.BoolFlag{Name: "recursive", Usage: "with DIRs: list everything below them, not only what they hold directly"},
		),
		Action: e.runLs,
	}
}

func (e *appEnv) runLs(c *cli.Context) error {
	if err := wantArgs(c, 1, -1); err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		sel, err := selectArg(ctx, s, c, c.Args().First())
		if err != nil {
			return err
		}
		if s.g.JSON {
			s.p.JSON(struct {
				snapshotJSON
				MessageType string `json:"message_type"`
				StructType  string `json:"struct_type"`
			}{toSnapshotJSON(sel.sn), "snapshot", "snapshot"})
		} else {
			s.p.Printf("snapshot %s of %v at %s:", sel.sn.ID.Str(), sel.sn.Paths, sel.sn.Time.Local().Format("2006-01-02 15:04:05"))
		}
		scope := newPathScope(c.Args().Tail())
		long, recursive := c.Bool("long"), c.Bool("recursive")
		failed := 0
		err = snapshot.Walk(ctx, s.repo, sel.tree, func(p string, n *snapshot.Node, err error) error {
			if err != nil {
				failed++
				s.p.Warnf("%s: %v", p, err)
				return nil
			}
			in, descend := scope.match(p)
			if in {
				switch {
				case s.g.JSON:
					s.p.JSON(toNodeJSON("node", p, n))
				case long:
					s.p.Printf("%s", longLine(p, n))
				default:
					s.p.Printf("%s", p)
				}
			}
			if n.Type == snapshot.NodeDir && (!descend || (in && !recursive && !scope.isDir(p))) {
				return snapshot.SkipDir
			}
			return nil
		})
		if err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("ls: %d folder(s) could not be read", failed)
		}
		return nil
	})
}
