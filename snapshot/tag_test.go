package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

func set(tags ...string) *[]string {
	s := append([]string{}, tags...)
	return &s
}

func TestTagChangeApply(t *testing.T) {
	for _, row := range []struct {
		c    TagChange
		in   []string
		want []string
	}{
		{TagChange{Add: []string{"a"}}, nil, []string{"a"}},
		{TagChange{Add: []string{"a", "b", "a"}}, []string{"b", "c"}, []string{"b", "c", "a"}},
		{TagChange{Remove: []string{"b"}}, []string{"a", "b", "c"}, []string{"a", "c"}},
		{TagChange{Remove: []string{"a"}}, []string{"a"}, nil},
		{TagChange{Add: []string{"x"}, Remove: []string{"x"}}, []string{"a"}, []string{"a"}}, // add, then remove
		{TagChange{Set: set("z", "y", "z")}, []string{"a"}, []string{"z", "y"}},
		{TagChange{Set: set()}, []string{"a", "b"}, nil},
	} {
		in := slices.Clone(row.in)
		if got := row.c.Apply(in); !slices.Equal(got, row.want) || (got == nil) != (row.want == nil) {
			t.Errorf("%+v on %q: %q, want %q", row.c, row.in, got, row.want)
		}
		if !slices.Equal(in, row.in) {
			t.Errorf("Apply changed its input: %q", in)
		}
	}
}

func TestTagChangeValidate(t *testing.T) {
	a, b := backend.Hash([]byte("a")), backend.Hash([]byte("b"))
	for _, row := range []struct {
		c    TagChange
		want string // "" for valid
	}{
		{TagChange{Snapshots: []backend.ID{a}, Add: []string{"x"}}, ""},
		{TagChange{Snapshots: []backend.ID{a, b}, Remove: []string{"x"}}, ""},
		{TagChange{Snapshots: []backend.ID{a}, Set: set()}, ""},
		{TagChange{Snapshots: []backend.ID{a}, Set: set("x", "y")}, ""},
		{TagChange{Add: []string{"x"}}, "names no snapshot"},
		{TagChange{Snapshots: []backend.ID{a, a}, Add: []string{"x"}}, "twice"},
		{TagChange{Snapshots: []backend.ID{a}}, "changes nothing"},
		{TagChange{Snapshots: []backend.ID{a}, Set: set("x"), Add: []string{"y"}}, "set together"},
		{TagChange{Snapshots: []backend.ID{a}, Add: []string{""}}, "empty tag"},
		{TagChange{Snapshots: []backend.ID{a}, Set: set("")}, "empty tag"},
	} {
		err := row.c.Validate()
		if (err == nil) != (row.want == "") || (err != nil && !strings.Contains(err.Error(), row.want)) {
			t.Errorf("%+v: %v, want %q", row.c, err, row.want)
		}
	}
}

// TestLogChangeTags checks that tag entries change tags in place (IDs
// kept, add entries untouched), survive a reload, a checkpoint and the
// pruning of the entries it covers, merge when two devices tag at once,
// and never bring a forgotten snapshot back.
func TestLogChangeTags(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	a, _ := crypt.NewIdentity()
	b, _ := crypt.NewIdentity()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l, _ := LoadLog(ctx, r)
	var ids []backend.ID
	for i := range 4 {
		id, err := l.AddSnapshot(ctx, r, a, &Snapshot{Time: now.Add(time.Duration(i) * time.Hour), Tags: []string{"daily"}}, now)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	tags := func(l *Log) map[backend.ID][]string {
		out := map[backend.ID][]string{}
		for _, sn := range l.Snapshots() {
			out[sn.ID] = sn.Tags
		}
		return out
	}
	if _, err := l.ChangeTags(ctx, r, a, TagChange{Snapshots: ids[:2], Add: []string{"keep"}}, now); err != nil {
		t.Fatal(err)
	}
	// At once, in the same Log...
	if got := tags(l)[ids[0]]; !slices.Equal(got, []string{"daily", "keep"}) {
		t.Fatalf("after ChangeTags: %q", got)
	}
	// ... and read back, with the add entry as written.
	l, _ = LoadLog(ctx, r)
	if got := tags(l); !slices.Equal(got[ids[0]], []string{"daily", "keep"}) || !slices.Equal(got[ids[1]], []string{"daily", "keep"}) ||
		!slices.Equal(got[ids[2]], []string{"daily"}) || len(l.Problems) != 0 {
		t.Fatalf("reloaded: %q, problems %v", got, l.Problems)
	}
	if orig := l.Entries[ids[0]].Snapshot.Tags; !slices.Equal(orig, []string{"daily"}) {
		t.Fatalf("the add entry's snapshot changed: %q", orig)
	}

	// Two devices change tags at once: both changes count.
	la, _ := LoadLog(ctx, r)
	lb, _ := LoadLog(ctx, r)
	if _, err := la.ChangeTags(ctx, r, a, TagChange{Snapshots: ids[2:3], Add: []string{"from-a"}}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.ChangeTags(ctx, r, b, TagChange{Snapshots: ids[2:3], Add: []string{"from-b"}, Remove: []string{"daily"}}, now); err != nil {
		t.Fatal(err)
	}
	l, _ = LoadLog(ctx, r)
	if got := tags(l)[ids[2]]; len(l.Heads) != 2 || len(got) != 2 || !slices.Contains(got, "from-a") || !slices.Contains(got, "from-b") {
		t.Fatalf("after concurrent tags: heads %d, tags %q", len(l.Heads), got)
	}

	// A device that has not seen a forget tags the forgotten snapshot:
	// it stays forgotten.
	stale, _ := LoadLog(ctx, r)
	if _, err := l.Forget(ctx, r, a, ids[3:4], now); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.ChangeTags(ctx, r, b, TagChange{Snapshots: ids[3:4], Set: set("back")}, now); err != nil {
		t.Fatal(err)
	}
	l, _ = LoadLog(ctx, r)
	if _, ok := tags(l)[ids[3]]; ok || len(l.Snapshots()) != 3 || len(l.Problems) != 0 {
		t.Fatalf("forgotten snapshot back: %d live, problems %v", len(l.Snapshots()), l.Problems)
	}
	if _, err := l.ChangeTags(ctx, r, a, TagChange{Snapshots: ids[3:4], Add: []string{"x"}}, now); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("tagging a forgotten snapshot: %v", err)
	}
	if _, err := l.ChangeTags(ctx, r, a, TagChange{Snapshots: ids[:1]}, now); err == nil {
		t.Fatal("a change of nothing was written")
	}

	// A checkpoint carries the tags; the covered entries can go.
	want := tags(l)
	if _, err := l.WriteCheckpoint(ctx, r, a, now); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PruneCovered(ctx, r); err != nil {
		t.Fatal(err)
	}
	l, _ = LoadLog(ctx, r)
	got := tags(l)
	if len(l.Entries) != 1 || len(got) != len(want) || len(l.Problems) != 0 {
		t.Fatalf("after checkpoint and prune: %d entries, %q, problems %v", len(l.Entries), got, l.Problems)
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("%s: %q after the checkpoint, %q before", id.Str(), got[id], w)
		}
	}
	// A Set of a nil list clears the tags (written as [], not null).
	if _, err := l.ChangeTags(ctx, r, a, TagChange{Snapshots: ids[:1], Set: new([]string)}, now); err != nil {
		t.Fatal(err)
	}
	l, _ = LoadLog(ctx, r)
	if got := tags(l)[ids[0]]; got != nil || len(l.Problems) != 0 {
		t.Fatalf("after set to nothing: %q, problems %v", got, l.Problems)
	}
}

