package snapshot

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// copyOf returns a copy of the log r without the given entries, as a
// friend's copy mirrored before they were written holds it.
func copyOf(r *memLog, without ...backend.ID) *memLog {
	c := &memLog{keys: r.keys, files: maps.Clone(r.files)}
	for _, id := range without {
		delete(c.files, id)
	}
	return c
}

// TestCheckSeenAtBehind reads, at a friend's location, a copy that lacks
// the newest entries this device saw at home: behind, not damage. The same
// log read at home, where the device saw the newer entries, is a
// rollback.
func TestCheckSeenAtBehind(t *testing.T) {
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	ids := buildLog(t, r, ident, 5) // writer + 5 adds: sequence 6
	seen := mustLoad(t, r).Remember(Seen{}, "/home/repo")

	friend := mustLoad(t, copyOf(r, ids[4], ids[3]))
	rep := friend.CheckSeenAt(seen, "/friend/repo")
	if len(rep.Problems) != 0 || rep.BehindBy != 2 || !strings.Contains(rep.Behind, "behind by 2 entries") {
		t.Fatalf("copy that is behind: %+v", rep)
	}
	if strings.Contains(rep.Behind, "too far behind") {
		t.Fatalf("a copy within the remembered entries is confirmed: %+v", rep)
	}
	// A copy with no log yet (a first mirror killed before its log) is
	// behind by everything.
	empty := mustLoad(t, &memLog{keys: r.keys, files: map[backend.ID][]byte{}})
	if rep := empty.CheckSeenAt(seen, "/friend/repo"); len(rep.Problems) != 0 || rep.BehindBy != 6 {
		t.Fatalf("empty copy: %+v", rep)
	}

	home := friend // the same cut log, now read at home
	rep = home.CheckSeenAt(seen, "/home/repo")
	if rep.Behind != "" || len(rep.Problems) == 0 {
		t.Fatalf("rollback at home: %+v", rep)
	}
	wantProblem(t, rep.Problems, "rolled back")
	wantProblem(t, rep.Problems, "missing")

	// Once read at the friend's location, the copy moving backwards there
	// is a rollback too.
	up := mustLoad(t, r)
	seen = up.Remember(seen, "/friend/repo")
	rep = friend.CheckSeenAt(seen, "/friend/repo")
	if rep.Behind != "" || len(rep.Problems) == 0 {
		t.Fatalf("rollback at the friend's: %+v", rep)
	}
	wantProblem(t, rep.Problems, "rolled back")
}

// TestCheckSeenAtLegacy: a state saved before locations were remembered
// counts as seen everywhere, so a rollback is still caught on the first
// run after an upgrade.
func TestCheckSeenAtLegacy(t *testing.T) {
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	ids := buildLog(t, r, ident, 3)
	legacy := mustLoad(t, r).Seen()
	rep := mustLoad(t, copyOf(r, ids[2])).CheckSeenAt(legacy, "/anywhere")
	if rep.Behind != "" {
		t.Fatalf("legacy state: %+v", rep)
	}
	wantProblem(t, rep.Problems, "rolled back")
}

// TestCheckSeenAtNotPrefix: a copy that lacks entries this device saw and
// holds one it never saw (another device wrote to the copy) is damage.
func TestCheckSeenAtNotPrefix(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	ids := buildLog(t, r, ident, 4)
	seen := mustLoad(t, r).Remember(Seen{}, "/home/repo")

	c := copyOf(r, ids[3])
	l := mustLoad(t, c)
	other, _ := crypt.NewIdentity()
	at := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if _, err := l.AddSnapshot(ctx, c, other, &Snapshot{Time: at, Hostname: "other"}, at); err != nil {
		t.Fatal(err)
	}
	rep := mustLoad(t, c).CheckSeenAt(seen, "/friend/repo")
	if rep.Behind != "" {
		t.Fatalf("not a prefix: %+v", rep)
	}
	wantProblem(t, rep.Problems, "not a prefix of what this client has seen")
}

// TestCheckSeenAtTooFarBehind: a copy older than every entry remembered
// cannot be checked entry by entry; it is behind, and says so.
func TestCheckSeenAtTooFarBehind(t *testing.T) {
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	buildLog(t, r, ident, 2) // sequence 3
	s := Seen{MaxSeq: 5000, Locations: map[string]SeenAt{"/home/repo": {MaxSeq: 5000}}}
	for i := range maxKnown {
		s.Known = append(s.Known, SeenHead{ID: backend.Hash([]byte(fmt.Sprint(i))), Seq: uint64(5000 - i)})
	}
	s.Heads = s.Known[:1]
	rep := mustLoad(t, r).CheckSeenAt(s, "/friend/repo")
	if len(rep.Problems) != 0 || rep.BehindBy != 4997 || !strings.Contains(rep.Behind, "too far behind") {
		t.Fatalf("%+v", rep)
	}
	// With room left among the remembered entries, an unknown head is
	// one this device never saw.
	s.Known = s.Known[:10]
	if rep := mustLoad(t, r).CheckSeenAt(s, "/friend/repo"); len(rep.Problems) == 0 {
		t.Fatalf("unknown head within the remembered range: %+v", rep)
	}
}

// TestRememberBounded: the remembered state stays small however long the
// log and however many locations are read, keeps the newest entries, and
// saves and loads back unchanged.
func TestRememberBounded(t *testing.T) {
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	buildLog(t, r, ident, 30)
	l := mustLoad(t, r)
	s := Seen{Known: make([]SeenHead, 0, maxKnown)}
	for i := range maxKnown {
		s.Known = append(s.Known, SeenHead{ID: backend.Hash([]byte(fmt.Sprint(i))), Seq: uint64(1 + i%20)})
	}
	for i := range maxLocations + 5 {
		s = l.Remember(s, fmt.Sprintf("/loc/%d", i))
	}
	if len(s.Known) != maxKnown || len(s.Locations) != maxLocations {
		t.Fatalf("%d known entries, %d locations", len(s.Known), len(s.Locations))
	}
	if _, ok := s.Locations[fmt.Sprintf("/loc/%d", maxLocations+4)]; !ok {
		t.Fatal("the location just read was dropped")
	}
	// The window keeps the newest entries: every entry of the log newer
	// than all the earlier ones (sequences 1-20) is in it.
	for id, e := range l.Entries {
		if e.Seq <= 20 {
			continue
		}
		found := false
		for _, k := range s.Known {
			found = found || k.ID == id && k.Seq == e.Seq
		}
		if !found {
			t.Fatalf("entry %s (sequence %d) of the log just read is not remembered", id.Str(), e.Seq)
		}
	}
	path := filepath.Join(t.TempDir(), "seen.json")
	if err := SaveSeen(path, s); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSeen(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxSeq != s.MaxSeq || len(got.Known) != len(s.Known) || len(got.Locations) != len(s.Locations) ||
		got.Known[0] != s.Known[0] || got.Locations["/loc/3"].MaxSeq != s.Locations["/loc/3"].MaxSeq {
		t.Fatal("state changed by saving and loading")
	}
}
