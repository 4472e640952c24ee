package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// Acknowledgements: what each destination of the repository said it held
// after a mirror. A peer server signs a receipt (crypt.Receipt, meta kind
// "receipt:<peer ID in hex>"); an SFTP or local destination signs nothing,
// so the owner notes what it copied there in an unsigned mirror record
// (meta kind "mirror-record:<hash of the location>"). Reading a copy,
// CompareAcks holds its log against every acknowledgement known: a copy
// that serves less than its destination acknowledged was rolled back or
// frozen; a copy whose history does not hold a head another destination
// acknowledged at a sequence number it has passed has forked.

// Meta kind prefixes of acknowledgements.
const (
	KindReceipt      = "receipt:"
	KindMirrorRecord = "mirror-record:"
)

// Ack is one acknowledgement of what a destination held.
type Ack struct {
	// Signed says a peer server signed it (a receipt); else it is the
	// owner's mirror record.
	Signed bool
	// Signer is the signing server's peer ID and Repo the repository's
	// name there (receipts only).
	Signer crypt.PeerID
	Repo   string
	// Location is where the owner mirrored to (mirror records only), as
	// the device's remembered state names locations.
	Location string
	// Time is when it was made: the server's clock for a receipt, the
	// owner's for a mirror record.
	Time         time.Time
	Files, Bytes int64
	MaxSeq       uint64
	Heads        []crypt.ReceiptHead
	// Kind and Payload are the meta record's.
	Kind    string
	Payload []byte
}

// Subject names the destination the acknowledgement is about: the peer
// ID, or the location of a mirror record.
func (a Ack) Subject() string {
	if a.Signed {
		return "peer " + a.Signer.String() + " (repository " + a.Repo + ")"
	}
	return a.Location
}

// ReceiptKind is the meta kind of the receipts peer signs for the
// repository it keeps under name.
func ReceiptKind(peer crypt.PeerID, name string) string {
	sum := sha256.Sum256([]byte(name))
	return KindReceipt + hex.EncodeToString(peer[:]) + "/" + hex.EncodeToString(sum[:8])
}

// MirrorRecordKind is the meta kind of the mirror records of loc.
func MirrorRecordKind(loc string) string {
	sum := sha256.Sum256([]byte(loc))
	return KindMirrorRecord + hex.EncodeToString(sum[:16])
}

// mirrorRecordJSON is a mirror record's payload.
type mirrorRecordJSON struct {
	Location string     `json:"location"`
	Time     time.Time  `json:"time"`
	Files    int64      `json:"files"`
	Bytes    int64      `json:"bytes"`
	MaxSeq   uint64     `json:"max_seq"`
	Heads    []headJSON `json:"heads"`
}

type headJSON struct {
	Seq uint64     `json:"seq"`
	ID  backend.ID `json:"id"`
}

// EncodeMirrorRecord is the payload of a mirror record.
func EncodeMirrorRecord(a Ack) ([]byte, error) {
	j := mirrorRecordJSON{Location: a.Location, Time: a.Time.UTC(), Files: a.Files, Bytes: a.Bytes, MaxSeq: a.MaxSeq, Heads: []headJSON{}}
	for _, h := range a.Heads {
		j.Heads = append(j.Heads, headJSON{Seq: h.Seq, ID: backend.ID(h.ID)})
	}
	return json.Marshal(j)
}

// DecodeMirrorRecord parses a mirror record's payload; errors wrap
// ErrMetaFormat.
func DecodeMirrorRecord(p []byte) (Ack, error) {
	var j mirrorRecordJSON
	dec := json.NewDecoder(bytes.NewReader(p))
	if err := dec.Decode(&j); err != nil {
		return Ack{}, fmt.Errorf("%w: mirror record: %v", ErrMetaFormat, err)
	}
	if dec.More() {
		return Ack{}, fmt.Errorf("%w: mirror record: data after it", ErrMetaFormat)
	}
	if j.Location == "" || j.Files < 0 || j.Bytes < 0 || len(j.Heads) > crypt.MaxReceiptHeads {
		return Ack{}, fmt.Errorf("%w: mirror record: bad fields", ErrMetaFormat)
	}
	a := Ack{Location: j.Location, Time: j.Time.UTC(), Files: j.Files, Bytes: j.Bytes, MaxSeq: j.MaxSeq}
	for _, h := range j.Heads {
		if h.Seq == 0 || h.Seq > j.MaxSeq {
			return Ack{}, fmt.Errorf("%w: mirror record: head seq %d outside 1..%d", ErrMetaFormat, h.Seq, j.MaxSeq)
		}
		a.Heads = append(a.Heads, crypt.ReceiptHead{Seq: h.Seq, ID: h.ID})
	}
	return a, nil
}

