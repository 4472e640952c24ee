package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// FuzzDecodeLogBody feeds the opened body of a log entry, whose envelope
// is taken as verified, to decodeBody: it must not panic, every error must
// wrap ErrFormat and come without an entry, and an accepted body must
// encode back to a body that decodes to the same entry.
func FuzzDecodeLogBody(f *testing.F) {
	device := make([]byte, 32)
	device[0] = 7
	when := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	id := backend.Hash([]byte("parent"))
	sn := &Snapshot{Time: when, Tree: id, Paths: []string{"/home"}, Hostname: "h", Tags: []string{"t"}, Parent: &id,
		Summary: &Summary{FilesNew: 1}}
	for _, seed := range []struct {
		op byte
		b  body
	}{
		{OpAdd, body{Snapshot: sn}},
		{OpForget, body{Forget: []backend.ID{id, backend.Hash([]byte("x"))}}},
		{OpWriter, body{Writer: &Writer{Device: device, Hostname: "h", Added: when}}},
		{OpCheckpoint, body{Checkpoint: &Checkpoint{
			Snapshots: []CheckpointSnapshot{{ID: id, Snapshot: sn}},
			Writers:   []Writer{{Device: device, Added: when}},
		}}},
		{OpTag, body{Tag: &TagChange{Snapshots: []backend.ID{id}, Add: []string{"keep"}, Remove: []string{"daily"}}}},
		{OpTag, body{Tag: &TagChange{Snapshots: []backend.ID{id, backend.Hash([]byte("x"))}, Set: &[]string{}}}},
	} {
		plain, err := json.Marshal(seed.b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed.op, plain)
	}
	f.Add(OpAdd, []byte(`{"snapshot":{}}`))
	f.Add(OpCheckpoint, []byte(`{"checkpoint":{"snapshots":[{"id":"00"}]}}`))
	f.Add(OpTag, []byte(`{"tag":{"snapshots":[],"set":null}}`))
	f.Add(OpRevoke, []byte(`{"revoke":{"device":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}`))
	f.Add(OpCheckpoint, []byte(`{"checkpoint":{"snapshots":[],"writers":[],"revoked":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}}`))
	f.Add(byte('z'), []byte(`{"zebra":{}}`))
	f.Fuzz(func(t *testing.T, op byte, plain []byte) {
		env := &crypt.Entry{Seq: 1, Op: op, Device: device}
		e, err := decodeBody(id, env, plain)
		if err != nil {
			if e != nil {
				t.Fatal("entry returned with an error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if e.Snapshot != nil && e.Snapshot.ID != id {
			t.Fatalf("snapshot ID %v, want the entry's", e.Snapshot.ID)
		}
		again, err := json.Marshal(body{Snapshot: e.Snapshot, Forget: e.Forget, Writer: e.Writer, Checkpoint: e.Checkpoint, Tag: e.Tag, Revoke: e.Revoke})
		if err != nil {
			t.Fatalf("accepted body does not encode: %v", err)
		}
		e2, err := decodeBody(id, env, again)
		if err != nil {
			t.Fatalf("re-encoded body does not decode: %v\n%s", err, again)
		}
		again2, _ := json.Marshal(body{Snapshot: e2.Snapshot, Forget: e2.Forget, Writer: e2.Writer, Checkpoint: e2.Checkpoint, Tag: e2.Tag, Revoke: e2.Revoke})
		if !bytes.Equal(again, again2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", again, again2)
		}
	})
}

// FuzzLoadSeen reads a device's remembered log heads from a file with
// arbitrary content: no panic, an error without a state, and a state
// that saves and loads back unchanged.
func FuzzLoadSeen(f *testing.F) {
	seen := Seen{MaxSeq: 9, Heads: []SeenHead{{ID: backend.Hash([]byte("a")), Seq: 9}, {ID: backend.Hash([]byte("b")), Seq: 7}}}
	b, err := json.Marshal(seen)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	seen.Locations = map[string]SeenAt{"/srv/repo": {MaxSeq: 9, Heads: seen.Heads[:1]}, "sftp:a@b:/c": {MaxSeq: 7}}
	seen.Known = append([]SeenHead(nil), seen.Heads...)
	if b, err = json.Marshal(seen); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"max_seq":1,"heads":null}`))
	f.Add([]byte(`{}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "seen.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := LoadSeen(p)
		if err != nil {
			if s.MaxSeq != 0 || s.Heads != nil || s.Locations != nil || s.Known != nil {
				t.Fatal("state returned with an error")
			}
			return
		}
		if err := SaveSeen(p, s); err != nil {
			t.Fatal(err)
		}
		s2, err := LoadSeen(p)
		if err != nil {
			t.Fatalf("saved state does not load: %v", err)
		}
		sortHeads := func(h []SeenHead) []SeenHead {
			h = slices.Clone(h)
			slices.SortFunc(h, func(a, b SeenHead) int { return bytes.Compare(a.ID[:], b.ID[:]) })
			return h
		}
		if s2.MaxSeq != s.MaxSeq || !slices.Equal(sortHeads(s.Heads), sortHeads(s2.Heads)) ||
			!slices.Equal(sortHeads(s.Known), sortHeads(s2.Known)) || len(s.Locations) != len(s2.Locations) {
			t.Fatalf("state changed by saving: %+v, then %+v", s, s2)
		}
		for loc, at := range s.Locations {
			at2, ok := s2.Locations[loc]
			if !ok || at2.MaxSeq != at.MaxSeq || !slices.Equal(sortHeads(at.Heads), sortHeads(at2.Heads)) {
				t.Fatalf("location %q changed by saving: %+v, then %+v", loc, at, at2)
			}
		}
	})
}
