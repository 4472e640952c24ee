package snapshot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
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
	OpCheckpoint      = crypt.OpCheckpoint
	OpWriter     byte = 'w'
	OpTag        byte = 't' // a change of snapshots' tags (tag.go)
)

// kindLogBody binds a sealed body to the log (repo.KindLogBody).
const kindLogBody byte = 'B'

// LogRepository is what the log needs from a repository.
type LogRepository interface {
	Keys() *crypt.KeyRing
	ListFiles(ctx context.Context, t backend.FileType, fn func(id backend.ID, size int64) error) error
	// LoadFile returns a log file's bytes after checking them against its name.
	LoadFile(ctx context.Context, t backend.FileType, id backend.ID) ([]byte, error)
	SaveFile(ctx context.Context, t backend.FileType, data []byte) (backend.ID, error)
	DeleteFile(ctx context.Context, t backend.FileType, id backend.ID) error
}

// Writer is a device registered to write to the log.
type Writer struct {
	Device   []byte    `json:"device"` // ed25519 public key
	Hostname string    `json:"hostname,omitempty"`
	Added    time.Time `json:"added"`
}

// CheckpointSnapshot is a live snapshot carried by a checkpoint.
type CheckpointSnapshot struct {
	ID       backend.ID `json:"id"`
	Snapshot *Snapshot  `json:"snapshot"`
}

// Checkpoint is the whole live state at one point of the log.
type Checkpoint struct {
	Snapshots []CheckpointSnapshot `json:"snapshots"`
	Writers   []Writer             `json:"writers"`
	// Revoked lists the devices revoked (revoke.go) up to the checkpoint;
	// no entry of theirs after it is valid.
	Revoked [][]byte `json:"revoked,omitempty"`
}

// body is the sealed part of a log entry: exactly one field is set, as the
// envelope's op says.
type body struct {
	Snapshot   *Snapshot    `json:"snapshot,omitempty"`
	Forget     []backend.ID `json:"forget,omitempty"`
	Writer     *Writer      `json:"writer,omitempty"`
	Checkpoint *Checkpoint  `json:"checkpoint,omitempty"`
	Tag        *TagChange   `json:"tag,omitempty"`
	Revoke     *Revocation  `json:"revoke,omitempty"`
}

// LogEntry is a verified entry of the snapshot log.
type LogEntry struct {
	ID backend.ID
	*crypt.Entry
	// One of these is set, as Op says.
	Snapshot   *Snapshot
	Forget     []backend.ID
	Writer     *Writer
	Checkpoint *Checkpoint
	Tag        *TagChange
	Revoke     *Revocation
}

// Log is the snapshot log as read from a repository.
type Log struct {
	Entries map[backend.ID]*LogEntry
	// Heads are the entries no other entry names as parent, sorted.
	Heads []backend.ID
	// Problems lists everything verification found wrong (broken links,
	// bad sequence numbers, backdated entries, bad signatures, entries
	// from unregistered devices, unreadable entries).
	Problems []string
	// Skipped names, one line each, the files under log/ that are not log
	// entries at all: their bytes match their names but do not decode as
	// an envelope. Such a file was never an entry (an entry damaged later
	// no longer matches its name), so it hides nothing and is ignored;
	// readers report it as a warning.
	Skipped []string
	// Newer counts the entries left out because their operation is
	// unknown to this version of cairn (ErrUnknownOp): written by a newer
	// one. Forget and ChangeTags refuse to write then, and prune refuses
	// on the problems: the live set this version sees may be wrong.
	Newer int
	// Locked lists the entries whose body is sealed with a key this key
	// ring lacks (crypt.ErrUnknownKey): added by a key rotation after the
	// key file that opened the repository was revoked. They are left out
	// and named in Problems too.
	Locked []backend.ID

	// Rejected lists the entries left out because the device that signed
	// them was revoked before (revoke.go); each is named in Problems.
	Rejected []backend.ID

	chain     *crypt.Chain
	snapshots []*Snapshot
	writers   map[string]Writer
	// revoked maps a revoked device's public key to its revocation.
	revoked map[string]revocation
}

// Snapshots returns the live snapshots (added and not forgotten), oldest
// first.
func (l *Log) Snapshots() []*Snapshot { return l.snapshots }

// Chain is the keyless view of the log's envelopes (crypt.VerifyChain).
func (l *Log) Chain() *crypt.Chain { return l.chain }

// Forgotten returns the snapshots whose add entries are in the log but
// which are not live: forgotten, or left out of a checkpoint, oldest
// first. An append-only copy keeps them after the owner's forget and
// prune, so that they can still be restored from it.
func (l *Log) Forgotten() []*Snapshot {
	live := make(map[backend.ID]bool, len(l.snapshots))
	for _, sn := range l.snapshots {
		live[sn.ID] = true
	}
	var out []*Snapshot
	for _, e := range l.Entries {
		if e.Snapshot != nil && !live[e.ID] {
			out = append(out, e.Snapshot)
		}
	}
	SortByTime(out)
	return out
}

