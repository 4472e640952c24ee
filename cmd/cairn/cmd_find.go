package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) findCommand() *cli.Command {
	return &cli.Command{
		Name:      "find",
		Usage:     "find files in snapshots",
		ArgsUsage: "PATTERN...",
		Description: "Searches the snapshots (all that pass the filters, or those given with\n" +
			"--snapshot) for paths matching any PATTERN. A pattern without \"/\" matches a\n" +
			"file name (\"*.jpg\"); one with \"/\" matches the end of a path, or the whole\n" +
			"path when it starts with \"/\"; \"**\" matches any number of folders. With\n" +
			"--json it prints restic's one JSON array: for each snapshot with matches\n" +
			"{\"matches\":[nodes],\"hits\":N,\"snapshot\":ID}, written as the matches are found.\n\n" +
			selectorHelp,
		Flags: append(filterFlags(),
			&cli.StringSliceFlag{Name: "snapshot", Aliases: []string{"s"}, Usage: "search only `SNAPSHOT` (repeatable)"},
			&cli.BoolFlag{Name: "ignore-case", Aliases: []string{"i"}, Usage: "match patterns without regard to case"},
			&cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "show mode, owner, size and time"},
		),
		Action: e.runFind,
	}
}

func (e *appEnv) runFind(c *cli.Context) error {
	if err := wantArgs(c, 1, -1); err != nil {
		return err
	}
	patterns := c.Args().Slice()
	if _, err := snapshot.ParsePatterns(patterns, c.Bool("ignore-case")); err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		f := filterFrom(c)
		var sels []selected
		if ids := c.StringSlice("snapshot"); len(ids) > 0 {
			for _, id := range ids {
				sel, err := selectSnapshot(ctx, s, l, id, f)
				if err != nil {
					return err
				}
				sels = append(sels, sel)
			}
		} else {
			for _, sn := range f.Apply(l.Snapshots()) {
				sels = append(sels, selected{sn: sn, tree: sn.Tree})
			}
		}
		failed, hits := 0, 0
		var out *findJSON
		if s.g.JSON {
			out = &findJSON{p: s.p}
		}
		for _, sel := range sels {
			header := false
			err := snapshot.FindNodes(ctx, s.repo, sel.tree, patterns, snapshot.FindOptions{IgnoreCase: c.Bool("ignore-case")},
				func(p string, n *snapshot.Node, err error) error {
					if err != nil {
						failed++
						s.p.Warnf("snapshot %s: %s: %v", sel.sn.ID.Str(), p, err)
						return nil
					}
					hits++
					if out != nil {
						out.match(sel.sn.ID.String(), p, n)
						return nil
					}
					if !header {
						header = true
						s.p.Printf("found in snapshot %s from %s:", sel.sn.ID.Str(), sel.sn.Time.Local().Format("2006-01-02 15:04:05"))
					}
					if c.Bool("long") {
						s.p.Printf("%s", longLine(p, n))
					} else {
						s.p.Printf("%s", p)
					}
					return nil
				})
			if err != nil {
				return err
			}
		}
		if out != nil {
			out.finish()
		}
		if !s.g.JSON && hits == 0 {
			s.p.Printf("no matches in %d snapshot(s)", len(sels))
		}
		if failed > 0 {
			return fmt.Errorf("find: %d folder(s) could not be read", failed)
		}
		return nil
	})
}

// findJSON writes "find --json": restic's one JSON array with an object
// per snapshot that has matches, {"matches":[...],"hits":N,"snapshot":ID},
// streamed as matches are found so that memory does not grow with them.
type findJSON struct {
	p        *printer
	started  bool   // "[" is written
	snapshot string // the snapshot whose object is open, "" if none
	hits     int    // matches written in it
}

// findNodeJSON is a match as restic's find prints it.
type findNodeJSON struct {
	Path        string    `json:"path"`
	Permissions string    `json:"permissions"`
	Type        string    `json:"type"`
	Mode        uint32    `json:"mode"`
	ModTime     time.Time `json:"mtime"`
	AccessTime  time.Time `json:"atime"`
	ChangeTime  time.Time `json:"ctime"`
	UID         uint32    `json:"uid"`
	GID         uint32    `json:"gid"`
	User        string    `json:"user"`
	Group       string    `json:"group"`
	Inode       uint64    `json:"inode"`
	DeviceID    uint64    `json:"device_id"`
	Size        uint64    `json:"size"`
	Links       uint64    `json:"links"`
	LinkTarget  string    `json:"linktarget,omitempty"`
}

func (f *findJSON) match(snapshotID, p string, n *snapshot.Node) {
	var b strings.Builder
	if !f.started {
		b.WriteString("[")
		f.started = true
	}
	if f.snapshot != snapshotID {
		f.closeSnapshot(&b, ",")
		b.WriteString(`{"matches":[`)
		f.snapshot, f.hits = snapshotID, 0
	}
	if f.hits > 0 {
		b.WriteString(",")
	}
	f.hits++
	node, err := json.Marshal(findNodeJSON{Path: p, Permissions: n.Mode.String(), Type: string(n.Type), Mode: uint32(n.Mode),
		ModTime: n.ModTime, AccessTime: n.AccessTime, ChangeTime: n.ChangeTime, UID: n.UID, GID: n.GID,
		User: n.User, Group: n.Group, Inode: n.Inode, DeviceID: n.DeviceID, Size: n.Size, Links: n.Links, LinkTarget: n.LinkTarget})
	if err != nil {
		panic("cairn: internal error: marshal a find match: " + err.Error())
	}
	b.Write(node)
	f.p.Raw(b.String())
}

// closeSnapshot ends the open snapshot's object, followed by sep.
func (f *findJSON) closeSnapshot(b *strings.Builder, sep string) {
	if f.snapshot == "" {
		return
	}
	id, _ := json.Marshal(f.snapshot)
	fmt.Fprintf(b, `],"hits":%d,"snapshot":%s}%s`, f.hits, id, sep)
	f.snapshot = ""
}

// finish ends the array ("[]" when nothing matched).
func (f *findJSON) finish() {
	var b strings.Builder
	if !f.started {
		b.WriteString("[")
	}
	f.closeSnapshot(&b, "")
	b.WriteString("]\n")
	f.p.Raw(b.String())
}
