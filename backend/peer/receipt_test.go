package peer

import (
	"errors"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// logEntry encodes an entry of dev with the given seq and parents.
func logEntry(t *testing.T, dev *crypt.Identity, seq uint64, parents ...[32]byte) []byte {
	t.Helper()
	e := &crypt.Entry{Seq: seq, Time: int64(seq) * int64(time.Second), Op: 'a', Parents: parents, Body: []byte("sealed")}
	data, err := dev.EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The server signs what it holds: files and bytes (lock files aside),
// the largest seq and the heads of the log, by its clock.
func TestReceiptSigned(t *testing.T) {
	client := newIdentity(t)
	when := time.Date(2026, 12, 8, 1, 2, 3, 0, time.UTC)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly},
		Now: func() time.Time { return when }})
	be := ts.create(t, client, "laptop")
	var files, bytes int64
	put := func(ft backend.FileType, data []byte) [32]byte {
		putBytes(t, be, handleOf(ft, data), data)
		if ft != backend.LockFile {
			files++
			bytes += int64(len(data))
		}
		return backend.Hash(data)
	}
	put(backend.ConfigFile, []byte("config bytes"))
	put(backend.PackFile, []byte("a pack"))
	put(backend.LockFile, []byte("a lock"))
	put(backend.MetaFile, []byte("a meta record"))
	e1 := put(backend.LogFile, logEntry(t, client, 1))
	e2 := put(backend.LogFile, logEntry(t, client, 2, e1))
	e3 := put(backend.LogFile, logEntry(t, client, 3, e2))
	put(backend.LogFile, []byte("not a log entry")) // counted as a file, not as a head
	fork := put(backend.LogFile, logEntry(t, newIdentity(t), 2, e1))
	rc, signed, err := be.Receipt(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rc.SignerID() != ts.id.PeerID() || rc.Client != client.PeerID() || rc.Repo != "laptop" || !rc.Time.Equal(when) {
		t.Fatalf("receipt %+v", rc)
	}
	if rc.Files != files || rc.Bytes != bytes || rc.MaxSeq != 3 {
		t.Fatalf("receipt counts %d files %d bytes seq %d, want %d %d 3", rc.Files, rc.Bytes, rc.MaxSeq, files, bytes)
	}
	if len(rc.Heads) != 2 || rc.Heads[0] != (crypt.ReceiptHead{Seq: 3, ID: e3}) || rc.Heads[1] != (crypt.ReceiptHead{Seq: 2, ID: fork}) {
		t.Fatalf("heads %+v", rc.Heads)
	}
	back, err := crypt.DecodeReceipt(signed)
	if err != nil || back.MaxSeq != 3 {
		t.Fatalf("signed bytes: %v", err)
	}
	if !ts.log.logged("signed a receipt") {
		t.Error("server did not log the receipt")
	}
}

// A server that does not know the request answers "unknown op": the
// client says the server is too old.
func TestReceiptFromOldServer(t *testing.T) {
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		testOnlyUnknownOps: map[op]bool{opReceipt: true}})
	be := ts.create(t, client, "")
	_, _, err := be.Receipt(t.Context())
	if !errors.Is(err, ErrReceiptUnsupported) {
		t.Fatalf("receipt from an old server: %v", err)
	}
}

func FuzzDecodeReceiptFrame(f *testing.F) {
	id, err := crypt.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	signed, err := id.SignReceipt(&crypt.Receipt{Repo: "r", Time: time.Unix(5, 0), Files: 1, MaxSeq: 1, Heads: []crypt.ReceiptHead{{Seq: 1}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encodeReceiptFrame(signed))
	f.Add([]byte{msgReceipt})
	f.Fuzz(func(t *testing.T, p []byte) {
		rc, b, err := decodeReceiptFrame(p)
		if err != nil {
			if rc != nil || b != nil || !errors.Is(err, ErrProtocol) {
				t.Fatalf("partial result or error %v", err)
			}
			return
		}
		if string(encodeReceiptFrame(b)) != string(p) {
			t.Fatal("frame does not re-encode to its input")
		}
	})
}
