package jobconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// File is a parsed configuration file.
type File struct {
	// Profiles are the [profile.NAME] tables, by NAME.
	Profiles map[string]*Profile `toml:"profile,omitempty"`
	// Serve is the [serve] table, nil when the file has none.
	Serve *Serve `toml:"serve,omitempty"`
	// Path is where the file was read from (not a key of the file).
	Path string `toml:"-"`
}

// Profile is one named job. Every field is optional in the file; a
// field left empty (nil, "" or 0) takes the inherited profile's value.
// Each key is named like the command line flag it stands for.
type Profile struct {
	// Inherit names the profile this one starts from.
	Inherit string `toml:"inherit,omitempty"`

	Repository      string `toml:"repository,omitempty"`
	PasswordFile    string `toml:"password-file,omitempty"`
	PasswordCommand string `toml:"password-command,omitempty"`

	// Backup: what and how.
	Paths             []string `toml:"paths,omitempty"`
	Exclude           []string `toml:"exclude,omitempty"`
	IExclude          []string `toml:"iexclude,omitempty"`
	ExcludeFile       []string `toml:"exclude-file,omitempty"`
	ExcludeCaches     *bool    `toml:"exclude-caches,omitempty"`
	ExcludeIfPresent  []string `toml:"exclude-if-present,omitempty"`
	ExcludeLargerThan string   `toml:"exclude-larger-than,omitempty"`
	OneFileSystem     *bool    `toml:"one-file-system,omitempty"`
	Tags              []string `toml:"tags,omitempty"`
	Host              string   `toml:"host,omitempty"`
	Compression       string   `toml:"compression,omitempty"`

	// How the job uses its locations: --retry-lock, and the limits in
	// KiB per second.
	RetryLock     string `toml:"retry-lock,omitempty"`
	LimitUpload   int64  `toml:"limit-upload,omitempty"`
	LimitDownload int64  `toml:"limit-download,omitempty"`

	// Retention: forget's --keep-* and --group-by.
	KeepLast          int      `toml:"keep-last,omitempty"`
	KeepHourly        int      `toml:"keep-hourly,omitempty"`
	KeepDaily         int      `toml:"keep-daily,omitempty"`
	KeepWeekly        int      `toml:"keep-weekly,omitempty"`
	KeepMonthly       int      `toml:"keep-monthly,omitempty"`
	KeepYearly        int      `toml:"keep-yearly,omitempty"`
	KeepWithin        string   `toml:"keep-within,omitempty"`
	KeepWithinHourly  string   `toml:"keep-within-hourly,omitempty"`
	KeepWithinDaily   string   `toml:"keep-within-daily,omitempty"`
	KeepWithinWeekly  string   `toml:"keep-within-weekly,omitempty"`
	KeepWithinMonthly string   `toml:"keep-within-monthly,omitempty"`
	KeepWithinYearly  string   `toml:"keep-within-yearly,omitempty"`
	KeepTag           []string `toml:"keep-tag,omitempty"`
	GroupBy           *string  `toml:"group-by,omitempty"`

	// PruneEvery is how often run prunes after forget ("7d", "36h").
	PruneEvery string `toml:"prune-every,omitempty"`
	// CheckSubset is check's --read-data-subset (n/m or P%); empty:
	// run checks the structure only.
	CheckSubset string `toml:"check-subset,omitempty"`
	// Mirror lists the destinations run mirrors to, in order.
	Mirror []string `toml:"mirror,omitempty"`

	// Monitoring (see cmd/cairn/monitor).
	MetricsFile string `toml:"metrics-file,omitempty"`
	PingURL     string `toml:"ping-url,omitempty"`

	// HookTimeout bounds each hook; empty means DefaultHookTimeout.
	HookTimeout string `toml:"hook-timeout,omitempty"`
	// Env is set in the job's environment: its hooks, its password
	// command, the ssh it starts.
	Env map[string]string `toml:"env,omitempty"`
	// Hooks are the job's hooks and each step's.
	Hooks *Hooks `toml:"hooks,omitempty"`
}

