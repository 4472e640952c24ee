package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

// DefaultPathTemplates lay the mount out as restic's: by snapshot ID, by
// time, by host and by tag.
var DefaultPathTemplates = []string{"ids/%i", "snapshots/%T", "hosts/%h/%T", "tags/%t/%T"}

// DefaultTimeTemplate names snapshots by their time (Go's time layout).
const DefaultTimeTemplate = "2006-01-02T15:04:05Z07:00"

// latestName is the symlink to the newest snapshot in a folder of
// snapshots named by time.
const latestName = "latest"

// ErrTemplate reports a path or time template that cannot be used.
var ErrTemplate = errors.New("bad template")

// piece is one part of a parsed path template.
type piece struct {
	lit  string // literal text, "/" separating folders; or
	verb byte   // 'i', 'I', 'u', 'h', 't' or 'T'
}

// template is a parsed path template.
type template struct {
	text   string
	pieces []piece
	// timeLeaf says the last path element is exactly %T: each folder of
	// snapshots it makes gets a "latest" symlink.
	timeLeaf bool
	// static are the leading folders that hold no verb; they exist even
	// when no snapshot fills them.
	static []string
}

// parseTemplates checks the path templates and the time template.
func parseTemplates(paths []string, timeTemplate string) ([]template, error) {
	if timeTemplate == "" {
		return nil, fmt.Errorf("%w: the time template is empty", ErrTemplate)
	}
	if strings.ContainsRune(timeTemplate, 0) {
		return nil, fmt.Errorf("%w: time template %q holds a NUL byte", ErrTemplate, timeTemplate)
	}
	if strings.HasPrefix(timeTemplate, "/") || strings.HasSuffix(timeTemplate, "/") {
		return nil, fmt.Errorf("%w: time template %q starts or ends with \"/\"", ErrTemplate, timeTemplate)
	}
	out := make([]template, 0, len(paths))
	for _, p := range paths {
		t, err := parseTemplate(p)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func parseTemplate(text string) (template, error) {
	t := template{text: text}
	if strings.ContainsRune(text, 0) {
		return t, fmt.Errorf("%w: path template %q holds a NUL byte", ErrTemplate, text)
	}
	var lit strings.Builder
	hasVerb := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '%' {
			lit.WriteByte(c)
			continue
		}
		i++
		if i == len(text) {
			return t, fmt.Errorf("%w: path template %q ends in a lone %%", ErrTemplate, text)
		}
		switch v := text[i]; v {
		case '%':
			lit.WriteByte('%')
		case 'i', 'I', 'u', 'h', 't', 'T':
			if lit.Len() > 0 {
				t.pieces = append(t.pieces, piece{lit: lit.String()})
				lit.Reset()
			}
			t.pieces = append(t.pieces, piece{verb: v})
			hasVerb = true
		default:
			return t, fmt.Errorf("%w: path template %q: unknown %%%c (use %%i, %%I, %%u, %%h, %%t, %%T or %%%%)", ErrTemplate, text, v)
		}
	}
	if lit.Len() > 0 {
		t.pieces = append(t.pieces, piece{lit: lit.String()})
	}
	if !hasVerb {
		return t, fmt.Errorf("%w: path template %q names no snapshot (use %%i, %%I, %%u, %%h, %%t or %%T)", ErrTemplate, text)
	}
	// The literal folder names must be names: "." and ".." would climb
	// out. (A verb never gives either: see nameValue.)
	var skeleton strings.Builder
	for _, p := range t.pieces {
		if p.verb != 0 {
			skeleton.WriteString("%")
		}
		skeleton.WriteString(p.lit)
	}
	for _, elem := range strings.Split(skeleton.String(), "/") {
		if elem == "." || elem == ".." {
			return t, fmt.Errorf("%w: path template %q holds %q", ErrTemplate, text, elem)
		}
	}
	last := t.pieces[len(t.pieces)-1]
	t.timeLeaf = last.verb == 'T' && (len(t.pieces) == 1 || strings.HasSuffix(t.pieces[len(t.pieces)-2].lit, "/"))
	// The static prefix: whole folders of the first literal.
	if first := t.pieces[0]; first.verb == 0 {
		elems := strings.Split(first.lit, "/")
		for _, e := range elems[:len(elems)-1] {
			if e != "" {
				t.static = append(t.static, e)
			}
		}
	}
	return t, nil
}

// nameValue turns a snapshot's host, user or tag into something that can
// stand in one file name: "/" and NUL become "_", and the names "", "."
// and ".." become "_", "_" and "__" (restic does the same to tags).
func nameValue(s string) string {
	switch s {
	case "", ".":
		return "_"
	case "..":
		return "__"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

// expand returns the paths (as lists of names) where t puts sn; none for
// a template with %t and a snapshot without tags, one for each tag
// otherwise. timeName is the snapshot's time in the time template.
func (t template) expand(sn *snapshot.Snapshot, timeName string) [][]string {
	outs := []string{""}
	for _, p := range t.pieces {
		var vals []string
		switch p.verb {
		case 0:
			vals = []string{p.lit}
		case 'i':
			vals = []string{sn.ID.Str()}
		case 'I':
			vals = []string{sn.ID.String()}
		case 'u':
			vals = []string{nameValue(sn.Username)}
		case 'h':
			vals = []string{nameValue(sn.Hostname)}
		case 'T':
			vals = []string{timeName}
		case 't':
			if len(sn.Tags) == 0 {
				return nil
			}
			for _, tag := range sn.Tags {
				vals = append(vals, nameValue(tag))
			}
		}
		next := make([]string, 0, len(outs)*len(vals))
		for _, o := range outs {
			for _, v := range vals {
				next = append(next, o+v)
			}
		}
		outs = next
	}
	paths := make([][]string, 0, len(outs))
	for _, o := range slices.Compact(sortedCopy(outs)) {
		var elems []string
		for _, e := range strings.Split(o, "/") {
			switch e {
			case "":
				continue
			case ".", "..": // only a time template can make these
				e = nameValue(e)
			}
			elems = append(elems, e)
		}
		if len(elems) > 0 {
			paths = append(paths, elems)
		}
	}
	return paths
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// entry is a folder, snapshot or symlink of the part of the mount the
// templates make. Built once at mount time and never changed after, so it
// is read without locks.
type entry struct {
	// children are a folder's entries (nil for a snapshot or link);
	// names lists them sorted.
	children map[string]*entry
	names    []string
	// sn is the snapshot of a snapshot folder (and of a link, its target).
	sn *snapshot.Snapshot
	// link is a symlink's target, a name in the same folder.
	link string
	// time is a snapshot's time, or a folder's newest snapshot's.
	time time.Time
}

func (e *entry) isDir() bool { return e.sn == nil }

// buildLayout lays snaps out by the templates. It returns the root folder
// and a warning for each path it could not use.
func buildLayout(snaps []*snapshot.Snapshot, templates []template, timeTemplate string) (*entry, []string) {
	root := &entry{children: map[string]*entry{}}
	var warnings []string
	for _, t := range templates {
		if _, err := root.mkdirs(t.static); err != nil {
			warnings = append(warnings, fmt.Sprintf("path template %q: %v", t.text, err))
		}
	}
	// Oldest first, ties by ID, so that the "-1" suffixes of equal names
	// and the "latest" links are the same on every mount.
	snaps = slices.Clone(snaps)
	slices.SortStableFunc(snaps, func(a, b *snapshot.Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	type latest struct {
		dir *entry
		sn  *snapshot.Snapshot
		nm  string
	}
	var latestOrder []*entry
	newest := map[*entry]latest{}
	for _, sn := range snaps {
		timeName := sn.Time.Local().Format(timeTemplate)
		for _, t := range templates {
			for _, p := range t.expand(sn, timeName) {
				dir, err := root.mkdirs(p[:len(p)-1])
				if err != nil {
					warnings = append(warnings, fmt.Sprintf("snapshot %s at %s: %v", sn.ID.Str(), strings.Join(p, "/"), err))
					continue
				}
				name := dir.unique(p[len(p)-1])
				dir.children[name] = &entry{sn: sn, time: sn.Time}
				if t.timeLeaf {
					if _, ok := newest[dir]; !ok {
						latestOrder = append(latestOrder, dir)
					}
					newest[dir] = latest{dir, sn, name}
				}
			}
		}
	}
	for _, dir := range latestOrder {
		l := newest[dir]
		if old, ok := dir.children[latestName]; ok && old.link == "" {
			continue // a snapshot is named "latest": it wins
		}
		dir.children[latestName] = &entry{sn: l.sn, link: l.nm, time: l.sn.Time}
	}
	root.finish()
	return root, warnings
}

// mkdirs returns the folder at path below e, making the missing ones.
func (e *entry) mkdirs(path []string) (*entry, error) {
	for i, name := range path {
		c, ok := e.children[name]
		if !ok {
			c = &entry{children: map[string]*entry{}}
			e.children[name] = c
		}
		if !c.isDir() {
			return nil, fmt.Errorf("%s is a snapshot, not a folder", strings.Join(path[:i+1], "/"))
		}
		e = c
	}
	return e, nil
}

// unique returns name, or name-1, name-2, ... if it is taken.
func (e *entry) unique(name string) string {
	n := name
	for i := 1; ; i++ {
		if _, ok := e.children[n]; !ok {
			return n
		}
		n = name + "-" + strconv.Itoa(i)
	}
}

// finish sorts every folder's names and sets its time to its newest
// snapshot's.
func (e *entry) finish() {
	if !e.isDir() {
		return
	}
	e.names = make([]string, 0, len(e.children))
	for name, c := range e.children {
		e.names = append(e.names, name)
		c.finish()
		if c.time.After(e.time) {
			e.time = c.time
		}
	}
	slices.Sort(e.names)
}
