package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"
)

// GroupBy says which snapshot fields split snapshots into groups before a
// policy is applied (restic's --group-by). The zero GroupBy puts every
// snapshot in one group.
type GroupBy struct {
	Host, Paths, Tags bool
}

// DefaultGroupBy is forget's default, host and paths: a policy never trades
// one machine's or one backup set's snapshots for another's.
var DefaultGroupBy = GroupBy{Host: true, Paths: true}

// ParseGroupBy parses a comma-separated list of "host", "paths" and "tags"
// (restic also accepts "hosts", "path" and "tag", and so does this). Empty
// items are ignored, so "" is no grouping at all. Every error wraps
// ErrGroupBy.
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for item := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(item) {
		case "host", "hosts":
			g.Host = true
		case "path", "paths":
			g.Paths = true
		case "tag", "tags":
			g.Tags = true
		case "":
		default:
			return GroupBy{}, fmt.Errorf("%w %q: unknown field %q (want host, paths or tags)", ErrGroupBy, shorten(s), shorten(item))
		}
	}
	return g, nil
}

// String formats g as ParseGroupBy reads it ("host,paths"); no grouping
// is "".
func (g GroupBy) String() string {
	var parts []string
	if g.Host {
		parts = append(parts, "host")
	}
	if g.Paths {
		parts = append(parts, "paths")
	}
	if g.Tags {
		parts = append(parts, "tags")
	}
	return strings.Join(parts, ",")
}

// Set parses s into g (for command-line flags).
func (g *GroupBy) Set(s string) error {
	v, err := ParseGroupBy(s)
	if err != nil {
		return err
	}
	*g = v
	return nil
}

// GroupKey is what the snapshots of a group share: the fields GroupBy
// names, the others empty. Paths are sorted; tags are sorted without
// duplicates (a snapshot's tags are a set).
type GroupKey struct {
	Hostname string   `json:"hostname"`
	Paths    []string `json:"paths"`
	Tags     []string `json:"tags"`
}

// String describes the key for forget's group headings, as restic does:
// "host h, paths [/a /b], tags [x]"; the key of no grouping is "".
func (k GroupKey) String() string {
	var parts []string
	if k.Hostname != "" {
		parts = append(parts, "host "+k.Hostname)
	}
	if len(k.Paths) > 0 {
		parts = append(parts, fmt.Sprintf("paths %v", k.Paths))
	}
	if len(k.Tags) > 0 {
		parts = append(parts, fmt.Sprintf("tags %v", k.Tags))
	}
	return strings.Join(parts, ", ")
}

// SnapshotGroup is one group: its key and its snapshots, oldest first (the
// order of snapshot.SortByTime).
type SnapshotGroup struct {
	Key       GroupKey
	Snapshots []*snapshot.Snapshot
}

// Group splits snaps into groups by the fields by names. Groups are ordered
// by key (hostname, then paths, then tags, each compared element by
// element), so the result does not depend on the order of snaps. snaps is
// not modified and must not hold nil; no group is empty.
func Group(snaps []*snapshot.Snapshot, by GroupBy) []SnapshotGroup {
	type item struct {
		key GroupKey
		sn  *snapshot.Snapshot
	}
	items := make([]item, len(snaps))
	for i, sn := range snaps {
		items[i] = item{keyOf(sn, by), sn}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		if c := compareKeys(a.key, b.key); c != 0 {
			return c
		}
		if c := a.sn.Time.Compare(b.sn.Time); c != 0 {
			return c
		}
		return slices.Compare(a.sn.ID[:], b.sn.ID[:])
	})
	var groups []SnapshotGroup
	for _, it := range items {
		if n := len(groups); n > 0 && compareKeys(groups[n-1].Key, it.key) == 0 {
			groups[n-1].Snapshots = append(groups[n-1].Snapshots, it.sn)
			continue
		}
		groups = append(groups, SnapshotGroup{Key: it.key, Snapshots: []*snapshot.Snapshot{it.sn}})
	}
	return groups
}

func keyOf(sn *snapshot.Snapshot, by GroupBy) GroupKey {
	var k GroupKey
	if by.Host {
		k.Hostname = sn.Hostname
	}
	if by.Paths && len(sn.Paths) > 0 {
		k.Paths = slices.Clone(sn.Paths)
		slices.Sort(k.Paths)
	}
	if by.Tags && len(sn.Tags) > 0 {
		k.Tags = slices.Clone(sn.Tags)
		slices.Sort(k.Tags)
		k.Tags = slices.Compact(k.Tags)
	}
	return k
}

func compareKeys(a, b GroupKey) int {
	return cmp.Or(
		strings.Compare(a.Hostname, b.Hostname),
		slices.Compare(a.Paths, b.Paths),
		slices.Compare(a.Tags, b.Tags),
	)
}

// Latest keeps, of snaps, the n newest snapshots of each host and set of
// paths (restic's snapshots --latest: the paths compared as a set), oldest
// first as snapshot.SortByTime orders them. n <= 0 keeps all. snaps is
// not modified.
func Latest(snaps []*snapshot.Snapshot, n int) []*snapshot.Snapshot {
	if n <= 0 {
		return slices.Clone(snaps)
	}
	var out []*snapshot.Snapshot
	for _, g := range Group(snaps, GroupBy{Host: true, Paths: true}) {
		out = append(out, g.Snapshots[max(0, len(g.Snapshots)-n):]...)
	}
	snapshot.SortByTime(out)
	return out
}
