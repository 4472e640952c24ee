package archiver

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		fold    bool
		path    string
		dir     bool
		want    bool
	}{
		{pattern: "*.o", path: "/a/b/x.o", want: true},
		{pattern: "*.o", path: "/x.o", want: true},
		{pattern: "*.o", path: "/a/x.o/y", want: false}, // only the last components count
		{pattern: "*.o", path: "/a/x.c", want: false},
		{pattern: "/a/b", path: "/a/b", dir: true, want: true},
		{pattern: "/a/b", path: "/x/a/b", want: false},
		{pattern: "/a/b", path: "/a/b/c", want: false}, // /a/b itself is excluded first
		{pattern: "a/b", path: "/x/a/b", want: true},
		{pattern: "a/b", path: "/a/b", want: true},
		{pattern: "a/b", path: "/x/ya/b", want: false},
		{pattern: "/a/*/c", path: "/a/b/c", want: true},
		{pattern: "/a/*/c", path: "/a/b/d/c", want: false},
		{pattern: "/a/**/c", path: "/a/c", want: true},
		{pattern: "/a/**/c", path: "/a/b/d/c", want: true},
		{pattern: "/a/**/c", path: "/b/a/c", want: false},
		{pattern: "/a/**", path: "/a", dir: true, want: true},
		{pattern: "/a/**", path: "/a/b/c", want: true},
		{pattern: "**/c", path: "/c", want: true},
		{pattern: "a/**/b/**/c", path: "/x/a/b/c", want: true},
		{pattern: "a/**/b/**/c", path: "/x/a/c/b", want: false},
		{pattern: "cache/", path: "/x/cache", dir: true, want: true},
		{pattern: "cache/", path: "/x/cache", dir: false, want: false},
		{pattern: "/x/cache//", path: "/x/cache", dir: true, want: true},
		{pattern: "[abc]*", path: "/q/b1", want: true},
		{pattern: "[abc]*", path: "/q/d1", want: false},
		{pattern: "\\*", path: "/*", want: true},
		{pattern: "\\*", path: "/x", want: false},
		{pattern: "?", path: "/a/b", want: true},
		{pattern: "?", path: "/a/bc", want: false},
		{pattern: "a/../b", path: "/x/b", want: true},
		{pattern: "./b", path: "/x/b", want: true},
		{pattern: "*.JPG", fold: true, path: "/a/B.jpg", want: true},
		{pattern: "*.JPG", path: "/a/B.jpg", want: false},
		{pattern: "/Home/U", fold: true, path: "/home/u", dir: true, want: true},
		{pattern: "f\u00e9", fold: true, path: "/F\u00c9", want: true},
	} {
		sel, err := newSelector(Options{Excludes: cond(!tc.fold, tc.pattern), IExcludes: cond(tc.fold, tc.pattern)})
		if err != nil {
			t.Errorf("%q: %v", tc.pattern, err)
			continue
		}
		if got := sel.excluded(tc.path, fakeInfo{dir: tc.dir}); got != tc.want {
			t.Errorf("pattern %q (fold %v) on %q (dir %v): %v, want %v", tc.pattern, tc.fold, tc.path, tc.dir, got, tc.want)
		}
	}
}

func cond(b bool, s string) []string {
	if b {
		return []string{s}
	}
	return nil
}

