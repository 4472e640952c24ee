package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// flipOnDisk flips one bit in the middle of the file h of the repository
// dir, as a failing disk would, keeping its size.
func flipOnDisk(t *testing.T, r *repoStore, h backend.Handle) {
	t.Helper()
	p := r.filePath(h)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o400); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// repoOf is the server's view of the repository name of client.
func (ts *testServer) repoOf(be *Backend, name string) *repoStore {
	c := ts.srv.store.client(be.self, friendPolicy{mode: ModeAppendOnly})
	r := c.repo(name)
	c.release(r)
	return r
}

// TestScrubQuarantinesAndHeals: the background scrub finds a flipped bit
// in a pack of an append-only client, moves the pack aside (absent for
// stat, get and list), reports it, and a put of the good content heals
// it: the damaged copy is gone and the report is clean. The report
// survives a new server on the same root.
func TestScrubQuarantinesAndHeals(t *testing.T) {
	root := t.TempDir()
	client := newIdentity(t)
	serverID := newIdentity(t)
	cfg := ServerConfig{Identity: serverID, Root: root, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly},
		ScrubRate: 100 << 20, ScrubInterval: 20 * time.Millisecond}
	ts := startServer(t, cfg)
	be := ts.create(t, client, "laptop")
	putBytes(t, be, handleOf(backend.ConfigFile, []byte("config")), []byte("config"))
	pack := randomBytes(t, 300_000)
	h := handleOf(backend.PackFile, pack)
	putBytes(t, be, h, pack)
	other := randomBytes(t, 1000)
	putBytes(t, be, handleOf(backend.IndexFile, other), other)
	r := ts.repoOf(be, "laptop")
	flipOnDisk(t, r, h)
	if !ts.log.logged("is damaged") {
		t.Fatal("the scrub did not report the flipped bit within 10 s")
	}
	if _, err := be.Stat(t.Context(), h); !backend.IsNotExist(err) {
		t.Errorf("stat of the quarantined pack: %v, want not exist", err)
	}
	n := 0
	_ = be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error { n++; return nil })
	if n != 0 {
		t.Errorf("the quarantined pack is still listed")
	}
	rep, err := be.ScrubReport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Quarantined != 1 || len(rep.Moved) != 1 || rep.Moved[0].Handle != h || rep.Damaged < 1 {
		t.Fatalf("report %+v, want the pack %v", rep, h)
	}
	if !ts.log.logged("files (") {
		t.Fatal("no pass of the scrub ended")
	}
	// Healed by a put, on an append-only server.
	putBytes(t, be, h, pack)
	var got []byte
	if err := be.Get(t.Context(), h, 0, 0, func(rd io.Reader) error {
		var err error
		got, err = io.ReadAll(rd)
		return err
	}); err != nil || !bytes.Equal(got, pack) {
		t.Fatalf("get after the heal: %d bytes, %v", len(got), err)
	}
	rep, err = be.ScrubReport(t.Context())
	if err != nil || rep.Quarantined != 0 || len(rep.Moved) != 0 {
		t.Fatalf("report after the heal: %+v, %v", rep, err)
	}
	if !ts.log.logged("healed " + h.String()) {
		t.Error("the server did not log the heal")
	}
	if rep.LastPass.IsZero() {
		t.Error("no last pass in the report")
	}
	// The state is on disk: a second damage, then a new server on the
	// same root reports it without a pass of its own.
	flipOnDisk(t, r, h)
	if _, err := r.quarantine(t.Context(), h, ts.log.logf); err != nil {
		t.Fatal(err)
	}
	_ = be.Close()
	ts2 := startServer(t, ServerConfig{Identity: serverID, Root: root, Allow: cfg.Allow})
	be2, err := Dial(t.Context(), ts2.loc("laptop"), client)
	if err != nil {
		t.Fatal(err)
	}
	defer be2.Close()
	rep, err = be2.ScrubReport(t.Context())
	if err != nil || rep.Quarantined != 1 || rep.Damaged < 2 || rep.LastPass.IsZero() {
		t.Fatalf("report from a new server: %+v, %v", rep, err)
	}
}