// AckFromMeta turns a meta record of an acknowledgement kind into an Ack:
// a receipt must verify and be signed by the peer its kind names.
func AckFromMeta(kind string, payload []byte) (Ack, error) {
	switch {
	case strings.HasPrefix(kind, KindReceipt):
		rc, err := crypt.DecodeReceipt(payload)
		if err != nil {
			return Ack{}, err
		}
		if ReceiptKind(rc.SignerID(), rc.Repo) != kind {
			return Ack{}, fmt.Errorf("%w: receipt of %s kept as %s", ErrMetaFormat, rc.SignerID().Short(), kind)
		}
		return Ack{Signed: true, Signer: rc.SignerID(), Repo: rc.Repo, Time: rc.Time, Files: rc.Files, Bytes: rc.Bytes,
			MaxSeq: rc.MaxSeq, Heads: rc.Heads, Kind: kind, Payload: payload}, nil
	case strings.HasPrefix(kind, KindMirrorRecord):
		a, err := DecodeMirrorRecord(payload)
		if err != nil {
			return Ack{}, err
		}
		if MirrorRecordKind(a.Location) != kind {
			return Ack{}, fmt.Errorf("%w: mirror record of %s kept as %s", ErrMetaFormat, a.Location, kind)
		}
		a.Kind, a.Payload = kind, payload
		return a, nil
	}
	return Ack{}, fmt.Errorf("%w: %s is not an acknowledgement", ErrMetaFormat, kind)
}

// AcksFromMeta keeps the acknowledgements among recs; one that does not
// verify is named to warn and left out.
func AcksFromMeta(recs []MetaRecord, warn func(string)) []Ack {
	var out []Ack
	for _, rec := range recs {
		if !strings.HasPrefix(rec.Kind, KindReceipt) && !strings.HasPrefix(rec.Kind, KindMirrorRecord) {
			continue
		}
		a, err := AckFromMeta(rec.Kind, rec.Payload)
		if err != nil {
			if warn != nil {
				warn(fmt.Sprintf("meta/%s: %v: skipped", rec.ID, err))
			}
			continue
		}
		out = append(out, a)
	}
	return out
}

// AckFinding is what CompareAcks found about one acknowledgement.
type AckFinding struct {
	Kind AckFindingKind
	Ack  Ack
	// Head is the acknowledged head the copy lacks (zero for a copy whose
	// largest seq is below the acknowledged one while it holds the heads).
	Head crypt.ReceiptHead
	// CopySeq is the copy's largest seq.
	CopySeq uint64
}

// AckFindingKind classifies a finding.
type AckFindingKind int

const (
	// AckBehind: another destination acknowledged entries this copy
	// does not hold yet, past its newest: a note, the copy was not
	// mirrored to since.
	AckBehind AckFindingKind = iota + 1
	// AckRolledBack: the copy serves less than it acknowledged itself: an
	// acknowledged head is missing, or its largest seq is below the one it
	// acknowledged. Rolled back, or frozen at an older state.
	AckRolledBack
	// AckForked: another destination acknowledged a head that the copy's
	// history does not hold although the copy has passed its seq: the two
	// hold histories that are not prefixes of one another.
	AckForked
)

// Error reports whether the finding is an error (not a note).
func (f AckFinding) Error() bool { return f.Kind != AckBehind }

