package peer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startPairing starts a server with pairing on, no --allow, and a clock.
func startPairing(t *testing.T) (*testServer, *testClock) {
	t.Helper()
	clock := &testClock{now: time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)}
	root := t.TempDir()
	ts := startServer(t, ServerConfig{Root: root, PeersFile: DefaultPeersFile(root), Pairing: true, Now: clock.Now, Quota: 1 << 30})
	return ts, clock
}

func (ts *testServer) invite(t *testing.T, clock *testClock, opts InviteOptions) Invite {
	t.Helper()
	if opts.Mode == 0 {
		opts.Mode = ModeAppendOnly
	}
	if opts.Expires == 0 {
		opts.Expires = time.Hour
	}
	opts.Addr = ts.addr
	inv, err := CreateInvite(ts.cfg.Root, ts.id.PeerID(), opts, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestJoin(t *testing.T) {
	ts, clock := startPairing(t)
	inv := ts.invite(t, clock, InviteOptions{Mode: ModeReadWrite, Quota: 1 << 20, HasQuota: true})
	client := newIdentity(t)
	if _, err := Create(t.Context(), ts.loc("r"), client); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("before joining: %v, want ErrNotAllowed", err)
	}
	got, err := Dialer{}.Join(t.Context(), inv, client, "alice laptop")
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != ModeReadWrite || got.Quota != 1<<20 {
		t.Fatalf("granted %+v", got)
	}
	// Served at once, with the invitation's mode and quota.
	be := ts.create(t, client, "r")
	putBytes(t, be, handleOf(backend.ConfigFile, []byte("config")), []byte("config"))
	if err := be.Delete(t.Context(), handleOf(backend.ConfigFile, nil)); err != nil {
		t.Fatalf("read-write delete: %v", err)
	}
	big := make([]byte, 2<<20)
	if err := be.Put(t.Context(), handleOf(backend.PackFile, big), backend.NewByteReader(big)); !errors.Is(err, backend.ErrQuota) {
		t.Fatalf("put over the invitation's quota: %v, want ErrQuota", err)
	}
	// The peers file holds the friend; the invitation file never held the
	// secret.
	data, err := os.ReadFile(DefaultPeersFile(ts.cfg.Root))
	if err != nil {
		t.Fatal(err)
	}
	friends, err := ParsePeersFile(data)
	if err != nil || len(friends) != 1 || friends[0].ID != client.PeerID() || friends[0].Name != "alice laptop" ||
		friends[0].Mode != ModeReadWrite || friends[0].Quota != 1<<20 {
		t.Fatalf("peers file: %+v, %v\n%s", friends, err, data)
	}
	rec, err := os.ReadFile(filepath.Join(InviteDir(ts.cfg.Root), inv.ID.String()+".toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{inviteEncoding.EncodeToString(inv.Secret[:]), string(inv.Secret[:]), "a0a1a2a3"} {
		if strings.Contains(strings.ToLower(string(rec)), strings.ToLower(s)) {
			t.Fatalf("invitation file holds the secret:\n%s", rec)
		}
	}
	// Used: refused, for this device and any other.
	for _, who := range []*crypt.Identity{client, newIdentity(t)} {
		_, err = Dialer{}.Join(t.Context(), inv, who, "")
		if !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), "used already") {
			t.Fatalf("second use: %v", err)
		}
	}
}

func TestJoinRefusals(t *testing.T) {
	ts, clock := startPairing(t)
	client := newIdentity(t)

	expired := ts.invite(t, clock, InviteOptions{Expires: time.Hour})
	clock.add(time.Hour)
	if _, err := (Dialer{}).Join(t.Context(), expired, client, ""); !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}

	unknown := sampleInvite()
	unknown.Addr, unknown.Server = ts.addr, ts.id.PeerID()
	if _, err := (Dialer{}).Join(t.Context(), unknown, client, ""); !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), "no invitation") {
		t.Fatalf("unknown: %v", err)
	}

	// Wrong secrets: counted, then the invitation is revoked, and the
	// right secret no longer works.
	inv := ts.invite(t, clock, InviteOptions{})
	wrong := inv
	wrong.Secret[0] ^= 1
	for i := 1; i <= maxInviteAttempts; i++ {
		_, err := Dialer{}.Join(t.Context(), wrong, client, "")
		want := "wrong code"
		if i == maxInviteAttempts {
			want = "revoked"
		}
		if !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), want) {
			t.Fatalf("wrong secret %d: %v", i, err)
		}
	}
	if _, err := (Dialer{}).Join(t.Context(), inv, client, ""); !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("right secret after revocation: %v", err)
	}

	// A code pinning another server's key is refused before the secret
	// goes out.
	other := ts.invite(t, clock, InviteOptions{})
	other.Server = newIdentity(t).PeerID()
	if _, err := (Dialer{}).Join(t.Context(), other, client, ""); !errors.Is(err, ErrPeerMismatch) {
		t.Fatalf("impostor: %v", err)
	}
	if _, err := Create(t.Context(), ts.loc("r"), client); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("after refusals: %v, want ErrNotAllowed", err)
	}
}

