package archiver

import (
	"errors"
	"testing"
)

// TestExcluder checks that an Excluder decides by path as backup does:
// anchored and free patterns, "**", directory-only patterns, negation,
// and case folding for iexcludes.
func TestExcluder(t *testing.T) {
	x, err := NewExcluder([]string{"secret", "/home/u/tmp/", "*.log", "!keep.log", "/a/**/c"}, []string{"*.JPG"})
	if err != nil {
		t.Fatal(err)
	}
	if x.Empty() {
		t.Fatal("Empty with patterns")
	}
	for _, tc := range []struct {
		path string
		dir  bool
		want bool
	}{
		{"/home/u/secret", false, true},
		{"/secret", true, true},
		{"/home/u/secrets", false, false},
		{"/home/u/tmp", true, true},
		{"/home/u/tmp", false, false}, // a trailing "/" means folders only
		{"/x/home/u/tmp", true, false},
		{"/var/x.log", false, true},
		{"/var/keep.log", false, false}, // re-included by "!keep.log"
		{"/a/c", true, true},
		{"/a/b/d/c", false, true},
		{"/b/a/c", false, false},
		{"/p/IMG.jpg", false, true},
		{"/p/IMG.jpeg", false, false},
		{"/", true, false},
	} {
		if got := x.Excluded(tc.path, tc.dir); got != tc.want {
			t.Errorf("Excluded(%q, dir %v) = %v, want %v", tc.path, tc.dir, got, tc.want)
		}
		sel, _ := newSelector(Options{Excludes: []string{"secret", "/home/u/tmp/", "*.log", "!keep.log", "/a/**/c"}, IExcludes: []string{"*.JPG"}})
		if got := sel.excluded(tc.path, fakeInfo{dir: tc.dir}); got != tc.want {
			t.Errorf("backup's selector on %q (dir %v) = %v, want %v", tc.path, tc.dir, got, tc.want)
		}
	}
	empty, err := NewExcluder(nil, nil)
	if err != nil || !empty.Empty() || empty.Excluded("/a", false) {
		t.Fatalf("an Excluder without patterns: %v, %v", empty, err)
	}
	if _, err := NewExcluder([]string{"a/[b"}, nil); !errors.Is(err, ErrPattern) {
		t.Fatalf("bad pattern: %v, want ErrPattern", err)
	}
}
