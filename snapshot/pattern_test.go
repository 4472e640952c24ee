package snapshot

import (
	"errors"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		fold    bool
		path    string
		match   bool // Match: the path or a parent matches
		full    bool // MatchFull
	}{
		{"/home/u/docs/*.txt", false, "/home/u/docs/a.txt", true, true},
		{"/home/u/docs/*.txt", false, "/home/u/docs/sub/a.txt", false, false},
		{"/home/u/docs/*.txt", false, "/other/home/u/docs/a.txt", false, false},
		{"/home/u", false, "/home/u/docs/a.txt", true, false},
		{"/home/u", false, "/home/user", false, false},
		{"/home/u", false, "/home", false, false},
		{"docs", false, "/home/u/docs/a.txt", true, false},
		{"docs", false, "/home/u/docs", true, true},
		{"docs", false, "/home/u/mydocs", false, false},
		{"*.txt", false, "/a/b.txt", true, true},
		{"*.txt", false, "/a/b.txt/c", true, false},
		{"*.txt", false, "/a/b.TXT", false, false},
		{"*.txt", true, "/a/b.TXT", true, true},
		{"*.TXT", true, "/a/b.txt", true, true},
		{"u/*.txt", false, "/home/u/a.txt", true, true},
		{"u/*.txt", false, "/home/v/a.txt", false, false},
		{"/home/**/a.txt", false, "/home/a.txt", true, true},
		{"/home/**/a.txt", false, "/home/x/y/z/a.txt", true, true},
		{"/home/**/a.txt", false, "/srv/home/x/a.txt", false, false},
		{"**/cache", false, "/home/u/.cache", false, false},
		{"**/cache", false, "/home/u/cache/x", true, false},
		{"/**", false, "/anything/at/all", true, true},
		{"/", false, "/x", true, false},
		{"a/**/b/**", false, "/z/a/q/b", true, true},
		{"/h?me/[uv]", false, "/home/v/f", true, false},
		{"/h?me/[uv]", false, "/home/w/f", false, false},
		{`/a\*b`, false, "/a*b", true, true},
		{`/a\*b`, false, "/axb", false, false},
		{"/home/u/", false, "/home/u/x", true, false}, // trailing slash cleaned
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.pattern, tt.fold)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tt.pattern, err)
		}
		if got := p.Match(tt.path); got != tt.match {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.pattern, tt.path, got, tt.match)
		}
		if got := p.MatchFull(tt.path); got != tt.full {
			t.Errorf("%q.MatchFull(%q) = %v, want %v", tt.pattern, tt.path, got, tt.full)
		}
	}
}

func TestPatternChildMayMatch(t *testing.T) {
	tests := []struct {
		pattern, dir string
		want         bool
	}{
		{"/home/u/docs/*.txt", "/home", true},
		{"/home/u/docs/*.txt", "/home/u/docs", true},
		{"/home/u/docs/*.txt", "/home/v", false},
		{"/home/u/docs/*.txt", "/srv", false},
		{"/home/u", "/home/u/deeper", true}, // the directory itself matches
		{"/home/**/x", "/home/a/b/c", true},
		{"/home/**/x", "/etc", false},
		{"*.txt", "/anything", true},
		{"docs/x", "/a/b", true},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.pattern, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.ChildMayMatch(tt.dir); got != tt.want {
			t.Errorf("%q.ChildMayMatch(%q) = %v, want %v", tt.pattern, tt.dir, got, tt.want)
		}
	}
}

func TestParsePatternBad(t *testing.T) {
	for _, s := range []string{"", "/a/[b", "x/\\", "[]a]"} {
		if _, err := ParsePattern(s, false); !errors.Is(err, ErrBadPattern) {
			t.Errorf("ParsePattern(%q) = %v, want ErrBadPattern", s, err)
		}
	}
	if _, err := ParsePatterns([]string{"ok", "[bad"}, false); !errors.Is(err, ErrBadPattern) {
		t.Errorf("ParsePatterns: %v", err)
	}
	p, err := ParsePattern("/a//**/**/b/", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "/a/**/b" {
		t.Errorf("String = %q", got)
	}
}

func FuzzPattern(f *testing.F) {
	f.Add("/home/**/[a-c]*.txt", "/home/x/b1.txt")
	f.Add("docs", "/a/docs/b")
	f.Add("\\", "/")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, err := ParsePattern(pattern, len(pattern)%2 == 0)
		if err != nil {
			if !errors.Is(err, ErrBadPattern) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		full := p.MatchFull(name)
		if full && !p.Match(name) {
			t.Fatalf("%q matches %q fully but not by Match", pattern, name)
		}
		if p.Match(name) && !p.ChildMayMatch(name) {
			t.Fatalf("%q matches %q but ChildMayMatch is false", pattern, name)
		}
	})
}
