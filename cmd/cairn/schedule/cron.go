package schedule

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// cronMarker ends every crontab line cairn writes, followed by the
// profile: how remove and list find them again among the user's own
// lines. It is a shell comment, so cron's shell ignores it.
const cronMarker = "# cairn-schedule:"

// simpleCalendar is the one form of calendar expression besides hourly,
// daily and weekly that cron can express: every day at HH:MM[:00].
var simpleCalendar = regexp.MustCompile(`^(?:\*-\*-\* )?([0-9]{1,2}):([0-9]{2})(?::00)?$`)

// CronTimes translates Every into a crontab line's five time fields:
// hourly, daily and weekly as systemd means them (minute 0; midnight;
// Monday midnight), and "*-*-* HH:MM:00" (or "HH:MM") as that time each
// day. Other calendar expressions are refused: cron cannot say them.
func CronTimes(every string) (string, error) {
	switch every {
	case "hourly":
		return "0 * * * *", nil
	case "daily":
		return "0 0 * * *", nil
	case "weekly":
		return "0 0 * * 1", nil
	}
	m := simpleCalendar.FindStringSubmatch(every)
	if m != nil {
		h, _ := strconv.Atoi(m[1])
		min, _ := strconv.Atoi(m[2])
		if h < 24 && min < 60 {
			return fmt.Sprintf("%d %d * * *", min, h), nil
		}
	}
	return "", fmt.Errorf("%w: cron cannot run --every %q: use hourly, daily, weekly or \"*-*-* HH:MM:00\" (or a systemd timer for other calendar expressions)", ErrSpec, every)
}

// CronLine is the crontab line of s: its time fields, the command run
// with -q (cron mails whatever a job prints: this way only problems), and
// the marker naming the profile. s.Env is not used: cron sets HOME, and a
// crontab's own variables apply.
func CronLine(s Spec) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	times, err := CronTimes(s.Every)
	if err != nil {
		return "", err
	}
	args := s.Args()
	args = append([]string{args[0], "-q"}, args[1:]...)
	words := make([]string, len(args))
	for i, a := range args {
		words[i] = shellQuote(a)
	}
	return times + " " + strings.Join(words, " ") + " " + cronMarker + s.Profile, nil
}

// shellQuote quotes a word for cron's /bin/sh, and escapes % (which cron
// turns into a newline).
func shellQuote(a string) string {
	if a != "" && !strings.ContainsFunc(a, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r))
	}) {
		return a
	}
	return strings.ReplaceAll("'"+strings.ReplaceAll(a, "'", `'\''`)+"'", "%", `\%`)
}

// CronEntry is one of cairn's lines found in a crontab.
type CronEntry struct {
	Profile string
	// Times are the line's five time fields, space-separated.
	Times string
	// Line is the whole line.
	Line string
}

// FindCron returns cairn's lines in crontab (as `crontab -l` prints
// it), in order. Other lines are not looked at.
func FindCron(crontab string) []CronEntry {
	var out []CronEntry
	for line := range strings.Lines(crontab) {
		line = strings.TrimRight(line, "\r\n")
		i := strings.LastIndex(line, " "+cronMarker)
		if i < 0 || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		profile := line[i+1+len(cronMarker):]
		fields := strings.Fields(line)
		if !profileName.MatchString(profile) || len(fields) < 6 {
			continue
		}
		out = append(out, CronEntry{Profile: profile, Times: strings.Join(fields[:5], " "), Line: line})
	}
	return out
}

// SetCron returns crontab with profile's line replaced by line (appended
// when it has none); line "" removes it. removed counts the lines taken
// out. Every other line is kept as it was.
func SetCron(crontab, profile, line string) (out string, removed int) {
	var b strings.Builder
	for l := range strings.Lines(crontab) {
		e := FindCron(l)
		if len(e) == 1 && e[0].Profile == profile {
			removed++
			continue
		}
		b.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			b.WriteByte('\n')
		}
	}
	if line != "" {
		b.WriteString(line + "\n")
	}
	return b.String(), removed
}

// cronField is one time field: nil matches every value.
type cronField map[int]bool

// parseCronField reads "*" or a comma list of numbers in [lo, hi].
func parseCronField(s string, lo, hi int) (cronField, error) {
	if s == "*" {
		return nil, nil
	}
	f := cronField{}
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(part)
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("%w: cron field %q: want * or numbers from %d to %d", ErrSpec, s, lo, hi)
		}
		f[n] = true
	}
	return f, nil
}

func (f cronField) match(n int) bool { return f == nil || f[n] }

// NextCron is the first minute after t that times (five cron fields of
// the forms CronTimes writes: * or numbers) matches, in t's location;
// the zero time when none does within a year (31 February, say).
func NextCron(times string, t time.Time) (time.Time, error) {
	fs := strings.Fields(times)
	if len(fs) != 5 {
		return time.Time{}, fmt.Errorf("%w: cron times %q: want five fields", ErrSpec, times)
	}
	bounds := [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}
	var f [5]cronField
	for i := range fs {
		var err error
		if f[i], err = parseCronField(fs[i], bounds[i][0], bounds[i][1]); err != nil {
			return time.Time{}, err
		}
	}
	if f[4] != nil && f[4][7] {
		f[4][0] = true // 7 is Sunday too
	}
	// Day by day, then minute by minute within a matching day: at most
	// 366 days of 1440 minutes.
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	for d := 0; d <= 366; d++ {
		cur := day.AddDate(0, 0, d)
		if !f[2].match(cur.Day()) || !f[3].match(int(cur.Month())) || !f[4].match(int(cur.Weekday())) {
			continue
		}
		for h := 0; h < 24; h++ {
			if !f[1].match(h) {
				continue
			}
			for m := 0; m < 60; m++ {
				at := time.Date(cur.Year(), cur.Month(), cur.Day(), h, m, 0, 0, t.Location())
				if f[0].match(m) && at.After(t) {
					return at, nil
				}
			}
		}
	}
	return time.Time{}, nil
}
