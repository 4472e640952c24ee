package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/crypt"
)

// snapshotTags maps each live snapshot's ID to its tags.
func snapshotTags(t *testing.T, e *testEnv, args ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	r := e.must(append(args, "snapshots", "--json")...)
	var snaps []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &snaps); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	for _, sn := range snaps {
		out[sn["id"].(string)] = toStrings(sn["tags"])
	}
	return out
}

// idsOf lists the IDs "snapshots --json ARGS" prints, in its order.
func idsOf(t *testing.T, e *testEnv, args ...string) []string {
	t.Helper()
	r := e.must(append([]string{"snapshots", "--json"}, args...)...)
	var snaps []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &snaps); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	var ids []string
	for _, sn := range snaps {
		ids = append(ids, sn["id"].(string))
	}
	return ids
}

// verifyLogKeyless reads every log file of the repository in dir as a
// party without the password would (a friend's server, a mirror) and
// checks the chain: envelopes, signatures, links and sequence numbers.
func verifyLogKeyless(t *testing.T, dir string) int {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	envs := map[[32]byte]*crypt.Entry{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, "log", n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		env, err := crypt.DecodeEntry(b)
		if err != nil {
			t.Fatalf("log/%s: %v", n.Name(), err)
		}
		envs[sha256.Sum256(b)] = env
	}
	ch := crypt.VerifyChain(envs)
	if len(ch.Problems) != 0 || len(ch.Heads) != 1 {
		t.Fatalf("keyless verification of %s: %d heads, problems %q", dir, len(ch.Heads), ch.Problems)
	}
	return len(envs)
}

