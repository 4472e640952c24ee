package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

var (
	minus5 = time.FixedZone("-0500", -5*3600)
	plus2  = time.FixedZone("+0200", 2*3600)
)

// at parses "2006-01-02 15:04" (seconds optional) in loc.
func at(loc *time.Location, s string) time.Time {
	layout := "2006-01-02 15:04"
	if strings.Count(s, ":") == 2 {
		layout = "2006-01-02 15:04:05"
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		panic("test bug: " + err.Error())
	}
	return t
}

// snaps makes one snapshot per time, each with a distinct ID.
func snaps(loc *time.Location, times ...string) []*snapshot.Snapshot {
	var out []*snapshot.Snapshot
	for i, s := range times {
		out = append(out, &snapshot.Snapshot{ID: backend.Hash(fmt.Appendf(nil, "%d %s", i, s)), Time: at(loc, s)})
	}
	return out
}

// label names a snapshot by its wall-clock time in its own zone.
func label(sn *snapshot.Snapshot) string { return sn.Time.Format("2006-01-02 15:04") }

func labels(list []*snapshot.Snapshot) []string {
	var out []string
	for _, sn := range list {
		out = append(out, label(sn))
	}
	return out
}

// checkPartition fails unless keep and remove split in exactly, both
// newest first, with one reason per kept snapshot.
func checkPartition(t *testing.T, in, keep, remove []*snapshot.Snapshot, reasons []Reason) {
	t.Helper()
	if len(keep)+len(remove) != len(in) {
		t.Fatalf("kept %d + removed %d != %d snapshots", len(keep), len(remove), len(in))
	}
	seen := map[*snapshot.Snapshot]int{}
	for _, sn := range in {
		seen[sn]++
	}
	for _, sn := range append(slices.Clone(keep), remove...) {
		if seen[sn] == 0 {
			t.Fatalf("snapshot %s kept or removed twice, or not from the input", label(sn))
		}
		seen[sn]--
	}
	if len(reasons) != len(keep) {
		t.Fatalf("%d reasons for %d kept snapshots", len(reasons), len(keep))
	}
	for i, r := range reasons {
		if r.Snapshot != keep[i] {
			t.Fatalf("reason %d is for %s, kept snapshot is %s", i, label(r.Snapshot), label(keep[i]))
		}
		if len(r.Matches) == 0 {
			t.Fatalf("kept snapshot %s has no reason", label(keep[i]))
		}
	}
	for _, list := range [][]*snapshot.Snapshot{keep, remove} {
		for i := 1; i < len(list); i++ {
			a, b := list[i-1], list[i]
			if a.Time.Before(b.Time) || a.Time.Equal(b.Time) && a.ID.Less(b.ID) {
				t.Fatalf("not newest first: %s before %s", label(a), label(b))
			}
		}
	}
}

