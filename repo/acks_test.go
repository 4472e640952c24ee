package repo

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// ackLog builds a log of entries: a chain 1..n, and optionally a fork at
// seq forkAt (an entry with the same parent as the chain's entry there).
type ackLog struct {
	ids map[uint64][32]byte // chain entries by seq
	log CopyLog
}

func newAckLog(n int) *ackLog {
	l := &ackLog{ids: map[uint64][32]byte{}, log: CopyLog{Entries: map[[32]byte]*crypt.Entry{}}}
	var prev [32]byte
	for s := uint64(1); s <= uint64(n); s++ {
		id := [32]byte{byte(s), 1}
		e := &crypt.Entry{Seq: s}
		if s > 1 {
			e.Parents = [][32]byte{prev}
		}
		l.log.Entries[id] = e
		l.ids[s] = id
		prev = id
	}
	return l
}

func (l *ackLog) head(seq uint64) crypt.ReceiptHead {
	return crypt.ReceiptHead{Seq: seq, ID: l.ids[seq]}
}

func receiptAck(peer byte, heads ...crypt.ReceiptHead) Ack {
	a := Ack{Signed: true, Signer: crypt.PeerID{peer}, Time: time.Unix(1000, 0), Heads: heads}
	for _, h := range heads {
		a.MaxSeq = max(a.MaxSeq, h.Seq)
	}
	return a
}