// String says the finding in one line.
func (f AckFinding) String() string {
	who := f.Ack.Subject()
	what := "signed a receipt for"
	if !f.Ack.Signed {
		what = "was recorded (unsigned mirror record) as holding"
	}
	when := f.Ack.Time.UTC().Format(time.RFC3339)
	switch f.Kind {
	case AckRolledBack:
		if f.Head.Seq == 0 {
			return fmt.Sprintf("rolled back or frozen: %s %s log seq %d on %s; this copy of it holds only up to seq %d", who, what, f.Ack.MaxSeq, when, f.CopySeq)
		}
		return fmt.Sprintf("rolled back or frozen: %s %s log seq %d on %s (head %s at seq %d); this copy of it no longer holds that head (its newest seq is %d)",
			who, what, f.Ack.MaxSeq, when, hex.EncodeToString(f.Head.ID[:4]), f.Head.Seq, f.CopySeq)
	case AckForked:
		return fmt.Sprintf("forked: %s %s head %s at seq %d on %s, which this copy's log does not hold although it reaches seq %d: the two histories diverged",
			who, what, hex.EncodeToString(f.Head.ID[:4]), f.Head.Seq, when, f.CopySeq)
	}
	return fmt.Sprintf("behind: %s %s log seq %d on %s; this copy reaches seq %d (not mirrored to since)", who, what, f.Ack.MaxSeq, when, f.CopySeq)
}

// CopyLog is what CompareAcks needs of the copy's log: the entries it
// holds (envelopes, no keys needed) and its newest checkpoint.
type CopyLog struct {
	Entries map[[32]byte]*crypt.Entry
	// Named are the entry IDs of the log files the copy holds by name,
	// whether or not they decode (nil: not listed). A head held by name
	// counts as held: a damaged file is check's and the scrub's to report
	// and the next mirror's to heal, not a rollback.
	Named map[[32]byte]bool
	// CheckpointSeq is the seq of the newest checkpoint, 0 for none:
	// entries it covers may have been compacted away.
	CheckpointSeq uint64
}

// CopyLogFrom is the CopyLog of a verified chain.
func CopyLogFrom(c *crypt.Chain) CopyLog {
	cl := CopyLog{Entries: c.Entries}
	if c.HasCheckpoint {
		cl.CheckpointSeq = c.Entries[c.Checkpoint].Seq
	}
	return cl
}

// CompareAcks compares the log of a copy with the acknowledgements known.
// self says whether an acknowledgement is about this copy itself (its
// signer is the copy's peer, or its location is the copy's). Findings are
// sorted errors first, then by subject; each subject is named once, by its
// worst finding.
func CompareAcks(cl CopyLog, acks []Ack, self func(Ack) bool) []AckFinding {
	var maxSeq uint64
	for _, e := range cl.Entries {
		maxSeq = max(maxSeq, e.Seq)
	}
	// An entry held by name is at the seq its acknowledgement gives: the
	// name is the hash of what was signed.
	for _, a := range acks {
		for _, h := range a.Heads {
			if _, ok := cl.Entries[h.ID]; !ok && cl.Named[h.ID] {
				maxSeq = max(maxSeq, h.Seq)
			}
		}
	}
	held := func(h crypt.ReceiptHead) bool {
		if _, ok := cl.Entries[h.ID]; ok || cl.Named[h.ID] {
			return true
		}
		// An entry a checkpoint covers may be compacted away: only a
		// checkpoint that reaches its seq accounts for it.
		return cl.CheckpointSeq > 0 && h.Seq <= cl.CheckpointSeq
	}
	worst := map[string]AckFinding{}
	note := func(f AckFinding) {
		if old, ok := worst[f.Ack.Subject()]; !ok || f.Kind > old.Kind {
			worst[f.Ack.Subject()] = f
		}
	}
	for _, a := range acks {
		var missing []crypt.ReceiptHead
		for _, h := range a.Heads {
			if !held(h) {
				missing = append(missing, h)
			}
		}
		switch {
		case self(a):
			if len(missing) > 0 {
				note(AckFinding{Kind: AckRolledBack, Ack: a, Head: missing[0], CopySeq: maxSeq})
			} else if maxSeq < a.MaxSeq {
				note(AckFinding{Kind: AckRolledBack, Ack: a, CopySeq: maxSeq})
			}
		case len(missing) > 0:
			kind := AckBehind
			for _, h := range missing {
				if h.Seq <= maxSeq {
					kind = AckForked
					note(AckFinding{Kind: kind, Ack: a, Head: h, CopySeq: maxSeq})
					break
				}
			}
			if kind == AckBehind {
				note(AckFinding{Kind: AckBehind, Ack: a, Head: missing[0], CopySeq: maxSeq})
			}
		}
	}
	out := make([]AckFinding, 0, len(worst))
	for _, f := range worst {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b AckFinding) int {
		if a.Kind != b.Kind {
			return int(b.Kind) - int(a.Kind)
		}
		return strings.Compare(a.Ack.Subject(), b.Ack.Subject())
	})
	return out
}

