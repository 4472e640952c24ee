package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// listingSnapshots backs up two folders from two hosts: host a has three
// snapshots of one, one of two (tagged x,y); host b two of one. It
// returns the snapshots' IDs oldest first, as snapshots --json lists them.
func listingSnapshots(t *testing.T, e *testEnv) (one, two string, ids []string) {
	t.Helper()
	one, two = filepath.Join(e.dir, "one"), filepath.Join(e.dir, "two")
	for _, d := range []string{one, two} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		e.writeFile(filepath.Join(d, "f"), d+"\n")
	}
	e.init()
	for _, args := range [][]string{
		{"--host", "a", one}, {"--host", "b", one}, {"--host", "a", one},
		{"--host", "a", "--tag", "y", "--tag", "x", one, two}, {"--host", "b", one}, {"--host", "a", one},
	} {
		e.must(append([]string{"backup"}, args...)...)
	}
	for _, sn := range e.snapshotsJSON() {
		ids = append(ids, sn["id"].(string))
	}
	if len(ids) != 6 {
		t.Fatalf("want 6 snapshots, have %d", len(ids))
	}
	return one, two, ids
}

func snapshotIDsOf(t *testing.T, r result) []string {
	t.Helper()
	return snapshotIDs(t, r.stdout)
}

// TestSnapshotsLatest checks that --latest N keeps the N newest snapshots
// of each host and set of paths, oldest first, and refuses a negative N.
func TestSnapshotsLatest(t *testing.T) {
	e := newTestEnv(t)
	_, _, ids := listingSnapshots(t, e)
	if got, want := snapshotIDsOf(t, e.must("snapshots", "--json", "--latest", "1")), []string{ids[3], ids[4], ids[5]}; !slices.Equal(got, want) {
		t.Fatalf("--latest 1: got %v, want %v", got, want)
	}
	if got, want := snapshotIDsOf(t, e.must("snapshots", "--json", "--latest", "2")), []string{ids[1], ids[2], ids[3], ids[4], ids[5]}; !slices.Equal(got, want) {
		t.Fatalf("--latest 2: got %v, want %v", got, want)
	}
	if got, want := snapshotIDsOf(t, e.must("snapshots", "--json", "--latest", "1", "--host", "b")), []string{ids[4]}; !slices.Equal(got, want) {
		t.Fatalf("--latest 1 --host b: got %v, want %v", got, want)
	}
	r := e.must("snapshots", "--latest", "1")
	if !strings.Contains(r.stdout, "3 snapshots") || strings.Contains(r.stdout, ids[0][:8]) {
		t.Fatalf("text --latest 1 does not list 3 snapshots without the oldest\n%s", r)
	}
	r = e.run("snapshots", "--latest", "-1")
	if r.code != 1 {
		t.Fatalf("--latest -1: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `--latest -1`)
}

// TestSnapshotsGroupBy checks --group-by in JSON (restic's group_key and
// snapshots) and in text (one table per group with its heading), and that
// an unknown field is one error line with exit 1.
func TestSnapshotsGroupBy(t *testing.T) {
	e := newTestEnv(t)
	one, two, ids := listingSnapshots(t, e)
	r := e.must("snapshots", "--json", "--group-by", "host,paths")
	var groups []struct {
		GroupKey struct {
			Hostname string   `json:"hostname"`
			Paths    []string `json:"paths"`
			Tags     []string `json:"tags"`
		} `json:"group_key"`
		Snapshots []struct {
			ID string `json:"id"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil {
		t.Fatalf("not a JSON array of groups: %v\n%s", err, r)
	}
	type group struct {
		host  string
		paths string
		ids   []string
	}
	var got []group
	for _, g := range groups {
		if g.GroupKey.Tags != nil {
			t.Fatalf("tags in the key of a grouping without tags: %v", g.GroupKey.Tags)
		}
		gr := group{host: g.GroupKey.Hostname, paths: strings.Join(g.GroupKey.Paths, " ")}
		for _, sn := range g.Snapshots {
			gr.ids = append(gr.ids, sn.ID)
		}
		got = append(got, gr)
	}
	want := []group{
		{"a", one, []string{ids[0], ids[2], ids[5]}},
		{"a", one + " " + two, []string{ids[3]}},
		{"b", one, []string{ids[1], ids[4]}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d groups, want %d\n%s", len(got), len(want), r)
	}
	for i := range want {
		if got[i].host != want[i].host || got[i].paths != want[i].paths || !slices.Equal(got[i].ids, want[i].ids) {
			t.Fatalf("group %d: got %+v, want %+v", i, got[i], want[i])
		}
	}

	r = e.must("snapshots", "--group-by", "host,tags", "--latest", "1")
	for _, line := range []string{"snapshots for host a, tags []:", "snapshots for host a, tags [x y]:", "snapshots for host b, tags []:"} {
		if !strings.Contains(r.stdout, line+"\n") {
			t.Fatalf("no heading %q\n%s", line, r)
		}
	}
	if n := strings.Count(r.stdout, "1 snapshot\n"); n != 3 {
		t.Fatalf("want three tables of one snapshot (the newest of each group), have %d\n%s", n, r)
	}
	if !strings.Contains(r.stdout, ids[5][:8]) || strings.Contains(r.stdout, ids[2][:8]) {
		t.Fatalf("--latest 1 within --group-by shows the wrong snapshot of host a\n%s", r)
	}

	r = e.run("snapshots", "--group-by", "host,colour")
	if r.code != 1 {
		t.Fatalf("unknown group field: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `colour`)
}

// TestSnapshotsCompact checks that --compact leaves out the size and paths
// columns and prints the tags one a line.
func TestSnapshotsCompact(t *testing.T) {
	e := newTestEnv(t)
	one, _, ids := listingSnapshots(t, e)
	full := e.must("snapshots")
	if !strings.Contains(full.stdout, "Paths") || !strings.Contains(full.stdout, one) {
		t.Fatalf("the full table has no paths\n%s", full)
	}
	r := e.must("snapshots", "--compact")
	if strings.Contains(r.stdout, "Paths") || strings.Contains(r.stdout, "Size") || strings.Contains(r.stdout, one) {
		t.Fatalf("--compact shows sizes or paths\n%s", r)
	}
	var tagged []string
	for line := range strings.Lines(r.stdout) {
		if strings.HasPrefix(line, ids[3][:8]) || (len(tagged) == 1 && strings.HasPrefix(line, " ")) {
			tagged = append(tagged, strings.Fields(line)[len(strings.Fields(line))-1])
		}
	}
	if !slices.Equal(tagged, []string{"y", "x"}) {
		t.Fatalf("--compact: tags of the tagged snapshot are %v, want [y x] (as given to backup) one a line\n%s", tagged, r)
	}
	if !strings.Contains(r.stdout, "6 snapshots\n") {
		t.Fatalf("--compact: no count\n%s", r)
	}
}

// TestLsRecursive checks that ls with a DIR lists the DIR and what it holds
// directly, as restic does, and with --recursive everything below it; with
// no DIR, everything.
func TestLsRecursive(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	for _, name := range []string{"top", "sub/mid", "sub/deep/bottom", "sub/deep/deeper/last"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		e.writeFile(p, name+"\n")
	}
	e.init()
	e.must("backup", src)
	paths := func(r result) []string {
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		return lines[1:] // after the "snapshot ... of ... at ...:" line
	}
	sub := src + "/sub"
	if got, want := paths(e.must("ls", "latest", sub)), []string{sub, sub + "/deep", sub + "/mid"}; !slices.Equal(got, want) {
		t.Fatalf("ls DIR: got %q, want %q", got, want)
	}
	wantAll := []string{sub, sub + "/deep", sub + "/deep/bottom", sub + "/deep/deeper", sub + "/deep/deeper/last", sub + "/mid"}
	if got := paths(e.must("ls", "--recursive", "latest", sub)); !slices.Equal(got, wantAll) {
		t.Fatalf("ls --recursive DIR: got %q, want %q", got, wantAll)
	}
	if got := paths(e.must("ls", "latest")); !slices.Contains(got, sub+"/deep/deeper/last") || !slices.Contains(got, src+"/top") {
		t.Fatalf("ls without DIR does not list everything: %q", got)
	}
	r := e.must("ls", "--long", "latest", sub+"/deep")
	lines := paths(r)
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "-rw-r--r--") || !strings.HasSuffix(lines[1], " "+sub+"/deep/bottom") ||
		!strings.Contains(lines[1], fmt.Sprintf(" %d ", len("sub/deep/bottom\n"))) {
		t.Fatalf("ls --long DIR: want the folder, its file (mode, size) and its subfolder\n%s", r)
	}
}

// TestDiffMetadata checks that diff shows a path whose metadata alone
// changed (a chmod, a touch) only with --metadata, as restic does, and
// always shows content changes.
func TestDiffMetadata(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"same", "mode", "content"} {
		e.writeFile(filepath.Join(src, name), name+"\n")
	}
	e.init()
	e.must("backup", src)
	if err := os.Chmod(filepath.Join(src, "mode"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "content"), "other content\n")
	e.must("backup", src)
	ids := e.snapshotsJSON()
	first := ids[0]["short_id"].(string)

	changes := func(args ...string) map[string]string {
		msgs := jsonLines(t, e.must(append([]string{"diff", "--json"}, args...)...).stdout)
		out := map[string]string{}
		for _, m := range msgs[:len(msgs)-1] {
			out[m["path"].(string)] = m["modifier"].(string)
		}
		return out
	}
	plain := changes(first, "latest")
	if plain[filepath.Join(src, "content")] != "M" || len(plain) != 1 {
		t.Fatalf("diff without --metadata: want only the content change, got %v", plain)
	}
	meta := changes("--metadata", first, "latest")
	if meta[filepath.Join(src, "content")] != "M" || meta[filepath.Join(src, "mode")] != "U" || meta[filepath.Join(src, "same")] != "" {
		t.Fatalf("diff --metadata: want content M and mode U, got %v", meta)
	}
	r := e.must("diff", "--metadata", first, "latest")
	if !strings.Contains(r.stdout, "U    "+filepath.Join(src, "mode")+"\n") || !strings.Contains(r.stdout, " metadata changed, ") {
		t.Fatalf("text diff --metadata shows no U line or count\n%s", r)
	}
	r = e.must("diff", first, "latest")
	if strings.Contains(r.stdout, "U    ") || strings.Contains(r.stdout, "metadata changed") {
		t.Fatalf("text diff without --metadata shows metadata changes\n%s", r)
	}
}

// TestFindOldestNewest checks that find --oldest and --newest leave out
// files modified before or after the times given, in each accepted form,
// and that a time it cannot read is one error line with exit 1.
func TestFindOldestNewest(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	mtimes := map[string]time.Time{
		"f-2020": time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC),
		"f-2022": time.Date(2022, 6, 15, 8, 30, 0, 0, time.UTC),
		"f-2024": time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC),
	}
	for name, mt := range mtimes {
		p := filepath.Join(src, name)
		e.writeFile(p, name)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	e.init()
	e.must("backup", src)
	found := func(args ...string) []string {
		r := e.must(append([]string{"find", "--json"}, append(args, "f-*")...)...)
		var groups []struct {
			Matches []struct {
				Path string `json:"path"`
			} `json:"matches"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil {
			t.Fatalf("find --json is not restic's array: %v\n%s", err, r)
		}
		var out []string
		for _, g := range groups {
			for _, m := range g.Matches {
				out = append(out, filepath.Base(m.Path))
			}
		}
		return out
	}
	cases := []struct {
		args []string
		want []string
	}{
		{nil, []string{"f-2020", "f-2022", "f-2024"}},
		{[]string{"--oldest", "2021-01-01"}, []string{"f-2022", "f-2024"}},
		{[]string{"--newest", "2023-01-01 00:00"}, []string{"f-2020", "f-2022"}},
		{[]string{"-O", "2021-01-01", "-N", "2023-01-01"}, []string{"f-2022"}},
		{[]string{"--oldest", "2022-06-15 08:30:00", "--newest", "2022-06-15T08:30:00Z"}, []string{"f-2022"}},
		{[]string{"--oldest", "2022-06-15 08:30:01"}, []string{"f-2024"}},
	}
	for _, tc := range cases {
		if got := found(tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("find %q: got %v, want %v", tc.args, got, tc.want)
		}
	}
	r := e.must("find", "--newest", "2021-01-01", "f-*")
	if !strings.Contains(r.stdout, "/f-2020\n") || strings.Contains(r.stdout, "f-2022") {
		t.Fatalf("text find --newest\n%s", r)
	}
	r = e.run("find", "--oldest", "last tuesday", "f-*")
	if r.code != 1 {
		t.Fatalf("unreadable time: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `--oldest "last tuesday"`)
}

// TestFindBlobTreePack checks find --blob, --tree and --pack against IDs
// known without find: a single-chunk file's blob is the SHA-256 of its
// content, the root tree is in snapshots --json, and the packs are the
// repository's files.
func TestFindBlobTreePack(t *testing.T) {
	e := newTestEnv(t)
	src := filepath.Join(e.dir, "src")
	writeRandom(t, filepath.Join(src, "x"), 5_000, 1)
	x, err := os.ReadFile(filepath.Join(src, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "dup"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile(filepath.Join(src, "dup", "y"), string(x)) // same content, same blob
	writeRandom(t, filepath.Join(src, "z"), 5_000, 2)
	z, err := os.ReadFile(filepath.Join(src, "z"))
	if err != nil {
		t.Fatal(err)
	}
	e.init()
	e.must("backup", src)
	snap := e.snapshotsJSON()[0]
	xID, zID := fmt.Sprintf("%x", sha256.Sum256(x)), fmt.Sprintf("%x", sha256.Sum256(z))

	type hit struct{ kind, id, path, pack string }
	find := func(args ...string) []hit {
		t.Helper()
		var out []hit
		for _, m := range jsonLines(t, e.must(append([]string{"--json", "find"}, args...)...).stdout) {
			if m["snapshot"] != snap["id"] || m["message_type"] != "match" {
				t.Fatalf("find %q: %v", args, m)
			}
			pk, _ := m["pack"].(string)
			out = append(out, hit{m["object_type"].(string), m["id"].(string), m["path"].(string), pk})
		}
		return out
	}
	if got, want := find("--blob", xID[:8]), []hit{{"blob", xID, src + "/dup/y", ""}, {"blob", xID, src + "/x", ""}}; !slices.Equal(got, want) {
		t.Errorf("--blob prefix: got %v, want %v", got, want)
	}
	if got, want := find("--blob", strings.ToUpper(zID)), []hit{{"blob", zID, src + "/z", ""}}; !slices.Equal(got, want) {
		t.Errorf("--blob full ID: got %v, want %v", got, want)
	}
	root := snap["tree"].(string)
	if got, want := find("--tree", root[:10]), []hit{{"tree", root, "/", ""}}; !slices.Equal(got, want) {
		t.Errorf("--tree root: got %v, want %v", got, want)
	}

	// One backup of small files: one data pack, one tree pack; the
	// data pack is the larger.
	packs, err := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
	if err != nil || len(packs) != 2 {
		t.Fatalf("want 2 packs, have %v (%v)", packs, err)
	}
	slices.SortFunc(packs, func(a, b string) int {
		fa, _ := os.Stat(a)
		fb, _ := os.Stat(b)
		return int(fb.Size() - fa.Size())
	})
	dataPack, treePack := filepath.Base(packs[0]), filepath.Base(packs[1])
	got := find("--pack", dataPack[:12])
	want := []hit{{"blob", xID, src + "/dup/y", dataPack}, {"blob", xID, src + "/x", dataPack}, {"blob", zID, src + "/z", dataPack}}
	if !slices.Equal(got, want) {
		t.Errorf("--pack of the data pack: got %v, want %v", got, want)
	}
	var folders []string
	for _, h := range find("--pack", treePack) {
		if h.kind != "tree" || h.pack != treePack {
			t.Errorf("--pack of the tree pack: %v", h)
		}
		folders = append(folders, h.path)
	}
	if len(folders) != strings.Count(src, "/")+2 || folders[0] != "/" || !slices.Contains(folders, src+"/dup") {
		t.Errorf("--pack of the tree pack: folders %v, want / and every folder down to %s/dup", folders, src)
	}

	r := e.must("find", "--blob", zID[:8])
	if !strings.Contains(r.stdout, "Found blob "+zID+"\n ... in file "+src+"/z\n ... in snapshot "+snap["short_id"].(string)) {
		t.Fatalf("text find --blob\n%s", r)
	}
	for _, args := range [][]string{
		{"find", "--blob", "xyz"},
		{"find", "--pack", strings.Repeat("f", 64)},
		{"find", "--blob", "--tree", "ab"},
		{"find", "--blob", "--oldest", "2020-01-01", "ab"},
	} {
		r := e.run(args...)
		if r.code != 1 {
			t.Fatalf("want exit 1\n%s", r)
		}
		checkOneErrorLine(t, r, `ID|no pack|only one|--oldest`)
	}
}
