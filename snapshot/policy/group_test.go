package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

var groupByGood = []struct {
	in   string
	want GroupBy
	str  string
}{
	{"", GroupBy{}, ""},
	{",", GroupBy{}, ""},
	{"host", GroupBy{Host: true}, "host"},
	{"hosts", GroupBy{Host: true}, "host"},
	{"host,paths", DefaultGroupBy, "host,paths"},
	{"paths, host", DefaultGroupBy, "host,paths"},
	{"path,tag", GroupBy{Paths: true, Tags: true}, "paths,tags"},
	{"tags,tags,host,paths", GroupBy{true, true, true}, "host,paths,tags"},
}

var groupByBad = []string{"hostname", "Host", "host;paths", "time", "host,pathz", "\x00"}

func TestParseGroupBy(t *testing.T) {
	for _, tc := range groupByGood {
		got, err := ParseGroupBy(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseGroupBy(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.str)
		}
	}
	for _, in := range groupByBad {
		g, err := ParseGroupBy(in)
		if !errors.Is(err, ErrGroupBy) || g != (GroupBy{}) {
			t.Errorf("ParseGroupBy(%q) = %+v, %v; want ErrGroupBy", in, g, err)
		}
	}
	g := DefaultGroupBy
	if err := g.Set("nope"); err == nil || g != DefaultGroupBy {
		t.Errorf("Set(nope) = %v, left %+v", err, g)
	}
	if err := g.Set("tags"); err != nil || g != (GroupBy{Tags: true}) {
		t.Errorf("Set(tags) = %v, %+v", err, g)
	}
}

// FuzzParseGroupBy: no panic; errors wrap ErrGroupBy with a zero result;
// success round-trips through String.
func FuzzParseGroupBy(f *testing.F) {
	for _, tc := range groupByGood {
		f.Add(tc.in)
	}
	for _, in := range groupByBad {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGroupBy(s)
		if err != nil {
			if !errors.Is(err, ErrGroupBy) || g != (GroupBy{}) {
				t.Fatalf("%q: %+v, %v", s, g, err)
			}
			return
		}
		if again, err := ParseGroupBy(g.String()); err != nil || again != g {
			t.Fatalf("%q: %+v formats as %q, parses to %+v, %v", s, g, g.String(), again, err)
		}
	})
}

func TestGroup(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	mk := func(host string, paths []string, tags ...string) *snapshot.Snapshot {
		n++
		return &snapshot.Snapshot{ID: backend.Hash(fmt.Append(nil, n)), Time: t0.Add(time.Duration(100-n) * time.Hour), Hostname: host, Paths: paths, Tags: tags}
	}
	home, etc, both := []string{"/home"}, []string{"/etc"}, []string{"/home", "/etc"}
	in := []*snapshot.Snapshot{
		0: mk("b", home),
		1: mk("a", home, "x"),
		2: mk("a", etc),
		3: mk("a", home),
		4: mk("a", []string{"/etc", "/home"}, "y", "x"),
		5: mk("a", both, "x", "y", "x"),
		6: mk("b", etc, "x"),
		7: mk("", nil),
	}
	type group struct {
		key  string
		snap []int // indexes into in, oldest first
	}
	for _, tc := range []struct {
		by   GroupBy
		want []group
	}{
		{GroupBy{}, []group{{"", []int{7, 6, 5, 4, 3, 2, 1, 0}}}},
		{GroupBy{Host: true}, []group{
			{"", []int{7}},
			{"host a", []int{5, 4, 3, 2, 1}},
			{"host b", []int{6, 0}},
		}},
		{DefaultGroupBy, []group{
			{"", []int{7}},
			{"host a, paths [/etc]", []int{2}},
			{"host a, paths [/etc /home]", []int{5, 4}},
			{"host a, paths [/home]", []int{3, 1}},
			{"host b, paths [/etc]", []int{6}},
			{"host b, paths [/home]", []int{0}},
		}},
		{GroupBy{Tags: true}, []group{
			{"", []int{7, 3, 2, 0}},
			{"tags [x]", []int{6, 1}},
			{"tags [x y]", []int{5, 4}},
		}},
		{GroupBy{true, true, true}, []group{
			{"", []int{7}},
			{"host a, paths [/etc]", []int{2}},
			{"host a, paths [/etc /home], tags [x y]", []int{5, 4}},
			{"host a, paths [/home]", []int{3}},
			{"host a, paths [/home], tags [x]", []int{1}},
			{"host b, paths [/etc], tags [x]", []int{6}},
			{"host b, paths [/home]", []int{0}},
		}},
	} {
		t.Run(tc.by.String(), func(t *testing.T) {
			orig := make([]snapshot.Snapshot, len(in))
			for i, sn := range in {
				orig[i] = *sn
			}
			got := Group(in, tc.by)
			for i, sn := range in {
				if !slices.Equal(sn.Paths, orig[i].Paths) || !slices.Equal(sn.Tags, orig[i].Tags) {
					t.Fatalf("Group modified snapshot %d", i)
				}
			}
			var gotGroups []group
			for _, g := range got {
				var idx []int
				for _, sn := range g.Snapshots {
					idx = append(idx, slices.Index(in, sn))
				}
				gotGroups = append(gotGroups, group{g.Key.String(), idx})
			}
			if fmt.Sprint(gotGroups) != fmt.Sprint(tc.want) {
				t.Fatalf("groups\n  %v\nwant\n  %v", gotGroups, tc.want)
			}
			// The result does not depend on the input order.
			rng := rand.New(rand.NewPCG(1, 2))
			for range 10 {
				shuffled := slices.Clone(in)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				again := Group(shuffled, tc.by)
				if len(again) != len(got) {
					t.Fatal("shuffled input gives other groups")
				}
				for i := range got {
					if compareKeys(again[i].Key, got[i].Key) != 0 || !slices.Equal(again[i].Snapshots, got[i].Snapshots) {
						t.Fatal("shuffled input gives other groups")
					}
				}
			}
		})
	}
	if got := Group(nil, DefaultGroupBy); len(got) != 0 {
		t.Fatalf("Group(nil) = %v", got)
	}
}

func TestGroupThenApply(t *testing.T) {
	// keep-last 1 per host and paths keeps the newest of each group, not
	// the newest overall: restic's safety feature.
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var in []*snapshot.Snapshot
	for i := range 12 {
		in = append(in, &snapshot.Snapshot{
			ID:       backend.Hash(fmt.Append(nil, i)),
			Time:     t0.Add(time.Duration(i) * time.Hour),
			Hostname: []string{"a", "b", "c"}[i%3],
			Paths:    [][]string{{"/x"}, {"/y"}}[i%2],
		})
	}
	var kept []*snapshot.Snapshot
	for _, g := range Group(in, DefaultGroupBy) {
		keep, _, _ := Apply(g.Snapshots, Policy{Last: 1}, t0.Add(24*time.Hour))
		kept = append(kept, keep...)
	}
	// 6 groups (host x paths); the newest of each is among the last 6.
	if len(kept) != 6 {
		t.Fatalf("kept %d, want 6", len(kept))
	}
	for _, sn := range kept {
		if sn.Time.Before(t0.Add(6 * time.Hour)) {
			t.Fatalf("kept %v, not the newest of its group", sn.Time)
		}
	}
}