// TestVerifyFindsAndAudits: a verify of every file finds a flipped bit
// at once on a server whose scrub is off; audits answer what the server
// holds, missing and short files included, and a client cannot audit
// another client's files.
func TestVerifyFindsAndAudits(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{alice.PeerID(): ModeReadWrite, bob.PeerID(): ModeAppendOnly}})
	be := ts.create(t, alice, "laptop")
	var hs []backend.Handle
	var contents [][]byte
	for i := range 4 {
		b := randomBytes(t, 50_000+i)
		h := handleOf(backend.PackFile, b)
		putBytes(t, be, h, b)
		hs, contents = append(hs, h), append(contents, b)
	}
	r := ts.repoOf(be, "laptop")
	flipOnDisk(t, r, hs[0])
	var ticks int
	rep, err := be.Verify(t.Context(), 1, 0, func(int64, int64) { ticks++ })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 4 || rep.Damaged != 1 || rep.Quarantined != 1 || rep.Moved[0].Handle != hs[0] {
		t.Fatalf("verify: %+v", rep)
	}

	nonce := [32]byte{7}
	challenge := func(h backend.Handle, off int64, n int) backend.AuditChallenge {
		return backend.AuditChallenge{Handle: h, Offset: off, Length: n, Nonce: nonce}
	}
	if err := os.Truncate(r.filePath(hs[2]), 100); err != nil {
		t.Fatal(err)
	}
	answers, err := be.Audit(t.Context(), []backend.AuditChallenge{
		challenge(hs[1], 10, 1000), challenge(hs[0], 0, 10), challenge(hs[2], 50, 100), challenge(hs[3], 49_000, 1003),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.AuditAnswer{
		{Status: backend.AuditOK, Digest: backend.AuditDigest(nonce, contents[1][10:1010])},
		{Status: backend.AuditMissing},
		{Status: backend.AuditShort},
		{Status: backend.AuditOK, Digest: backend.AuditDigest(nonce, contents[3][49_000:50_003])},
	}
	for i := range want {
		if answers[i] != want[i] {
			t.Errorf("answer %d: %v, want %v", i, answers[i].Status, want[i].Status)
		}
	}
	// Bob asks about Alice's pack: his folder has none.
	bobBe := ts.create(t, bob, "laptop")
	answers, err = bobBe.Audit(t.Context(), []backend.AuditChallenge{challenge(hs[1], 0, 10)})
	if err != nil || answers[0].Status != backend.AuditMissing {
		t.Errorf("bob's audit of alice's pack: %+v, %v; want missing", answers, err)
	}
	// An op the server does not know: the client says the server is too old.
	err = be.request(t.Context(), "op 47", func(st *timedStream) error {
		if err := writeFrame(st, request{Op: 47}.encode()); err != nil {
			return err
		}
		_, err := readResponse(st)
		return err
	})
	if err := tooOld(err, "op 47"); !errors.Is(err, ErrServerTooOld) {
		t.Errorf("unknown op: %v, want ErrServerTooOld", err)
	}
}

// TestPacer: the pacer sleeps as long as the rate asks for, on a fake
// clock.
func TestPacer(t *testing.T) {
	now := time.Unix(1000, 0)
	var slept time.Duration
	p := &pacer{rate: 1000, start: now, now: func() time.Time { return now },
		sleep: func(_ context.Context, d time.Duration) error { slept += d; now = now.Add(d); return nil }}
	for range 10 {
		if err := p.wait(t.Context(), 500); err != nil {
			t.Fatal(err)
		}
	}
	if slept != 5*time.Second {
		t.Errorf("5000 bytes at 1000/s slept %v, want 5s", slept)
	}
}