// TestJoinBruteForceBounded: past maxJoinFailures failures in a minute,
// every join is refused, a good code included, until the minute is over.
func TestJoinBruteForceBounded(t *testing.T) {
	ts, clock := startPairing(t)
	good := ts.invite(t, clock, InviteOptions{Expires: 24 * time.Hour})
	guess := sampleInvite()
	guess.Addr, guess.Server = ts.addr, ts.id.PeerID()
	client := newIdentity(t)
	for i := range maxJoinFailures {
		guess.ID[0] = byte(i)
		if _, err := (Dialer{}).Join(t.Context(), guess, client, ""); !errors.Is(err, ErrJoin) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, err := (Dialer{}).Join(t.Context(), good, client, ""); !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("after %d failures: %v", maxJoinFailures, err)
	}
	clock.add(joinWindow)
	if _, err := (Dialer{}).Join(t.Context(), good, client, ""); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

// TestJoinOldServer: a server without pairing refuses the join in the
// TLS handshake, which the client reports as a server too old.
func TestJoinOldServer(t *testing.T) {
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly}})
	inv := sampleInvite()
	inv.Addr, inv.Server = ts.addr, ts.id.PeerID()
	if _, err := (Dialer{}).Join(t.Context(), inv, client, ""); !errors.Is(err, ErrServerTooOld) {
		t.Fatalf("got %v, want ErrServerTooOld", err)
	}
}

// TestPeersFileReload: a hand edit of the peers file changes a connected
// friend's mode and quota; a file that does not parse keeps the old list.
func TestPeersFileReload(t *testing.T) {
	root := t.TempDir()
	path := DefaultPeersFile(root)
	client := newIdentity(t)
	write := func(body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	entry := "[[peer]]\nid = \"" + client.PeerID().String() + "\"\n"
	write(entry + "mode = \"append-only\"\n")
	ts := startServer(t, ServerConfig{Root: root, PeersFile: path})
	be := ts.create(t, client, "r")
	data := []byte("some pack")
	h := handleOf(backend.PackFile, data)
	putBytes(t, be, h, data)
	if err := be.Delete(t.Context(), h); !errors.Is(err, backend.ErrAppendOnly) {
		t.Fatalf("append-only delete: %v", err)
	}
	write(entry + "mode = \"read-write\"\nquota = \"64K\"\n")
	if err := ts.srv.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if err := be.Delete(t.Context(), h); err != nil {
		t.Fatalf("read-write delete after reload: %v", err)
	}
	big := make([]byte, 100<<10)
	if err := be.Put(t.Context(), handleOf(backend.PackFile, big), backend.NewByteReader(big)); !errors.Is(err, backend.ErrQuota) {
		t.Fatalf("put over the new quota: %v", err)
	}
	write("[[peer]]\nid = \"nonsense\"\n")
	if err := ts.srv.Reload("test"); !errors.Is(err, ErrPeersFile) {
		t.Fatalf("bad file: %v", err)
	}
	if err := be.Delete(t.Context(), handleOf(backend.PackFile, big)); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("after a bad file, still read-write: %v", err)
	}
	// A change is applied once two polls see the same content.
	write("")
	ts.srv.reloadIfChanged()
	if _, ok := ts.srv.friend(client.PeerID()); !ok {
		t.Fatal("a change seen by one poll only was applied")
	}
	ts.srv.reloadIfChanged()
	if _, err := Create(t.Context(), ts.loc("s"), client); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("removed from the file: %v, want ErrNotAllowed", err)
	}
}

func TestParsePeersFile(t *testing.T) {
	id := newIdentity(t).PeerID().String()
	good := "# friends\n[[peer]]\nid = \"" + id + "\"\nname = \"bob\"\nmode = \"read-write\"\nquota = \"1.5G\"\n"
	friends, err := ParsePeersFile([]byte(good))
	if err != nil || len(friends) != 1 || friends[0].Mode != ModeReadWrite || friends[0].Quota != 3<<29 || !friends[0].HasQuota {
		t.Fatalf("%+v %v", friends, err)
	}
	for name, s := range map[string]string{
		"unknown key":  "[[peer]]\nid = \"" + id + "\"\nquotaa = \"1G\"\n",
		"bad id":       "[[peer]]\nid = \"x\"\n",
		"bad mode":     "[[peer]]\nid = \"" + id + "\"\nmode = \"rw\"\n",
		"bad quota":    "[[peer]]\nid = \"" + id + "\"\nquota = \"lots\"\n",
		"twice":        "[[peer]]\nid = \"" + id + "\"\n[[peer]]\nid = \"" + id + "\"\n",
		"not toml":     "[[peer]\n",
		"control name": "[[peer]]\nid = \"" + id + "\"\nname = \"a\\u001b\"\n",
	} {
		if _, err := ParsePeersFile([]byte(s)); !errors.Is(err, ErrPeersFile) {
			t.Errorf("%s: got %v, want ErrPeersFile", name, err)
		}
	}
}

// FuzzPeersFile: no panic; a failure wraps ErrPeersFile; a friend that
// parses survives being written out by entry and parsed again.
func FuzzPeersFile(f *testing.F) {
	f.Add([]byte("[[peer]]\nid = \"AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA\"\nmode = \"read-write\"\nquota = \"1G\"\n"))
	f.Add([]byte("# nothing\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		friends, err := ParsePeersFile(data)
		if err != nil {
			if !errors.Is(err, ErrPeersFile) {
				t.Fatalf("error not wrapping ErrPeersFile: %v", err)
			}
			return
		}
		var out strings.Builder
		for _, fr := range friends {
			out.WriteString(fr.entry())
		}
		back, err := ParsePeersFile([]byte(out.String()))
		if err != nil || len(back) != len(friends) {
			t.Fatalf("written out, does not parse back: %v\n%s", err, out.String())
		}
		for i := range back {
			if back[i] != friends[i] {
				t.Fatalf("friend %d: %+v, written and read %+v", i, friends[i], back[i])
			}
		}
	})
}
