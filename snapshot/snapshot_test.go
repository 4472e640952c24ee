package snapshot

import (
	"errors"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

func mkSnap(id string, host string, t time.Time, paths []string, tags ...string) *Snapshot {
	return &Snapshot{ID: backend.Hash([]byte(id)), Hostname: host, Time: t, Paths: paths, Tags: tags}
}

func TestFind(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snaps := []*Snapshot{
		mkSnap("1", "a", t0, []string{"/home"}, "daily"),
		mkSnap("2", "b", t0.Add(time.Hour), []string{"/etc"}),
		mkSnap("3", "a", t0.Add(2*time.Hour), []string{"/home"}, "daily", "x"),
		mkSnap("4", "b", t0.Add(3*time.Hour), []string{"/home"}),
	}
	latest, err := Find(snaps, "latest", Filter{})
	if err != nil || latest != snaps[3] {
		t.Fatalf("latest: %v", err)
	}
	if sn, _ := Find(snaps, "latest", Filter{Hosts: []string{"a"}}); sn != snaps[2] {
		t.Fatal("latest --host a")
	}
	if sn, _ := Find(snaps, "latest", Filter{Paths: []string{"/etc"}}); sn != snaps[1] {
		t.Fatal("latest --path /etc")
	}
	if sn, _ := Find(snaps, "latest", Filter{Tags: []string{"daily,x"}}); sn != snaps[2] {
		t.Fatal("latest --tag daily,x")
	}
	if sn, _ := Find(snaps, "latest", Filter{Tags: []string{"nope", "daily"}}); sn != snaps[2] {
		t.Fatal("latest --tag nope --tag daily")
	}
	full := snaps[0].ID.String()
	if sn, err := Find(snaps, full, Filter{}); err != nil || sn != snaps[0] {
		t.Fatalf("full id: %v", err)
	}
	if sn, err := Find(snaps, full[:8], Filter{}); err != nil || sn != snaps[0] {
		t.Fatalf("prefix: %v", err)
	}
	if _, err := Find(snaps, "", Filter{}); err == nil {
		t.Fatal("empty selector accepted")
	}
	if _, err := Find(snaps, "zz", Filter{}); err == nil {
		t.Fatal("non-hex selector accepted")
	}
	if _, err := Find(snaps, "latest", Filter{Hosts: []string{"c"}}); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("no match: %v", err)
	}
	// Every hex digit is a prefix of some of 4 IDs only by chance; build an
	// ambiguous case explicitly.
	a := &Snapshot{ID: backend.ID{0xab, 1}}
	b := &Snapshot{ID: backend.ID{0xab, 2}}
	if _, err := Find([]*Snapshot{a, b}, "ab", Filter{}); !errors.Is(err, ErrAmbiguousSnapshot) {
		t.Fatalf("ambiguous: %v", err)
	}
}

func TestFindParent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snaps := []*Snapshot{
		mkSnap("1", "a", t0, []string{"/home", "/etc"}),
		mkSnap("2", "a", t0.Add(time.Hour), []string{"/home"}),
		mkSnap("3", "a", t0.Add(2*time.Hour), []string{"/etc", "/home"}),
		mkSnap("4", "b", t0.Add(3*time.Hour), []string{"/etc", "/home"}),
	}
	if p := FindParent(snaps, "a", []string{"/home", "/etc"}, t0.Add(10*time.Hour)); p != snaps[2] {
		t.Fatalf("parent: %v", p)
	}
	if p := FindParent(snaps, "c", []string{"/home"}, t0.Add(10*time.Hour)); p != nil {
		t.Fatal("parent of unknown host")
	}
}

func TestSplitSelector(t *testing.T) {
	s, p := SplitSelector("latest:/home/u")
	if s != "latest" || p != "/home/u" {
		t.Fatal(s, p)
	}
	s, p = SplitSelector("abcd")
	if s != "abcd" || p != "" {
		t.Fatal(s, p)
	}
}
