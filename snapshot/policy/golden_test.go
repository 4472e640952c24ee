package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenInput reads testdata/snapshots.json: 100 snapshots at irregular
// times (sparse early history, the ISO week 2020-53 and the turn of the
// year, month ends, a crowded day with two snapshots at the same instant,
// then gaps from hours to weeks), under four UTC offsets, some tagged, in
// shuffled order.
func goldenInput(t *testing.T) []*snapshot.Snapshot {
	t.Helper()
	buf, err := os.ReadFile(filepath.Join("testdata", "snapshots.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw []struct {
		ID   backend.ID `json:"id"`
		Time time.Time  `json:"time"`
		Tags []string   `json:"tags"`
	}
	if err := json.Unmarshal(buf, &raw); err != nil {
		t.Fatal(err)
	}
	var out []*snapshot.Snapshot
	for _, r := range raw {
		out = append(out, &snapshot.Snapshot{ID: r.ID, Time: r.Time, Tags: r.Tags})
	}
	return out
}

type goldenKeep struct {
	ID       string   `json:"id"`
	Time     string   `json:"time"`
	Matches  []string `json:"matches"`
	Counters Counters `json:"counters"`
}

type goldenResult struct {
	Policy  string       `json:"policy"`
	Now     string       `json:"now"`
	Removed int          `json:"removed"`
	Keep    []goldenKeep `json:"keep"`
}

func dur(s string) Duration {
	d, err := ParseDuration(s)
	if err != nil {
		panic("test bug: " + err.Error())
	}
	return d
}

// TestApplyGolden applies each policy to the golden input and compares the
// kept snapshots, their reasons and counters with testdata/golden/NAME.json.
// Run with -update to rewrite the files, then review the diff.
func TestApplyGolden(t *testing.T) {
	in := goldenInput(t)
	if len(in) != 100 {
		t.Fatalf("golden input has %d snapshots", len(in))
	}
	// Two days after the newest golden snapshot.
	defaultNow := time.Date(2022, 2, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		p    Policy
		now  time.Time
	}{
		{name: "empty", p: Policy{}},
		{name: "last-10", p: Policy{Last: 10}},
		{name: "last-99", p: Policy{Last: 99}},
		{name: "last-200", p: Policy{Last: 200}},
		{name: "last-unlimited", p: Policy{Last: Unlimited}},
		{name: "hourly-20", p: Policy{Hourly: 20}},
		{name: "hourly-unlimited", p: Policy{Hourly: Unlimited}},
		{name: "daily-3", p: Policy{Daily: 3}},
		{name: "daily-30", p: Policy{Daily: 30}},
		{name: "daily-100", p: Policy{Daily: 100}},
		{name: "last-5-daily-5", p: Policy{Last: 5, Daily: 5}},
		{name: "weekly-4", p: Policy{Weekly: 4}},
		{name: "weekly-20", p: Policy{Weekly: 20}},
		{name: "daily-3-weekly-4", p: Policy{Daily: 3, Weekly: 4}},
		{name: "monthly-6", p: Policy{Monthly: 6}},
		{name: "monthly-unlimited", p: Policy{Monthly: Unlimited}},
		{name: "yearly-10", p: Policy{Yearly: 10}},
		{name: "daily-7-weekly-2-monthly-3-yearly-10", p: Policy{Daily: 7, Weekly: 2, Monthly: 3, Yearly: 10}},
		{name: "daily-3-weekly-2-monthly-unlimited-yearly-unlimited", p: Policy{Daily: 3, Weekly: 2, Monthly: Unlimited, Yearly: Unlimited}},
		{name: "cron", p: Policy{Hourly: 24, Daily: 7, Weekly: 5, Monthly: 12}},
		{name: "tag-foo", p: Policy{Tags: [][]string{{"foo"}}}},
		{name: "tag-foo-and-bar", p: Policy{Tags: [][]string{{"foo", "bar"}}}},
		{name: "tag-foo-or-bar", p: Policy{Tags: [][]string{{"foo"}, {"bar"}}}},
		{name: "tag-untagged", p: Policy{Tags: [][]string{{""}}}},
		{name: "tag-baz-last-3", p: Policy{Last: 3, Tags: [][]string{{"baz"}}}},
		{name: "within-1d", p: Policy{Within: dur("1d")}},
		{name: "within-7d", p: Policy{Within: dur("7d")}},
		{name: "within-1m14d", p: Policy{Within: dur("1m14d")}},
		{name: "within-13d23h", p: Policy{Within: dur("13d23h")}},
		{name: "within-1y2m3d3h", p: Policy{Within: dur("1y2m3d3h")}},
		{name: "within-2d-now-in-the-past", p: Policy{Within: dur("2d")}, now: time.Date(2022, 2, 5, 0, 0, 0, 0, time.UTC)},
		{name: "within-hourly-3d", p: Policy{WithinHourly: dur("3d")}},
		{name: "within-daily-1m", p: Policy{WithinDaily: dur("1m")}},
		{name: "within-weekly-3m", p: Policy{WithinWeekly: dur("3m")}},
		{name: "within-monthly-1y", p: Policy{WithinMonthly: dur("1y")}},
		{name: "within-yearly-9999y", p: Policy{WithinYearly: dur("9999y")}},
		{name: "within-all", p: Policy{Within: dur("1h"), WithinHourly: dur("1d"), WithinDaily: dur("7d"),
			WithinWeekly: dur("1m"), WithinMonthly: dur("1y"), WithinYearly: dur("9999y")}},
		{name: "everything", p: Policy{Last: 2, Hourly: 3, Daily: 4, Weekly: 5, Monthly: 6, Yearly: 7, Within: dur("2d"),
			WithinDaily: dur("20d"), Tags: [][]string{{"bar", "baz"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = defaultNow
			}
			keep, remove, reasons := Apply(in, tc.p, now)
			checkPartition(t, in, keep, remove, reasons)
			checkAgainstRef(t, in, tc.p, now, keep, reasons)

			res := goldenResult{Policy: tc.p.String(), Now: now.Format(time.RFC3339), Removed: len(remove), Keep: []goldenKeep{}}
			for i, sn := range keep {
				res.Keep = append(res.Keep, goldenKeep{
					ID:       sn.ID.Str(),
					Time:     sn.Time.Format(time.RFC3339Nano),
					Matches:  reasons[i].Matches,
					Counters: reasons[i].Counters,
				})
			}
			got, err := marshalGolden(res)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join("testdata", "golden", tc.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("result differs from %s (go test -update rewrites it):\n%s", file, firstDiff(want, got))
			}
		})
	}
}

// marshalGolden writes r as JSON with one kept snapshot a line, so that a
// change shows in a diff as the snapshots it concerns.
func marshalGolden(r goldenResult) ([]byte, error) {
	var b bytes.Buffer
	head, err := json.Marshal(struct {
		Policy  string `json:"policy"`
		Now     string `json:"now"`
		Removed int    `json:"removed"`
	}{r.Policy, r.Now, r.Removed})
	if err != nil {
		return nil, err
	}
	b.Write(head[:len(head)-1])
	b.WriteString(`,"keep":[`)
	for i, k := range r.Keep {
		line, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n  ")
		b.Write(line)
	}
	b.WriteString("\n]}\n")
	// Check that it is JSON that reads back as r.
	var back goldenResult
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		return nil, fmt.Errorf("golden JSON: %w", err)
	}
	if len(back.Keep) != len(r.Keep) {
		return nil, fmt.Errorf("golden JSON reads back %d entries, want %d", len(back.Keep), len(r.Keep))
	}
	return b.Bytes(), nil
}

// firstDiff shows the first line where a and b differ.
func firstDiff(want, got []byte) string {
	wl := strings.Split(string(want), "\n")
	gl := strings.Split(string(got), "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want %s\n  got  %s", i+1, w, g)
		}
	}
	return "(no line differs)"
}
