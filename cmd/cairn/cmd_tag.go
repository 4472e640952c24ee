package main

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) tagCommand() *cli.Command {
	return &cli.Command{
		Name:      "tag",
		Usage:     "add, remove or set the tags of snapshots",
		ArgsUsage: "[SNAPSHOT...]",
		Description: "Changes the tags of the snapshots named, or, when none is named, of every\n" +
			"snapshot that passes --host, --path and --tag. --set replaces their tags (--set\n" +
			"\"\" removes them all); --add and --remove add and remove tags, and may be given\n" +
			"together but not with --set. Each takes TAG[,TAG...] and may be repeated.\n\n" +
			"Unlike restic, which writes a new snapshot with a new ID, the change is one\n" +
			"entry of the signed snapshot log: the snapshots keep their IDs, snapshots,\n" +
			"forget's --tag and --keep-tag, mount and every copy mirrored see the new tags,\n" +
			"and two devices tagging at once both have their changes kept. Snapshots whose\n" +
			"tags would not change are left out; when none changes, nothing is written.\n" +
			"Older cairn versions cannot read the entry: upgrade every device first.\n\n" +
			"With --json each changed snapshot is a line {\"message_type\":\"changed_snapshot\",\n" +
			"\"snapshot_id\", \"old_snapshot_id\", \"new_snapshot_id\" (all three the same: the ID\n" +
			"is kept), \"old_tags\", \"tags\"}, then {\"message_type\":\"summary\",\n" +
			"\"changed_snapshots\", \"log_entry\"}.\n\n" + selectorHelp,
		Flags: append(filterFlags(),
			&cli.StringSliceFlag{Name: "add", Usage: "add `TAG[,TAG...]` (repeatable)"},
			&cli.StringSliceFlag{Name: "remove", Usage: "remove `TAG[,TAG...]` (repeatable)"},
			&cli.StringSliceFlag{Name: "set", Usage: "replace the tags with `TAG[,TAG...]` (repeatable; \"\" for none)"},
		),
		Action: e.runTag,
	}
}

// tagList flattens repeated TAG[,TAG...] values, as restic does.
func tagList(values []string) []string {
	var out []string
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// tagChange is the change the flags ask for, without snapshots yet.
func tagChange(c *cli.Context) (snapshot.TagChange, error) {
	var ch snapshot.TagChange
	add, remove := tagList(c.StringSlice("add")), tagList(c.StringSlice("remove"))
	switch {
	case c.IsSet("set") && (c.IsSet("add") || c.IsSet("remove")):
		return ch, errors.New("tag: --set cannot be given with --add or --remove")
	case c.IsSet("set"):
		set := tagList(c.StringSlice("set"))
		if set == nil {
			set = []string{}
		}
		ch.Set = &set
	case len(add)+len(remove) == 0:
		return ch, errors.New("tag: nothing to do: give --add, --remove or --set")
	default:
		ch.Add, ch.Remove = add, remove
	}
	return ch, nil
}

// changedSnapshotJSON is one line of "tag --json".
type changedSnapshotJSON struct {
	MessageType   string   `json:"message_type"`
	SnapshotID    string   `json:"snapshot_id"`
	OldSnapshotID string   `json:"old_snapshot_id"`
	NewSnapshotID string   `json:"new_snapshot_id"`
	OldTags       []string `json:"old_tags"`
	Tags          []string `json:"tags"`
}

func (e *appEnv) runTag(c *cli.Context) error {
	ch, err := tagChange(c)
	if err != nil {
		return err
	}
	return e.withRepo(c, appendLock, func(ctx context.Context, s *session) error {
		l, snaps, err := loadLive(ctx, s, c)
		if err != nil {
			return err
		}
		var changed []changedSnapshotJSON
		for _, sn := range snaps {
			if tags := ch.Apply(sn.Tags); !slices.Equal(tags, sn.Tags) {
				ch.Snapshots = append(ch.Snapshots, sn.ID)
				id := sn.ID.String()
				changed = append(changed, changedSnapshotJSON{"changed_snapshot", id, id, id, nonNil(sn.Tags), nonNil(tags)})
			}
		}
		var entry string
		if len(changed) > 0 {
			ident, err := s.device.Identity()
			if err != nil {
				return err
			}
			id, err := l.ChangeTags(ctx, s.repo, ident, ch, s.now())
			if err != nil {
				return err
			}
			rememberLog(s, l)
			entry = id.String()
		}
		for _, j := range changed {
			if s.g.JSON {
				s.p.JSON(j)
			} else {
				s.p.Printf("snapshot %s: tags %v -> %v", j.SnapshotID[:8], j.OldTags, j.Tags)
			}
		}
		if s.g.JSON {
			s.p.JSON(struct {
				MessageType      string `json:"message_type"`
				ChangedSnapshots int    `json:"changed_snapshots"`
				LogEntry         string `json:"log_entry,omitempty"`
			}{"summary", len(changed), entry})
			return nil
		}
		if len(changed) == 0 {
			s.p.Printf("no snapshot changed")
			return nil
		}
		s.p.Printf("changed the tags of %s (log entry %s)", fmtCount(len(changed), "snapshot"), entry[:8])
		return nil
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
