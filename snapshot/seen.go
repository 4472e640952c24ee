package snapshot

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/cairn-backup/cairn/backend"
)

// Seen is what a client remembers of a repository's log between runs: the
// newest heads it saw. It lives in the client's local state, never in the
// repository, so a storage server that rolls the log back cannot also roll
// back the client's memory of it.
type Seen struct {
	MaxSeq uint64     `json:"max_seq"`
	Heads  []SeenHead `json:"heads"`
}

// SeenHead is one remembered head.
type SeenHead struct {
	ID  backend.ID `json:"id"`
	Seq uint64     `json:"seq"`
}

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
// checkpoint covering it.
func (l *Log) CheckSeen(s Seen) []string {
	var problems []string
	if cur := l.MaxSeq(); cur < s.MaxSeq {
		problems = append(problems, fmt.Sprintf("log rolled back: newest entry has sequence %d, but this client saw sequence %d before (entries were removed)", cur, s.MaxSeq))
	}
	var cpSeq uint64
	if cp := l.Checkpoint(); cp != nil {
		cpSeq = cp.Seq
	}
	for _, h := range s.Heads {
		if _, ok := l.Entries[h.ID]; ok || h.Seq < cpSeq {
			continue
		}
		problems = append(problems, fmt.Sprintf("log entry %s (sequence %d) seen by this client before is missing (rollback or deletion)", h.ID.Str(), h.Seq))
	}
	return problems
}

// Remember returns what the client should remember after reading the log,
// given what it remembered before (old): the log's heads, the larger of
// the two newest sequence numbers, and every remembered head that
// CheckSeen reports as missing. Keeping those means a rollback stays
// reported by every later run, even after new entries were written on top
// of the rolled-back log, until the user deletes the remembered state (see
// SeenFile).
func (l *Log) Remember(old Seen) Seen {
	s := l.Seen()
	s.MaxSeq = max(s.MaxSeq, old.MaxSeq)
	var cpSeq uint64
	if cp := l.Checkpoint(); cp != nil {
		cpSeq = cp.Seq
	}
	for _, h := range old.Heads {
		if _, ok := l.Entries[h.ID]; ok || h.Seq < cpSeq {
			continue
		}
		s.Heads = append(s.Heads, h)
	}
	return s
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

// SaveSeen writes the state atomically.
func SaveSeen(path string, s Seen) error {
	sort.Slice(s.Heads, func(i, j int) bool { return s.Heads[i].ID.Less(s.Heads[j].ID) })
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(append(b, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	for _, e := range []error{werr, serr, cerr} {
		if e != nil {
			_ = os.Remove(tmp)
			return e
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
