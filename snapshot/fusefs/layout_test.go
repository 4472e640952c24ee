package fusefs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

func testSnap(n byte, t time.Time, host string, tags ...string) *snapshot.Snapshot {
	var id backend.ID
	id[0], id[31] = n, n
	return &snapshot.Snapshot{ID: id, Time: t, Hostname: host, Username: "me", Tags: tags}
}

// layoutPaths lists every entry below e as "path" for folders, "path=ID"
// for snapshots and "path->target" for links, sorted.
func layoutPaths(e *entry, prefix string) []string {
	var out []string
	for _, name := range e.names {
		c := e.children[name]
		p := prefix + name
		switch {
		case c.isDir():
			out = append(out, p+"/")
			out = append(out, layoutPaths(c, p+"/")...)
		case c.link != "":
			out = append(out, p+"->"+c.link)
		default:
			out = append(out, p+"="+c.sn.ID.Str())
		}
	}
	return out
}

func TestLayoutDefault(t *testing.T) {
	t.Setenv("TZ", "UTC")
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	a := testSnap(1, base, "alpha", "daily", "a/b")
	b := testSnap(2, base.Add(time.Hour), "beta")
	c := testSnap(3, base.Add(time.Hour), "alpha", "daily") // same time as b
	tmpl, err := parseTemplates(DefaultPathTemplates, "2006-01-02T15:04")
	if err != nil {
		t.Fatal(err)
	}
	root, warnings := buildLayout([]*snapshot.Snapshot{c, b, a}, tmpl, "2006-01-02T15:04")
	if len(warnings) > 0 {
		t.Fatalf("warnings: %v", warnings)
	}
	want := []string{
		"hosts/",
		"hosts/alpha/",
		"hosts/alpha/2024-05-01T10:00=01000000",
		"hosts/alpha/2024-05-01T11:00=03000000",
		"hosts/alpha/latest->2024-05-01T11:00",
		"hosts/beta/",
		"hosts/beta/2024-05-01T11:00=02000000",
		"hosts/beta/latest->2024-05-01T11:00",
		"ids/",
		"ids/01000000=01000000",
		"ids/02000000=02000000",
		"ids/03000000=03000000",
		"snapshots/",
		"snapshots/2024-05-01T10:00=01000000",
		"snapshots/2024-05-01T11:00=02000000",
		// b and c share a time: the second by ID gets "-1", and is the
		// latest.
		"snapshots/2024-05-01T11:00-1=03000000",
		"snapshots/latest->2024-05-01T11:00-1",
		"tags/",
		"tags/a_b/",
		"tags/a_b/2024-05-01T10:00=01000000",
		"tags/a_b/latest->2024-05-01T10:00",
		"tags/daily/",
		"tags/daily/2024-05-01T10:00=01000000",
		"tags/daily/2024-05-01T11:00=03000000",
		"tags/daily/latest->2024-05-01T11:00",
	}
	if got := layoutPaths(root, ""); !slices.Equal(got, want) {
		t.Fatalf("layout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A folder's time is its newest snapshot's.
	if got := root.children["hosts"].children["alpha"].time; !got.Equal(c.Time) {
		t.Errorf("hosts/alpha time %v, want %v", got, c.Time)
	}
}

// With no snapshots the template's fixed folders still exist, so that
// ids/ and tags/ are there to look at on an empty repository.
func TestLayoutEmpty(t *testing.T) {
	tmpl, err := parseTemplates(DefaultPathTemplates, DefaultTimeTemplate)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := buildLayout(nil, tmpl, DefaultTimeTemplate)
	want := []string{"hosts/", "ids/", "snapshots/", "tags/"}
	if got := layoutPaths(root, ""); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestLayoutTemplates(t *testing.T) {
	t.Setenv("TZ", "UTC")
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	a := testSnap(1, base, "..", "x", "y")
	b := testSnap(2, base.Add(24*time.Hour), "h/1")
	for _, tc := range []struct {
		templates []string
		time      string
		want      []string
	}{
		{[]string{"%h/%u-%i"}, "", []string{"__/", "__/me-01000000=01000000", "h_1/", "h_1/me-02000000=02000000"}},
		// %t makes one path per tag; a snapshot without tags is left out.
		{[]string{"by-tag/%t-%i"}, "", []string{"by-tag/", "by-tag/x-01000000=01000000", "by-tag/y-01000000=01000000"}},
		// A "/" in the time template makes subfolders; the latest link
		// is in the last.
		{[]string{"t/%T"}, "2006/01/02", []string{
			"t/", "t/2024/", "t/2024/05/", "t/2024/05/01=01000000", "t/2024/05/02=02000000", "t/2024/05/latest->02"}},
		// Not a whole path element: no latest link.
		{[]string{"s-%T"}, "2006-01-02", []string{"s-2024-05-01=01000000", "s-2024-05-02=02000000"}},
		{[]string{"%%/%I"}, "", []string{"%/", "%/" + a.ID.String() + "=01000000", "%/" + b.ID.String() + "=02000000"}},
		// Two templates naming the same place: names are made unique.
		{[]string{"x/%u", "x/%u"}, "", []string{"x/", "x/me=01000000", "x/me-1=01000000", "x/me-2=02000000", "x/me-3=02000000"}},
	} {
		tt := tc.time
		if tt == "" {
			tt = DefaultTimeTemplate
		}
		tmpl, err := parseTemplates(tc.templates, tt)
		if err != nil {
			t.Fatalf("%q: %v", tc.templates, err)
		}
		root, warnings := buildLayout([]*snapshot.Snapshot{a, b}, tmpl, tt)
		if len(warnings) > 0 {
			t.Errorf("%q: warnings %v", tc.templates, warnings)
		}
		if got := layoutPaths(root, ""); !slices.Equal(got, tc.want) {
			t.Errorf("%q %q:\n%s\nwant:\n%s", tc.templates, tc.time, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

// A template whose paths run through another's snapshot cannot place
// them: it says so and the others stay.
func TestLayoutConflict(t *testing.T) {
	a := testSnap(1, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), "h")
	tmpl, err := parseTemplates([]string{"x/%h", "x/%h/%i"}, DefaultTimeTemplate)
	if err != nil {
		t.Fatal(err)
	}
	root, warnings := buildLayout([]*snapshot.Snapshot{a}, tmpl, DefaultTimeTemplate)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "x/h is a snapshot") {
		t.Fatalf("warnings %q", warnings)
	}
	if got, want := layoutPaths(root, ""), []string{"x/", "x/h=01000000"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		time  string
		want  string
	}{
		{[]string{"ids/%q"}, DefaultTimeTemplate, "unknown %q"},
		{[]string{"ids/%"}, DefaultTimeTemplate, "lone %"},
		{[]string{"ids/x"}, DefaultTimeTemplate, "names no snapshot"},
		{[]string{"../%i"}, DefaultTimeTemplate, `holds ".."`},
		{[]string{"a/./%i"}, DefaultTimeTemplate, `holds "."`},
		{[]string{"%i/.."}, DefaultTimeTemplate, `holds ".."`},
		{[]string{"%T"}, "", "time template is empty"},
		{[]string{"%T"}, "/2006", "starts or ends"},
		{[]string{"%T"}, "2006/", "starts or ends"},
	} {
		err := CheckTemplates(tc.paths, tc.time)
		if tc.time == "" {
			_, err = parseTemplates(tc.paths, tc.time)
		}
		if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %q: error %v, want one saying %q", tc.paths, tc.time, err, tc.want)
		}
	}
	for _, ok := range []string{"..%i", "a.%i/..b", "%i%%", "x/%T"} {
		if err := CheckTemplates([]string{ok}, ""); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// FuzzLayoutNames lays snapshots with arbitrary hosts, users and tags out
// by a template using them all: every name the layout makes must be a
// valid file name (not empty, ".", ".." or holding "/" or NUL), so the
// kernel never sees a name that climbs out or cannot exist.
func FuzzLayoutNames(f *testing.F) {
	f.Add("host", "user", "tag", "%h/%u/%t/%T", "2006-01-02")
	f.Add("..", ".", "", "%h%u/%t", "15:04")
	f.Add("a/b", "c\x00d", "/", "x/%t/%h", "2006/01/02")
	f.Fuzz(func(t *testing.T, host, user, tag, path, timeTemplate string) {
		tmpl, err := parseTemplates([]string{path}, timeTemplate)
		if err != nil {
			return
		}
		sn := testSnap(1, time.Unix(1714557600, 0), host, tag)
		sn.Username = user
		root, _ := buildLayout([]*snapshot.Snapshot{sn}, tmpl, timeTemplate)
		var walk func(e *entry, depth int)
		walk = func(e *entry, depth int) {
			if depth > 1000 {
				t.Fatal("layout too deep")
			}
			for _, name := range e.names {
				if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
					t.Fatalf("invalid name %q from template %q, time %q", name, path, timeTemplate)
				}
				walk(e.children[name], depth+1)
			}
		}
		walk(root, 0)
	})
}

func ExampleCheckTemplates() {
	fmt.Println(CheckTemplates([]string{"by-host/%h/%T"}, "2006-01-02"))
	fmt.Println(CheckTemplates([]string{"by-host/%H"}, ""))
	// Output:
	// <nil>
	// bad template: path template "by-host/%H": unknown %H (use %i, %I, %u, %h, %t, %T or %%)
}
