package archiver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// ErrPattern is returned for a malformed exclude pattern or pattern file.
var ErrPattern = errors.New("bad exclude pattern")

// CacheTagName and CacheTagSignature identify a cache directory
// (https://bford.info/cachedir/); Options.ExcludeCaches uses them.
const (
	CacheTagName      = "CACHEDIR.TAG"
	CacheTagSignature = "Signature: 8a477f597d28d172789f06886806bc55"
)

// Caps on a pattern file: they are far above any real list and keep a
// wrong file (a binary, /dev/zero) from filling memory.
const (
	maxPatternLine  = 4096
	maxPatternCount = 100_000
)

// ReadPatterns reads an exclude file: one pattern per line; surrounding
// white space is trimmed; empty lines and lines starting with "#" are
// ignored. Lines longer than 4096 bytes and files of more than 100000
// patterns are rejected with ErrPattern. The patterns are checked for
// syntax.
func ReadPatterns(rd io.Reader) ([]string, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 512), maxPatternLine+1)
	var pats []string
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if len(pats) == maxPatternCount {
			return nil, fmt.Errorf("%w: more than %d patterns", ErrPattern, maxPatternCount)
		}
		if _, err := compilePattern(s, false); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		pats = append(pats, s)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrPattern, line+1, maxPatternLine)
		}
		return nil, fmt.Errorf("read patterns: %w", err)
	}
	return pats, nil
}

// pattern is a compiled exclude pattern.
type pattern struct {
	parts   []string // path components; a relative pattern starts with "**"
	dirOnly bool     // trailing "/": matches directories only
	negate  bool     // leading "!": re-includes what earlier patterns excluded
}

// compilePattern parses one pattern; fold lowercases it for
// case-insensitive matching.
func compilePattern(s string, fold bool) (pattern, error) {
	orig := s
	var p pattern
	if strings.HasPrefix(s, "!") {
		p.negate = true
		s = s[1:]
	}
	if fold {
		s = strings.ToLower(s)
	}
	if strings.HasSuffix(s, "/") {
		p.dirOnly = true
		s = strings.TrimRight(s, "/")
		if s == "" {
			return p, fmt.Errorf("%w: %q matches nothing", ErrPattern, orig)
		}
	}
	if s == "" {
		return p, fmt.Errorf("%w: empty pattern", ErrPattern)
	}
	abs := strings.HasPrefix(s, "/")
	s = path.Clean("/" + s) // drops "//", "." and resolves ".."
	if s == "/" {
		return p, fmt.Errorf("%w: %q matches nothing", ErrPattern, orig)
	}
	if !abs {
		p.parts = append(p.parts, "**")
	}
	for _, part := range strings.Split(s[1:], "/") {
		if part != "**" {
			if _, err := filepath.Match(part, ""); err != nil {
				return p, fmt.Errorf("%w: %q: %v", ErrPattern, orig, err)
			}
		}
		p.parts = append(p.parts, part)
	}
	return p, nil
}

// match reports whether the components of an absolute path match.
func (p *pattern) match(comps []string, isDir bool) bool {
	if p.dirOnly && !isDir {
		return false
	}
	return matchParts(p.parts, comps)
}