func TestPatternNegation(t *testing.T) {
	sel, err := newSelector(Options{Excludes: []string{"*.log", "!keep*.log", "keep-not.log"}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/a/x.log":        true,
		"/a/keep.log":     false,
		"/a/keep-not.log": true, // the last matching pattern decides
		"/a/x.txt":        false,
	} {
		if got := sel.excluded(path, fakeInfo{}); got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

func TestPatternErrors(t *testing.T) {
	for _, p := range []string{"", "!", "/", "//", "!/", "[", "a/[b", "a/b\\", "/a/[]"} {
		if _, err := compilePattern(p, false); !errors.Is(err, ErrPattern) {
			t.Errorf("pattern %q: %v, want ErrPattern", p, err)
		}
	}
	if _, err := New(newFakeRepo(), Options{IExcludes: []string{"["}}); !errors.Is(err, ErrPattern) {
		t.Errorf("New with a bad pattern: %v", err)
	}
	for _, spec := range []string{"", ":header", "a/b", ".."} {
		if _, err := New(newFakeRepo(), Options{ExcludeIfPresent: []string{spec}}); !errors.Is(err, ErrPattern) {
			t.Errorf("exclude-if-present %q: %v", spec, err)
		}
	}
	if _, err := New(newFakeRepo(), Options{ExcludeLargerThan: -1}); err == nil {
		t.Error("negative size limit accepted")
	}
}

func TestReadPatterns(t *testing.T) {
	in := "# comment\n\n  *.o  \r\n/abs/path/\n\t!keep\n   # indented comment\nlast"
	got, err := ReadPatterns(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"*.o", "/abs/path/", "!keep", "last"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ReadPatterns(strings.NewReader("ok\n[bad\n")); !errors.Is(err, ErrPattern) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad pattern: %v", err)
	}
	long := strings.Repeat("x", maxPatternLine+1)
	if _, err := ReadPatterns(strings.NewReader("a\n" + long + "\n")); !errors.Is(err, ErrPattern) {
		t.Errorf("long line: %v", err)
	}
	if _, err := ReadPatterns(strings.NewReader(strings.Repeat("a\n", maxPatternCount+1))); !errors.Is(err, ErrPattern) {
		t.Errorf("too many patterns: %v", err)
	}
}

// TestExclusions backs up a tree with each exclusion option and compares
// the snapshot with the file system minus the expected exclusions.
func TestExclusions(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a.txt", "a.log", "keep.log", "cache/x", "cache/y.txt", "sub/a.log",
		"sub/deep/z.o", "Photos/IMG.JPG", "sub/deep/cache"} {
		writeFile(t, filepath.Join(dir, p), []byte(p))
	}
	writeFile(t, filepath.Join(dir, "sub", "big"), make([]byte, 2000))

	for _, tc := range []struct {
		name string
		opts Options
		out  []string // relative to dir; everything below these is left out too
	}{
		{"none", Options{}, nil},
		{"glob", Options{Excludes: []string{"*.log"}}, []string{"a.log", "keep.log", "sub/a.log"}},
		{"negation", Options{Excludes: []string{"*.log", "!keep.log"}}, []string{"a.log", "sub/a.log"}},
		{"absolute", Options{Excludes: []string{filepath.Join(dir, "sub")}}, []string{"sub"}},
		{"absolute elsewhere", Options{Excludes: []string{"/sub"}}, nil},
		{"dir only", Options{Excludes: []string{"cache/"}}, []string{"cache"}},
		{"relative path", Options{Excludes: []string{"deep/z.o"}}, []string{"sub/deep/z.o"}},
		{"double star", Options{Excludes: []string{"sub/**/*.o"}}, []string{"sub/deep/z.o"}},
		{"case-insensitive", Options{IExcludes: []string{"*.jpg"}}, []string{"Photos/IMG.JPG"}},
		{"case-sensitive", Options{Excludes: []string{"*.jpg"}}, nil},
		{"larger than", Options{ExcludeLargerThan: 1000}, []string{"sub/big"}},
		{"both lists", Options{Excludes: []string{"a.*"}, IExcludes: []string{"PHOTOS"}}, []string{"a.txt", "a.log", "sub/a.log", "Photos"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := newFakeRepo()
			root, _ := snap(t, newArchiver(t, repo, tc.opts), dir)
			checkSnapshot(t, repo, root, []string{dir}, func(p string) bool {
				return slices.Contains(tc.out, strings.TrimPrefix(p, dir+"/"))
			})
		})
	}
}

func TestExcludeTagged(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cachedir", CacheTagName), []byte(CacheTagSignature+"\n# a cache\n"))
	writeFile(t, filepath.Join(dir, "cachedir", "data"), []byte("d"))
	writeFile(t, filepath.Join(dir, "cachedir", "sub", "x"), []byte("x"))
	writeFile(t, filepath.Join(dir, "badtag", CacheTagName), []byte("Signature: wrong"))
	writeFile(t, filepath.Join(dir, "badtag", "data"), []byte("d"))
	writeFile(t, filepath.Join(dir, "nobackup", ".nobackup"), nil)
	writeFile(t, filepath.Join(dir, "nobackup", "data"), []byte("d"))
	writeFile(t, filepath.Join(dir, "headed", ".mark"), []byte("SKIP ME please"))
	writeFile(t, filepath.Join(dir, "headed", "data"), []byte("d"))
	writeFile(t, filepath.Join(dir, "wronghead", ".mark"), []byte("keep me"))
	writeFile(t, filepath.Join(dir, "wronghead", "data"), []byte("d"))
	writeFile(t, filepath.Join(dir, "plain", "data"), []byte("d"))

	rec := &recorder{}
	repo := newFakeRepo()
	opts := Options{ExcludeCaches: true, ExcludeIfPresent: []string{".nobackup", ".mark:SKIP ME"}, Progress: rec}
	root, _ := snap(t, newArchiver(t, repo, opts), dir)
	out := []string{"cachedir/data", "cachedir/sub", "nobackup/data", "headed/data"}
	checkSnapshot(t, repo, root, []string{dir}, func(p string) bool {
		return slices.Contains(out, strings.TrimPrefix(p, dir+"/"))
	})
	slices.Sort(rec.warnings)
	want := []string{filepath.Join(dir, "badtag", CacheTagName), filepath.Join(dir, "wronghead", ".mark")}
	if !slices.Equal(rec.warnings, want) {
		t.Errorf("warnings %q, want %q", rec.warnings, want)
	}
}

// fakeInfo is an os.FileInfo for pattern tests.
type fakeInfo struct {
	dir  bool
	size int64
}

func (f fakeInfo) Name() string       { return "x" }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.dir }
func (f fakeInfo) Sys() any           { return nil }
func (f fakeInfo) Mode() os.FileMode {
	if f.dir {
		return os.ModeDir | 0o755
	}
	return 0o644
}

// naiveMatch is the obvious exponential matcher, the reference for the
// dynamic-programming one.
func naiveMatch(pat, str []string) bool {
	if len(pat) == 0 {
		return len(str) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(str); i++ {
			if naiveMatch(pat[1:], str[i:]) {
				return true
			}
		}
		return false
	}
	return len(str) > 0 && matchPart(pat[0], str[0]) && naiveMatch(pat[1:], str[1:])
}

func FuzzMatchParts(f *testing.F) {
	f.Add("a/**/b", "a/x/y/b")
	f.Add("**/*.o", "q/r.o")
	f.Add("**/**/a", "a")
	f.Add("[a-c]?/**", "b1/z")
	f.Fuzz(func(t *testing.T, pat, str string) {
		p, s := strings.Split(pat, "/"), strings.Split(str, "/")
		if len(p) > 12 || len(s) > 12 {
			return
		}
		if got, want := matchParts(p, s), naiveMatch(p, s); got != want {
			t.Errorf("matchParts(%q, %q) = %v, naive %v", p, s, got, want)
		}
	})
}

func FuzzReadPatterns(f *testing.F) {
	f.Add("# c\n*.o\n!keep\n/abs/\n")
	f.Add("[\n")
	f.Add("a/**/b\r\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		pats, err := ReadPatterns(strings.NewReader(in))
		if err != nil {
			if pats != nil {
				t.Error("patterns returned with an error")
			}
			if !errors.Is(err, ErrPattern) {
				t.Errorf("error %v is not ErrPattern", err)
			}
			return
		}
		sel, err := newSelector(Options{Excludes: pats, IExcludes: pats})
		if err != nil {
			t.Fatalf("patterns from ReadPatterns rejected: %v", err)
		}
		for _, p := range pats {
			if p == "" || p != strings.TrimSpace(p) || strings.HasPrefix(p, "#") {
				t.Errorf("pattern %q not trimmed or a comment", p)
			}
			sel.excluded("/"+strings.Trim(p, "/!"), fakeInfo{})
		}
	})
}