func TestApplyTable(t *testing.T) {
	hourly := []string{"2025-03-10 10:05", "2025-03-10 10:40", "2025-03-10 11:10", "2025-03-10 11:50", "2025-03-10 12:30"}
	daily := []string{"2025-03-08 09:00", "2025-03-08 21:00", "2025-03-09 23:59", "2025-03-10 00:00", "2025-03-10 08:00"}
	// 2020-12-28 is the Monday of ISO week 2020-53, which ends on Sunday
	// 2021-01-03; 2021-01-04 starts 2021-01.
	weekly := []string{"2020-12-21 12:00", "2020-12-28 00:00", "2020-12-31 23:00", "2021-01-03 23:59", "2021-01-04 00:00"}
	monthly := []string{"2025-01-15 12:00", "2025-01-31 23:59", "2025-02-01 00:00", "2025-02-28 10:00", "2025-03-01 00:01"}
	yearly := []string{"2022-06-01 00:00", "2023-01-01 00:00", "2023-12-31 23:59", "2024-07-01 00:00", "2025-01-01 00:00"}
	spread := []string{"2025-03-01 00:00", "2025-03-07 12:00", "2025-03-08 11:00", "2025-03-08 12:00", "2025-03-09 12:00", "2025-03-10 11:00", "2025-03-10 12:00"}
	later := at(time.UTC, "2025-06-01 00:00")

	tests := []struct {
		name    string
		in      []*snapshot.Snapshot
		p       Policy
		now     time.Time
		want    []string            // kept, newest first
		reasons map[string][]string // Matches of some kept snapshots
	}{
		{name: "last 3", in: snaps(time.UTC, hourly...), p: Policy{Last: 3},
			want:    []string{"2025-03-10 12:30", "2025-03-10 11:50", "2025-03-10 11:10"},
			reasons: map[string][]string{"2025-03-10 11:10": {"last snapshot"}}},
		{name: "last more than there are", in: snaps(time.UTC, hourly...), p: Policy{Last: 10},
			want: []string{"2025-03-10 12:30", "2025-03-10 11:50", "2025-03-10 11:10", "2025-03-10 10:40", "2025-03-10 10:05"},
			// every snapshot is its own period: the oldest is no extra
			reasons: map[string][]string{"2025-03-10 10:05": {"last snapshot"}}},
		{name: "last unlimited", in: snaps(time.UTC, hourly...), p: Policy{Last: Unlimited},
			want: []string{"2025-03-10 12:30", "2025-03-10 11:50", "2025-03-10 11:10", "2025-03-10 10:40", "2025-03-10 10:05"}},
		{name: "hourly 2 uses up its count", in: snaps(time.UTC, hourly...), p: Policy{Hourly: 2},
			want: []string{"2025-03-10 12:30", "2025-03-10 11:50"}},
		{name: "hourly 3 exactly the periods there are", in: snaps(time.UTC, hourly...), p: Policy{Hourly: 3},
			want: []string{"2025-03-10 12:30", "2025-03-10 11:50", "2025-03-10 10:40"}},
		{name: "hourly 5 keeps the oldest too", in: snaps(time.UTC, hourly...), p: Policy{Hourly: 5},
			want: []string{"2025-03-10 12:30", "2025-03-10 11:50", "2025-03-10 10:40", "2025-03-10 10:05"},
			reasons: map[string][]string{
				"2025-03-10 10:40": {"hourly snapshot"},
				"2025-03-10 10:05": {"oldest hourly snapshot"},
			}},
		{name: "hourly unlimited", in: snaps(time.UTC, hourly...), p: Policy{Hourly: Unlimited},
			want:    []string{"2025-03-10 12:30", "2025-03-10 11:50", "2025-03-10 10:40", "2025-03-10 10:05"},
			reasons: map[string][]string{"2025-03-10 10:05": {"oldest hourly snapshot"}}},
		{name: "daily 2 across midnight", in: snaps(time.UTC, daily...), p: Policy{Daily: 2},
			want: []string{"2025-03-10 08:00", "2025-03-09 23:59"}},
		{name: "daily 3", in: snaps(time.UTC, daily...), p: Policy{Daily: 3},
			want: []string{"2025-03-10 08:00", "2025-03-09 23:59", "2025-03-08 21:00"}},
		{name: "daily 4 adds the oldest", in: snaps(time.UTC, daily...), p: Policy{Daily: 4},
			want: []string{"2025-03-10 08:00", "2025-03-09 23:59", "2025-03-08 21:00", "2025-03-08 09:00"}},
		{name: "daily in another zone", in: snaps(minus5, daily...), p: Policy{Daily: 2},
			want: []string{"2025-03-10 08:00", "2025-03-09 23:59"}},
		{name: "weekly 2 across the year end", in: snaps(time.UTC, weekly...), p: Policy{Weekly: 2},
			want: []string{"2021-01-04 00:00", "2021-01-03 23:59"}},
		{name: "weekly 3", in: snaps(time.UTC, weekly...), p: Policy{Weekly: 3},
			want: []string{"2021-01-04 00:00", "2021-01-03 23:59", "2020-12-21 12:00"}},
		{name: "weekly 4 adds the oldest", in: snaps(time.UTC, weekly[1:]...), p: Policy{Weekly: 4},
			want:    []string{"2021-01-04 00:00", "2021-01-03 23:59", "2020-12-28 00:00"},
			reasons: map[string][]string{"2020-12-28 00:00": {"oldest weekly snapshot"}}},
		{name: "monthly 2", in: snaps(time.UTC, monthly...), p: Policy{Monthly: 2},
			want: []string{"2025-03-01 00:01", "2025-02-28 10:00"}},
		{name: "monthly 3", in: snaps(time.UTC, monthly...), p: Policy{Monthly: 3},
			want: []string{"2025-03-01 00:01", "2025-02-28 10:00", "2025-01-31 23:59"}},
		{name: "yearly 3", in: snaps(time.UTC, yearly...), p: Policy{Yearly: 3},
			want: []string{"2025-01-01 00:00", "2024-07-01 00:00", "2023-12-31 23:59"}},
		{name: "yearly unlimited", in: snaps(time.UTC, yearly...), p: Policy{Yearly: Unlimited},
			want: []string{"2025-01-01 00:00", "2024-07-01 00:00", "2023-12-31 23:59", "2022-06-01 00:00"}},
		{name: "count below unlimited acts as unlimited", in: snaps(time.UTC, yearly...), p: Policy{Yearly: -7},
			want: []string{"2025-01-01 00:00", "2024-07-01 00:00", "2023-12-31 23:59", "2022-06-01 00:00"}},
		{name: "rules are ORed", in: snaps(time.UTC, spread...), p: Policy{Last: 1, Daily: 3, Weekly: 2},
			want: []string{"2025-03-10 12:00", "2025-03-09 12:00", "2025-03-08 12:00"},
			reasons: map[string][]string{
				"2025-03-10 12:00": {"last snapshot", "daily snapshot", "weekly snapshot"},
				"2025-03-09 12:00": {"daily snapshot", "weekly snapshot"},
			}},
		{name: "within is relative to the latest, not now", in: snaps(time.UTC, spread...),
			p: Policy{Within: Duration{Days: 2}}, now: later,
			// 2025-03-08 12:00 is exactly 2d before the latest: not within
			want:    []string{"2025-03-10 12:00", "2025-03-10 11:00", "2025-03-09 12:00"},
			reasons: map[string][]string{"2025-03-09 12:00": {"within 2d"}}},
		{name: "within hours", in: snaps(time.UTC, spread...), p: Policy{Within: Duration{Days: 1, Hours: 1}}, now: later,
			want: []string{"2025-03-10 12:00", "2025-03-10 11:00", "2025-03-09 12:00"}},
		{name: "within ignores the future", in: snaps(time.UTC, spread...), p: Policy{Within: Duration{Days: 1}},
			// the latest is 2025-03-08 11:00
			now:  at(time.UTC, "2025-03-08 11:30"),
			want: []string{"2025-03-10 12:00", "2025-03-10 11:00", "2025-03-09 12:00", "2025-03-08 12:00", "2025-03-08 11:00", "2025-03-07 12:00"}},
		{name: "within when all is in the future", in: snaps(time.UTC, spread...), p: Policy{Within: Duration{Hours: 1}},
			now:  at(time.UTC, "2024-01-01 00:00"),
			want: []string{"2025-03-10 12:00", "2025-03-10 11:00", "2025-03-09 12:00", "2025-03-08 12:00", "2025-03-08 11:00", "2025-03-07 12:00", "2025-03-01 00:00"}},
		{name: "within months follow AddDate", // 2025-03-31 minus 1m is "2025-02-31", that is 2025-03-03
			in: snaps(time.UTC, "2025-02-27 00:00", "2025-03-02 23:00", "2025-03-03 00:00", "2025-03-03 00:01", "2025-03-31 00:00"),
			p:  Policy{Within: Duration{Months: 1}}, now: later,
			want: []string{"2025-03-31 00:00", "2025-03-03 00:01"}},
		{name: "within years", in: snaps(time.UTC, yearly...), p: Policy{Within: Duration{Years: 2}}, now: later,
			want: []string{"2025-01-01 00:00", "2024-07-01 00:00", "2023-12-31 23:59"}},
		{name: "within-hourly", in: snaps(time.UTC, hourly...), p: Policy{WithinHourly: Duration{Hours: 1}}, now: later,
			want:    []string{"2025-03-10 12:30", "2025-03-10 11:50"},
			reasons: map[string][]string{"2025-03-10 11:50": {"hourly within 1h"}}},
		{name: "within-hourly 2h", in: snaps(time.UTC, hourly...), p: Policy{WithinHourly: Duration{Hours: 2}}, now: later,
			want: []string{"2025-03-10 12:30", "2025-03-10 11:50", "2025-03-10 10:40"}},
		{name: "within-hourly reaching the oldest", in: snaps(time.UTC, hourly...), p: Policy{WithinHourly: Duration{Hours: 3}}, now: later,
			want:    []string{"2025-03-10 12:30", "2025-03-10 11:50", "2025-03-10 10:40", "2025-03-10 10:05"},
			reasons: map[string][]string{"2025-03-10 10:05": {"oldest hourly within 3h"}}},
		{name: "within-daily", in: snaps(time.UTC, spread...), p: Policy{WithinDaily: Duration{Days: 3}}, now: later,
			want: []string{"2025-03-10 12:00", "2025-03-09 12:00", "2025-03-08 12:00"}},
		{name: "within-weekly", in: snaps(time.UTC, spread...), p: Policy{WithinWeekly: Duration{Days: 9}}, now: later,
			// 2025-03-10 is a Monday; 03-01, in the week before, is not
			// within 9d.
			want: []string{"2025-03-10 12:00", "2025-03-09 12:00"}},
		{name: "within-monthly", in: snaps(time.UTC, monthly...), p: Policy{WithinMonthly: Duration{Days: 40}}, now: later,
			want:    []string{"2025-03-01 00:01", "2025-02-28 10:00", "2025-01-31 23:59"},
			reasons: map[string][]string{"2025-01-31 23:59": {"monthly within 40d"}}},
		{name: "within-yearly", in: snaps(time.UTC, yearly...), p: Policy{WithinYearly: Duration{Years: 5}}, now: later,
			want:    []string{"2025-01-01 00:00", "2024-07-01 00:00", "2023-12-31 23:59", "2022-06-01 00:00"},
			reasons: map[string][]string{"2022-06-01 00:00": {"yearly within 5y"}}},
		{name: "empty policy keeps all", in: snaps(time.UTC, daily...), p: Policy{},
			want:    []string{"2025-03-10 08:00", "2025-03-10 00:00", "2025-03-09 23:59", "2025-03-08 21:00", "2025-03-08 09:00"},
			reasons: map[string][]string{"2025-03-08 09:00": {"empty policy"}}},
		{name: "empty input", in: nil, p: Policy{Last: 3}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = at(time.UTC, "2030-01-01 00:00")
			}
			in := slices.Clone(tc.in)
			keep, remove, reasons := Apply(tc.in, tc.p, now)
			if !slices.Equal(in, tc.in) {
				t.Fatal("Apply reordered its input")
			}
			checkPartition(t, tc.in, keep, remove, reasons)
			if got := labels(keep); !slices.Equal(got, tc.want) {
				t.Fatalf("kept\n  %q\nwant\n  %q", got, tc.want)
			}
			for i, r := range reasons {
				want, ok := tc.reasons[label(keep[i])]
				if ok && !slices.Equal(r.Matches, want) {
					t.Errorf("%s: reasons %q, want %q", label(keep[i]), r.Matches, want)
				}
			}
		})
	}
}

