package jobconf

import (
	"strconv"
	"strings"
)

// The profile as command lines: "cairn run" runs each step as the
// command it names, with these arguments, so a step behaves exactly as
// the command typed by hand would.

// GlobalArgs are the global flags every step gets from the profile,
// except those override reports the command line already gives.
func (p *Profile) GlobalArgs(override func(flag string) bool) []string {
	var args []string
	add := func(flag, val string) {
		if val != "" && !override(flag) {
			args = append(args, "--"+flag, val)
		}
	}
	add("repo", p.Repository)
	// A password source on the command line replaces the profile's,
	// whichever of the two the profile uses.
	if !override("password-file") && !override("password-command") {
		add("password-file", p.PasswordFile)
		add("password-command", p.PasswordCommand)
	}
	add("retry-lock", p.RetryLock)
	if p.LimitUpload > 0 {
		add("limit-upload", strconv.FormatInt(p.LimitUpload, 10))
	}
	if p.LimitDownload > 0 {
		add("limit-download", strconv.FormatInt(p.LimitDownload, 10))
	}
	return args
}

// BackupArgs are backup's own flags and paths.
func (p *Profile) BackupArgs() []string {
	var args []string
	list := func(flag string, vals []string) {
		for _, v := range vals {
			args = append(args, "--"+flag, v)
		}
	}
	list("exclude", p.Exclude)
	list("iexclude", p.IExclude)
	list("exclude-file", p.ExcludeFile)
	list("exclude-if-present", p.ExcludeIfPresent)
	list("tag", p.Tags)
	if p.ExcludeCaches != nil && *p.ExcludeCaches {
		args = append(args, "--exclude-caches")
	}
	if p.OneFileSystem != nil && *p.OneFileSystem {
		args = append(args, "--one-file-system")
	}
	for _, kv := range [][2]string{{"exclude-larger-than", p.ExcludeLargerThan}, {"host", p.Host}, {"compression", p.Compression}} {
		if kv[1] != "" {
			args = append(args, "--"+kv[0], kv[1])
		}
	}
	args = append(args, "--")
	return append(args, p.Paths...)
}

// ForgetArgs are forget's flags: the policy, applied to this profile's
// snapshots only (its host if set, its tags, its paths), so profiles
// sharing a repository do not thin out each other's snapshots.
func (p *Profile) ForgetArgs() []string {
	var args []string
	for _, k := range []struct {
		flag string
		n    int
	}{{"keep-last", p.KeepLast}, {"keep-hourly", p.KeepHourly}, {"keep-daily", p.KeepDaily}, {"keep-weekly", p.KeepWeekly}, {"keep-monthly", p.KeepMonthly}, {"keep-yearly", p.KeepYearly}} {
		if k.n > 0 {
			args = append(args, "--"+k.flag, strconv.Itoa(k.n))
		}
	}
	for _, k := range [][2]string{{"keep-within", p.KeepWithin}, {"keep-within-hourly", p.KeepWithinHourly}, {"keep-within-daily", p.KeepWithinDaily}, {"keep-within-weekly", p.KeepWithinWeekly}, {"keep-within-monthly", p.KeepWithinMonthly}, {"keep-within-yearly", p.KeepWithinYearly}} {
		if k[1] != "" {
			args = append(args, "--"+k[0], k[1])
		}
	}
	for _, t := range p.KeepTag {
		args = append(args, "--keep-tag", t)
	}
	if p.GroupBy != nil {
		args = append(args, "--group-by", *p.GroupBy)
	}
	if p.Host != "" {
		args = append(args, "--host", p.Host)
	}
	if len(p.Tags) > 0 {
		args = append(args, "--tag", strings.Join(p.Tags, ","))
	}
	for _, path := range p.Paths {
		args = append(args, "--path", path)
	}
	return args
}

// CheckArgs are check's flags: the profile's read-data subset, if any.
func (p *Profile) CheckArgs() []string {
	if p.CheckSubset == "" {
		return nil
	}
	return []string{"--read-data-subset", p.CheckSubset}
}