// HookSet are the shell commands run around a job or a step.
type HookSet struct {
	// Before runs first; if it fails, what it guards does not run.
	Before string `toml:"before,omitempty"`
	// After runs last, whatever the result.
	After string `toml:"after,omitempty"`
	// OnFailure and OnSuccess run after, depending on the result.
	OnFailure string `toml:"on-failure,omitempty"`
	OnSuccess string `toml:"on-success,omitempty"`
}

// Hooks are the profile's hooks: the job's own, then per step.
type Hooks struct {
	HookSet
	Backup *HookSet `toml:"backup,omitempty"`
	Forget *HookSet `toml:"forget,omitempty"`
	Prune  *HookSet `toml:"prune,omitempty"`
	Check  *HookSet `toml:"check,omitempty"`
	Mirror *HookSet `toml:"mirror,omitempty"`
}

// Step returns the hooks of the named step (backup, forget, prune,
// check, mirror), or nil.
func (h *Hooks) Step(name string) *HookSet {
	if h == nil {
		return nil
	}
	switch name {
	case "backup":
		return h.Backup
	case "forget":
		return h.Forget
	case "prune":
		return h.Prune
	case "check":
		return h.Check
	case "mirror":
		return h.Mirror
	}
	return nil
}

// Serve is the [serve] table: the settings of "cairn peer serve", named
// like its flags.
type Serve struct {
	Listen string `toml:"listen,omitempty"`
	Root   string `toml:"root,omitempty"`
	// Allow lists "PEERID" or "PEERID:append-only|read-write".
	Allow    []string `toml:"allow,omitempty"`
	Quota    string   `toml:"quota,omitempty"`
	MaxRepos int      `toml:"max-repos,omitempty"`
}

// profileName is what a profile may be called: it names files in the
// state dir.
var profileName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// maxFileSize caps the file read: a configuration is a few KiB.
const maxFileSize = 1 << 20

// Error lists the problems found in a file or a profile, one a line.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0]
	}
	return fmt.Sprintf("%s (and %d more problems: run \"cairn config check\")", e.Problems[0], len(e.Problems)-1)
}

// Load reads and decodes the file at path. Unknown keys and values of
// the wrong type are an *Error naming each one's line.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("config file %s: larger than %d bytes", path, maxFileSize)
	}
	cf, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	return cf, nil
}

// Parse decodes the file's bytes; name is used in messages.
func Parse(name string, data []byte) (*File, error) {
	var cf File
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cf); err != nil {
		return nil, decodeError(name, err)
	}
	cf.Path = name
	e := &Error{}
	for _, pname := range cf.Names() {
		if !profileName.MatchString(pname) {
			e.Problems = append(e.Problems, fmt.Sprintf("%s: profile name %q: use letters, digits, '.', '_' and '-' (not first)", name, pname))
		}
		if cf.Profiles[pname] == nil {
			cf.Profiles[pname] = &Profile{}
		}
	}
	if len(e.Problems) > 0 {
		return nil, e
	}
	return &cf, nil
}

// decodeError turns the TOML library's errors into one line each,
// "FILE:LINE: ...".
func decodeError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		e := &Error{}
		for i := range strict.Errors {
			d := &strict.Errors[i]
			line, _ := d.Position()
			e.Problems = append(e.Problems, fmt.Sprintf("%s:%d: unknown key %q", name, line, strings.Join(d.Key(), ".")))
		}
		return e
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if k := de.Key(); len(k) > 0 {
			msg = fmt.Sprintf("%s: %s", strings.Join(k, "."), msg)
		}
		return &Error{Problems: []string{fmt.Sprintf("%s:%d: %s", name, line, msg)}}
	}
	return &Error{Problems: []string{fmt.Sprintf("%s: %v", name, err)}}
}

// Names returns the profile names in order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Profiles))
	for n := range f.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Resolve returns the effective profile name: its inherit chain merged,
