package sftp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var locationTests = []struct {
	in   string
	want Config // zero when the location must be refused
}{
	{"sftp:alice@example.org:/srv/backup", Config{User: "alice", Host: "example.org", Path: "/srv/backup"}},
	{"sftp:example.org:backup", Config{Host: "example.org", Path: "backup"}},
	{"sftp:example.org:backup/", Config{Host: "example.org", Path: "backup"}},
	{"sftp:example.org:~/backup", Config{Host: "example.org", Path: "backup"}},
	{"sftp:example.org:~", Config{Host: "example.org", Path: "."}},
	{"sftp:example.org:./~x", Config{Host: "example.org", Path: "~x"}},
	{"sftp:example.org:/", Config{Host: "example.org", Path: "/"}},
	{"sftp:example.org:/a:b", Config{Host: "example.org", Path: "/a:b"}},
	{"sftp:example.org:/a@b", Config{Host: "example.org", Path: "/a@b"}},
	{"sftp:bob@[2001:db8::1]:/b", Config{User: "bob", Host: "2001:db8::1", Path: "/b"}},
	{"sftp:[::1]:rel", Config{Host: "::1", Path: "rel"}},
	{"sftp://alice@example.org:2222/srv/backup", Config{User: "alice", Host: "example.org", Port: 2222, Path: "/srv/backup"}},
	{"sftp://example.org/srv/backup", Config{Host: "example.org", Path: "/srv/backup"}},
	{"sftp://example.org/~/backup", Config{Host: "example.org", Path: "backup"}},
	{"sftp://example.org/~", Config{Host: "example.org", Path: "."}},
	{"sftp://example.org/~/", Config{Host: "example.org", Path: "."}},
	{"sftp://example.org/~x", Config{Host: "example.org", Path: "/~x"}},
	{"sftp://example.org/~/a/../b/", Config{Host: "example.org", Path: "b"}},
	{"sftp:example.org:~/", Config{Host: "example.org", Path: "."}},
	{"sftp:example.org:~x", Config{Host: "example.org", Path: "~x"}},
	{"sftp:example.org:~/a/../b/", Config{Host: "example.org", Path: "b"}},
	{"sftp://example.org/", Config{Host: "example.org", Path: "/"}},
	{"sftp://example.org//srv", Config{Host: "example.org", Path: "/srv"}},
	{"sftp://al%40ice:s3cret@[::1]:22/x", Config{User: "al@ice", Password: "s3cret", Host: "::1", Port: 22, Path: "/x"}},
	{"sftp://bob@example.org/a%20b", Config{User: "bob", Host: "example.org", Path: "/a b"}},

	{"", Config{}},
	{"sftp:", Config{}},
	{"local:/x", Config{}},
	{"sftp:example.org", Config{}},
	{"sftp:example.org:", Config{}},
	{"sftp::/x", Config{}},
	{"sftp:@example.org:/x", Config{}},
	{"sftp:alice:pw@example.org:/x", Config{}},
	{"sftp:example.org:dir@x", Config{}},
	{"sftp:[::1:/x", Config{}},
	{"sftp:[::1]/x", Config{}},
	{"sftp:[nothost]:/x", Config{}},
	{"sftp:exa mple:/x", Config{}},
	{"sftp:example.org:/x\x00y", Config{}},
	{"sftp://example.org", Config{}},
	{"sftp://example.org:0/x", Config{}},
	{"sftp://example.org:65536/x", Config{}},
	{"sftp://example.org:/x", Config{}},
	{"sftp://example.org/x?y=1", Config{}},
	{"sftp://example.org/x#frag", Config{}},
	{"sftp://:pw@example.org/x", Config{}},
	{"sftp:///x", Config{}},
	{"sftp://ex%zzample/x", Config{}},
}

func TestParseLocation(t *testing.T) {
	for _, tc := range locationTests {
		got, err := ParseLocation(tc.in)
		if tc.want.Host == "" {
			if err == nil {
				t.Errorf("ParseLocation(%q) = %v, want an error", tc.in, got)
			} else if !errors.Is(err, ErrLocation) {
				t.Errorf("ParseLocation(%q): %v does not wrap ErrLocation", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseLocation(%q): %v", tc.in, err)
			continue
		}
		if !sameConfig(got, tc.want) {
			t.Errorf("ParseLocation(%q) = %+v, want %+v", tc.in, fields(got), fields(tc.want))
		}
		checkRoundTrip(t, tc.in, got)
	}
}

// fields shows a Config's location fields, password included, for test
// messages only.
func fields(c Config) string {
	return fmt.Sprintf("{User:%q Password:%q Host:%q Port:%d Path:%q}", c.User, c.Password, c.Host, c.Port, c.Path)
}

func sameConfig(a, b Config) bool {
	return a.User == b.User && a.Password == b.Password && a.Host == b.Host && a.port() == b.port() && a.Path == b.Path
}

// checkRoundTrip checks that String reads back as the same location,
// without the password.
func checkRoundTrip(t *testing.T, in string, c Config) {
	t.Helper()
	s := c.String()
	again, err := ParseLocation(s)
	if err != nil {
		t.Fatalf("%q parsed to %+v, whose String %q does not parse: %v", in, fields(c), s, err)
	}
	want := c
	want.Password = ""
	if !sameConfig(again, want) {
		t.Fatalf("%q parsed to %+v, String %q parses to %+v", in, fields(c), s, fields(again))
	}
}

func TestLocationHidesPassword(t *testing.T) {
	const pw = "hunter2-secret"
	in := "sftp://alice:" + pw + "@example.org:2222/srv"
	cfg, err := ParseLocation(in)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Password != pw {
		t.Fatalf("password %q, want %q", cfg.Password, pw)
	}
	for _, s := range []string{
		cfg.String(),
		fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg, cfg),
		fmt.Sprint(&cfg),
	} {
		if strings.Contains(s, pw) {
			t.Errorf("printed config holds the password: %s", s)
		}
	}
	// A refused location with a password does not echo it either.
	for _, bad := range []string{
		"sftp://alice:" + pw + "@example.org:99999/srv",
		"sftp://alice:" + pw + "@example.org/srv?x",
		"sftp://alice:" + pw + "@exa%zzmple/srv",
		"sftp://alice:" + pw + "@example.org",
	} {
		_, err := ParseLocation(bad)
		if err == nil {
			t.Errorf("ParseLocation(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), pw) {
			t.Errorf("error for a bad location holds the password: %v", err)
		}
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, tc := range locationTests {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseLocation(in)
		if err != nil {
			if !errors.Is(err, ErrLocation) {
				t.Fatalf("ParseLocation(%q): %v does not wrap ErrLocation", in, err)
			}
			if !sameConfig(c, Config{}) {
				t.Fatalf("ParseLocation(%q) returned %+v with an error", in, fields(c))
			}
			return
		}
		noPW := c
		noPW.Password = ""
		if c.String() != noPW.String() || c.GoString() != noPW.GoString() {
			t.Fatalf("String of %q depends on the password", in)
		}
		checkRoundTrip(t, in, c)
	})
}