// AckError is returned by a command that read a copy found rolled back,
// frozen or forked (cmd maps it to its own exit status).
type AckError struct {
	Findings []AckFinding
}

func (e *AckError) Error() string {
	if len(e.Findings) == 1 {
		return "the copy does not match what a destination acknowledged: " + e.Findings[0].String()
	}
	return fmt.Sprintf("the copy does not match what %d destinations acknowledged (see the errors above)", len(e.Findings))
}

// ErrAcks is wrapped by AckError.
var ErrAcks = errors.New("acknowledgements do not match")

// Unwrap makes errors.Is(err, ErrAcks) hold.
func (e *AckError) Unwrap() error { return ErrAcks }

// acksFile is where a device keeps the newest acknowledgement of each
// destination of a repository, so that a copy whose meta records were
// rolled back with it is still compared with what it acknowledged.
func acksFile(stateDir, repoID string) string {
	return filepath.Join(stateDir, "repos", repoID, "acks.json")
}

type acksFileJSON struct {
	Acks []ackFileEntry `json:"acks"`
}

type ackFileEntry struct {
	Kind    string `json:"kind"`
	Payload []byte `json:"payload"`
}

// maxAcksFile caps the device's acknowledgements file.
const maxAcksFile = 4 << 20

// LocalAcks are the acknowledgements this device kept (Options.StateDir);
// none without a state folder.
func (r *Repository) LocalAcks() ([]Ack, error) {
	if r.opts.StateDir == "" {
		return nil, nil
	}
	path := acksFile(r.opts.StateDir, r.cfg.ID)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxAcksFile {
		return nil, fmt.Errorf("%s: too large", path)
	}
	var j acksFileJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Ack
	for _, e := range j.Acks {
		a, err := AckFromMeta(e.Kind, e.Payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// SaveAck keeps an acknowledgement: as a meta record of the repository
// (which mirror then copies to every destination) and in this device's
// state, where it replaces the older one of the same destination. It
// returns the meta record.
func (r *Repository) SaveAck(ctx context.Context, a Ack) (MetaRecord, error) {
	rec, err := r.SaveMeta(ctx, a.Kind, a.Payload)
	if err != nil {
		return rec, err
	}
	if r.opts.StateDir == "" {
		return rec, nil
	}
	old, err := r.LocalAcks()
	if err != nil {
		r.opts.Warn(fmt.Sprintf("acknowledgements kept on this device: %v (starting afresh)", err))
		old = nil
	}
	j := acksFileJSON{Acks: []ackFileEntry{{Kind: a.Kind, Payload: a.Payload}}}
	for _, o := range old {
		if o.Kind != a.Kind {
			j.Acks = append(j.Acks, ackFileEntry{Kind: o.Kind, Payload: o.Payload})
		}
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return rec, err
	}
	path := acksFile(r.opts.StateDir, r.cfg.ID)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return rec, err
	}
	return rec, WriteFileAtomic(path, append(b, '\n'))
}

// KnownAcks are the acknowledgements known when reading the copy be of
// the repository: those in be's meta records and those this device kept,
// deduplicated.
func (r *Repository) KnownAcks(ctx context.Context, be backend.Backend) ([]Ack, error) {
	recs, err := LoadMetaFrom(ctx, be, r.keys, "", r.opts.Warn)
	if err != nil {
		return nil, err
	}
	acks := AcksFromMeta(recs, r.opts.Warn)
	local, err := r.LocalAcks()
	if err != nil {
		r.opts.Warn(fmt.Sprintf("acknowledgements kept on this device: %v", err))
	}
	seen := map[string]bool{}
	var out []Ack
	for _, a := range append(acks, local...) {
		k := a.Kind + "\x00" + string(a.Payload)
		if !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// CopyState is what a copy of the repository holds, read without keys.
type CopyState struct {
	Log CopyLog
	// Files and Bytes count its files, lock files aside.
	Files, Bytes int64
	// Packs are the packs it holds.
	Packs map[backend.ID]bool
}

// ReadCopy lists the copy be and reads its log envelopes. A file under
// log/ that is not an entry is counted as a file only, and as held by
// name (CopyLog.Named) when its name is an ID.
func ReadCopy(ctx context.Context, be backend.Backend) (CopyState, error) {
	files, err := listAll(ctx, be)
	if err != nil {
		return CopyState{}, err
	}
	delete(files, noMeta)
	st := CopyState{Packs: map[backend.ID]bool{}}
	entries := map[[32]byte]*crypt.Entry{}
	named := map[[32]byte]bool{}
	for h, sz := range files {
		st.Files++
		st.Bytes += sz
		if h.Type == backend.PackFile || h.Type == backend.LogFile {
			if id, err := backend.ParseID(h.Name); err == nil {
				if h.Type == backend.PackFile {
					st.Packs[id] = true
				} else {
					named[id] = true
				}
			}
		}
		if h.Type != backend.LogFile || sz > maxEntryFile {
			continue
		}
		data, err := readAll(ctx, be, h, maxEntryFile)
		if backend.IsNotExist(err) {
			continue
		}
		if err != nil {
			return CopyState{}, err
		}
		id := crypt.EntryID(data)
		if backend.ID(id).String() != h.Name {
			continue
		}
		if e, err := crypt.DecodeEntry(data); err == nil {
			entries[id] = e
		}
	}
	st.Log = CopyLogFrom(crypt.VerifyChain(entries))
	st.Log.Named = named
	return st, nil
}

// DescribeCopy says what the copy be holds, as a mirror record would: its
// files and bytes (ReadCopy), its largest log seq and its heads (at
// most crypt.MaxReceiptHeads, the newest).
func DescribeCopy(ctx context.Context, be backend.Backend) (Ack, error) {
	st, err := ReadCopy(ctx, be)
	if err != nil {
		return Ack{}, err
	}
	cl := st.Log
	a := Ack{Files: st.Files, Bytes: st.Bytes}
	named := map[[32]byte]bool{}
	for _, e := range cl.Entries {
		for _, p := range e.Parents {
			named[p] = true
		}
	}
	for id, e := range cl.Entries {
		a.MaxSeq = max(a.MaxSeq, e.Seq)
		if !named[id] {
			a.Heads = append(a.Heads, crypt.ReceiptHead{Seq: e.Seq, ID: id})
		}
	}
	crypt.SortReceiptHeads(a.Heads)
	if len(a.Heads) > crypt.MaxReceiptHeads {
		a.Heads = a.Heads[:crypt.MaxReceiptHeads]
	}
	return a, nil
}

// NewMirrorRecord describes the copy at be, mirrored to as loc (named as
// the device's remembered state names locations) at now, as a mirror
// record ready for SaveAck.
func NewMirrorRecord(ctx context.Context, be backend.Backend, loc string, now time.Time) (Ack, error) {
	a, err := DescribeCopy(ctx, be)
	if err != nil {
		return Ack{}, err
	}
	a.Location, a.Time, a.Kind = loc, now.UTC(), MirrorRecordKind(loc)
	if a.Payload, err = EncodeMirrorRecord(a); err != nil {
		return Ack{}, err
	}
	return a, nil
}
