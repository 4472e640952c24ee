package snapshot

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrBadPattern is returned by ParsePattern for a malformed glob.
var ErrBadPattern = errors.New("malformed pattern")

// Pattern is a parsed path glob as restic's --include, --exclude and find
// take them. It is split at "/" into elements; each element is a path.Match
// pattern ("*", "?", "[a-z]", "\\" escapes) matched against one path
// element, and the element "**" matches any number of path elements, none
// included. A pattern that starts with "/" is anchored at the root of the
// snapshot; any other pattern may start at any element of a path.
//
// Paths given to the matching methods are slash-separated paths inside a
// snapshot such as "/home/u/file" ("/" is the root).
type Pattern struct {
	parts    []string
	anchored bool
	fold     bool
}

// ParsePattern parses s. With ignoreCase, the pattern and the paths it is
// matched against are compared in lower case.
func ParsePattern(s string, ignoreCase bool) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("%w: empty pattern", ErrBadPattern)
	}
	p := Pattern{anchored: strings.HasPrefix(s, "/"), fold: ignoreCase}
	clean := strings.TrimPrefix(path.Clean(s), "/")
	if ignoreCase {
		clean = strings.ToLower(clean)
	}
	if clean != "" {
		for part := range strings.SplitSeq(clean, "/") {
			if part == "**" {
				if len(p.parts) > 0 && p.parts[len(p.parts)-1] == "**" {
					continue // "**/**" is "**"
				}
			} else if _, err := path.Match(part, ""); err != nil {
				return Pattern{}, fmt.Errorf("%w: %q", ErrBadPattern, s)
			}
			p.parts = append(p.parts, part)
		}
	}
	return p, nil
}

// ParsePatterns parses each of list; see ParsePattern.
func ParsePatterns(list []string, ignoreCase bool) ([]Pattern, error) {
	out := make([]Pattern, 0, len(list))
	for _, s := range list {
		p, err := ParsePattern(s, ignoreCase)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// String gives the pattern in its cleaned form.
func (p Pattern) String() string {
	s := strings.Join(p.parts, "/")
	if p.anchored {
		return "/" + s
	}
	return s
}

// Match reports whether p matches name or one of its parent directories, the
// rule for --include and --exclude: "/home/u" and "docs" both match
// "/home/u/docs/a.txt", since excluding a directory excludes its contents.
func (p Pattern) Match(name string) bool {
	return p.run(name, true, false)
}

// MatchFull reports whether p matches the whole of name (an anchored
// pattern) or its last elements (a pattern that is not anchored): "*.txt"
// matches "/a/b.txt" but not "/a/b.txt/c".
func (p Pattern) MatchFull(name string) bool {
	return p.run(name, false, false)
}

// ChildMayMatch reports whether p may match something below the directory
// dir (restore uses it to decide whether to descend into a directory that
// is not itself included).
func (p Pattern) ChildMayMatch(dir string) bool {
	if !p.anchored {
		return true
	}
	return p.run(dir, true, true)
}

// run simulates the pattern as a small automaton over the elements of name.
// State i means "parts[:i] matched so far"; "**" loops on itself.
// prefix accepts as soon as any leading part of name matched; live reports
// whether any state survives the whole name.
func (p Pattern) run(name string, prefix, live bool) bool {
	if p.fold {
		name = strings.ToLower(name)
	}
	m := len(p.parts)
	cur := make([]bool, m+1)
	next := make([]bool, m+1)
	cur[0] = true
	p.closure(cur)
	if cur[m] && (prefix || name == "/" || name == "") {
		return true
	}
	rest := strings.TrimPrefix(name, "/")
	for rest != "" {
		var elem string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			elem, rest = rest[:i], rest[i+1:]
		} else {
			elem, rest = rest, ""
		}
		if !p.anchored {
			cur[0] = true
			p.closure(cur)
		}
		clear(next)
		alive := false
		for i, part := range p.parts {
			if !cur[i] {
				continue
			}
			if part == "**" {
				next[i] = true
				alive = true
			} else if ok, _ := path.Match(part, elem); ok {
				next[i+1] = true
				alive = true
			}
		}
		p.closure(next)
		cur, next = next, cur
		if cur[m] && (prefix || rest == "") {
			return true
		}
		if !alive && p.anchored {
			return false
		}
	}
	if live {
		for _, s := range cur {
			if s {
				return true
			}
		}
	}
	return false
}

// closure adds the states reachable by letting a "**" match nothing.
func (p Pattern) closure(s []bool) {
	for i, part := range p.parts {
		if s[i] && part == "**" {
			s[i+1] = true
		}
	}
}

// MatchAny reports whether any of list matches name (see Pattern.Match).
func MatchAny(list []Pattern, name string) bool {
	for _, p := range list {
		if p.Match(name) {
			return true
		}
	}
	return false
}