func TestCompareAcks(t *testing.T) {
	full := newAckLog(5)
	short := newAckLog(3) // the same chain, cut at seq 3
	forked := newAckLog(3)
	fid := [32]byte{9, 9}
	forked.log.Entries[fid] = &crypt.Entry{Seq: 3, Parents: [][32]byte{forked.ids[2]}}
	delete(forked.log.Entries, forked.ids[3])
	compacted := newAckLog(5)
	delete(compacted.log.Entries, compacted.ids[1])
	delete(compacted.log.Entries, compacted.ids[2])
	compacted.log.CheckpointSeq = 4
	// The copy's newest entry is present by name but does not decode.
	damaged := newAckLog(5)
	delete(damaged.log.Entries, damaged.ids[5])
	damaged.log.Named = map[[32]byte]bool{}
	for _, id := range damaged.ids {
		damaged.log.Named[id] = true
	}
	isPeer := func(p byte) func(Ack) bool {
		return func(a Ack) bool { return a.Signed && a.Signer == crypt.PeerID{p} }
	}
	cases := []struct {
		name string
		log  CopyLog
		acks []Ack
		self func(Ack) bool
		want []AckFindingKind
	}{
		{"holds what it signed", full.log, []Ack{receiptAck(1, full.head(5))}, isPeer(1), nil},
		{"holds more than it signed", full.log, []Ack{receiptAck(1, full.head(3))}, isPeer(1), nil},
		{"rolled back: signed head missing", short.log, []Ack{receiptAck(1, full.head(5))}, isPeer(1), []AckFindingKind{AckRolledBack}},
		{"frozen: seq below what it signed", short.log, []Ack{{Signed: true, Signer: crypt.PeerID{1}, MaxSeq: 5}}, isPeer(1), []AckFindingKind{AckRolledBack}},
		{"damaged head held by name is no rollback", damaged.log, []Ack{receiptAck(1, full.head(5))}, isPeer(1), nil},
		{"damaged head held by name: not behind another friend", damaged.log, []Ack{receiptAck(2, full.head(5))}, isPeer(1), nil},
		{"compacted head is no rollback", compacted.log, []Ack{receiptAck(1, full.head(2))}, isPeer(1), nil},
		{"behind another friend", short.log, []Ack{receiptAck(2, full.head(5))}, isPeer(1), []AckFindingKind{AckBehind}},
		{"forked from another friend", forked.log, []Ack{receiptAck(2, full.head(3))}, isPeer(1), []AckFindingKind{AckForked}},
		{"other friend's older head held", full.log, []Ack{receiptAck(2, full.head(2))}, isPeer(1), nil},
		{"worst finding per friend, errors first", short.log,
			[]Ack{receiptAck(2, full.head(5)), receiptAck(1, full.head(4)), receiptAck(1, full.head(5))}, isPeer(1),
			[]AckFindingKind{AckRolledBack, AckBehind}},
		{"mirror record of this location", short.log,
			[]Ack{{Location: "/srv/copy", MaxSeq: 5, Heads: []crypt.ReceiptHead{full.head(5)}}},
			func(a Ack) bool { return !a.Signed && a.Location == "/srv/copy" }, []AckFindingKind{AckRolledBack}},
	}
	for _, c := range cases {
		got := CompareAcks(c.log, c.acks, c.self)
		var kinds []AckFindingKind
		for _, f := range got {
			kinds = append(kinds, f.Kind)
			if f.String() == "" {
				t.Errorf("%s: empty text", c.name)
			}
		}
		if len(kinds) != len(c.want) {
			t.Errorf("%s: findings %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range kinds {
			if kinds[i] != c.want[i] {
				t.Errorf("%s: findings %v, want %v", c.name, got, c.want)
			}
		}
	}
	f := CompareAcks(forked.log, []Ack{receiptAck(2, full.head(3))}, isPeer(1))[0]
	if !strings.Contains(f.String(), "forked") || !strings.Contains(f.String(), (crypt.PeerID{2}).String()) {
		t.Errorf("fork text %q does not name the friend", f.String())
	}
}

// Acknowledgements kept as meta records and on the device are found
// again; a receipt kept under another friend's kind is refused.
func TestAcksKept(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	testInit(t, be, InitOptions{})
	state := t.TempDir()
	r := testOpen(t, be, Options{Now: metaClock(), StateDir: state})
	srv, _ := crypt.NewIdentity()
	signed, err := srv.SignReceipt(&crypt.Receipt{Repo: "laptop", Time: time.Unix(5, 0), Files: 3, MaxSeq: 2,
		Heads: []crypt.ReceiptHead{{Seq: 2, ID: [32]byte{7}}}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := AckFromMeta(ReceiptKind(srv.PeerID(), "laptop"), signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveAck(ctx, a); err != nil {
		t.Fatal(err)
	}
	rec := Ack{Location: "/srv/copy", Time: time.Unix(6, 0), MaxSeq: 2, Heads: []crypt.ReceiptHead{{Seq: 2, ID: [32]byte{7}}}}
	rec.Kind = MirrorRecordKind(rec.Location)
	if rec.Payload, err = EncodeMirrorRecord(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveAck(ctx, rec); err != nil {
		t.Fatal(err)
	}
	known, err := r.KnownAcks(ctx, be)
	if err != nil || len(known) != 2 {
		t.Fatalf("known: %+v %v", known, err)
	}
	// A blank copy still finds the device's acknowledgements.
	blank := mem.New()
	known, err = r.KnownAcks(ctx, blank)
	if err != nil || len(known) != 2 {
		t.Fatalf("known at a blank copy: %d %v", len(known), err)
	}
	other, _ := crypt.NewIdentity()
	if _, err := AckFromMeta(ReceiptKind(other.PeerID(), "laptop"), signed); !errors.Is(err, ErrMetaFormat) {
		t.Errorf("receipt under another peer's kind: %v", err)
	}
	if _, err := AckFromMeta(MirrorRecordKind("/elsewhere"), rec.Payload); !errors.Is(err, ErrMetaFormat) {
		t.Errorf("mirror record under another location's kind: %v", err)
	}
}

func FuzzDecodeMirrorRecord(f *testing.F) {
	good, _ := EncodeMirrorRecord(Ack{Location: "/x", Time: time.Unix(1, 0), MaxSeq: 3, Heads: []crypt.ReceiptHead{{Seq: 3}}})
	f.Add(good)
	f.Add([]byte(`{"location":"a","heads":[{"seq":1}]}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := DecodeMirrorRecord(p)
		if err != nil {
			if !errors.Is(err, ErrMetaFormat) || a.Location != "" {
				t.Fatalf("error %v with %+v", err, a)
			}
			return
		}
		b, err := EncodeMirrorRecord(a)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeMirrorRecord(b)
		if err != nil || back.Location != a.Location || back.MaxSeq != a.MaxSeq || len(back.Heads) != len(a.Heads) {
			t.Fatalf("round trip: %+v %+v %v", a, back, err)
		}
	})
}
