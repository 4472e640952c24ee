package policy

import (
	"errors"
	"testing"
	"time"
)

var durationGood = []struct {
	in   string
	want Duration
	str  string
}{
	{"", Duration{}, ""},
	{"   ", Duration{}, ""},
	{"0d", Duration{}, ""},
	{"1y2m3d4h", Duration{1, 2, 3, 4}, "1y2m3d4h"},
	{"4h3d2m1y", Duration{1, 2, 3, 4}, "1y2m3d4h"},
	{" 2d ", Duration{Days: 2}, "2d"},
	{"36h", Duration{Hours: 36}, "36h"},
	{"1m14d", Duration{Months: 1, Days: 14}, "1m14d"},
	{"007d", Duration{Days: 7}, "7d"},
	{"9999y", Duration{Years: MaxYears}, "9999y"},
	{"119988m", Duration{Months: MaxMonths}, "119988m"},
	{"87831216h", Duration{Hours: MaxHours}, "87831216h"},
}

var durationBad = []string{
	"d",                     // no number
	"5",                     // no unit
	"1d5",                   // trailing number
	"1w",                    // weeks are not a unit (restic neither)
	"1D",                    // units are lowercase
	"-1d",                   // negative
	"+1d",                   // sign
	"1d2d",                  // unit twice
	"1d 2h",                 // inner space
	"1.5d",                  // fraction
	"10000y",                // over MaxYears
	"3659635d",              // over MaxDays
	"99999999999999999999d", // overflows int
	"1y\x00",                // garbage
	"1dé",
}

func TestParseDuration(t *testing.T) {
	for _, tc := range durationGood {
		got, err := ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.str {
			t.Errorf("%+v.String() = %q, want %q", got, s, tc.str)
		}
		if err := got.validate(); err != nil {
			t.Errorf("%+v: validate: %v", got, err)
		}
	}
	for _, in := range durationBad {
		d, err := ParseDuration(in)
		if !errors.Is(err, ErrDuration) || d != (Duration{}) {
			t.Errorf("ParseDuration(%q) = %+v, %v; want ErrDuration", in, d, err)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1y6m")); err != nil || d != (Duration{Years: 1, Months: 6}) {
		t.Fatalf("UnmarshalText: %+v, %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "1y6m" {
		t.Fatalf("MarshalText: %q", b)
	}
	if err := d.Set("bad"); !errors.Is(err, ErrDuration) || d != (Duration{Years: 1, Months: 6}) {
		t.Fatalf("Set(bad) = %v and changed d to %+v", err, d)
	}
}

func TestDurationBefore(t *testing.T) {
	loc := time.FixedZone("+0530", 5*3600+1800)
	base := time.Date(2024, 3, 31, 12, 0, 0, 0, loc)
	for _, tc := range []struct {
		d    Duration
		want time.Time
	}{
		{Duration{Hours: 36}, time.Date(2024, 3, 30, 0, 0, 0, 0, loc)},
		{Duration{Days: 1, Hours: 12}, time.Date(2024, 3, 30, 0, 0, 0, 0, loc)},
		{Duration{Months: 1}, time.Date(2024, 3, 2, 12, 0, 0, 0, loc)}, // "Feb 31" of a leap year
		{Duration{Years: 1, Months: 1}, time.Date(2023, 3, 3, 12, 0, 0, 0, loc)},
	} {
		if got := tc.d.before(base); !got.Equal(tc.want) {
			t.Errorf("%v before %v = %v, want %v", tc.d, base, got, tc.want)
		}
	}
}

func TestDurationBeforeLimits(t *testing.T) {
	// Every field at its limit is about 10000 years, 40000 in all: far
	// from where time.Time's arithmetic wraps around, though beyond
	// time.Duration's 292 years.
	max := Duration{Years: MaxYears, Months: MaxMonths, Days: MaxDays, Hours: MaxHours}
	base := time.Date(2024, 3, 31, 12, 0, 0, 0, time.UTC)
	got := max.before(base)
	if y := got.Year(); y > 2024-40000 || y < 2024-40100 {
		t.Fatalf("%v before %v = %v", max, base, got)
	}
}

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{{"0", 0}, {"7", 7}, {" 12 ", 12}, {"unlimited", Unlimited}, {"0010", 10}} {
		got, err := ParseCount(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCount(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-1", "+1", "1.0", "Unlimited", "all", "1e3", "99999999999999999999"} {
		if n, err := ParseCount(in); !errors.Is(err, ErrCount) || n != 0 {
			t.Errorf("ParseCount(%q) = %d, %v; want ErrCount", in, n, err)
		}
	}
	if FormatCount(Unlimited) != "unlimited" || FormatCount(24) != "24" {
		t.Error("FormatCount")
	}
}

// FuzzParseDuration: no panic; on error a zero result wrapping
// ErrDuration; on success the canonical form parses back to the same value
// and the value is within the limits Validate checks.
func FuzzParseDuration(f *testing.F) {
	for _, tc := range durationGood {
		f.Add(tc.in)
	}
	for _, in := range durationBad {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if !errors.Is(err, ErrDuration) || d != (Duration{}) {
				t.Fatalf("%q: %+v, %v", s, d, err)
			}
			return
		}
		if err := d.validate(); err != nil {
			t.Fatalf("%q parsed to invalid %+v: %v", s, d, err)
		}
		again, err := ParseDuration(d.String())
		if err != nil || again != d {
			t.Fatalf("%q: %+v formats as %q, which parses to %+v, %v", s, d, d.String(), again, err)
		}
	})
}

// FuzzParseCount: no panic; errors wrap ErrCount; success round-trips
// through FormatCount.
func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"0", "7", "unlimited", "-1", "", "1e3", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseCount(s)
		if err != nil {
			if !errors.Is(err, ErrCount) || n != 0 {
				t.Fatalf("%q: %d, %v", s, n, err)
			}
			return
		}
		if n < Unlimited {
			t.Fatalf("%q parsed to %d", s, n)
		}
		if again, err := ParseCount(FormatCount(n)); err != nil || again != n {
			t.Fatalf("%q: %d formats as %q, parses to %d, %v", s, n, FormatCount(n), again, err)
		}
	})
}
