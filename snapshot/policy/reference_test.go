package policy

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

// This file states the policy a second way, set by set from the
// documented rules rather than in one newest-first pass, and checks Apply
// against it on random inputs. Periods are named by formatted wall-clock
// labels, and weeks by the date of their Monday, instead of the numbers
// and time.ISOWeek that Apply uses.

type refKind struct {
	name  string
	label func(time.Time) string // nil: every snapshot is its own period
}

var refKinds = []refKind{
	{"last", nil},
	{"hourly", func(t time.Time) string { return t.Format("2006-01-02 15h") }},
	{"daily", func(t time.Time) string { return t.Format("2006-01-02") }},
	{"weekly", func(t time.Time) string {
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(t.Year(), t.Month(), t.Day()-back, 12, 0, 0, 0, t.Location()).Format("week of 2006-01-02")
	}},
	{"monthly", func(t time.Time) string { return t.Format("2006-01") }},
	{"yearly", func(t time.Time) string { return t.Format("2006") }},
}

// refNewer is the order Apply walks in: later time first, equal times by
// larger ID first.
func refNewer(a, b *snapshot.Snapshot) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	return b.ID.Less(a.ID)
}

type refResult struct {
	matches  map[*snapshot.Snapshot][]string // sorted
	counters map[*snapshot.Snapshot]Counters
}

// refApply computes which snapshots p keeps and why.
func refApply(in []*snapshot.Snapshot, p Policy, now time.Time) refResult {
	res := refResult{matches: map[*snapshot.Snapshot][]string{}, counters: map[*snapshot.Snapshot]Counters{}}
	if len(in) == 0 {
		return res
	}
	add := func(sn *snapshot.Snapshot, why string) { res.matches[sn] = append(res.matches[sn], why) }
	if p.Empty() {
		for _, sn := range in {
			add(sn, "empty policy")
		}
		return res
	}
	var oldest *snapshot.Snapshot
	for _, sn := range in {
		if oldest == nil || refNewer(oldest, sn) {
			oldest = sn
		}
	}

	// newestPer maps each period label to its newest snapshot.
	newestPer := func(list []*snapshot.Snapshot, label func(*snapshot.Snapshot) string) map[string]*snapshot.Snapshot {
		m := map[string]*snapshot.Snapshot{}
		for _, sn := range list {
			l := label(sn)
			if cur, ok := m[l]; !ok || refNewer(sn, cur) {
				m[l] = sn
			}
		}
		return m
	}
	labelOf := func(k refKind) func(*snapshot.Snapshot) string {
		if k.label == nil {
			return func(sn *snapshot.Snapshot) string { return fmt.Sprintf("%p", sn) }
		}
		return func(sn *snapshot.Snapshot) string { return k.label(sn.Time) }
	}

	// Count rules: the newest snapshot of each of the n newest periods;
	// the oldest snapshot too when there are fewer than n periods.
	counts := []int{p.Last, p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly}
	keptBy := make([][]*snapshot.Snapshot, len(counts))
	for i, k := range refKinds {
		n := counts[i]
		if n == 0 {
			continue
		}
		per := newestPer(in, labelOf(k))
		heads := slices.Collect(maps.Values(per))
		slices.SortFunc(heads, func(a, b *snapshot.Snapshot) int {
			if refNewer(a, b) {
				return -1
			}
			return 1
		})
		if n > 0 && len(heads) > n {
			heads = heads[:n]
		}
		for _, sn := range heads {
			add(sn, k.name+" snapshot")
		}
		keptBy[i] = heads
		if n < 0 || len(per) < n {
			if per[labelOf(k)(oldest)] != oldest {
				add(oldest, "oldest "+k.name+" snapshot")
				keptBy[i] = append(keptBy[i], oldest)
			}
		}
	}
	// Counters: what is left of each count after the snapshots it kept
	// that are as new as sn or newer.
	counter := func(i int, sn *snapshot.Snapshot) int {
		switch n := counts[i]; {
		case n == 0:
			return 0
		case n < 0:
			return Unlimited
		default:
			used := 0
			for _, k := range keptBy[i] {
				if k == sn || refNewer(k, sn) {
					used++
				}
			}
			return n - used
		}
	}

	// Time rules, anchored at the newest snapshot not after now.
	var latest *snapshot.Snapshot
	for _, sn := range in {
		if !sn.Time.After(now) && (latest == nil || refNewer(sn, latest)) {
			latest = sn
		}
	}
	withinOf := func(d Duration) []*snapshot.Snapshot {
		if latest == nil {
			return in
		}
		cut := latest.Time.AddDate(-d.Years, -d.Months, -d.Days).Add(time.Duration(-d.Hours) * time.Hour)
		var out []*snapshot.Snapshot
		for _, sn := range in {
			if sn.Time.After(cut) {
				out = append(out, sn)
			}
		}
		return out
	}
	if !p.Within.Zero() {
		for _, sn := range withinOf(p.Within) {
			add(sn, "within "+p.Within.String())
		}
	}
	for i, d := range []Duration{p.WithinHourly, p.WithinDaily, p.WithinWeekly, p.WithinMonthly, p.WithinYearly} {
		if d.Zero() {
			continue
		}
		k := refKinds[i+1]
		list := withinOf(d)
		per := newestPer(list, labelOf(k))
		for _, sn := range per {
			add(sn, fmt.Sprintf("%s within %s", k.name, d))
		}
		if slices.Contains(list, oldest) && per[labelOf(k)(oldest)] != oldest {
			add(oldest, fmt.Sprintf("oldest %s within %s", k.name, d))
		}
	}

	for _, entry := range p.Tags {
		var want []string
		for _, t := range entry {
			if t != "" {
				want = append(want, t)
			}
		}
		for _, sn := range in {
			ok := len(sn.Tags) == 0
			if len(want) > 0 {
				ok = sn.HasTags(want)
			}
			if ok {
				add(sn, "has tags ["+strings.Join(want, ", ")+"]")
			}
		}
	}

	for sn := range res.matches {
		slices.Sort(res.matches[sn])
		res.counters[sn] = Counters{counter(0, sn), counter(1, sn), counter(2, sn), counter(3, sn), counter(4, sn), counter(5, sn)}
	}
	return res
}

