package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

// Policy says which snapshots of a group forget keeps; see the package
// documentation for the meaning of each rule. The zero Policy is empty.
type Policy struct {
	// Counts of restic's --keep-last, --keep-hourly, ... --keep-yearly:
	// 0 turns a rule off, Unlimited (-1) never runs out. Other negative
	// values are invalid (Validate); Apply treats them as Unlimited, so a
	// bad value keeps more, never less.
	Last, Hourly, Daily, Weekly, Monthly, Yearly int

	// Durations of --keep-within and --keep-within-hourly ... -yearly,
	// measured back from the latest snapshot; the zero Duration turns a
	// rule off.
	Within, WithinHourly, WithinDaily, WithinWeekly, WithinMonthly, WithinYearly Duration

	// Tags of --keep-tag: a snapshot carrying every tag of any one entry
	// is kept. An entry with no non-empty tag matches untagged snapshots.
	Tags [][]string
}

// Empty reports whether p has no rule at all. The forget command must
// refuse to run an empty policy (restic does); Apply keeps everything.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.Zero() && p.WithinHourly.Zero() && p.WithinDaily.Zero() && p.WithinWeekly.Zero() &&
		p.WithinMonthly.Zero() && p.WithinYearly.Zero() && len(p.Tags) == 0
}

// Validate reports a count below Unlimited (wrapping ErrCount) or a
// duration field that ParseDuration would refuse (wrapping ErrDuration).
func (p Policy) Validate() error {
	for _, c := range p.counts() {
		if c.n < Unlimited {
			return fmt.Errorf("keep-%s %d: %w: want 0 or more, or unlimited", c.name, c.n, ErrCount)
		}
	}
	for _, w := range p.withins() {
		if err := w.d.validate(); err != nil {
			return fmt.Errorf("keep-%s: %w", w.flag, err)
		}
	}
	return nil
}

