package jobconf

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultHookTimeout bounds a hook when the profile sets no
// hook-timeout: long enough for a database dump, short enough that a
// hung hook does not stall every later hourly run.
const DefaultHookTimeout = 15 * time.Minute

// Validate checks a resolved profile without touching anything: the
// returned lines name each problem, prefixed by the profile's name.
func (p *Profile) Validate(name string) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("profile %q: ", name)+fmt.Sprintf(format, args...))
	}
	if p.Repository == "" {
		bad("repository is not set")
	}
	if len(p.Paths) == 0 {
		bad("paths is not set: name at least one file or folder to back up")
	}
	for _, s := range p.Paths {
		if !filepath.IsAbs(s) {
			// cron's working folder is not the user's; forget's
			// --path filter compares the absolute paths backup records.
			bad("paths: %q is not an absolute path", s)
		}
	}
	if p.PasswordFile != "" && p.PasswordCommand != "" {
		bad("password-file and password-command are both set: give one")
	}
	switch p.Compression {
	case "", "off", "fastest", "auto", "max":
	default:
		bad("compression %q: want off, fastest, auto or max", p.Compression)
	}
	for _, d := range []struct{ key, val string }{{"retry-lock", p.RetryLock}, {"hook-timeout", p.HookTimeout}} {
		if d.val == "" {
			continue
		}
		if v, err := time.ParseDuration(d.val); err != nil || v < 0 {
			bad("%s %q: not a duration (e.g. 10m, 1h30m)", d.key, d.val)
		}
	}
	if p.LimitUpload < 0 || p.LimitDownload < 0 {
		bad("limit-upload and limit-download are KiB per second, 0 or more")
	}
	out = append(out, p.validateRetention(name)...)
	if p.PruneEvery != "" {
		if _, err := ParseEvery(p.PruneEvery); err != nil {
			bad("prune-every: %v", err)
		}
	}
	if p.CheckSubset != "" && !validSubset(p.CheckSubset) {
		bad("check-subset %q: want n/m (e.g. 1/7) or a percentage (e.g. 5%%)", p.CheckSubset)
	}
	for _, m := range p.Mirror {
		if m == "" || m == p.Repository {
			bad("mirror %q: not a destination other than the repository", m)
		}
	}
	if p.PingURL != "" {
		if u, err := url.Parse(p.PingURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("ping-url: not an http:// or https:// URL")
		}
	}
	for k := range p.Env {
		if !envName.MatchString(k) {
			bad("env: %q is not a variable name", k)
		}
	}
	return out
}

var (
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	keepWithin  = regexp.MustCompile(`^([0-9]+[ymdh])+$`)
	subsetFrac  = regexp.MustCompile(`^[0-9]+/[0-9]+$`)
	subsetPct   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?%$`)
	groupFields = map[string]bool{"host": true, "paths": true, "tags": true}
)

func (p *Profile) validateRetention(name string) []string {
	var out []string
	for _, k := range []struct {
		key string
		n   int
	}{{"keep-last", p.KeepLast}, {"keep-hourly", p.KeepHourly}, {"keep-daily", p.KeepDaily}, {"keep-weekly", p.KeepWeekly}, {"keep-monthly", p.KeepMonthly}, {"keep-yearly", p.KeepYearly}} {
		if k.n < 0 {
			out = append(out, fmt.Sprintf("profile %q: %s %d: want a count, 1 or more", name, k.key, k.n))
		}
	}
	for _, k := range []struct{ key, val string }{{"keep-within", p.KeepWithin}, {"keep-within-hourly", p.KeepWithinHourly}, {"keep-within-daily", p.KeepWithinDaily}, {"keep-within-weekly", p.KeepWithinWeekly}, {"keep-within-monthly", p.KeepWithinMonthly}, {"keep-within-yearly", p.KeepWithinYearly}} {
		if k.val != "" && !keepWithin.MatchString(k.val) {
			out = append(out, fmt.Sprintf("profile %q: %s %q: want a duration like 1y5m7d2h", name, k.key, k.val))
		}
	}
	if p.GroupBy != nil && *p.GroupBy != "" {
		for _, f := range strings.Split(*p.GroupBy, ",") {
			if !groupFields[f] {
				out = append(out, fmt.Sprintf("profile %q: group-by %q: want any of host,paths,tags", name, *p.GroupBy))
				break
			}
		}
	}
	return out
}

// HasRetention reports whether the profile sets any keep-* rule: run's
// forget step runs only then.
func (p *Profile) HasRetention() bool {
	return p.KeepLast != 0 || p.KeepHourly != 0 || p.KeepDaily != 0 || p.KeepWeekly != 0 ||
		p.KeepMonthly != 0 || p.KeepYearly != 0 || p.KeepWithin != "" || p.KeepWithinHourly != "" ||
		p.KeepWithinDaily != "" || p.KeepWithinWeekly != "" || p.KeepWithinMonthly != "" ||
		p.KeepWithinYearly != "" || len(p.KeepTag) > 0
}

func validSubset(s string) bool {
	if subsetPct.MatchString(s) {
		v, _ := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		return v > 0 && v <= 100
	}
	if !subsetFrac.MatchString(s) {
		return false
	}
	n, errN := strconv.Atoi(s[:strings.IndexByte(s, '/')])
	m, errM := strconv.Atoi(s[strings.IndexByte(s, '/')+1:])
	return errN == nil && errM == nil && n >= 1 && n <= m
}

// ParseEvery reads an interval: a Go duration ("36h", "90m") or a
// whole number of days or weeks ("7d", "2w"). It must be above zero.
func ParseEvery(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	switch {
	case strings.HasSuffix(s, "d") || strings.HasSuffix(s, "w"):
		n, perr := strconv.Atoi(s[:len(s)-1])
		unit := 24 * time.Hour
		if strings.HasSuffix(s, "w") {
			unit *= 7
		}
		if perr != nil || n > 10000 {
			err = perr
			if err == nil {
				err = fmt.Errorf("too long")
			}
		}
		d = time.Duration(n) * unit
	default:
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want an interval above zero like 7d, 2w or 36h", s)
	}
	return d, nil
}

// Validate checks the [serve] table's values that can be checked
// without the flags' parsers (which run when peer serve starts).
func (s *Serve) Validate() []string {
	var out []string
	if s.Root == "" {
		out = append(out, "serve: root is not set")
	}
	if len(s.Allow) == 0 {
		out = append(out, "serve: allow is empty: list the peer IDs allowed to store here")
	}
	if s.MaxRepos < 0 {
		out = append(out, fmt.Sprintf("serve: max-repos %d: want 1 or more", s.MaxRepos))
	}
	return out
}

// Check validates the whole file: every profile resolved, and [serve].
// It returns one line per problem, none when the file is good.
func (f *File) Check() []string {
	var out []string
	for _, name := range f.Names() {
		p, err := f.Resolve(name)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		out = append(out, p.Validate(name)...)
	}
	if f.Serve != nil {
		out = append(out, f.Serve.Validate()...)
	}
	return out
}
