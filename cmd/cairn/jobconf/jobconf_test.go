package jobconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const twoProfiles = `# a base and a laptop profile
[profile.base]
repository = "/srv/backup"
password-file = "/etc/cairn/pw"
paths = ["/home"]
keep-daily = 7
exclude-caches = true
retry-lock = "5m"
[profile.base.env]
AWS_SECRET_ACCESS_KEY = "hunter2"
REGION = "eu"
[profile.base.hooks]
before = "echo base"
[profile.base.hooks.backup]
after = "echo backup-done"

[profile.laptop]
inherit = "base"
paths = ["/home/me", "/etc"]
exclude-caches = false
mirror = ["peer://id@host:7484/laptop"]
[profile.laptop.env]
REGION = "us"
[profile.laptop.hooks]
on-failure = "echo failed"
`

func TestResolveInherits(t *testing.T) {
	f, err := Parse("cairn.toml", []byte(twoProfiles))
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Resolve("laptop")
	if err != nil {
		t.Fatal(err)
	}
	if p.Repository != "/srv/backup" || p.PasswordFile != "/etc/cairn/pw" || p.KeepDaily != 7 || p.RetryLock != "5m" {
		t.Errorf("inherited scalars not taken: %+v", p)
	}
	if strings.Join(p.Paths, ",") != "/home/me,/etc" {
		t.Errorf("paths = %q, want the child's", p.Paths)
	}
	if p.ExcludeCaches == nil || *p.ExcludeCaches {
		t.Errorf("exclude-caches = false in the child must win over the parent's true")
	}
	if p.Env["REGION"] != "us" || p.Env["AWS_SECRET_ACCESS_KEY"] != "hunter2" {
		t.Errorf("env not merged key by key: %v", p.Env)
	}
	if p.Hooks == nil || p.Hooks.Before != "echo base" || p.Hooks.OnFailure != "echo failed" || p.Hooks.Step("backup") == nil || p.Hooks.Step("backup").After != "echo backup-done" {
		t.Errorf("hooks not merged: %+v", p.Hooks)
	}
	// Resolving must not change the parent.
	base, _ := f.Resolve("base")
	if base.Env["REGION"] != "eu" || base.Hooks.OnFailure != "" {
		t.Errorf("resolving the child changed the parent: %+v", base)
	}
	if probs := f.Check(); len(probs) != 0 {
		t.Errorf("Check: %q", probs)
	}
}

func TestUnknownKeyNamesLine(t *testing.T) {
	src := "[profile.a]\nrepository = \"/r\"\npaths = [\"/x\"]\n\nkeep-dialy = 7\n"
	_, err := Parse("c.toml", []byte(src))
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 1 {
		t.Fatalf("err = %v, want one problem", err)
	}
	if want := `c.toml:5: unknown key "profile.a.keep-dialy"`; e.Problems[0] != want {
		t.Errorf("got %q, want %q", e.Problems[0], want)
	}
}