func TestApplyCounters(t *testing.T) {
	in := snaps(time.UTC, "2025-03-10 10:05", "2025-03-10 10:40", "2025-03-10 11:10", "2025-03-10 11:50", "2025-03-10 12:30")
	_, _, reasons := Apply(in, Policy{Last: 2, Hourly: 5, Daily: Unlimited}, at(time.UTC, "2026-01-01 00:00"))
	want := []Counters{
		{Last: 1, Hourly: 4, Daily: Unlimited},
		{Last: 0, Hourly: 3, Daily: Unlimited},
		{Hourly: 2, Daily: Unlimited},
		{Hourly: 1, Daily: Unlimited}, // 10:05, the oldest, for hourly and daily
	}
	if len(reasons) != len(want) {
		t.Fatalf("%d reasons, want %d", len(reasons), len(want))
	}
	for i, r := range reasons {
		if r.Counters != want[i] {
			t.Errorf("%s: counters %+v, want %+v", label(r.Snapshot), r.Counters, want[i])
		}
	}
	if got := reasons[3].Matches; !slices.Equal(got, []string{"oldest hourly snapshot", "oldest daily snapshot"}) {
		t.Errorf("oldest: %q", got)
	}
}

func TestApplyTies(t *testing.T) {
	// Equal times are ordered by ID, the larger ID counting as newer, so
	// the result does not depend on the input order.
	same := at(time.UTC, "2025-01-01 12:00")
	a := &snapshot.Snapshot{ID: backend.ID{1}, Time: same}
	b := &snapshot.Snapshot{ID: backend.ID{2}, Time: same}
	for _, in := range [][]*snapshot.Snapshot{{a, b}, {b, a}} {
		keep, remove, _ := Apply(in, Policy{Daily: 1}, same)
		if len(keep) != 1 || keep[0] != b || len(remove) != 1 || remove[0] != a {
			t.Fatalf("kept %v removed %v", keep, remove)
		}
	}
}