// checkAgainstRef fails unless Apply's result is refApply's.
func checkAgainstRef(t *testing.T, in []*snapshot.Snapshot, p Policy, now time.Time, keep []*snapshot.Snapshot, reasons []Reason) {
	t.Helper()
	ref := refApply(in, p, now)
	if len(keep) != len(ref.matches) {
		t.Fatalf("policy %+v: kept %d, reference keeps %d", p, len(keep), len(ref.matches))
	}
	for i, sn := range keep {
		want, ok := ref.matches[sn]
		if !ok {
			t.Fatalf("policy %+v: kept %s, reference does not", p, sn.Time)
		}
		got := slices.Sorted(slices.Values(reasons[i].Matches))
		if !slices.Equal(got, want) {
			t.Fatalf("policy %+v: %s kept for %q, reference says %q", p, sn.Time, got, want)
		}
		if reasons[i].Counters != ref.counters[sn] {
			t.Fatalf("policy %+v: %s counters %+v, reference %+v", p, sn.Time, reasons[i].Counters, ref.counters[sn])
		}
	}
}

var propZones = []*time.Location{time.UTC, minus5, plus2, time.FixedZone("+0530", 5*3600+1800)}

func randomSnapshots(rng *rand.Rand) []*snapshot.Snapshot {
	n := rng.IntN(60)
	base := time.Date(2020, 12, 20, 0, 0, 0, 0, time.UTC)
	oneZone := rng.IntN(2) == 0
	zone := propZones[rng.IntN(len(propZones))]
	var out []*snapshot.Snapshot
	t := base
	for i := range n {
		// Gaps from minutes to months, so every kind of period has both
		// crowded and empty stretches.
		switch rng.IntN(5) {
		case 0:
			t = t.Add(time.Duration(rng.IntN(90)) * time.Minute)
		case 1:
			t = t.Add(time.Duration(rng.IntN(30)) * time.Hour)
		case 2:
			t = t.Add(time.Duration(rng.IntN(10*24)) * time.Hour)
		case 3:
			t = t.Add(time.Duration(rng.IntN(90*24)) * time.Hour)
		case 4: // same instant as the previous one
		}
		if !oneZone {
			zone = propZones[rng.IntN(len(propZones))]
		}
		var tags []string
		for _, tag := range []string{"a", "b", "c"} {
			if rng.IntN(3) == 0 {
				tags = append(tags, tag)
			}
		}
		out = append(out, &snapshot.Snapshot{ID: backend.Hash(fmt.Append(nil, rng.Uint64(), i)), Time: t.In(zone), Tags: tags})
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func randomPolicy(rng *rand.Rand) Policy {
	count := func() int {
		switch rng.IntN(8) {
		case 0, 1:
			return 1 + rng.IntN(10)
		case 2:
			return Unlimited
		default:
			return 0
		}
	}
	dur := func() Duration {
		if rng.IntN(5) != 0 {
			return Duration{}
		}
		var d Duration
		switch rng.IntN(4) {
		case 0:
			d.Hours = rng.IntN(72)
		case 1:
			d.Days = rng.IntN(40)
		case 2:
			d.Months = rng.IntN(6)
		case 3:
			d = Duration{Years: rng.IntN(2), Months: rng.IntN(3), Days: rng.IntN(5), Hours: rng.IntN(5)}
		}
		return d
	}
	p := Policy{
		Last: count(), Hourly: count(), Daily: count(), Weekly: count(), Monthly: count(), Yearly: count(),
		Within: dur(), WithinHourly: dur(), WithinDaily: dur(), WithinWeekly: dur(), WithinMonthly: dur(), WithinYearly: dur(),
	}
	if rng.IntN(4) == 0 {
		all := [][]string{{"a"}, {"b", "c"}, {""}, {"a", "b"}, {}}
		p.Tags = [][]string{all[rng.IntN(len(all))]}
		if rng.IntN(2) == 0 {
			p.Tags = append(p.Tags, all[rng.IntN(len(all))])
		}
	}
	return p
}

func hasWithin(p Policy) bool {
	return !p.Within.Zero() || !p.WithinHourly.Zero() || !p.WithinDaily.Zero() || !p.WithinWeekly.Zero() ||
		!p.WithinMonthly.Zero() || !p.WithinYearly.Zero()
}

// TestApplyProperties checks on random groups and policies that kept and
// removed split the input, that Apply agrees with refApply, that the input
// order does not matter, and that applying the policy to what it kept
// removes nothing more.
func TestApplyProperties(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for iter := range 400 {
		in := randomSnapshots(rng)
		p := randomPolicy(rng)
		now := time.Date(2020, 12, 1, 0, 0, 0, 0, time.UTC)
		if len(in) > 0 {
			// From before the oldest to well after the newest, so some
			// runs have snapshots in the future.
			now = in[rng.IntN(len(in))].Time.Add(time.Duration(rng.IntN(24*60)-12*60) * time.Hour)
		}
		keep, remove, reasons := Apply(in, p, now)
		checkPartition(t, in, keep, remove, reasons)
		checkAgainstRef(t, in, p, now, keep, reasons)

		shuffled := slices.Clone(in)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		keep2, _, _ := Apply(shuffled, p, now)
		if !slices.Equal(keep, keep2) {
			t.Fatalf("iteration %d: input order changed the result", iter)
		}

		// Idempotence needs the same anchor for the time rules: the
		// latest snapshot must have survived (it always does under a
		// plain within rule).
		latestKept := true
		if hasWithin(p) {
			var latest *snapshot.Snapshot
			for _, sn := range in {
				if !sn.Time.After(now) && (latest == nil || refNewer(sn, latest)) {
					latest = sn
				}
			}
			latestKept = latest == nil || slices.Contains(keep, latest)
		}
		if latestKept {
			again, removed, _ := Apply(keep, p, now)
			if len(removed) != 0 || !slices.Equal(again, keep) {
				t.Fatalf("iteration %d: policy %+v applied to its own result removes %d more", iter, p, len(removed))
			}
		}
	}
}