// TestTag changes tags with every form of the command and checks that
// the snapshots keep their IDs, that snapshots --tag, forget's policy,
// check, log and a mirrored copy all see the new tags, and that the log
// still verifies, with and without the password.
func TestTag(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	a, b := filepath.Join(e.dir, "a"), filepath.Join(e.dir, "b")
	mkdirAll(t, a)
	mkdirAll(t, b)
	for i, content := range []string{"one\n", "two\n", "three\n"} {
		e.writeFile(filepath.Join(a, "f"), content)
		if i < 2 {
			e.must("backup", "--tag", "daily", a)
		} else {
			e.must("backup", a)
		}
	}
	e.writeFile(filepath.Join(b, "g"), "bee\n")
	e.must("backup", "--tag", "daily", b)
	ids := idsOf(t, e)
	if len(ids) != 4 {
		t.Fatalf("%d snapshots", len(ids))
	}
	logCount := func() int { return len(fileNames(t, filepath.Join(e.repo, "log"))) }

	r := e.must("tag", "--add", "keep", ids[0][:8])
	if !strings.Contains(r.stdout, "snapshot "+ids[0][:8]+": tags [daily] -> [daily keep]") || !strings.Contains(r.stdout, "changed the tags of 1 snapshot") {
		t.Errorf("tag --add output\n%s", r)
	}
	if got := idsOf(t, e); !slices.Equal(got, ids) {
		t.Fatalf("IDs changed: %q, were %q", got, ids)
	}
	if got := idsOf(t, e, "--tag", "keep"); !slices.Equal(got, ids[:1]) {
		t.Errorf("snapshots --tag keep: %q", got)
	}
	// No snapshot named: every one passing the filters.
	e.must("tag", "--path", b, "--add", "bee,other")
	e.must("tag", "--tag", "daily", "--remove", "daily", "--add", "weekly")
	want := map[string][]string{ids[0]: {"keep", "weekly"}, ids[1]: {"weekly"}, ids[2]: nil, ids[3]: {"bee", "other", "weekly"}}
	if got := snapshotTags(t, e); !mapsEqual(got, want) {
		t.Fatalf("tags %q\nwant %q", got, want)
	}
	// --set replaces; --set "" clears.
	e.must("tag", "--set", "x", "--set", "y,x", ids[2])
	if got := snapshotTags(t, e)[ids[2]]; !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("after --set x --set y,x: %q", got)
	}
	e.must("tag", "--set", "", ids[2])
	if got := snapshotTags(t, e)[ids[2]]; got != nil {
		t.Errorf("after --set \"\": %q", got)
	}
	// A change of nothing writes nothing.
	before := logCount()
	if r := e.must("tag", "--add", "keep", ids[0]); !strings.Contains(r.stdout, "no snapshot changed") || logCount() != before {
		t.Errorf("tag that changes nothing: %d log entries, were %d\n%s", logCount(), before, r)
	}
	r = e.must("--json", "tag", "--remove", "other", "latest")
	lines := jsonLines(t, r.stdout)
	if len(lines) != 2 || lines[0]["message_type"] != "changed_snapshot" || lines[0]["snapshot_id"] != ids[3] || lines[0]["new_snapshot_id"] != ids[3] ||
		!slices.Equal(toStrings(lines[0]["tags"]), []string{"bee", "weekly"}) || lines[1]["message_type"] != "summary" || lines[1]["changed_snapshots"] != float64(1) {
		t.Errorf("tag --json\n%s", r)
	}

	// The log shows tag entries and no problem; check is clean.
	r = e.must("log")
	if r.stderr != "" || strings.Count(r.stdout, " tag ") != 6 || !strings.Contains(r.stdout, "tags of 1 snapshot +keep") {
		t.Errorf("log\n%s", r)
	}
	if r := e.must("check"); !strings.Contains(r.stdout, "no problems found") || r.stderr != "" {
		t.Errorf("check\n%s", r)
	}
	n := verifyLogKeyless(t, e.repo)

	// A mirrored copy sees the tags, verifies, and follows later changes.
	friend := filepath.Join(e.dir, "friend")
	e.must("mirror", friend)
	if got := snapshotTags(t, e, "-r", friend); !mapsEqual(got, snapshotTags(t, e)) {
		t.Errorf("copy's tags %q", got)
	}
	if got := verifyLogKeyless(t, friend); got != n {
		t.Errorf("copy has %d log entries, source %d", got, n)
	}
	e.must("tag", "--add", "late", ids[1])
	e.must("mirror", friend)
	if got := idsOf(t, e, "-r", friend, "--tag", "late"); !slices.Equal(got, ids[1:2]) {
		t.Errorf("copy after a second mirror: --tag late %q", got)
	}
	if r := e.must("-r", friend, "check"); !strings.Contains(r.stdout, "no problems found") {
		t.Errorf("check of the copy\n%s", r)
	}

	// find --tag selects by the new tags: only ids[1] has "late", and
	// only tag entries gave it.
	r = e.must("--json", "find", "--tag", "late", "f")
	if hits := jsonArray(t, r.stdout); len(hits) != 1 || hits[0]["snapshot"] != ids[1] {
		t.Errorf("find --tag late f\n%s", r)
	}

	// forget --tag selects by the new tags: "weekly" came only from tag
	// entries, and ids[2] lost it, so keeping the newest of the weekly
	// ones in one group forgets ids[0] and ids[1].
	e.saveState("tagged")
	r = e.must("forget", "--tag", "weekly", "--group-by", "", "--keep-last", "1")
	if got := idsOf(t, e); !slices.Equal(got, []string{ids[2], ids[3]}) {
		t.Errorf("after forget --tag weekly --keep-last 1: %q\n%s", got, r)
	}
	e.restoreState("tagged")

	// forget's policy sees the new tags: keep-tag keep saves ids[0].
	r = e.must("forget", "--keep-last", "1", "--keep-tag", "keep")
	if got := idsOf(t, e); !slices.Equal(got, []string{ids[0], ids[2], ids[3]}) {
		t.Errorf("after forget --keep-last 1 --keep-tag keep (grouped by host and paths): %q\n%s", got, r)
	}

	for _, row := range []struct {
		args []string
		want string
	}{
		{[]string{"tag", ids[0]}, `nothing to do`},
		{[]string{"tag", "--set", "a", "--remove", "b"}, `--set cannot be given with --add or --remove`},
		{[]string{"tag", "--add", "a", ids[1]}, `no matching snapshot`},
		{[]string{"tag", "--add", "a", "latest:/x"}, `names a folder`},
		{[]string{"--no-lock", "tag", "--add", "a"}, `writes to the repository and must lock it`},
	} {
		r := e.run(row.args...)
		if r.code != exitError {
			t.Errorf("want exit 1\n%s", r)
			continue
		}
		checkOneErrorLine(t, r, row.want)
	}
}

// TestTagDuringBackup tags a snapshot while a backup holds its lock: tag
// appends beside it as backup does, the log forks and the next entry
// merges it, and the result verifies.
func TestTagDuringBackup(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	data := filepath.Join(e.dir, "data")
	mkdirAll(t, data)
	e.writeFile(filepath.Join(data, "f"), "one\n")
	e.must("backup", data)
	first := idsOf(t, e)[0]
	p := e.startPaused("before-snapshot", nil, "backup", "--tag", "second", data)
	e.must("tag", "--add", "first", first)
	if r := p.resume(); r.code != 0 {
		t.Fatalf("paused backup\n%s", r)
	}
	tags := snapshotTags(t, e)
	if len(tags) != 2 || !slices.Equal(tags[first], []string{"first"}) {
		t.Fatalf("tags %q", tags)
	}
	// The backup read the log before the tag entry: two heads, which
	// the next entry merges.
	if r := e.must("log"); !strings.Contains(r.stdout, " tag ") || !strings.HasSuffix(r.stdout, ", 2 heads\n") {
		t.Fatalf("log after a tag during a backup\n%s", r)
	}
	e.must("tag", "--add", "merge", first)
	if r := e.must("log"); !strings.HasSuffix(r.stdout, ", 1 head\n") {
		t.Fatalf("log after the merge\n%s", r)
	}
	verifyLogKeyless(t, e.repo)
	if r := e.must("check"); !strings.Contains(r.stdout, "no problems found") {
		t.Errorf("check\n%s", r)
	}
}