// matchParts matches pattern components against path components, "**"
// standing for any number (zero included) of components. It is dynamic
// programming over suffixes, O(len(pat)·len(str)) component matches, so
// patterns full of "**" cost no more than others.
func matchParts(pat, str []string) bool {
	// next[j] says whether pat[i+1:] matches str[j:]; cur is for pat[i:].
	next := make([]bool, len(str)+1)
	cur := make([]bool, len(str)+1)
	next[len(str)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		if pat[i] == "**" {
			cur[len(str)] = next[len(str)]
			for j := len(str) - 1; j >= 0; j-- {
				cur[j] = next[j] || cur[j+1]
			}
		} else {
			cur[len(str)] = false
			for j := len(str) - 1; j >= 0; j-- {
				cur[j] = next[j+1] && matchPart(pat[i], str[j])
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

func matchPart(pat, name string) bool {
	if !strings.ContainsAny(pat, `*?[\`) {
		return pat == name
	}
	ok, err := filepath.Match(pat, name)
	return err == nil && ok
}

// patternList is an ordered list of patterns; the last one that matches a
// path decides, so a "!" pattern can re-include what an earlier one
// excluded.
type patternList struct {
	pats []pattern
	fold bool
}

func (l *patternList) excluded(comps []string, isDir bool) bool {
	ex := false
	for i := range l.pats {
		if l.pats[i].match(comps, isDir) {
			ex = !l.pats[i].negate
		}
	}
	return ex
}

// tagSpec is one exclude-if-present rule: a file name and the bytes it
// must start with (none: any file of that name).
type tagSpec struct {
	name   string
	header []byte
}

// selector decides which items are left out.
type selector struct {
	lists   []patternList
	maxSize int64
	tags    []tagSpec
}

func newSelector(opts Options) (*selector, error) {
	s := &selector{maxSize: opts.ExcludeLargerThan}
	for _, set := range []struct {
		pats []string
		fold bool
	}{{opts.Excludes, false}, {opts.IExcludes, true}} {
		l := patternList{fold: set.fold}
		for _, str := range set.pats {
			p, err := compilePattern(str, set.fold)
			if err != nil {
				return nil, err
			}
			l.pats = append(l.pats, p)
		}
		if len(l.pats) > 0 {
			s.lists = append(s.lists, l)
		}
	}
	for _, spec := range opts.ExcludeIfPresent {
		name, header, _ := strings.Cut(spec, ":")
		if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
			return nil, fmt.Errorf("%w: exclude-if-present %q needs a file name", ErrPattern, spec)
		}
		s.tags = append(s.tags, tagSpec{name: name, header: []byte(header)})
	}
	if opts.ExcludeCaches {
		s.tags = append(s.tags, tagSpec{name: CacheTagName, header: []byte(CacheTagSignature)})
	}
	return s, nil
}

// excluded reports whether the item at the absolute path p, with lstat
// result fi, is to be left out by the patterns or the size limit.
func (s *selector) excluded(p string, fi os.FileInfo) bool {
	if s.maxSize > 0 && fi.Mode().IsRegular() && fi.Size() > s.maxSize {
		return true
	}
	return s.matchPath(p, fi.IsDir())
}

// matchPath reports whether the patterns leave out the item at the
// absolute path p, a directory when isDir.
func (s *selector) matchPath(p string, isDir bool) bool {
	if len(s.lists) == 0 {
		return false
	}
	comps := splitPath(p)
	var lower []string
	for i := range s.lists {
		l := &s.lists[i]
		c := comps
		if l.fold {
			if lower == nil {
				lower = splitPath(strings.ToLower(p))
			}
			c = lower
		}
		if l.excluded(c, isDir) {
			return true
		}
	}
	return false
}

// tagFilter applies the exclude-if-present rules to a directory with the
// sorted entry names: if the directory holds a tag file, only the tag file
// is kept (restic's behaviour: the directory and its tag stay, so the
// exclusion is visible in the snapshot). It returns nil when everything is
// kept. A tag file that cannot be read excludes nothing, with a warning.
func (r *run) tagFilter(dir string, names []string) func(string) bool {
	return r.a.sel.tagFilter(dir, names, r.warn)
}

// tagFilter is run.tagFilter; warn (nil: none) is told about a tag file
// that cannot be read.
func (s *selector) tagFilter(dir string, names []string, warn func(string, error)) func(string) bool {
	var tagged []string
	for _, t := range s.tags {
		if _, found := slices.BinarySearch(names, t.name); !found {
			continue
		}
		ok, err := hasTag(filepath.Join(dir, t.name), t.header)
		if err != nil {
			if warn != nil {
				warn(filepath.Join(dir, t.name), fmt.Errorf("exclusion tag file: %w", err))
			}
			continue
		}
		if ok {
			tagged = append(tagged, t.name)
		}
	}
	if len(tagged) == 0 {
		return nil
	}
	return func(name string) bool {
		for _, t := range tagged {
			if name != t {
				return false
			}
		}
		return true
	}
}

// hasTag reports whether the file at p starts with header (any file does
// when header is empty).
func hasTag(p string, header []byte) (bool, error) {
	if len(header) == 0 {
		return true, nil
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, len(header))
	if _, err := io.ReadFull(f, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, errors.New("shorter than its signature")
		}
		return false, err
	}
	if !bytes.Equal(buf, header) {
		return false, errors.New("signature does not match")
	}
	return true, nil
}
