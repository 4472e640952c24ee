package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// TagChange is the body of a tag entry (op OpTag): a change of the tags
// of the snapshots it names, which keep their IDs. Either Set replaces
// their tags (an empty Set removes them all), or Add adds the tags a
// snapshot lacks and then Remove removes those it has.
//
// A change names what to do, not the result, so that changes written at
// the same time by two devices both count once the log merges them:
// readers apply tag entries in the log's (seq, ID) order, as every other
// entry, so all of them see the same tags.
type TagChange struct {
	Snapshots []backend.ID `json:"snapshots"`
	Set       *[]string    `json:"set,omitempty"`
	Add       []string     `json:"add,omitempty"`
	Remove    []string     `json:"remove,omitempty"`
}

// ErrUnknownOp is wrapped by the error for a log entry whose operation
// this version of cairn does not know: one written by a newer version.
var ErrUnknownOp = errors.New("log entry operation unknown to this version of cairn")

// Validate checks the rules a tag entry's body must follow: at least one
// snapshot, none twice; Set, or a non-empty Add or Remove, not both; no
// empty tag.
func (c *TagChange) Validate() error {
	if len(c.Snapshots) == 0 {
		return errors.New("names no snapshot")
	}
	seen := make(map[backend.ID]bool, len(c.Snapshots))
	for _, id := range c.Snapshots {
		if seen[id] {
			return fmt.Errorf("names snapshot %s twice", id.Str())
		}
		seen[id] = true
	}
	switch {
	case c.Set != nil && len(c.Add)+len(c.Remove) > 0:
		return errors.New("set together with add or remove")
	case c.Set == nil && len(c.Add)+len(c.Remove) == 0:
		return errors.New("changes nothing: no set, add or remove")
	}
	var lists [][]string
	if c.Set != nil {
		lists = append(lists, *c.Set)
	}
	for _, list := range append(lists, c.Add, c.Remove) {
		if slices.Contains(list, "") {
			return errors.New("an empty tag")
		}
	}
	return nil
}

// Apply returns the tags a snapshot with tags has after the change (nil
// for none); tags itself is not changed.
func (c *TagChange) Apply(tags []string) []string {
	var out []string
	if c.Set != nil {
		for _, t := range *c.Set {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		return out
	}
	out = slices.Clone(tags)
	for _, t := range c.Add {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	out = slices.DeleteFunc(out, func(t string) bool { return slices.Contains(c.Remove, t) })
	if len(out) == 0 {
		return nil
	}
	return out
}

// applyTo changes the tags of the live snapshots the change names, each
// replaced by a copy (the add entry's snapshot stays as it was written).
// A snapshot already forgotten, or unknown, is left alone: a tag entry
// written beside a forget of the same snapshot does not bring it back.
func (c *TagChange) applyTo(live map[backend.ID]*Snapshot, forgotten map[backend.ID]bool) {
	for _, id := range c.Snapshots {
		sn, ok := live[id]
		if !ok || forgotten[id] {
			continue
		}
		cp := *sn
		cp.Tags = c.Apply(sn.Tags)
		live[id] = &cp
	}
}

// checkNewer refuses a change of the live set (what) while the log holds
// entries this version cannot read: it would decide on a wrong state.
func (l *Log) checkNewer(what string) error {
	if l.Newer > 0 {
		return fmt.Errorf("%s: refusing to run: the snapshot log holds %d entries of an operation unknown to this version of cairn (written by a newer one), so the snapshots and tags it sees may be wrong: upgrade cairn", what, l.Newer)
	}
	return nil
}

// ChangeTags records c in the log and returns the entry's ID. The
// snapshots keep their IDs; Snapshots() shows their new tags at once.
// Every snapshot c names must be live: ask for the ones whose tags
// c.Apply changes, so that an entry that changes nothing is not written.
func (l *Log) ChangeTags(ctx context.Context, r LogRepository, ident *crypt.Identity, c TagChange, now time.Time) (backend.ID, error) {
	if err := l.checkNewer("tag"); err != nil {
		return backend.ID{}, err
	}
	if c.Set != nil && *c.Set == nil {
		// Encoded as null, a nil list would read back as no Set at all.
		c.Set = &[]string{}
	}
	if err := c.Validate(); err != nil {
		return backend.ID{}, fmt.Errorf("tag: %w", err)
	}
	for _, id := range c.Snapshots {
		if !slices.ContainsFunc(l.snapshots, func(sn *Snapshot) bool { return sn.ID == id }) {
			return backend.ID{}, fmt.Errorf("tag: snapshot %s: %w", id.Str(), ErrNoSnapshot)
		}
	}
	e, err := l.append(ctx, r, ident, OpTag, body{Tag: &c}, now)
	if err != nil {
		return backend.ID{}, fmt.Errorf("tag: %w", err)
	}
	return e.ID, nil
}