// TestTagTampered changes a tag entry behind cairn's back, as a storage
// server or peer without the password could: check must exit 1 naming
// the problem, and no reader applies the tampered change.
func TestTagTampered(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	mkdirAll(t, src)
	e.writeFile(filepath.Join(src, "f"), "one\n")
	e.must("backup", "--tag", "daily", src)
	id := idsOf(t, e)[0]
	e.must("tag", "--add", "keep", "--remove", "daily", id)
	entries := e.logEntries()
	tagEntry := entries[len(entries)-1]
	if tagEntry.Op != "tag" {
		t.Fatalf("newest entry is %+v, not the tag entry", tagEntry)
	}
	e.must("check")
	e.saveState("tagged")
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T)
		problem string
	}{
		{"edited and renamed to its new hash", func(t *testing.T) {
			b, err := os.ReadFile(tagEntry.path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-40] ^= 1 // in the sealed body
			id := crypt.EntryID(b)
			if err := os.WriteFile(filepath.Join(e.repo, "log", hex.EncodeToString(id[:])), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(tagEntry.path); err != nil {
				t.Fatal(err)
			}
		}, `error: log entry [0-9a-f]{8}: decode log entry from device [A-Z0-9]{7}: bad signature`},
		{"signed by another device", func(t *testing.T) {
			resign(t, tagEntry.path)
		}, `error: log entry [0-9a-f]{8}: from device [A-Z0-9]{7} the repository does not list as a writer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.restoreState("tagged")
			tc.tamper(t)
			r := e.run("check")
			if r.code != exitError || !matches(tc.problem, r.stdout) {
				t.Fatalf("check must exit 1 naming %q\n%s", tc.problem, r)
			}
			r = e.run("snapshots")
			if r.code != 0 || !strings.Contains(r.stderr, "cairn: warning: snapshot log: ") {
				t.Fatalf("snapshots must warn and work\n%s", r)
			}
			if got := snapshotTags(t, e); !slices.Equal(got[id], []string{"daily"}) {
				t.Errorf("the tampered change applied: tags %q", got[id])
			}
			if r := e.run("tag", "--add", "x", id); r.code != 0 {
				t.Fatalf("tag on top of the tampered log\n%s", r)
			}
			if r := e.run("check"); r.code != exitError {
				t.Fatalf("check after a tag on top of the tampered log\n%s", r)
			}
		})
	}
}

// TestTagPeerCopy mirrors tag entries to a friend's "cairn peer serve",
// which checks each log entry it stores without the password: the copy
// holds them, verifies, shows the tags, and takes later tag entries.
func TestTagPeerCopy(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	mkdirAll(t, src)
	e.writeFile(filepath.Join(src, "f"), "one\n")
	e.must("backup", "--tag", "daily", src)
	e.writeFile(filepath.Join(src, "f"), "two\n")
	e.must("backup", "--tag", "daily", src)
	ids := idsOf(t, e)
	e.must("tag", "--add", "keep", ids[0])

	owner := peerID(t, e, "")
	friend := startPeerServer(t, e, filepath.Join(e.dir, "friend-config"), filepath.Join(e.dir, "friend-root"), "--allow", owner)
	loc := friend.loc("laptop")
	e.must("mirror", loc)
	if got, want := snapshotTags(t, e, "-r", loc), snapshotTags(t, e); !mapsEqual(got, want) {
		t.Fatalf("the peer copy's tags %q, the source's %q", got, want)
	}
	onFriend := friend.folder(owner, "laptop")
	if got, want := verifyLogKeyless(t, onFriend), verifyLogKeyless(t, e.repo); got != want {
		t.Errorf("the peer copy has %d log entries, the source %d", got, want)
	}

	e.must("tag", "--set", "archived", ids[1])
	e.must("mirror", loc)
	want := map[string][]string{ids[0]: {"daily", "keep"}, ids[1]: {"archived"}}
	if got := snapshotTags(t, e, "-r", loc); !mapsEqual(got, want) {
		t.Errorf("the peer copy's tags after a second mirror %q, want %q", got, want)
	}
	if r := e.must("-r", loc, "check"); !strings.Contains(r.stdout, "no problems found") || r.stderr != "" {
		t.Errorf("check of the peer copy\n%s", r)
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}