// the nearest setting winning. An unknown name or a cycle is an error.
func (f *File) Resolve(name string) (*Profile, error) {
	var chain []string
	seen := map[string]bool{}
	for n := name; n != ""; {
		if seen[n] {
			return nil, fmt.Errorf("profile %q: inherit cycle %s -> %s", name, strings.Join(chain, " -> "), n)
		}
		p, ok := f.Profiles[n]
		if !ok {
			if n == name {
				return nil, fmt.Errorf("no profile %q in %s (it has: %s)", name, f.Path, strings.Join(f.Names(), ", "))
			}
			return nil, fmt.Errorf("profile %q: inherits %q, which %s does not define", chain[len(chain)-1], n, f.Path)
		}
		seen[n] = true
		chain = append(chain, n)
		n = p.Inherit
	}
	out := &Profile{}
	for i := len(chain) - 1; i >= 0; i-- {
		mergeInto(reflect.ValueOf(out).Elem(), reflect.ValueOf(f.Profiles[chain[i]]).Elem())
	}
	out.Inherit = ""
	return out, nil
}

// mergeInto copies into dst each field src sets: structs field by field,
// maps key by key, anything else whole when it is not its zero value.
func mergeInto(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Struct:
		for i := range src.NumField() {
			mergeInto(dst.Field(i), src.Field(i))
		}
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		if src.Elem().Kind() != reflect.Struct {
			dst.Set(src)
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.New(src.Elem().Type()))
		}
		mergeInto(dst.Elem(), src.Elem())
	case reflect.Map:
		if src.IsNil() {
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.MakeMap(src.Type()))
		}
		iter := src.MapRange()
		for iter.Next() {
			dst.SetMapIndex(iter.Key(), iter.Value())
		}
	default:
		if !src.IsZero() {
			dst.Set(src)
		}
	}
}

// DefaultPaths are where the file is looked for when no --config is
// given, first found wins: $XDG_CONFIG_HOME/cairn/cairn.toml (else
// ~/.config/cairn/cairn.toml), then /etc/cairn/cairn.toml.
func DefaultPaths(getenv func(string) string) []string {
	var paths []string
	if d := getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		paths = append(paths, filepath.Join(d, "cairn", "cairn.toml"))
	} else if h := getenv("HOME"); filepath.IsAbs(h) {
		paths = append(paths, filepath.Join(h, ".config", "cairn", "cairn.toml"))
	}
	return append(paths, "/etc/cairn/cairn.toml")
}

// Find returns the first of DefaultPaths that exists, or "".
func Find(getenv func(string) string) string {
	for _, p := range DefaultPaths(getenv) {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// MaskedValue stands in for a secret in printed settings.
const MaskedValue = "********"

// Masked returns a copy of p fit to print: the value of every
// environment variable whose name holds PASSWORD, SECRET, KEY or TOKEN
// is masked. (A password command is shown: it names where the secret
// is, not the secret.)
func (p *Profile) Masked() *Profile {
	q := *p
	if p.Env != nil {
		q.Env = make(map[string]string, len(p.Env))
		for k, v := range p.Env {
			if SecretName(k) {
				v = MaskedValue
			}
			q.Env[k] = v
		}
	}
	return &q
}

// SecretName reports whether an environment variable's name says it
// holds a secret.
func SecretName(name string) bool {
	u := strings.ToUpper(name)
	for _, s := range []string{"PASSWORD", "PASSWD", "SECRET", "KEY", "TOKEN"} {
		if strings.Contains(u, s) {
			return true
		}
	}
	return false
}

// Marshal renders p as TOML, under the table [profile.NAME].
func (p *Profile) Marshal(name string) ([]byte, error) {
	out, err := toml.Marshal(File{Profiles: map[string]*Profile{name: p}})
	// The library opens the parent table too: an empty "[profile]".
	return bytes.TrimPrefix(out, []byte("[profile]\n")), err
}
