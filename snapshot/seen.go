package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
)

// Seen is what a client remembers of a repository's log between runs: the
// newest heads it saw. It lives in the client's local state, never in the
// repository, so a storage server that rolls the log back cannot also roll
// back the client's memory of it.
//
// One repository can be read at several locations: its home and the
// copies mirrored to friends. MaxSeq and Heads are the newest state seen at
// any of them; Locations holds what was seen at each one, so that a copy
// that is merely behind (not mirrored to yet) can be told from a location
// whose own log moved backwards; Known lists the newest entries seen
// anywhere, so that a copy that is behind can be checked to hold nothing
// this device has not seen.
type Seen struct {
	MaxSeq uint64     `json:"max_seq"`
	Heads  []SeenHead `json:"heads"`
	// Locations maps a location (as seenLocation in cmd/cairn spells it:
	// an absolute path, or the URL without secrets) to what was seen
	// there. A state saved before locations were remembered has none;
	// such a state is taken to have been seen at every location.
	Locations map[string]SeenAt `json:"locations,omitempty"`
	// Known holds the maxKnown newest entries seen anywhere.
	Known []SeenHead `json:"known,omitempty"`
}

// SeenHead is one remembered head.
type SeenHead struct {
	ID  backend.ID `json:"id"`
	Seq uint64     `json:"seq"`
}

// SeenAt is what was seen of the log at one location.
type SeenAt struct {
	MaxSeq uint64     `json:"max_seq"`
	Heads  []SeenHead `json:"heads"`
}

// maxKnown bounds Seen.Known: 1,024 entries are about six weeks of hourly
// backups, and 100 KiB of state. A copy further behind than that is still
// reported as behind, with a note that it could not be checked in full.
const maxKnown = 1024

// maxLocations bounds Seen.Locations; past it the location with the
// oldest state is forgotten.
const maxLocations = 64

// Seen returns the log's current heads to remember.
func (l *Log) Seen() Seen {
	s := Seen{MaxSeq: l.MaxSeq()}
	for _, h := range l.Heads {
		s.Heads = append(s.Heads, SeenHead{ID: h, Seq: l.Entries[h].Seq})
	}
	return s
}

// CheckSeen compares the log with what the client saw before and returns a
// line for each sign of a rollback: a newest sequence number below the
// remembered one, or a remembered head that is gone without a newer
// checkpoint covering it. It takes everything in s as seen at this very
// location; CheckSeenAt tells a copy that is behind from a rollback.
func (l *Log) CheckSeen(s Seen) []string {
	return l.checkAgainst(s.MaxSeq, s.Heads)
}

// checkAgainst is CheckSeen against one remembered state.
func (l *Log) checkAgainst(maxSeq uint64, heads []SeenHead) []string {
	var problems []string
	if cur := l.MaxSeq(); cur < maxSeq {
		problems = append(problems, fmt.Sprintf("log rolled back: newest entry has sequence %d, but this client saw sequence %d before (entries were removed)", cur, maxSeq))
	}
	for _, h := range l.missingHeads(heads) {
		problems = append(problems, fmt.Sprintf("log entry %s (sequence %d) seen by this client before is missing (rollback or deletion)", h.ID.Str(), h.Seq))
	}
	return problems
}

// missingHeads returns the remembered heads the log lacks that no newer
// checkpoint covers.
func (l *Log) missingHeads(heads []SeenHead) []SeenHead {
	var cpSeq uint64
	if cp := l.Checkpoint(); cp != nil {
		cpSeq = cp.Seq
	}
	var out []SeenHead
	for _, h := range heads {
		if _, ok := l.Entries[h.ID]; ok || h.Seq < cpSeq {
			continue
		}
		out = append(out, h)
	}
	return out
}

// SeenReport is what CheckSeenAt finds.
type SeenReport struct {
	// Problems are damage: the log moved backwards from what this device
	// saw at this location, or it is older than what the device saw
	// elsewhere and holds entries the device never saw (not a prefix of
	// the history it knows).
	Problems []string
	// Behind, when not empty, says the log is an older state of the
	// history this device saw at another location, a copy not mirrored to
	// since: not damage. BehindBy is by how many entries (sequence
	// numbers).
	Behind   string
	BehindBy uint64
}