// TestLogUnknownOp checks that an entry of an operation this version does
// not know (a newer cairn's) is a problem saying so, and that forget and
// tag then refuse to write.
func TestLogUnknownOp(t *testing.T) {
	ctx := context.Background()
	r := newMemLog(t)
	a, _ := crypt.NewIdentity()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l, _ := LoadLog(ctx, r)
	id, err := l.AddSnapshot(ctx, r, a, &Snapshot{Time: now}, now)
	if err != nil {
		t.Fatal(err)
	}
	// A well-formed, signed entry of op 'z' on top.
	env := &crypt.Entry{Seq: l.MaxSeq() + 1, Time: now.UnixNano(), Op: 'z', Parents: l.nextParents(),
		Body: r.Keys().SealFile(kindLogBody, []byte(`{"zebra":{}}`))}
	data, err := a.EncodeEntry(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveFile(ctx, backend.LogFile, data); err != nil {
		t.Fatal(err)
	}
	l, _ = LoadLog(ctx, r)
	if l.Newer != 1 || len(l.Problems) != 1 || !strings.Contains(l.Problems[0], `unknown to this version of cairn: "z" (written by a newer cairn? upgrade this one)`) {
		t.Fatalf("newer %d, problems %q", l.Newer, l.Problems)
	}
	if len(l.Snapshots()) != 1 {
		t.Fatalf("the snapshot before it is gone: %d", len(l.Snapshots()))
	}
	if _, err := l.Forget(ctx, r, a, []backend.ID{id}, now); err == nil || !strings.Contains(err.Error(), "upgrade cairn") {
		t.Fatalf("forget: %v", err)
	}
	if _, err := l.ChangeTags(ctx, r, a, TagChange{Snapshots: []backend.ID{id}, Add: []string{"x"}}, now); err == nil || !strings.Contains(err.Error(), "upgrade cairn") {
		t.Fatalf("tag: %v", err)
	}
}

// TestTagBodyEncoding pins the JSON of a tag entry's body, which
// docs/design.md specifies.
func TestTagBodyEncoding(t *testing.T) {
	id := backend.Hash([]byte("a"))
	for _, row := range []struct {
		c    TagChange
		want string
	}{
		{TagChange{Snapshots: []backend.ID{id}, Add: []string{"x"}, Remove: []string{"y"}}, `{"tag":{"snapshots":["` + id.String() + `"],"add":["x"],"remove":["y"]}}`},
		{TagChange{Snapshots: []backend.ID{id}, Set: set()}, `{"tag":{"snapshots":["` + id.String() + `"],"set":[]}}`},
	} {
		b, err := json.Marshal(body{Tag: &row.c})
		if err != nil || string(b) != row.want {
			t.Errorf("%s, %v\nwant %s", b, err, row.want)
		}
		e, err := decodeBody(id, &crypt.Entry{Op: OpTag}, b)
		if err != nil || e.Tag == nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		again, _ := json.Marshal(body{Tag: e.Tag})
		if string(again) != row.want {
			t.Errorf("round trip: %s", again)
		}
	}
	// The op must match the body.
	if _, err := decodeBody(id, &crypt.Entry{Op: OpAdd}, []byte(`{"tag":{"snapshots":["`+id.String()+`"],"add":["x"]}}`)); !errors.Is(err, ErrFormat) {
		t.Errorf("a tag body under op add: %v", err)
	}
	if _, err := decodeBody(id, &crypt.Entry{Op: OpTag}, []byte(`{"tag":{"snapshots":[],"add":["x"]}}`)); !errors.Is(err, ErrFormat) {
		t.Errorf("a tag body naming no snapshot: %v", err)
	}
}
