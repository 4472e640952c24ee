package policy

import (
	"fmt"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without relying on the system's zoneinfo

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

// TestYearOfHourlyBackups backs up every hour of 2025 and runs forget
// --keep-hourly 24 --keep-daily 7 --keep-weekly 5 --keep-monthly 12 each
// night at 03:00 local time, in UTC and in Europe/Berlin (whose clocks skip
// an hour on 2025-03-30 and repeat one on 2025-10-26). At the end exactly
// the snapshots worked out below by calendar are left, the same as one
// forget over the whole year keeps, and forgetting again removes nothing.
func TestYearOfHourlyBackups(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Hourly: 24, Daily: 7, Weekly: 5, Monthly: 12}
	for _, loc := range []*time.Location{time.UTC, berlin} {
		t.Run(loc.String(), func(t *testing.T) {
			start := time.Date(2025, 1, 1, 0, 0, 0, 0, loc)
			end := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
			var all []*snapshot.Snapshot
			for at := start; at.Before(end); at = at.Add(time.Hour) {
				all = append(all, &snapshot.Snapshot{ID: backend.Hash(fmt.Append(nil, at.Unix())), Time: at})
			}
			if len(all) != 365*24 {
				t.Fatalf("%d hourly snapshots in 2025", len(all))
			}

			// What must be left, by calendar (wall-clock times in loc):
			// the 24 hours of 2025-12-31; the 23:00 snapshot of the 7
			// days 12-25 ... 12-31; the last snapshot of the 5 ISO weeks
			// ending 12-07, 12-14, 12-21, 12-28 (Sundays, 23:00) and of
			// the week of Monday 12-29 (12-31 23:00); the 23:00 snapshot
			// of the last day of each month. No count is left over, so
			// the oldest snapshot is not kept.
			want := map[string]bool{}
			for h := range 24 {
				want[fmt.Sprintf("2025-12-31 %02d:00", h)] = true
			}
			for d := 25; d <= 31; d++ {
				want[fmt.Sprintf("2025-12-%02d 23:00", d)] = true
			}
			for _, d := range []int{7, 14, 21, 28, 31} {
				want[fmt.Sprintf("2025-12-%02d 23:00", d)] = true
			}
			for m := time.January; m <= time.December; m++ {
				last := time.Date(2025, m+1, 0, 23, 0, 0, 0, loc)
				want[last.Format("2006-01-02 15:04")] = true
			}
			if len(want) != 24+6+3+11 {
				t.Fatalf("test bug: %d expected snapshots", len(want))
			}

			// One forget over the whole year.
			now := all[len(all)-1].Time.Add(30 * time.Minute)
			once, removed, reasons := Apply(all, p, now)
			checkPartition(t, all, once, removed, reasons)
			checkAgainstRef(t, all, p, now, once, reasons)
			if got := labelSet(once); len(once) != len(want) || !mapsEqual(got, want) {
				t.Fatalf("one forget keeps %d snapshots:\n%v\nwant %d:\n%v", len(got), sortedKeys(got), len(want), sortedKeys(want))
			}

			// Hourly backups with a forget every night at 03:00.
			var repo []*snapshot.Snapshot
			nights := 0
			forget := func(now time.Time) {
				keep, remove, reasons := Apply(repo, p, now)
				checkPartition(t, repo, keep, remove, reasons)
				// 24+7+5+12 newest-of-period snapshots plus the oldest.
				if len(keep) > 24+7+5+12+1 {
					t.Fatalf("%s: kept %d", now, len(keep))
				}
				repo = keep
				nights++
			}
			for _, sn := range all {
				repo = append(repo, sn)
				if sn.Time.Hour() == 3 {
					forget(sn.Time.Add(time.Minute))
				}
			}
			forget(now)
			if nights != 366 {
				t.Fatalf("%d forgets, want 365 nights and a last one", nights)
			}
			snapshot.SortByTime(repo)
			snapshot.SortByTime(once)
			if !slices.Equal(repo, once) {
				t.Fatalf("nightly forgets leave %d snapshots:\n%v\none forget leaves %d", len(repo), labels(repo), len(once))
			}

			// Forgetting again removes nothing.
			again, removed, _ := Apply(repo, p, now)
			if len(removed) != 0 || len(again) != len(want) {
				t.Fatalf("second forget removes %d", len(removed))
			}
		})
	}
}

func labelSet(list []*snapshot.Snapshot) map[string]bool {
	m := map[string]bool{}
	for _, sn := range list {
		m[label(sn)] = true
	}
	return m
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