// String describes p in words, for the line forget prints before its
// table ("keep 7 daily, 4 weekly snapshots and all snapshots within 2d of
// the latest").
func (p Policy) String() string {
	var parts []string
	var counts []string
	for _, c := range p.counts() {
		switch {
		case c.n == 0:
		case c.n < 0:
			counts = append(counts, "all "+c.words())
		default:
			counts = append(counts, fmt.Sprintf("%d %s", c.n, c.words()))
		}
	}
	if len(counts) > 0 {
		parts = append(parts, strings.Join(counts, ", ")+" snapshots")
	}
	for _, w := range p.withins() {
		if w.d.Zero() {
			continue
		}
		if w.name == "" {
			parts = append(parts, fmt.Sprintf("all snapshots within %s of the latest", w.d))
		} else {
			parts = append(parts, fmt.Sprintf("%s snapshots within %s", w.name, w.d))
		}
	}
	if len(p.Tags) > 0 {
		var alts []string
		for _, entry := range p.Tags {
			alts = append(alts, tagEntryString(entry))
		}
		parts = append(parts, "snapshots tagged "+strings.Join(alts, " or "))
	}
	switch len(parts) {
	case 0:
		return "empty policy"
	case 1:
		return "keep " + parts[0]
	default:
		return "keep " + strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
}

// Counters are the counts left after a snapshot was evaluated: how many
// more snapshots each count rule may keep, Unlimited for an unlimited rule,
// 0 for one that is off or used up.
type Counters struct {
	Last    int `json:"last,omitempty"`
	Hourly  int `json:"hourly,omitempty"`
	Daily   int `json:"daily,omitempty"`
	Weekly  int `json:"weekly,omitempty"`
	Monthly int `json:"monthly,omitempty"`
	Yearly  int `json:"yearly,omitempty"`
}

// Reason says why Apply keeps a snapshot. Matches names each rule that
// wants it, in a fixed order (tags, within, the count rules from last to
// yearly, the within-period rules from hourly to yearly), with restic's
// words: "has tags [a, b]", "within 2d", "last snapshot", "daily snapshot",
// "oldest monthly snapshot", "hourly within 1d", "oldest daily within 7d".
type Reason struct {
	Snapshot *snapshot.Snapshot `json:"snapshot"`
	Matches  []string           `json:"matches"`
	Counters Counters           `json:"counters"`
}

// Apply splits one group of snapshots into those policy p keeps and those
// it removes, with the reasons for keeping each; now only decides which
// snapshots lie in the future (see the package documentation). keep and
// remove are ordered newest first, reasons[i] explains keep[i], and every
// input snapshot is in exactly one of keep and remove. snaps is not
// modified and must not hold nil. An empty policy keeps every snapshot with
// the reason "empty policy".
func Apply(snaps []*snapshot.Snapshot, p Policy, now time.Time) (keep, remove []*snapshot.Snapshot, reasons []Reason) {
	list := slices.Clone(snaps)
	snapshot.SortByTime(list)
	slices.Reverse(list)
	if len(list) == 0 {
		return nil, nil, nil
	}
	if p.Empty() {
		for _, sn := range list {
			keep = append(keep, sn)
			reasons = append(reasons, Reason{Snapshot: sn, Matches: []string{"empty policy"}})
		}
		return keep, nil, reasons
	}

	// The latest snapshot that is not in the future anchors the
	// time-based rules. If every snapshot is in the future, all count as
	// within.
	var latest time.Time
	haveLatest := false
	for _, sn := range list {
		if !sn.Time.After(now) {
			latest, haveLatest = sn.Time, true
			break // list is newest first
		}
	}
	within := func(d Duration, sn *snapshot.Snapshot) bool {
		return !haveLatest || sn.Time.After(d.before(latest))
	}

	var countRules []*tracker
	for _, c := range p.counts() {
		if c.n != 0 {
			countRules = append(countRules, &tracker{counter: c.counter, period: c.period, left: c.n, reason: c.name + " snapshot", seen: map[int64]bool{}})
		}
	}
	var withinRules []*tracker
	for _, w := range p.withins() {
		if !w.d.Zero() && w.name != "" {
			withinRules = append(withinRules, &tracker{period: w.period, within: w.d, reason: fmt.Sprintf("%s within %s", w.name, w.d), seen: map[int64]bool{}})
		}
	}

	oldest := len(list) - 1
	for i, sn := range list {
		var matches []string
		for _, entry := range p.Tags {
			if hasTagEntry(sn, entry) {
				matches = append(matches, "has tags "+tagEntryString(entry))
			}
		}
		if !p.Within.Zero() && within(p.Within, sn) {
			matches = append(matches, "within "+p.Within.String())
		}
		// A rule keeps the first snapshot it sees of each period (walking
		// newest first, that is the period's newest), and the oldest
		// snapshot while it has count left.
		consider := func(r *tracker, key int64) {
			newPeriod := !r.seen[key]
			if !newPeriod && i != oldest {
				return
			}
			reason := r.reason
			if !newPeriod {
				reason = "oldest " + reason
			}
			matches = append(matches, reason)
			r.seen[key] = true
			if r.left > 0 {
				r.left--
			}
		}
		for _, r := range countRules {
			if r.left == 0 {
				continue
			}
			if r.period == nil {
				// keep-last: every snapshot is its own period.
				consider(r, int64(i))
			} else {
				consider(r, r.period(sn.Time))
			}
		}
		for _, r := range withinRules {
			if within(r.within, sn) {
				consider(r, r.period(sn.Time))
			}
		}

		if len(matches) == 0 {
			remove = append(remove, sn)
			continue
		}
		keep = append(keep, sn)
		reasons = append(reasons, Reason{Snapshot: sn, Matches: matches, Counters: countersOf(countRules)})
	}
	return keep, remove, reasons
}

// tracker is the state of one count or within-period rule during Apply.
type tracker struct {
	counter func(*Counters) *int // the rule's field in Counters (count rules)
	period  periodFunc           // nil: every snapshot is its own period (keep-last)
	left    int                  // count left; negative: unlimited
	within  Duration             // within-period rules: the span
	reason  string
	seen    map[int64]bool // periods this rule has kept a snapshot of
}

// countersOf reads what is left of each count rule that is on.
func countersOf(rules []*tracker) Counters {
	var c Counters
	for _, r := range rules {
		v := r.left
		if v < 0 {
			v = Unlimited
		}
		*r.counter(&c) = v
	}
	return c
}

// periodFunc maps a time to a number naming its calendar period, in the
// time's own location.
type periodFunc func(time.Time) int64

func hourOf(t time.Time) int64  { return dayOf(t)*100 + int64(t.Hour()) }
func dayOf(t time.Time) int64   { return monthOf(t)*100 + int64(t.Day()) }
func monthOf(t time.Time) int64 { return yearOf(t)*100 + int64(t.Month()) }
func yearOf(t time.Time) int64  { return int64(t.Year()) }

// weekOf numbers ISO weeks (Monday to Sunday; the week's year is the year
// of its Thursday, so 2020-12-31 and 2021-01-03 share week 2020-53).
func weekOf(t time.Time) int64 {
	y, w := t.ISOWeek()
	return int64(y)*100 + int64(w)
}

type countRule struct {
	n       int
	name    string // "last", "hourly", ...
	period  periodFunc
	counter func(*Counters) *int
}

// words names the rule in Policy.String, as restic does ("3 latest").
func (c countRule) words() string {
	if c.period == nil {
		return "latest"
	}
	return c.name
}

func (p Policy) counts() []countRule {
	return []countRule{
		{p.Last, "last", nil, func(c *Counters) *int { return &c.Last }},
		{p.Hourly, "hourly", hourOf, func(c *Counters) *int { return &c.Hourly }},
		{p.Daily, "daily", dayOf, func(c *Counters) *int { return &c.Daily }},
		{p.Weekly, "weekly", weekOf, func(c *Counters) *int { return &c.Weekly }},
		{p.Monthly, "monthly", monthOf, func(c *Counters) *int { return &c.Monthly }},
		{p.Yearly, "yearly", yearOf, func(c *Counters) *int { return &c.Yearly }},
	}
}

type withinRule struct {
	d      Duration
	name   string // "" for plain within
	flag   string
	period periodFunc
}

func (p Policy) withins() []withinRule {
	return []withinRule{
		{p.Within, "", "within", nil},
		{p.WithinHourly, "hourly", "within-hourly", hourOf},
		{p.WithinDaily, "daily", "within-daily", dayOf},
		{p.WithinWeekly, "weekly", "within-weekly", weekOf},
		{p.WithinMonthly, "monthly", "within-monthly", monthOf},
		{p.WithinYearly, "yearly", "within-yearly", yearOf},
	}
}

// hasTagEntry reports whether sn carries every non-empty tag of entry; an
// entry without non-empty tags matches untagged snapshots only.
func hasTagEntry(sn *snapshot.Snapshot, entry []string) bool {
	named := false
	for _, t := range entry {
		if t == "" {
			continue
		}
		named = true
		if !slices.Contains(sn.Tags, t) {
			return false
		}
	}
	return named || len(sn.Tags) == 0
}

func tagEntryString(entry []string) string {
	var tags []string
	for _, t := range entry {
		if t != "" {
			tags = append(tags, t)
		}
	}
	return "[" + strings.Join(tags, ", ") + "]"
}
