package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

// selectorHelp is the SNAPSHOTS section of the help of commands that take
// a snapshot selector.
const selectorHelp = `SNAPSHOTS:
   A snapshot is named by its full ID, a unique prefix of it (8 hex digits
   usually suffice), or "latest": the newest snapshot that passes the
   --host, --path and --tag filters. SNAPSHOT:SUBPATH names the folder
   SUBPATH inside the snapshot (e.g. latest:/home/me/docs).`

// filterFlags are the snapshot filter flags.
func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "host", EnvVars: []string{envHost}, Usage: "only snapshots of `HOST` (repeatable; default: $CAIRN_HOST)"},
		&cli.StringSliceFlag{Name: "path", Usage: "only snapshots that include `PATH` (repeatable; all must be included)"},
		&cli.StringSliceFlag{Name: "tag", Usage: "only snapshots with `TAG[,TAG...]` (repeatable; any entry may match)"},
	}
}

func filterFrom(c *cli.Context) snapshot.Filter {
	return snapshot.Filter{Hosts: c.StringSlice("host"), Paths: c.StringSlice("path"), Tags: c.StringSlice("tag")}
}

// loadLog reads the snapshot log, warning about any problem found in it,
// including signs of a rollback since this device last read it.
func loadLog(ctx context.Context, s *session) (*snapshot.Log, error) {
	return readLog(ctx, s, true)
}

// readLog reads the snapshot log and remembers its heads; with warn, it
// also warns about the log's problems, and says when the log is behind
// what this device saw elsewhere. check passes false: it reports those
// itself, and saying each twice would only confuse.
func readLog(ctx context.Context, s *session, warn bool) (*snapshot.Log, error) {
	l, err := snapshot.LoadLog(ctx, s.repo)
	if err != nil {
		return nil, fmt.Errorf("load snapshot log: %w", err)
	}
	if warn {
		for _, p := range l.Problems {
			s.p.Warnf("snapshot log: %s", p)
		}
		for _, p := range l.Skipped {
			s.p.Warnf("snapshot log: %s", p)
		}
	}
	seen, err := s.device.Seen(s.repo.Config().ID)
	if err != nil {
		s.p.Warnf("remembered snapshot log heads: %v", err)
	}
	s.seen = seen
	if warn {
		rep := seenReport(s, l)
		for _, p := range rep.Problems {
			s.p.Warnf("snapshot log: %s", p)
		}
		if rep.Behind != "" {
			s.p.Warnf("snapshot log: %s", rep.Behind)
		}
	}
	rememberLog(s, l)
	checkAcks(ctx, s, l)
	return l, nil
}

// seenReport compares the log with what this device remembered of it
// before this run, here and at the repository's other locations.
func seenReport(s *session, l *snapshot.Log) snapshot.SeenReport {
	return l.CheckSeenAt(s.seen, seenLocation(s.g.Repo))
}

// seenLocation is how the remembered log state names a location: a local
// path made absolute (so "repo" and "/srv/repo" are one place), any other
// location as given, without secrets.
func seenLocation(loc string) string {
	if name, rest, err := parseLocation(loc); err == nil && name == "local" {
		if abs, err := filepath.Abs(rest); err == nil {
			return abs
		}
	}
	return redactLocation(loc)
}

// rememberLog saves the log's heads in this device's state, never moving
// back from what it remembered before and keeping remembered heads that
// went missing, so a rollback is noticed and stays reported.
func rememberLog(s *session, l *snapshot.Log) {
	if err := s.device.Remember(s.repo.Config().ID, s.seen, l, seenLocation(s.g.Repo)); err != nil {
		s.p.Warnf("remember snapshot log heads: %v", err)
	}
}

// selected is a resolved SNAPSHOT[:SUBPATH] selector.
type selected struct {
	sn      *snapshot.Snapshot
	subpath string
	tree    backend.ID // the snapshot's tree, or SUBPATH's inside it
}

// selectArg loads the log and resolves the selector arg among the
// snapshots that pass the command's filter flags.
func selectArg(ctx context.Context, s *session, c *cli.Context, arg string) (selected, error) {
	l, err := loadLog(ctx, s)
	if err != nil {
		return selected{}, err
	}
	return selectSnapshot(ctx, s, l, arg, filterFrom(c))
}

// loadLive loads the log and resolves the command's arguments with
// selectLive and its filter flags.
func loadLive(ctx context.Context, s *session, c *cli.Context) (*snapshot.Log, []*snapshot.Snapshot, error) {
	l, err := loadLog(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := selectLive(l, c.Args().Slice(), filterFrom(c))
	return l, snaps, err
}

// selectLive resolves whole-snapshot selectors among the live snapshots,
// each snapshot once however often it is named; none means every live
// snapshot that passes the filter. It is how stats, tag, copy and
// rewrite pick their snapshots.
func selectLive(l *snapshot.Log, sels []string, f snapshot.Filter) ([]*snapshot.Snapshot, error) {
	if len(sels) == 0 {
		return f.Apply(l.Snapshots()), nil
	}
	var out []*snapshot.Snapshot
	for _, sel := range sels {
		if strings.Contains(sel, ":") {
			return nil, fmt.Errorf("%q names a folder: a whole snapshot is needed here, not SNAPSHOT:SUBPATH", sel)
		}
		sn, err := snapshot.Find(l.Snapshots(), sel, f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, sn) {
			out = append(out, sn)
		}
	}
	return out, nil
}

// selectSnapshot resolves sel against the log with the filter.
func selectSnapshot(ctx context.Context, s *session, l *snapshot.Log, sel string, f snapshot.Filter) (selected, error) {
	name, sub := snapshot.SplitSelector(sel)
	sn, err := snapshot.Find(l.Snapshots(), name, f)
	if errors.Is(err, snapshot.ErrNoSnapshot) && name != "latest" {
		// A snapshot named by ID may have been forgotten while its log
		// entry and data stay: an append-only peer keeps them after the
		// owner's forget and prune, so that old snapshots can still be
		// restored from it.
		if old, ferr := snapshot.Find(l.Forgotten(), name, f); ferr == nil {
			s.p.Warnf("snapshot %s was forgotten; using it because its log entry is still here (its data may be gone if this repository was pruned)", old.ID.Str())
			sn, err = old, nil
		}
	}
	if errors.Is(err, snapshot.ErrNoSnapshot) {
		err = lockedSnapshot(l, name, err)
	}
	if err != nil {
		return selected{}, err
	}
	tree := sn.Tree
	if sub != "" {
		tree, err = snapshot.FindSubtree(ctx, s.repo, sn.Tree, sub)
		if err != nil {
			return selected{}, fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
		}
	}
	return selected{sn: sn, subpath: sub, tree: tree}, nil
}

// snapshotJSON is a snapshot as restic prints it: its fields plus id and
// short_id.
type snapshotJSON struct {
	*snapshot.Snapshot
	ID      string `json:"id"`
	ShortID string `json:"short_id"`
}

func toSnapshotJSON(sn *snapshot.Snapshot) snapshotJSON {
	return snapshotJSON{Snapshot: sn, ID: sn.ID.String(), ShortID: sn.ID.Str()}
}
