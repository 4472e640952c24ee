package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parser errors. Each parser of this package wraps exactly one of them, so
// callers can tell bad input apart with errors.Is.
var (
	// ErrDuration is wrapped by every error of ParseDuration.
	ErrDuration = errors.New("invalid duration")
	// ErrCount is wrapped by every error of ParseCount and by Validate for
	// a count out of range.
	ErrCount = errors.New("invalid count")
	// ErrGroupBy is wrapped by every error of ParseGroupBy.
	ErrGroupBy = errors.New("invalid group-by")
)

// Limits of a Duration's fields. 9999 years is far beyond any retention
// anyone means, and keeps the arithmetic of time.Time.AddDate away from
// overflow; the other limits are the same span in smaller units.
const (
	MaxYears  = 9999
	MaxMonths = MaxYears * 12
	MaxDays   = MaxYears * 366
	MaxHours  = MaxDays * 24
)

// Duration is a calendar span in restic's syntax: years, months, days and
// hours, as in "1y2m3d4h". Unlike time.Duration, months and years have no
// fixed length: they are subtracted from a date with time.Time.AddDate.
type Duration struct {
	Years, Months, Days, Hours int
}

// ParseDuration parses restic's duration syntax: one or more groups of
// decimal digits followed by a unit, y (years), m (months), d (days) or h
// (hours), in any order, each unit at most once, as in "1y2m3d4h" or "36h".
// Surrounding white space is ignored; the empty string is the zero duration
// (no rule). Numbers must not be negative and must not exceed MaxYears,
// MaxMonths, MaxDays and MaxHours. Every error wraps ErrDuration.
func ParseDuration(s string) (Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	var d Duration
	var seen [4]bool
	for s != "" {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == 0 {
			return Duration{}, fmt.Errorf("%w %q: want a number before each unit (y, m, d, h)", ErrDuration, shorten(in))
		}
		if n == len(s) {
			return Duration{}, fmt.Errorf("%w %q: number %s has no unit (y, m, d, h)", ErrDuration, shorten(in), shorten(s))
		}
		v, err := strconv.Atoi(s[:n])
		if err != nil {
			// Only overflow is left: the digits were checked above.
			return Duration{}, fmt.Errorf("%w %q: number %s is too large", ErrDuration, shorten(in), shorten(s[:n]))
		}
		var field *int
		var idx, limit int
		switch s[n] {
		case 'y':
			field, idx, limit = &d.Years, 0, MaxYears
		case 'm':
			field, idx, limit = &d.Months, 1, MaxMonths
		case 'd':
			field, idx, limit = &d.Days, 2, MaxDays
		case 'h':
			field, idx, limit = &d.Hours, 3, MaxHours
		default:
			return Duration{}, fmt.Errorf("%w %q: unknown unit %q (want y, m, d or h)", ErrDuration, shorten(in), s[n])
		}
		if seen[idx] {
			return Duration{}, fmt.Errorf("%w %q: unit %c given twice", ErrDuration, shorten(in), s[n])
		}
		if v > limit {
			return Duration{}, fmt.Errorf("%w %q: %d%c is more than %d%c", ErrDuration, shorten(in), v, s[n], limit, s[n])
		}
		seen[idx] = true
		*field = v
		s = s[n+1:]
	}
	return d, nil
}

// String formats d in canonical form: the non-zero fields in the order
// y, m, d, h ("1y2m3d4h"); the zero duration is "". ParseDuration accepts
// the result and gives d back for every d it can return.
func (d Duration) String() string {
	var b strings.Builder
	for _, f := range []struct {
		v    int
		unit byte
	}{{d.Years, 'y'}, {d.Months, 'm'}, {d.Days, 'd'}, {d.Hours, 'h'}} {
		if f.v != 0 {
			b.WriteString(strconv.Itoa(f.v))
			b.WriteByte(f.unit)
		}
	}
	return b.String()
}

// Zero reports whether d is the zero duration, which turns a rule off.
func (d Duration) Zero() bool { return d == Duration{} }

// Set parses s into d (for command-line flags).
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText encodes d as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses d as ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error { return d.Set(string(b)) }

// validate reports a field that ParseDuration would not have produced.
func (d Duration) validate() error {
	if d.Years < 0 || d.Months < 0 || d.Days < 0 || d.Hours < 0 {
		return fmt.Errorf("%w %+v: negative field", ErrDuration, d)
	}
	if d.Years > MaxYears || d.Months > MaxMonths || d.Days > MaxDays || d.Hours > MaxHours {
		return fmt.Errorf("%w %+v: field too large", ErrDuration, d)
	}
	return nil
}

// before returns the time d before t: years, months and days subtracted
// with AddDate in t's zone (so "1m" before March 31 normalizes as AddDate
// does), then hours as elapsed time. time.Duration holds only about 292
// years, less than MaxHours, so hours are subtracted in steps.
func (d Duration) before(t time.Time) time.Time {
	t = t.AddDate(-d.Years, -d.Months, -d.Days)
	const step = 1 << 20 // hours, about 120 years
	for h := d.Hours; h > 0; h -= step {
		t = t.Add(-time.Duration(min(h, step)) * time.Hour)
	}
	return t
}

// Unlimited is the count that never runs out (restic's "unlimited").
const Unlimited = -1

// ParseCount parses a --keep-* count: a non-negative decimal number, or
// "unlimited" for Unlimited. Every error wraps ErrCount.
func ParseCount(s string) (int, error) {
	t := strings.TrimSpace(s)
	if t == "unlimited" {
		return Unlimited, nil
	}
	if t == "" || strings.Trim(t, "0123456789") != "" {
		return 0, fmt.Errorf("%w %q: want a number or \"unlimited\"", ErrCount, shorten(s))
	}
	n, err := strconv.Atoi(t)
	if err != nil {
		return 0, fmt.Errorf("%w %q: too large", ErrCount, shorten(s))
	}
	return n, nil
}

// FormatCount formats a count as ParseCount reads it.
func FormatCount(n int) string {
	if n == Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// shorten bounds user input quoted in error messages.
func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Before is t moved back by d (months and years by the calendar).
func (d Duration) Before(t time.Time) time.Time { return d.before(t) }