func TestWrongTypeNamesLine(t *testing.T) {
	_, err := Parse("c.toml", []byte("[profile.a]\n\npaths = \"/x\"\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "c.toml:3: ") {
		t.Fatalf("err = %v, want c.toml:3: ...", err)
	}
}

func TestInheritCycleRefused(t *testing.T) {
	f, err := Parse("c.toml", []byte("[profile.a]\ninherit = \"b\"\n[profile.b]\ninherit = \"c\"\n[profile.c]\ninherit = \"a\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Resolve("a")
	if err == nil || !strings.Contains(err.Error(), "inherit cycle a -> b -> c -> a") {
		t.Fatalf("err = %v, want the cycle named", err)
	}
	if _, err := f.Resolve("nope"); err == nil {
		t.Fatal("an unknown profile resolved")
	}
	g, _ := Parse("c.toml", []byte("[profile.a]\ninherit = \"ghost\"\n"))
	if _, err := g.Resolve("a"); err == nil || !strings.Contains(err.Error(), `inherits "ghost"`) {
		t.Fatalf("err = %v, want the missing parent named", err)
	}
}

func TestBadProfileName(t *testing.T) {
	if _, err := Parse("c.toml", []byte("[profile.\"../x\"]\n")); err == nil {
		t.Fatal("a profile name with a slash was accepted")
	}
}

func TestValidate(t *testing.T) {
	ok := Profile{Repository: "/r", Paths: []string{"/x"}}
	for _, tc := range []struct {
		name string
		mod  func(p *Profile)
		want string // "" for valid
	}{
		{"ok", func(*Profile) {}, ""},
		{"no repo", func(p *Profile) { p.Repository = "" }, "repository is not set"},
		{"no paths", func(p *Profile) { p.Paths = nil }, "paths is not set"},
		{"two passwords", func(p *Profile) { p.PasswordFile, p.PasswordCommand = "f", "c" }, "both set"},
		{"compression", func(p *Profile) { p.Compression = "zip" }, "compression"},
		{"retry-lock", func(p *Profile) { p.RetryLock = "soon" }, "retry-lock"},
		{"prune-every", func(p *Profile) { p.PruneEvery = "0d" }, "prune-every"},
		{"subset", func(p *Profile) { p.CheckSubset = "8/7" }, "check-subset"},
		{"subset pct", func(p *Profile) { p.CheckSubset = "5%" }, ""},
		{"keep", func(p *Profile) { p.KeepDaily = -1 }, "keep-daily"},
		{"keep-within", func(p *Profile) { p.KeepWithin = "7 days" }, "keep-within"},
		{"group-by", func(p *Profile) { g := "host,owner"; p.GroupBy = &g }, "group-by"},
		{"mirror self", func(p *Profile) { p.Mirror = []string{"/r"} }, "mirror"},
		{"ping-url", func(p *Profile) { p.PingURL = "ftp://x" }, "ping-url"},
		{"env", func(p *Profile) { p.Env = map[string]string{"A=B": "x"} }, "env"},
	} {
		p := ok
		tc.mod(&p)
		probs := p.Validate("x")
		switch {
		case tc.want == "" && len(probs) > 0:
			t.Errorf("%s: unexpected problems %q", tc.name, probs)
		case tc.want != "" && (len(probs) != 1 || !strings.Contains(probs[0], tc.want)):
			t.Errorf("%s: problems %q, want one naming %q", tc.name, probs, tc.want)
		}
	}
}

func TestParseEvery(t *testing.T) {
	for s, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if d, err := ParseEvery(s); err != nil || d != want {
			t.Errorf("ParseEvery(%q) = %v, %v; want %v", s, d, err, want)
		}
	}
	for _, s := range []string{"", "d", "-1d", "0h", "x", "99999999w"} {
		if _, err := ParseEvery(s); err == nil {
			t.Errorf("ParseEvery(%q) accepted", s)
		}
	}
}

func TestMaskedHidesSecretEnv(t *testing.T) {
	f, _ := Parse("c.toml", []byte(twoProfiles))
	p, _ := f.Resolve("laptop")
	out, err := p.Masked().Marshal("laptop")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), MaskedValue) || !strings.Contains(string(out), "us") {
		t.Errorf("masked output:\n%s", out)
	}
	if p.Env["AWS_SECRET_ACCESS_KEY"] != "hunter2" {
		t.Error("Masked changed the profile")
	}
	// What Marshal prints parses back to the same profile.
	g, err := Parse("shown", out)
	if err != nil {
		t.Fatalf("shown settings do not parse: %v\n%s", err, out)
	}
	if q, _ := g.Resolve("laptop"); q.Repository != p.Repository || len(q.Mirror) != 1 {
		t.Errorf("round trip lost settings: %+v", q)
	}
}

func TestLoadAndFind(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cairn", "cairn.toml")
	getenv := func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return dir
		}
		return ""
	}
	if got := DefaultPaths(getenv)[0]; got != path {
		t.Fatalf("DefaultPaths()[0] = %q, want %q", got, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(twoProfiles), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := Find(getenv); got != path {
		t.Fatalf("Find = %q", got)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("an oversized file loaded")
	}
}

// FuzzParse: any bytes give a file or an error, never a panic; a file
// that parses resolves (or refuses) each profile and checks cleanly.
func FuzzParse(f *testing.F) {
	f.Add([]byte(twoProfiles))
	f.Add([]byte("[serve]\nroot = \"/srv\"\nallow = [\"x\"]\n"))
	f.Add([]byte("[profile.a]\ninherit = \"a\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := Parse("fuzz", data)
		if err != nil {
			if cf != nil {
				t.Fatal("a file and an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, n := range cf.Names() {
			if p, err := cf.Resolve(n); err == nil {
				p.Validate(n)
				if _, err := p.Masked().Marshal(n); err != nil {
					t.Fatalf("marshal: %v", err)
				}
			}
		}
		cf.Check()
	})
}
