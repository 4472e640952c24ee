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
)

// inspectFixture is a repository with two snapshots of a small tree with
// a multi-chunk file, for the list and cat tests.
func inspectFixture(t *testing.T) (e *testEnv, data string) {
	t.Helper()
	e = newTestEnv(t)
	e.init()
	data = filepath.Join(e.dir, "data")
	mkdirAll(t, filepath.Join(data, "sub"))
	e.writeFile(filepath.Join(data, "hello.txt"), "hello, cat\n")
	writeRandom(t, filepath.Join(data, "sub", "big.bin"), 5<<20, 7)
	e.must("backup", data)
	e.writeFile(filepath.Join(data, "second.txt"), "second\n")
	e.must("backup", data)
	return e, data
}

// lines splits output into its lines, sorted.
func lines(s string) []string {
	out := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	slices.Sort(out)
	return out
}

// fileNames lists the files in a repository folder (data/ through its
// 256 subfolders), sorted.
func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, d.Name())
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestList checks each type "cairn list" lists against the repository's
// folders, the snapshot list and the index files.
func TestList(t *testing.T) {
	e, _ := inspectFixture(t)
	for _, row := range []struct{ typ, dir string }{{"keys", "keys"}, {"index", "index"}, {"packs", "data"}, {"log", "log"}} {
		got := lines(e.must("list", row.typ).stdout)
		if want := fileNames(t, filepath.Join(e.repo, row.dir)); len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("list %s: %q, want %q", row.typ, got, want)
		}
	}
	var snaps []string
	for _, sn := range e.snapshotsJSON() {
		snaps = append(snaps, sn["id"].(string))
	}
	if got := strings.Split(strings.TrimSpace(e.must("list", "snapshots").stdout), "\n"); len(snaps) != 2 || !slices.Equal(got, snaps) {
		t.Errorf("list snapshots: %q, want %q (oldest first)", got, snaps)
	}
	if got := e.must("list", "locks").stdout; got != "" {
		t.Errorf("list locks with none held: %q", got)
	}

	// Blobs: "TYPE ID", exactly the blobs the index files list.
	var want []string
	for _, id := range lines(e.must("list", "index").stdout) {
		var idx indexJSON
		if err := json.Unmarshal([]byte(e.must("cat", "index", id).stdout), &idx); err != nil {
			t.Fatal(err)
		}
		for _, p := range idx.Packs {
			for _, b := range p.Blobs {
				want = append(want, b.Type+" "+b.ID.String())
			}
		}
	}
	slices.Sort(want)
	got := lines(e.must("list", "blobs").stdout)
	if len(want) < 4 || !slices.Equal(got, want) {
		t.Errorf("list blobs:\n%q\nwant (from cat index):\n%q", got, want)
	}
	for _, l := range got {
		if !matches(`^(data|tree) [0-9a-f]{64}$`, l) {
			t.Errorf("list blobs line %q", l)
		}
	}
	// --json: one object a line; blobs name their pack; -q prints too.
	packs := lines(e.must("list", "packs").stdout)
	for _, m := range jsonLines(t, e.must("--json", "list", "blobs").stdout) {
		if m["message_type"] != "blob" || !slices.Contains(packs, m["pack"].(string)) || (m["type"] != "data" && m["type"] != "tree") {
			t.Errorf("list --json blobs line %v", m)
		}
	}
	if got := lines(e.must("-q", "list", "packs").stdout); !slices.Equal(got, packs) {
		t.Errorf("list -q packs: %q", got)
	}

	// A lock held by a paused backup is listed, and cat lock shows it.
	p := e.startPaused("before-snapshot", nil, "backup", filepath.Join(e.dir, "data"))
	locks := lines(e.must("list", "locks").stdout)
	if want := fileNames(t, filepath.Join(e.repo, "locks")); len(locks) != 1 || !slices.Equal(locks, want) {
		t.Fatalf("list locks during a backup: %q, want %q", locks, want)
	}
	var lock map[string]any
	if err := json.Unmarshal([]byte(e.must("cat", "lock", locks[0][:10]).stdout), &lock); err != nil {
		t.Fatal(err)
	}
	if lock["exclusive"] != false || lock["pid"] != float64(p.cmd.Process.Pid) || lock["hostname"] == "" {
		t.Errorf("cat lock: %v (backup PID %d)", lock, p.cmd.Process.Pid)
	}
	if r := p.resume(); r.code != 0 {
		t.Fatalf("paused backup\n%s", r)
	}

	r := e.run("list", "snapshot")
	if r.code != exitError {
		t.Fatalf("list snapshot: want exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `unknown type "snapshot" \(want keys\|locks\|snapshots\|index\|packs\|blobs\|log\|meta\)`)
}

// TestCat checks every object "cairn cat" prints against the repository
// and the backed-up files.
func TestCat(t *testing.T) {
	e, data := inspectFixture(t)
	catJSON := func(args ...string) map[string]any {
		t.Helper()
		r := e.must(append([]string{"cat"}, args...)...)
		var m map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
			t.Fatalf("cat %q: %v\n%s", args, err, r)
		}
		return m
	}

	cfg := catJSON("config")
	if cfg["version"] != float64(1) || cfg["cipher"] != "xchacha20-poly1305" || !matches(`^[0-9a-f]{64}$`, cfg["id"].(string)) {
		t.Errorf("cat config: %v", cfg)
	}

	snaps := e.snapshotsJSON()
	latest := snaps[len(snaps)-1]
	sn := catJSON("snapshot", "latest")
	if sn["id"] != latest["id"] || sn["tree"] != latest["tree"] || !slices.Equal(toStrings(sn["paths"]), []string{data}) {
		t.Errorf("cat snapshot latest: %v, want %v", sn, latest)
	}
	if sn := catJSON("snapshot", snaps[0]["short_id"].(string)); sn["id"] != snaps[0]["id"] {
		t.Errorf("cat snapshot %s: %v", snaps[0]["short_id"], sn)
	}

	// key: the public fields only.
	keyID := lines(e.must("list", "keys").stdout)[0]
	raw := e.must("cat", "key", keyID[:8]).stdout
	var key map[string]any
	if err := json.Unmarshal([]byte(raw), &key); err != nil {
		t.Fatal(err)
	}
	kdf, _ := key["kdf"].(map[string]any)
	if key["id"] != keyID || key["current"] != true || key["version"] != float64(2) || kdf["algorithm"] != "argon2id" || key["hostname"] == "" {
		t.Errorf("cat key: %v", key)
	}
	if _, ok := key["data"]; ok {
		t.Errorf("cat key shows the wrapped key ring: %v", key)
	}
	var file struct{ Data string }
	stored, err := os.ReadFile(filepath.Join(e.repo, "keys", keyID))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stored, &file); err != nil || len(file.Data) < 40 || strings.Contains(raw, file.Data[:40]) {
		t.Errorf("cat key output holds the key file's data (%v)\n%s", err, raw)
	}

	// masterkey is refused, and prints nothing.
	r := e.run("cat", "masterkey")
	if r.code != exitError || r.stdout != "" {
		t.Fatalf("cat masterkey: want exit 1 and no output\n%s", r)
	}
	checkOneErrorLine(t, r, `cat masterkey: refused: cairn never prints the master key`)

	// index: every pack it lists is in data/, with blobs.
	packs := lines(e.must("list", "packs").stdout)
	for _, id := range lines(e.must("list", "index").stdout) {
		var idx indexJSON
		if err := json.Unmarshal([]byte(e.must("cat", "index", id[:12]).stdout), &idx); err != nil {
			t.Fatal(err)
		}
		for _, p := range idx.Packs {
			if !slices.Contains(packs, p.ID.String()) || len(p.Blobs) == 0 || len(p.KeyID) != 16 {
				t.Errorf("cat index %s: pack %+v", id, p)
			}
		}
	}

	// pack: the stored bytes, byte for byte.
	for _, id := range packs {
		r := e.must("cat", "pack", id)
		stored, err := os.ReadFile(filepath.Join(e.repo, "data", id[:2], id))
		if err != nil {
			t.Fatal(err)
		}
		if r.stdout != string(stored) || sha256Hex([]byte(r.stdout)) != id {
			t.Errorf("cat pack %s: %d bytes, stored %d", id, len(r.stdout), len(stored))
		}
	}

	// tree: by SNAPSHOT:SUBPATH and by ID, the blob whose hash is its ID.
	tree := e.must("cat", "tree", "latest:"+data).stdout
	var listing struct{ Nodes []map[string]any }
	if err := json.Unmarshal([]byte(tree), &listing); err != nil {
		t.Fatal(err)
	}
	var names []string
	var helloBlob string
	for _, n := range listing.Nodes {
		names = append(names, n["name"].(string))
		if n["name"] == "hello.txt" {
			helloBlob = toStrings(n["content"])[0]
		}
	}
	if !slices.Equal(names, []string{"hello.txt", "second.txt", "sub"}) {
		t.Errorf("cat tree latest:%s: names %q", data, names)
	}
	treeID := sha256Hex([]byte(tree))
	if byID := e.must("cat", "tree", treeID).stdout; byID != tree {
		t.Errorf("cat tree %s differs from cat tree latest:%s", treeID, data)
	}
	if root := e.must("cat", "tree", "latest").stdout; sha256Hex([]byte(root)) != latest["tree"] {
		t.Errorf("cat tree latest: hash %s, snapshot's tree %s", sha256Hex([]byte(root)), latest["tree"])
	}

	// blob: a data blob's plaintext is the file's content; a tree blob too.
	if got := e.must("cat", "blob", helloBlob).stdout; got != "hello, cat\n" {
		t.Errorf("cat blob %s: %q", helloBlob, got)
	}
	if got := e.must("cat", "blob", treeID).stdout; got != tree {
		t.Errorf("cat blob of a tree: %q", got)
	}

	for _, row := range []struct {
		args []string
		want string
	}{
		{[]string{"cat", "bogus"}, `cat: unknown type "bogus"`},
		{[]string{"cat", "index"}, `cat index: missing ID`},
		{[]string{"cat", "config", "x"}, `cat config: unexpected argument "x"`},
		{[]string{"cat", "blob", "abc"}, `cat blob: "abc" is not a blob ID`},
		{[]string{"cat", "blob", strings.Repeat("0", 64)}, `blob not in index`},
		{[]string{"cat", "pack", "zz"}, `invalid ID "zz"`},
		{[]string{"cat", "pack", "0000000000"}, `no pack file matches "0000000000"`},
		{[]string{"cat", "snapshot", "latest:/x"}, `cat tree prints that`},
	} {
		r := e.run(row.args...)
		if r.code != exitError || r.stdout != "" {
			t.Errorf("want exit 1, no output\n%s", r)
			continue
		}
		checkOneErrorLine(t, r, row.want)
	}

	// A damaged pack is written as it is, then reported.
	id := packs[0]
	name := filepath.Join(e.repo, "data", id[:2], id)
	flipByte(t, name, 10)
	r = e.run("cat", "pack", id)
	stored, err = os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != exitError || r.stdout != string(stored) {
		t.Fatalf("cat of a damaged pack: want its bytes and exit 1\n%s", r)
	}
	checkOneErrorLine(t, r, `damaged: content does not match its name`)
}