// Writers returns the registered devices.
func (l *Log) Writers() []Writer {
	out := make([]Writer, 0, len(l.writers))
	for _, w := range l.writers {
		if _, revoked := l.revoked[string(w.Device)]; !revoked {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Device, out[j].Device) < 0 })
	return out
}

// Checkpoint returns the newest checkpoint entry, or nil.
func (l *Log) Checkpoint() *LogEntry {
	if l.chain == nil || !l.chain.HasCheckpoint {
		return nil
	}
	return l.Entries[backend.ID(l.chain.Checkpoint)]
}

// MaxSeq is the largest sequence number in the log.
func (l *Log) MaxSeq() uint64 {
	var m uint64
	for _, e := range l.Entries {
		m = max(m, e.Seq)
	}
	return m
}

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
// verify or open are left out and named in Problems, as is every broken
// rule of the chain.
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
				var junk *notEntryError
				mu.Lock()
				if errors.As(err, &junk) {
					l.Skipped = append(l.Skipped, fmt.Sprintf("log/%s is not a log entry (%v): ignored", id, junk.err))
				} else if err != nil {
					if errors.Is(err, crypt.ErrUnknownKey) {
						l.Locked = append(l.Locked, id)
					}
					if errors.Is(err, ErrUnknownOp) {
						l.Newer++
					}
					l.Problems = append(l.Problems, fmt.Sprintf("log entry %s: %v", id.Str(), err))
				} else {
					l.Entries[id] = e
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, id := range ids {
		select {
		case jobs <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Strings(l.Skipped)
	l.rebuild()
	return l, nil
}

// notEntryError says a log file, intact, is not a log entry: its envelope
// is malformed.
type notEntryError struct{ err error }

func (e *notEntryError) Error() string { return e.err.Error() }

func loadEntry(ctx context.Context, r LogRepository, id backend.ID) (*LogEntry, error) {
	data, err := r.LoadFile(ctx, backend.LogFile, id)
	if err != nil {
		return nil, err
	}
	env, err := crypt.DecodeEntry(data)
	if errors.Is(err, crypt.ErrFormat) {
		return nil, &notEntryError{err}
	}
	if err != nil {
		return nil, err
	}
	plain, err := r.Keys().OpenFile(kindLogBody, env.Body)
	if errors.Is(err, crypt.ErrUnknownKey) {
		return nil, fmt.Errorf("body %w", err)
	}
	if err != nil {
		// A body that does not open was not written with this
		// repository's key: edited, or replayed from another repository.
		return nil, fmt.Errorf("body does not open with this repository's key (edited or from another repository): %w", err)
	}
	return decodeBody(id, env, plain)
}

// decodeBody parses the opened body of the entry id, whose envelope env
// has been verified, and checks it against the envelope. Every error
// wraps ErrFormat.
func decodeBody(id backend.ID, env *crypt.Entry, plain []byte) (*LogEntry, error) {
	switch env.Op {
	case OpAdd, OpForget, OpWriter, OpCheckpoint, OpTag, OpRevoke:
	default:
		return nil, fmt.Errorf("%w: %w: %q (written by a newer cairn? upgrade this one)", ErrFormat, ErrUnknownOp, string(rune(env.Op)))
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: log body: %v", ErrFormat, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: log body: trailing data", ErrFormat)
	}
	e := &LogEntry{ID: id, Entry: env}
	set := 0
	for _, ok := range []bool{b.Snapshot != nil, b.Forget != nil, b.Writer != nil, b.Checkpoint != nil, b.Tag != nil, b.Revoke != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("%w: log body must hold exactly one operation", ErrFormat)
	}
	switch {
	case env.Op == OpAdd && b.Snapshot != nil:
		b.Snapshot.ID = id
		e.Snapshot = b.Snapshot
	case env.Op == OpForget && len(b.Forget) > 0:
		e.Forget = b.Forget
	case env.Op == OpWriter && b.Writer != nil:
		if !bytes.Equal(b.Writer.Device, env.Device) {
			return nil, fmt.Errorf("%w: writer registration signed by another device", ErrFormat)
		}
		e.Writer = b.Writer
	case env.Op == OpRevoke && b.Revoke != nil:
		if err := b.Revoke.check(env.Device); err != nil {
			return nil, err
		}
		e.Revoke = b.Revoke
	case env.Op == OpCheckpoint && b.Checkpoint != nil:
		for _, cs := range b.Checkpoint.Snapshots {
			if cs.Snapshot == nil {
				return nil, fmt.Errorf("%w: checkpoint with an empty snapshot", ErrFormat)
			}
			cs.Snapshot.ID = cs.ID
		}
		e.Checkpoint = b.Checkpoint
	case env.Op == OpTag && b.Tag != nil:
		if err := b.Tag.Validate(); err != nil {
			return nil, fmt.Errorf("%w: tag: %v", ErrFormat, err)
		}
		e.Tag = b.Tag
	default:
		return nil, fmt.Errorf("%w: op %q does not match its body", ErrFormat, env.Op)
	}
	return e, nil
}

// rebuild verifies the chain and computes heads, writers and the live
// snapshots from l.Entries.
func (l *Log) rebuild() {
	envs := make(map[[32]byte]*crypt.Entry, len(l.Entries))
	for id, e := range l.Entries {
		envs[id] = e.Entry
	}
	l.chain = crypt.VerifyChain(envs)
	l.Heads = l.Heads[:0]
	l.Rejected = nil
	for _, h := range l.chain.Heads {
		l.Heads = append(l.Heads, backend.ID(h))
	}
	problems := append([]string(nil), l.Problems...)
	problems = append(problems, l.chain.Problems...)

	// State starts from the newest checkpoint; entries it covers are
	// summed up by it.
	l.writers = make(map[string]Writer)
	live := make(map[backend.ID]*Snapshot)
	var rest []*LogEntry
	if cp := l.Checkpoint(); cp != nil {
		for _, w := range cp.Checkpoint.Writers {
			l.writers[string(w.Device)] = w
		}
		for _, cs := range cp.Checkpoint.Snapshots {
			live[cs.ID] = cs.Snapshot
		}
	}
	l.revocations()
	for _, e := range l.Ordered() {
		if !l.chain.Covered[e.ID] {
			rest = append(rest, e)
		}
		if e.Writer != nil && !l.chain.Covered[e.ID] && l.rejectedBy(e) == nil {
			l.writers[string(e.Device)] = *e.Writer
		}
	}
	if cp := l.Checkpoint(); cp != nil {
		if _, ok := l.writers[string(cp.Device)]; !ok {
			problems = append(problems, fmt.Sprintf("log entry %s: checkpoint from device %s the repository does not list as a writer", cp.ID.Str(), crypt.PeerIDFromKey(cp.Device).Short()))
		}
	}
	forgotten := make(map[backend.ID]bool)
	for _, e := range rest {
		if msg := l.rejectedBy(e); msg != nil {
			l.Rejected = append(l.Rejected, e.ID)
			problems = append(problems, fmt.Sprintf("log entry %s: %s", e.ID.Str(), *msg))
			continue
		}
		if _, ok := l.writers[string(e.Device)]; !ok {
			problems = append(problems, fmt.Sprintf("log entry %s: from device %s the repository does not list as a writer", e.ID.Str(), crypt.PeerIDFromKey(e.Device).Short()))
			continue
		}
		switch {
		case e.Snapshot != nil:
			live[e.ID] = e.Snapshot
		case e.Forget != nil:
			for _, id := range e.Forget {
				forgotten[id] = true
			}
		case e.Tag != nil:
			e.Tag.applyTo(live, forgotten)
		}
	}
	l.snapshots = l.snapshots[:0]
	for id, sn := range live {
		if !forgotten[id] {
			l.snapshots = append(l.snapshots, sn)
		}
	}
	SortByTime(l.snapshots)
	sort.Strings(problems)
	l.Problems = dedupe(problems)
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// append writes a new entry whose parents are the current heads,
// registering the device first if the log does not list it.
func (l *Log) append(ctx context.Context, r LogRepository, ident *crypt.Identity, op byte, b body, now time.Time) (*LogEntry, error) {
	if rv, ok := l.revoked[string(ident.Public())]; ok {
		return nil, fmt.Errorf("%w (%s)", ErrDeviceRevoked, rv.by())
	}
	if _, ok := l.writers[string(ident.Public())]; !ok && op != OpWriter && op != OpCheckpoint {
		w := &Writer{Device: []byte(ident.Public()), Added: now.UTC()}
		if _, err := l.append(ctx, r, ident, OpWriter, body{Writer: w}, now); err != nil {
			return nil, fmt.Errorf("register device: %w", err)
		}
	}
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	env := &crypt.Entry{Time: now.UnixNano(), Op: op, Body: r.Keys().SealFile(kindLogBody, plain)}
	env.Parents = l.nextParents()
	var maxSeq uint64
	for _, h := range l.Heads {
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
	e := &LogEntry{ID: id, Entry: env, Snapshot: b.Snapshot, Forget: b.Forget, Writer: b.Writer, Checkpoint: b.Checkpoint, Tag: b.Tag, Revoke: b.Revoke}
	if e.Snapshot != nil {
		e.Snapshot.ID = id
	}
	l.Entries[id] = e
	prev := l.Problems
	l.Problems = nil
	l.rebuild()
	// Problems found at load time stay reported.
	l.Problems = dedupe(sortedUnion(prev, l.Problems))
	return e, nil
}

// nextParents are the parents of the next entry appended: the heads, in
// their order, as many as one entry may name (a later entry merges the
// rest).
func (l *Log) nextParents() [][32]byte {
	var out [][32]byte
	for _, h := range l.Heads {
		out = append(out, [32]byte(h))
	}
	if len(out) > crypt.MaxEntryParents {
		out = out[:crypt.MaxEntryParents]
	}
	return out
}

func sortedUnion(a, b []string) []string {
	out := append(append([]string(nil), a...), b...)
	sort.Strings(out)
	return out
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
	if err := l.checkNewer("forget"); err != nil {
		return backend.ID{}, err
	}
	e, err := l.append(ctx, r, ident, OpForget, body{Forget: ids}, now)
	if err != nil {
		return backend.ID{}, fmt.Errorf("forget: %w", err)
	}
	return e.ID, nil
}

// WriteCheckpoint records the whole live state, so that the entries it
// covers can be deleted with PruneCovered. The writing device is listed
// among the writers.
func (l *Log) WriteCheckpoint(ctx context.Context, r LogRepository, ident *crypt.Identity, now time.Time) (backend.ID, error) {
	cp := &Checkpoint{Writers: l.Writers(), Revoked: l.revokedKeys()}
	if _, ok := l.writers[string(ident.Public())]; !ok {
		cp.Writers = append(cp.Writers, Writer{Device: []byte(ident.Public()), Added: now.UTC()})
	}
	for _, sn := range l.snapshots {
		cp.Snapshots = append(cp.Snapshots, CheckpointSnapshot{ID: sn.ID, Snapshot: sn})
	}
	e, err := l.append(ctx, r, ident, OpCheckpoint, body{Checkpoint: cp}, now)
	if err != nil {
		return backend.ID{}, fmt.Errorf("checkpoint: %w", err)
	}
	return e.ID, nil
}

// PruneCovered deletes the entries the newest checkpoint covers, oldest
// first, and returns how many it deleted. Interrupted, it leaves covered
// entries behind, which are harmless and deleted next time. It must run
// under an exclusive lock: a writer appending at the same time could name a
// deleted entry as its parent.
//
// A copy of the repository mirrored before the newest checkpoint was
// written can then no longer be shown to hold the source's own history
// (repo.Mirror refuses it as diverged): the entries that linked its log to
// the checkpoint are gone. Compaction that copies must survive uses
// PruneCoveredBefore (CompactLog does).
func (l *Log) PruneCovered(ctx context.Context, r LogRepository) (int, error) {
	cp := l.Checkpoint()
	if cp == nil {
		return 0, nil
	}
	ids, err := l.pruneUnder(ctx, r, cp)
	return len(ids), err
}

// PruneCoveredBefore deletes, like PruneCovered, the entries covered by a
// checkpoint, but by the newest one dated at or before cutoff, keeping that
// checkpoint and everything after it. A copy mirrored since that checkpoint
// was written still links to the source's log through the entries kept, so
// mirroring to it goes on; keeping a few days of entries (cutoff = now −
// a retention) lets copies lag behind by that much.
func (l *Log) PruneCoveredBefore(ctx context.Context, r LogRepository, cutoff time.Time) (int, error) {
	cp := l.checkpointBefore(cutoff)
	if cp == nil {
		return 0, nil
	}
	ids, err := l.pruneUnder(ctx, r, cp)
	return len(ids), err
}

// pruneUnder deletes the present ancestors of the checkpoint cp, oldest
// first, unless an entry outside the newest checkpoint's cover names one
// of them as a parent (see under), and returns those it deleted.
func (l *Log) pruneUnder(ctx context.Context, r LogRepository, cp *LogEntry) ([]backend.ID, error) {
	under := l.under(cp, func(id backend.ID) bool { return l.chain != nil && l.chain.Covered[[32]byte(id)] })
	done := []backend.ID{}
	for _, e := range l.Ordered() {
		if !under[e.ID] {
			continue
		}
		if err := r.DeleteFile(ctx, backend.LogFile, e.ID); err != nil && !backend.IsNotExist(err) {
			return done, fmt.Errorf("prune log: %w", err)
		}
		delete(l.Entries, e.ID)
		done = append(done, e.ID)
	}
	prev := l.Problems
	l.Problems = nil
	l.rebuild()
	l.Problems = dedupe(sortedUnion(prev, l.Problems))
	return done, nil
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
