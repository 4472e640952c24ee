package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) logCommand() *cli.Command {
	return &cli.Command{
		Name:      "log",
		Usage:     "show the signed snapshot log",
		ArgsUsage: " ",
		Description: "Lists the entries of the snapshot log in sequence order: when each was\n" +
			"written, by which device (its peer ID), and what it did (add a snapshot, forget\n" +
			"snapshots, register a writing device, checkpoint the live set, change tags).\n" +
			"Problems found while verifying the chain (broken links, bad signatures, unknown\n" +
			"devices, a rollback since this device last looked) are printed as warnings;\n" +
			"'cairn check' fails on them. --json prints one array of entries: id, seq, time,\n" +
			"device, op, parents, and snapshot, forget, live or tag by op.",
		Action: e.runLog,
	}
}

// logEntryJSON is one entry of "log --json".
type logEntryJSON struct {
	ID       string    `json:"id"`
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Device   string    `json:"device"`
	Op       string    `json:"op"`
	Parents  []string  `json:"parents"`
	Snapshot string    `json:"snapshot,omitempty"`
	Forget   []string  `json:"forget,omitempty"`
	Live     int       `json:"live,omitempty"`
	// Tag is a tag entry's change: the snapshots and set, add, remove.
	Tag *snapshot.TagChange `json:"tag,omitempty"`
}

func opName(op byte) string {
	switch op {
	case snapshot.OpAdd:
		return "add"
	case snapshot.OpForget:
		return "forget"
	case snapshot.OpWriter:
		return "writer"
	case snapshot.OpCheckpoint:
		return "checkpoint"
	case snapshot.OpTag:
		return "tag"
	}
	return "unknown"
}

func (e *appEnv) runLog(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		var out []logEntryJSON
		for _, en := range l.Ordered() {
			j := logEntryJSON{
				ID:      en.ID.String(),
				Seq:     en.Seq,
				Time:    time.Unix(0, en.Time).UTC(),
				Device:  crypt.PeerIDFromKey(en.Device).String(),
				Op:      opName(en.Op),
				Parents: []string{},
			}
			for _, pid := range en.Parents {
				j.Parents = append(j.Parents, backend.ID(pid).String())
			}
			switch {
			case en.Snapshot != nil:
				j.Snapshot = en.ID.String()
			case en.Forget != nil:
				for _, id := range en.Forget {
					j.Forget = append(j.Forget, id.String())
				}
			case en.Checkpoint != nil:
				j.Live = len(en.Checkpoint.Snapshots)
			case en.Tag != nil:
				j.Tag = en.Tag
			}
			out = append(out, j)
		}
		if s.g.JSON {
			if out == nil {
				out = []logEntryJSON{}
			}
			s.p.JSON(out)
			return nil
		}
		s.p.Printf("%-5s  %-8s  %-19s  %-8s  %-10s  %s", "Seq", "Entry", "Time", "Device", "Op", "Details")
		for i, en := range l.Ordered() {
			j := out[i]
			detail := ""
			switch {
			case en.Snapshot != nil:
				detail = "snapshot " + en.ID.Str() + " of " + en.Snapshot.Hostname
			case en.Forget != nil:
				detail = fmtCount(len(en.Forget), "snapshot") + " forgotten"
			case en.Checkpoint != nil:
				detail = fmtCount(j.Live, "live snapshot")
			case en.Writer != nil:
				detail = "device registered"
			case en.Tag != nil:
				detail = "tags of " + fmtCount(len(en.Tag.Snapshots), "snapshot") + " " + tagChangeText(en.Tag)
			}
			if len(en.Parents) > 1 {
				detail += " (merges " + fmtCount(len(en.Parents), "head") + ")"
			}
			s.p.Printf("%-5d  %-8s  %-19s  %-8s  %-10s  %s", en.Seq, en.ID.Str(), j.Time.Local().Format("2006-01-02 15:04:05"),
				crypt.PeerIDFromKey(en.Device).Short(), j.Op, detail)
		}
		s.p.Printf("%s, %s", fmtCount(len(out), "entry"), fmtCount(len(l.Heads), "head"))
		return nil
	})
}

// tagChangeText says what a tag change does: "set to [a b]", "+a -b".
func tagChangeText(c *snapshot.TagChange) string {
	if c.Set != nil {
		return fmt.Sprintf("set to %v", *c.Set)
	}
	var parts []string
	for _, t := range c.Add {
		parts = append(parts, "+"+t)
	}
	for _, t := range c.Remove {
		parts = append(parts, "-"+t)
	}
	return strings.Join(parts, " ")
}

// fmtCount says "1 entry", "2 entries", "3 heads".
func fmtCount(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	switch {
	case len(noun) > 1 && noun[len(noun)-1] == 'y':
		noun = noun[:len(noun)-1] + "ies"
	default:
		noun += "s"
	}
	return fmt.Sprintf("%d %s", n, noun)
}