// CheckSeenAt compares the log, read at location loc, with what the
// client saw before. A log that lacks newer entries this device saw at
// another location, but whose heads are all entries the device has seen,
// is behind; a log that moved backwards from what was seen at loc itself,
// or that lacks newer entries and holds ones this device never saw, is a
// problem. A state saved before locations were remembered counts as seen
// at every location.
func (l *Log) CheckSeenAt(s Seen, loc string) SeenReport {
	problems := l.CheckSeen(s)
	if len(problems) == 0 {
		return SeenReport{}
	}
	if s.Locations == nil {
		return SeenReport{Problems: problems}
	}
	here := s.Locations[loc]
	if p := l.checkAgainst(here.MaxSeq, here.Heads); len(p) > 0 {
		return SeenReport{Problems: p}
	}
	known := make(map[backend.ID]bool, len(s.Known)+len(s.Heads))
	var oldest uint64
	for i, k := range s.Known {
		known[k.ID] = true
		if i == 0 || k.Seq < oldest {
			oldest = k.Seq
		}
	}
	for _, h := range s.Heads {
		known[h.ID] = true
	}
	unconfirmed := false
	for _, h := range l.Heads {
		if known[h] {
			continue
		}
		seq := l.Entries[h].Seq
		if len(s.Known) >= maxKnown && seq < oldest {
			// Older than anything remembered: it cannot be checked.
			unconfirmed = true
			continue
		}
		return SeenReport{Problems: []string{fmt.Sprintf("log is not a prefix of what this client has seen: its head %s (sequence %d) is an entry this client never saw, and it lacks entries this client saw up to sequence %d (someone else wrote to this copy, or it holds another history)",
			h.Str(), seq, s.MaxSeq)}}
	}
	cur := l.MaxSeq()
	by := uint64(len(l.missingHeads(s.Heads)))
	if cur < s.MaxSeq {
		by = s.MaxSeq - cur
	}
	msg := fmt.Sprintf("log is behind by %d entries: newest entry has sequence %d, this client has seen sequence %d at another location; an older copy, not damage (mirror to it to bring it up to date)", by, cur, s.MaxSeq)
	if unconfirmed {
		msg += "; it is too far behind for this client to confirm that it holds nothing else"
	}
	return SeenReport{Behind: msg, BehindBy: by}
}

// Remember returns what the client should remember after reading the log
// at location loc, given what it remembered before (old): the log's heads,
// the larger of the two newest sequence numbers, and every remembered head
// that CheckSeen reports as missing; the same for loc alone; and the
// log's entries among the newest known ones. Keeping missing heads means
// a rollback stays reported by every later run, even after new entries
// were written on top of the rolled-back log, until the user deletes the
// remembered state (see SeenFile).
func (l *Log) Remember(old Seen, loc string) Seen {
	s := l.Seen()
	s.MaxSeq = max(s.MaxSeq, old.MaxSeq)
	s.Heads = append(s.Heads, l.missingHeads(old.Heads)...)

	s.Locations = make(map[string]SeenAt, len(old.Locations)+1)
	for k, v := range old.Locations {
		s.Locations[k] = v
	}
	here := old.Locations[loc]
	at := SeenAt{MaxSeq: max(l.MaxSeq(), here.MaxSeq)}
	for _, h := range l.Heads {
		at.Heads = append(at.Heads, SeenHead{ID: h, Seq: l.Entries[h].Seq})
	}
	at.Heads = append(at.Heads, l.missingHeads(here.Heads)...)
	s.Locations[loc] = at
	for len(s.Locations) > maxLocations {
		var drop string
		first := true
		for k, v := range s.Locations {
			if k == loc {
				continue
			}
			if first || v.MaxSeq < s.Locations[drop].MaxSeq || v.MaxSeq == s.Locations[drop].MaxSeq && k < drop {
				drop, first = k, false
			}
		}
		delete(s.Locations, drop)
	}

	known := make(map[backend.ID]uint64, len(old.Known)+len(l.Entries))
	for _, k := range old.Known {
		known[k.ID] = k.Seq
	}
	for id, e := range l.Entries {
		known[id] = e.Seq
	}
	s.Known = make([]SeenHead, 0, len(known))
	for id, seq := range known {
		s.Known = append(s.Known, SeenHead{ID: id, Seq: seq})
	}
	sortNewestFirst(s.Known)
	if len(s.Known) > maxKnown {
		s.Known = s.Known[:maxKnown]
	}
	return s
}

// sortNewestFirst sorts entries by sequence, newest first, ties by ID.
func sortNewestFirst(h []SeenHead) {
	sort.Slice(h, func(i, j int) bool {
		if h[i].Seq != h[j].Seq {
			return h[i].Seq > h[j].Seq
		}
		return h[i].ID.Less(h[j].ID)
	})
}

// Merge returns the newer of two remembered states (by sequence), so a
// rollback never lowers what the client remembers.
func (s Seen) Merge(o Seen) Seen {
	if o.MaxSeq > s.MaxSeq {
		return o
	}
	return s
}

// SeenFile is the file in dir that remembers the heads of the repository
// with the given ID.
func SeenFile(dir, repoID string) string {
	return filepath.Join(dir, "repos", repoID, "seen.json")
}

// maxSeenFile caps the state file before parsing.
const maxSeenFile = 1 << 20

// LoadSeen reads a remembered state; a missing file is the zero state.
func LoadSeen(path string) (Seen, error) {
	var s Seen
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if len(b) > maxSeenFile {
		return s, fmt.Errorf("%s: too large", path)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Seen{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// SaveSeen writes the state atomically (repo.WriteFileAtomic).
func SaveSeen(path string, s Seen) error {
	sortByID := func(h []SeenHead) {
		sort.Slice(h, func(i, j int) bool { return h[i].ID.Less(h[j].ID) })
	}
	sortByID(s.Heads)
	for _, at := range s.Locations {
		sortByID(at.Heads)
	}
	sortNewestFirst(s.Known)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return repo.WriteFileAtomic(path, append(b, '\n'))
}
