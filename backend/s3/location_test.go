package s3

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseLocation(t *testing.T) {
	for _, c := range []struct {
		loc  string
		want Config // zero: an error
	}{
		{"s3:https://s3.example.org/bucket", Config{Endpoint: "s3.example.org", Secure: true, Bucket: "bucket"}},
		{"s3:https://s3.example.org:9000/bucket/a/b/", Config{Endpoint: "s3.example.org:9000", Secure: true, Bucket: "bucket", Prefix: "a/b"}},
		{"s3:http://127.0.0.1:9000/my.bucket-1/repo", Config{Endpoint: "127.0.0.1:9000", Bucket: "my.bucket-1", Prefix: "repo"}},
		{"s3:http://[::1]:9000/bucket", Config{Endpoint: "[::1]:9000", Bucket: "bucket"}},
		{"s3:https://key:secret@host/bucket", Config{}},
		{"s3:https://host", Config{}},
		{"s3:https://host/", Config{}},
		{"s3:ftp://host/bucket", Config{}},
		{"s3:host/bucket", Config{}},
		{"s3:https://host/Bucket", Config{}},
		{"s3:https://host/ab", Config{}},
		{"s3:https://host/-bucket", Config{}},
		{"s3:https://host/bucket/a//b", Config{}},
		{"s3:https://host/bucket/a/../b", Config{}},
		{"s3:https://host/bucket?x=1", Config{}},
		{"s3:https://host:99999/bucket", Config{}},
		{"s3:https://host/bucket/a\x00b", Config{}},
	} {
		got, err := ParseLocation(c.loc)
		if c.want == (Config{}) {
			if !errors.Is(err, ErrLocation) {
				t.Errorf("%q: got %+v, %v; want an error wrapping ErrLocation", c.loc, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.loc, got, err, c.want)
			continue
		}
		if again, err := ParseLocation(got.String()); err != nil || again != got {
			t.Errorf("%q: String %q parses to %+v, %v", c.loc, got.String(), again, err)
		}
	}
}

func TestSetOption(t *testing.T) {
	var c Config
	for _, o := range [][2]string{{"region", "eu-west-1"}, {"bucket-lookup", "dns"}, {"ca-file", "/etc/ca.pem"}, {"storage-class", "STANDARD_IA"}} {
		if err := c.SetOption(o[0], o[1]); err != nil {
			t.Errorf("%s=%s: %v", o[0], o[1], err)
		}
	}
	want := Config{Region: "eu-west-1", Lookup: LookupDNS, CAFile: "/etc/ca.pem", StorageClass: "STANDARD_IA"}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	for _, o := range [][2]string{{"bucket-lookup", "virtual"}, {"ca-file", ""}, {"storage-class", ""}, {"storage-class", "A B"}, {"region", "x\ny"}, {"nope", "1"}} {
		if err := c.SetOption(o[0], o[1]); !errors.Is(err, ErrOption) {
			t.Errorf("%s=%q: %v, want an error wrapping ErrOption", o[0], o[1], err)
		}
	}
}

func TestConfigRegion(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config")
	body := "# comment\n[default]\nregion = eu-west-1\n\n[profile work]\noutput=json\nregion=us-west-2\n[other]\nregion = ap-south-1\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for profile, want := range map[string]string{"default": "eu-west-1", "work": "us-west-2", "other": "ap-south-1", "none": ""} {
		if got := configRegion(file, profile); got != want {
			t.Errorf("profile %s: %q, want %q", profile, got, want)
		}
	}
	if got := configRegion(filepath.Join(t.TempDir(), "missing"), "default"); got != "" {
		t.Errorf("missing file: %q", got)
	}
}

// FuzzParseLocation: no panic; a location that parses prints (String) as
// one that parses to the same Config.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"s3:https://h/bucket", "s3:http://127.0.0.1:9000/b-1/a/b", "s3:https://u:p@h/b", "s3:https://[::1]:1/bbb/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, loc string) {
		c, err := ParseLocation(loc)
		if err != nil {
			return
		}
		again, err := ParseLocation(c.String())
		if err != nil || again != c {
			t.Fatalf("%q parses to %+v, whose String %q parses to %+v, %v", loc, c, c.String(), again, err)
		}
	})
}
