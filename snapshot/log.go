package snapshot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// Log operations, stored in the envelope's op byte.
const (
	OpAdd        byte = 'a'
	OpForget     byte = 'f'
	OpCheckpoint byte = 'c'
)

// kindLogBody binds a sealed body to the log (repo.KindLogBody).
const kindLogBody byte = 'B'

// maxClockSkew is how much older than its parents an entry may claim to be
// before it counts as backdated.
const maxClockSkew = 5 * time.Minute

// LogRepository is what the log needs from a repository.
type LogRepository interface {
	Keys() *crypt.KeyRing
	ListFiles(ctx context.Context, t backend.FileType, fn func(id backend.ID, size int64) error) error
	// LoadFile returns a log file's bytes after checking them against its name.
	LoadFile(ctx context.Context, t backend.FileType, id backend.ID) ([]byte, error)
	SaveFile(ctx context.Context, t backend.FileType, data []byte) (backend.ID, error)
}

// body is the sealed part of a log entry: exactly one field is set, as the
// envelope's op says.
type body struct {
	Snapshot *Snapshot    `json:"snapshot,omitempty"`
	Forget   []backend.ID `json:"forget,omitempty"`
}

// LogEntry is a verified entry of the snapshot log.
type LogEntry struct {
	ID backend.ID
	*crypt.Entry
	// Snapshot is set for add entries, Forget for forget entries.
	Snapshot *Snapshot
	Forget   []backend.ID
}

// Log is the snapshot log as read from a repository.
type Log struct {
	Entries map[backend.ID]*LogEntry
	// Heads are the entries no other entry names as parent, sorted.
	Heads []backend.ID
	// Problems lists everything verification found wrong (broken links,
	// bad sequence numbers, backdated entries, unreadable entries).
	Problems []string

	snapshots []*Snapshot
}

// Snapshots returns the live snapshots (added and not forgotten), oldest
// first.
func (l *Log) Snapshots() []*Snapshot { return l.snapshots }

// Ordered returns the entries by sequence number, ties by ID.
func (l *Log) Ordered() []*LogEntry {
	out := make([]*LogEntry, 0, len(l.Entries))
	for _, e := range l.Entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seq != out[j].Seq {
			return out[i].Seq < out[j].Seq
		}
		return out[i].ID.Less(out[j].ID)
	})
	return out
}

// loadWorkers bounds how many log files are fetched at once.
const loadWorkers = 8