func TestApplyTimeZones(t *testing.T) {
	// The same two instants, 2025-03-10 23:30 and 2025-03-11 00:30 UTC,
	// fall on two days in UTC and on one day (the 10th) at -05:00, and on
	// one day (the 11th) at +02:00.
	i1, i2 := at(time.UTC, "2025-03-10 23:30"), at(time.UTC, "2025-03-11 00:30")
	for _, tc := range []struct {
		loc  *time.Location
		want []string
	}{
		{time.UTC, []string{"2025-03-11 00:30", "2025-03-10 23:30"}},
		{minus5, []string{"2025-03-10 19:30"}},
		{plus2, []string{"2025-03-11 02:30"}},
	} {
		in := []*snapshot.Snapshot{
			{ID: backend.ID{1}, Time: i1.In(tc.loc)},
			{ID: backend.ID{2}, Time: i2.In(tc.loc)},
		}
		// With count left the oldest is kept as well; take only the
		// daily snapshots proper.
		var got []string
		keep, _, reasons := Apply(in, Policy{Daily: 5}, i2)
		for _, r := range reasons {
			if slices.Contains(r.Matches, "daily snapshot") {
				got = append(got, label(r.Snapshot))
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: daily %q, want %q", tc.loc, got, tc.want)
		}
		if len(keep) != 2 {
			t.Errorf("%s: kept %d, want both (the oldest rule)", tc.loc, len(keep))
		}
	}

	// Mixed zones in one group: each snapshot counts in its own zone. In
	// UTC these are two days; on their own wall clocks both are on the
	// 10th, so the older one is only kept as the oldest.
	in := []*snapshot.Snapshot{
		{ID: backend.ID{1}, Time: i1},            // 2025-03-10 23:30 UTC
		{ID: backend.ID{2}, Time: i2.In(minus5)}, // 2025-03-10 19:30 -05:00
	}
	_, _, reasons := Apply(in, Policy{Daily: 2}, i2)
	if len(reasons) != 2 || !slices.Equal(reasons[1].Matches, []string{"oldest daily snapshot"}) {
		t.Fatalf("mixed zones: %+v", reasons)
	}
}

func TestApplyTags(t *testing.T) {
	mk := func(n byte, tags ...string) *snapshot.Snapshot {
		return &snapshot.Snapshot{ID: backend.ID{n}, Time: at(time.UTC, "2025-01-01 00:00").Add(time.Duration(n) * time.Hour), Tags: tags}
	}
	in := []*snapshot.Snapshot{mk(1), mk(2, "a"), mk(3, "b"), mk(4, "a", "b"), mk(5, "b", "a", "c"), mk(6)}
	ids := func(list []*snapshot.Snapshot) []byte {
		var out []byte
		for _, sn := range list {
			out = append(out, sn.ID[0])
		}
		return out
	}
	for _, tc := range []struct {
		tags  [][]string
		want  []byte
		match string
	}{
		{[][]string{{"a"}}, []byte{5, 4, 2}, "has tags [a]"},
		{[][]string{{"a", "b"}}, []byte{5, 4}, "has tags [a, b]"},
		{[][]string{{"a"}, {"b"}}, []byte{5, 4, 3, 2}, ""},
		{[][]string{{"c", "a"}}, []byte{5}, "has tags [c, a]"},
		{[][]string{{"x"}}, nil, ""},
		{[][]string{{""}}, []byte{6, 1}, "has tags []"},
		{[][]string{{}}, []byte{6, 1}, "has tags []"},
		{[][]string{{"", "b"}}, []byte{5, 4, 3}, "has tags [b]"},
	} {
		keep, _, reasons := Apply(in, Policy{Tags: tc.tags}, at(time.UTC, "2026-01-01 00:00"))
		if got := ids(keep); !slices.Equal(got, tc.want) {
			t.Errorf("keep-tag %q: kept %v, want %v", tc.tags, got, tc.want)
		}
		if tc.match != "" {
			for _, r := range reasons {
				if !slices.Equal(r.Matches, []string{tc.match}) {
					t.Errorf("keep-tag %q: reasons %q", tc.tags, r.Matches)
				}
			}
		}
	}
	// A snapshot matching two entries lists both.
	_, _, reasons := Apply(in, Policy{Tags: [][]string{{"a"}, {"b"}}}, at(time.UTC, "2026-01-01 00:00"))
	if !slices.Equal(reasons[0].Matches, []string{"has tags [a]", "has tags [b]"}) {
		t.Errorf("two entries: %q", reasons[0].Matches)
	}
}

func TestPolicyEmpty(t *testing.T) {
	for _, tc := range []struct {
		p     Policy
		empty bool
	}{
		{Policy{}, true},
		{Policy{Tags: [][]string{}}, true},
		{Policy{Last: 1}, false},
		{Policy{Yearly: Unlimited}, false},
		{Policy{Hourly: -3}, false},
		{Policy{Within: Duration{Hours: 1}}, false},
		{Policy{WithinYearly: Duration{Years: 1}}, false},
		{Policy{Tags: [][]string{{}}}, false},
	} {
		if got := tc.p.Empty(); got != tc.empty {
			t.Errorf("%+v: Empty() = %v", tc.p, got)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	good := []Policy{{}, {Last: Unlimited, Daily: 7}, {Within: Duration{Years: MaxYears}}}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	bad := []Policy{{Last: -2}, {Monthly: -100}, {Within: Duration{Days: -1}}, {WithinDaily: Duration{Hours: MaxHours + 1}}}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestPolicyString(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{}, "empty policy"},
		{Policy{Daily: 7, Weekly: 4, Yearly: Unlimited}, "keep 7 daily, 4 weekly, all yearly snapshots"},
		{Policy{Last: 1, Within: Duration{Days: 2}}, "keep 1 latest snapshots and all snapshots within 2d of the latest"},
		{Policy{WithinHourly: Duration{Days: 1}, Tags: [][]string{{"a", "b"}, {"c"}}},
			"keep hourly snapshots within 1d and snapshots tagged [a, b] or [c]"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
