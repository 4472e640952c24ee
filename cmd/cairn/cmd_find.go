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
			"path when it starts with \"/\"; \"**\" matches any number of folders.\n" +
			"--oldest and --newest leave out what was modified before or after a TIME,\n" +
			"in local time: \"2006-01-02\", \"2006-01-02 15:04\", \"2006-01-02 15:04:05\" or\n" +
			"RFC 3339 (\"2006-01-02T15:04:05Z\").\n" +
			"With --blob, --tree or --pack the arguments are IDs, or prefixes of IDs, of\n" +
			"data blobs, trees or packs: find lists the files holding those blobs, the\n" +
			"folders with those trees, or the files and folders whose blobs those packs\n" +
			"hold, in each snapshot searched (with --json one line per match,\n" +
			"{\"message_type\":\"match\",\"object_type\":...,\"id\":...,\"path\":...}).\n" +
			"With --json a pattern search prints restic's one JSON array: for each snapshot\n" +
			"with matches {\"matches\":[nodes],\"hits\":N,\"snapshot\":ID}, written as the\n" +
			"matches are found.\n\n" +
			selectorHelp,
		Flags: append(filterFlags(),
			&cli.StringSliceFlag{Name: "snapshot", Aliases: []string{"s"}, Usage: "search only `SNAPSHOT` (repeatable)"},
			&cli.BoolFlag{Name: "ignore-case", Aliases: []string{"i"}, Usage: "match patterns without regard to case"},
			&cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "show mode, owner, size and time"},
			&cli.StringFlag{Name: "oldest", Aliases: []string{"O"}, Usage: "leave out what was modified before `TIME`"},
			&cli.StringFlag{Name: "newest", Aliases: []string{"N"}, Usage: "leave out what was modified after `TIME`"},
			&cli.BoolFlag{Name: "blob", Usage: "the arguments are data blob IDs (or prefixes): find the files holding them"},
			&cli.BoolFlag{Name: "tree", Usage: "the arguments are tree IDs (or prefixes): find the folders they list"},
			&cli.BoolFlag{Name: "pack", Usage: "the arguments are pack IDs (or prefixes): find the files and folders whose blobs they hold"},
		),
		Action: e.runFind,
	}
}

func (e *appEnv) runFind(c *cli.Context) error {
	if err := wantArgs(c, 1, -1); err != nil {
		return err
	}
	if c.Bool("blob") || c.Bool("tree") || c.Bool("pack") {
		return e.runFindIDs(c)
	}
	patterns := c.Args().Slice()
	if _, err := snapshot.ParsePatterns(patterns, c.Bool("ignore-case")); err != nil {
		return err
	}
	opts := snapshot.FindOptions{IgnoreCase: c.Bool("ignore-case")}
	var err error
	if opts.Oldest, err = parseFindTime(c, "oldest"); err != nil {
		return err
	}
	if opts.Newest, err = parseFindTime(c, "newest"); err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		sels, err := findSnapshots(ctx, s, c)
		if err != nil {
			return err
		}
		failed, hits := 0, 0
		var out *findJSON
		if s.g.JSON {
			out = &findJSON{p: s.p}
		}
		for _, sel := range sels {
			header := false
			err := snapshot.FindNodes(ctx, s.repo, sel.tree, patterns, opts,
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

// findSnapshots returns the snapshots find searches: those given with
// --snapshot, or all that pass the filters.
func findSnapshots(ctx context.Context, s *session, c *cli.Context) ([]selected, error) {
	l, err := loadLog(ctx, s)
	if err != nil {
		return nil, err
	}
	f := filterFrom(c)
	var sels []selected
	if ids := c.StringSlice("snapshot"); len(ids) > 0 {
		for _, id := range ids {
			sel, err := selectSnapshot(ctx, s, l, id, f)
			if err != nil {
				return nil, err
			}
			sels = append(sels, sel)
		}
		return sels, nil
	}
	for _, sn := range f.Apply(l.Snapshots()) {
		sels = append(sels, selected{sn: sn, tree: sn.Tree})
	}
	return sels, nil
}

// findTimeLayouts are the forms find's --oldest and --newest accept, as
// restic's, read in local time unless the text names a zone.
var findTimeLayouts = []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"}

// parseFindTime reads the time of flag name; zero if it is not set.
func parseFindTime(c *cli.Context, name string) (time.Time, error) {
	s := c.String(name)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range findTimeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--%s %q: want a time like 2006-01-02, \"2006-01-02 15:04[:05]\" or 2006-01-02T15:04:05Z", name, s)
}