// LoadLog reads and verifies every log entry. Entries that fail to load,
// authenticate or parse are left out and named in Problems; so are broken
// links and bad sequence numbers.
func LoadLog(ctx context.Context, r LogRepository) (*Log, error) {
	var ids []backend.ID
	if err := r.ListFiles(ctx, backend.LogFile, func(id backend.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list log: %w", err)
	}
	l := &Log{Entries: make(map[backend.ID]*LogEntry, len(ids))}
	var mu sync.Mutex // guards l.Entries and l.Problems while loading
	jobs := make(chan backend.ID)
	var wg sync.WaitGroup
	for w := 0; w < loadWorkers; w++ {
		wg.Go(func() {
			for id := range jobs {
				e, err := loadEntry(ctx, r, id)
				mu.Lock()
				if err != nil {
					l.Problems = append(l.Problems, fmt.Sprintf("log entry %s: %v", id.Str(), err))
				} else {
					l.Entries[id] = e
				}
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		select {
		case jobs <- id:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Strings(l.Problems)
	l.verifyLinks()
	l.apply()
	return l, nil
}

func loadEntry(ctx context.Context, r LogRepository, id backend.ID) (*LogEntry, error) {
	data, err := r.LoadFile(ctx, backend.LogFile, id)
	if err != nil {
		return nil, err
	}
	env, err := crypt.DecodeEntry(data)
	if err != nil {
		return nil, err
	}
	plain, err := r.Keys().OpenFile(kindLogBody, env.Body)
	if err != nil {
		return nil, fmt.Errorf("open body: %w", err)
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: log body: %v", ErrFormat, err)
	}
	e := &LogEntry{ID: id, Entry: env}
	switch env.Op {
	case OpAdd:
		if b.Snapshot == nil || b.Forget != nil {
			return nil, fmt.Errorf("%w: add entry without a snapshot", ErrFormat)
		}
		b.Snapshot.ID = id
		e.Snapshot = b.Snapshot
	case OpForget:
		if b.Snapshot != nil || len(b.Forget) == 0 {
			return nil, fmt.Errorf("%w: forget entry without ids", ErrFormat)
		}
		e.Forget = b.Forget
	default:
		return nil, fmt.Errorf("%w: unknown log operation %q", ErrFormat, env.Op)
	}
	return e, nil
}

// verifyLinks checks that every parent exists, sequence numbers follow
// their parents, and no entry is older than a parent beyond the skew.
func (l *Log) verifyLinks() {
	named := make(map[backend.ID]bool)
	var problems []string
	for _, e := range l.Ordered() {
		var maxSeq uint64
		for _, p := range e.Parents {
			pid := backend.ID(p)
			named[pid] = true
			parent, ok := l.Entries[pid]
			if !ok {
				problems = append(problems, fmt.Sprintf("log entry %s: parent %s is missing (broken link)", e.ID.Str(), pid.Str()))
				continue
			}
			maxSeq = max(maxSeq, parent.Seq)
			if e.Time < parent.Time-int64(maxClockSkew) {
				problems = append(problems, fmt.Sprintf("log entry %s: dated before its parent %s (backdated)", e.ID.Str(), pid.Str()))
			}
		}
		if e.Seq != maxSeq+1 {
			problems = append(problems, fmt.Sprintf("log entry %s: sequence %d does not follow its parents (%d)", e.ID.Str(), e.Seq, maxSeq))
		}
	}
	for id := range l.Entries {
		if !named[id] {
			l.Heads = append(l.Heads, id)
		}
	}
	sort.Slice(l.Heads, func(i, j int) bool { return l.Heads[i].Less(l.Heads[j]) })
	l.Problems = append(l.Problems, problems...)
}

// apply computes the live snapshots: every add not named by a forget.
func (l *Log) apply() {
	forgotten := make(map[backend.ID]bool)
	for _, e := range l.Entries {
		for _, id := range e.Forget {
			forgotten[id] = true
		}
	}
	l.snapshots = l.snapshots[:0]
	for _, e := range l.Entries {
		if e.Snapshot != nil && !forgotten[e.ID] {
			l.snapshots = append(l.snapshots, e.Snapshot)
		}
	}
	SortByTime(l.snapshots)
}

// append writes a new entry whose parents are the current heads.
func (l *Log) append(ctx context.Context, r LogRepository, ident *crypt.Identity, op byte, b body, now time.Time) (*LogEntry, error) {
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	env := &crypt.Entry{Time: now.UnixNano(), Op: op, Body: r.Keys().SealFile(kindLogBody, plain)}
	var maxSeq uint64
	for _, h := range l.Heads {
		env.Parents = append(env.Parents, [32]byte(h))
		if p, ok := l.Entries[h]; ok {
			maxSeq = max(maxSeq, p.Seq)
			// Never date an entry before its parents: a clock behind
			// another writer's must not make a valid chain look backdated.
			if env.Time < p.Time {
				env.Time = p.Time
			}
		}
	}
	env.Seq = maxSeq + 1
	data, err := ident.EncodeEntry(env)
	if err != nil {
		return nil, fmt.Errorf("encode log entry: %w", err)
	}
	id, err := r.SaveFile(ctx, backend.LogFile, data)
	if err != nil {
		return nil, err
	}
	e := &LogEntry{ID: id, Entry: env, Snapshot: b.Snapshot, Forget: b.Forget}
	if e.Snapshot != nil {
		e.Snapshot.ID = id
	}
	l.Entries[id] = e
	l.Heads = []backend.ID{id}
	l.apply()
	return e, nil
}

// AddSnapshot records a new snapshot in the log and sets sn.ID.
func (l *Log) AddSnapshot(ctx context.Context, r LogRepository, ident *crypt.Identity, sn *Snapshot, now time.Time) (backend.ID, error) {
	e, err := l.append(ctx, r, ident, OpAdd, body{Snapshot: sn}, now)
	if err != nil {
		return backend.ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	return e.ID, nil
}

// Forget records that the given snapshots are no longer live.
func (l *Log) Forget(ctx context.Context, r LogRepository, ident *crypt.Identity, ids []backend.ID, now time.Time) (backend.ID, error) {
	if len(ids) == 0 {
		return backend.ID{}, nil
	}
	e, err := l.append(ctx, r, ident, OpForget, body{Forget: ids}, now)
	if err != nil {
		return backend.ID{}, fmt.Errorf("forget: %w", err)
	}
	return e.ID, nil
}

// Devices lists the device keys that wrote entries, for display.
func (l *Log) Devices() []ed25519.PublicKey {
	seen := make(map[string]bool)
	var out []ed25519.PublicKey
	for _, e := range l.Ordered() {
		if !seen[string(e.Device)] {
			seen[string(e.Device)] = true
			out = append(out, e.Device)
		}
	}
	return out
}
