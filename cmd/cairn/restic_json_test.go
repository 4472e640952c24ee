package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The JSON of cairn's commands against restic 0.19.1's, field by field:
// both tools run the same commands on the same files, and every field
// restic prints (in every message type) must be in cairn's output with
// the same JSON type, unless resticNotApplicable says why not. cairn may
// print more; each extra field must be documented in docs/user-guide.md.

// resticVersion is the restic whose JSON cairn follows.
const resticVersion = "0.19.1"

// requireNamed fails the test when CAIRN_TEST_REQUIRE names what, and
// skips it otherwise, saying why.
func requireNamed(t *testing.T, what, why string) {
	t.Helper()
	for _, r := range strings.FieldsFunc(os.Getenv("CAIRN_TEST_REQUIRE"), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if r == what {
			t.Fatalf("CAIRN_TEST_REQUIRE names %s, but %s", what, why)
		}
	}
	t.Skipf("%s; set CAIRN_TEST_REQUIRE=%s to make this a failure", why, what)
}

// findRestic returns the path of restic 0.19.1: on $PATH or in
// $(go env GOPATH)/bin, where scripts/test-deps.sh installs it.
func findRestic(t *testing.T) string {
	t.Helper()
	var cands []string
	if p, err := exec.LookPath("restic"); err == nil {
		cands = append(cands, p)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		cands = append(cands, filepath.Join(strings.TrimSpace(string(out)), "bin", "restic"))
	}
	for _, p := range cands {
		out, err := exec.Command(p, "version").Output()
		if err == nil && strings.HasPrefix(string(out), "restic "+resticVersion+" ") {
			return p
		}
	}
	requireNamed(t, "restic", "restic "+resticVersion+" is not installed (scripts/test-deps.sh installs it)")
	return ""
}

// resticNotApplicable lists the restic fields cairn does not print, by
// "COMMAND MESSAGE-TYPE PATH", with the reason; docs/user-guide.md says
// the same.
var resticNotApplicable = map[string]string{}

// resticMustPrint names, by command, the message types each comparison
// covers besides the one document of the other commands.
var resticMustPrint = map[string][]string{
	"backup":  {"status", "summary"},
	"restore": {"status", "summary"},
}

// jsonShape is the set of JSON types seen at each path of a message
// ("" the message itself, ".a.b" a field, "[]" the elements of an array).
type jsonShape map[string]map[string]bool

func (s jsonShape) add(path string, v any) {
	kind := ""
	switch x := v.(type) {
	case nil:
		kind = "null"
	case bool:
		kind = "boolean"
	case json.Number:
		kind = "number"
	case string:
		kind = "string"
	case []any:
		kind = "array"
		for _, e := range x {
			s.add(path+"[]", e)
		}
	case map[string]any:
		kind = "object"
		for k, e := range x {
			s.add(path+"."+k, e)
		}
	}
	if s[path] == nil {
		s[path] = map[string]bool{}
	}
	s[path][kind] = true
}

// jsonMessages parses a command's standard output, one JSON document or
// a stream of them, into shapes by message type: a top-level object's
// "message_type", "" for anything else. It fails the test on anything
// that is not JSON.
func jsonMessages(t *testing.T, what, out string) map[string]jsonShape {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	shapes := map[string]jsonShape{}
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", what, err, out)
		}
		key := ""
		if m, ok := v.(map[string]any); ok {
			if mt, ok := m["message_type"].(string); ok {
				key = mt
			}
		}
		if shapes[key] == nil {
			shapes[key] = jsonShape{}
		}
		shapes[key].add("", v)
	}
	if len(shapes) == 0 {
		t.Fatalf("%s: no JSON output", what)
	}
	return shapes
}

// nonNull returns the types other than null.
func nonNull(types map[string]bool) []string {
	var out []string
	for k := range types {
		if k != "null" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// compareShapes returns the differences of cairn's output from restic's
// for one command, and cairn's extra paths.
func compareShapes(cmd string, restic, cairn map[string]jsonShape) (problems, extras []string) {
	for mt, rs := range restic {
		cs := cairn[mt]
		if cs == nil {
			problems = append(problems, fmt.Sprintf("%s: no %q message", cmd, mt))
			continue
		}
		for path, rtypes := range rs {
			want := nonNull(rtypes)
			key := fmt.Sprintf("%s %s %s", cmd, mt, path)
			if len(want) == 0 || resticNotApplicable[key] != "" {
				continue // restic printed only null: any type will do
			}
			got := nonNull(cs[path])
			switch {
			case len(got) == 0:
				problems = append(problems, fmt.Sprintf("%s: cairn lacks %s (restic: %v)", key, path, want))
			case !slices.Equal(got, want):
				problems = append(problems, fmt.Sprintf("%s: cairn prints %v, restic %v", key, got, want))
			}
		}
	}
	for mt, cs := range cairn {
		for path := range cs {
			// Only the outermost extra path: what lies inside an
			// extra field is documented with it.
			if restic[mt] != nil && restic[mt][path] == nil && restic[mt][parentPath(path)] != nil {
				extras = append(extras, fmt.Sprintf("%s %s %s", cmd, mt, path))
			}
		}
	}
	slices.Sort(problems)
	slices.Sort(extras)
	return problems, extras
}

// parentPath is the path of the value holding the one at p.
func parentPath(p string) string {
	if strings.HasSuffix(p, "[]") {
		return strings.TrimSuffix(p, "[]")
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// resticEnv runs restic on a repository of its own.
type resticEnv struct {
	t    *testing.T
	bin  string
	repo string
	env  []string
}

func (r *resticEnv) run(args ...string) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = r.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("restic %q: %v\n%s%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// snapshotIDs returns the IDs of the snapshots in a "snapshots --json"
// output, oldest first.
func snapshotIDs(t *testing.T, out string) []string {
	t.Helper()
	var snaps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &snaps); err != nil {
		t.Fatalf("snapshots --json: %v\n%s", err, out)
	}
	var ids []string
	for _, s := range snaps {
		ids = append(ids, s.ID)
	}
	return ids
}

// TestJSONMatchesRestic runs restic 0.19.1 and cairn on the same files,
// command by command with --json, and compares the field names and JSON
// types of every message type.
func TestJSONMatchesRestic(t *testing.T) {
	bin := findRestic(t)
	e := newTestEnv(t)
	e.init()
	r := &resticEnv{t: t, bin: bin, repo: filepath.Join(e.dir, "restic-repo"), env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(e.dir, "home"), "TZ=UTC",
		"RESTIC_REPOSITORY=" + filepath.Join(e.dir, "restic-repo"), "RESTIC_PASSWORD=" + testPassword,
		"RESTIC_CACHE_DIR=" + filepath.Join(e.dir, "restic-cache"),
		// A status line every 1/60 s: the slowed runs below print several.
		"RESTIC_PROGRESS_FPS=60",
	}}
	r.run("init")

	src := filepath.Join(e.dir, "src")
	writeTree(t, src, map[string][]byte{
		"docs/a.txt": []byte("alpha\n"), "docs/b.txt": []byte("beta\n"), "docs/empty": nil,
		"data/big": pseudoRandom(3, 3<<20), "data/sub/c.bin": pseudoRandom(4, 70000),
	})
	if err := os.Symlink("a.txt", filepath.Join(src, "docs", "link")); err != nil {
		t.Fatal(err)
	}
	// cairn's backups and restores are slowed by the test seam, restic's
	// by its own limits, so that both print status lines.
	slow := runOpts{env: []string{envTestThrottle + "=2000000", envProgressFPS + "=10"}}
	compare := func(cmd string, resticOut string, cairnRes result, skip ...string) {
		t.Helper()
		if cairnRes.code != 0 {
			t.Fatalf("%s: cairn failed\n%s", cmd, cairnRes)
		}
		restic := jsonMessages(t, "restic "+cmd, resticOut)
		for _, mt := range skip {
			delete(restic, mt)
		}
		// The message types this comparison must cover: restic has to
		// have printed them (a restic too quick for a status line would
		// leave cairn's unchecked).
		for _, mt := range resticMustPrint[cmd] {
			if restic[mt] == nil && !slices.Contains(skip, mt) {
				t.Fatalf("%s: restic printed no %q message, so cairn's is not compared\n%s", cmd, mt, resticOut)
			}
		}
		problems, extras := compareShapes(cmd, restic, jsonMessages(t, "cairn "+cmd, cairnRes.stdout))
		for _, p := range problems {
			t.Error(p)
		}
		checkExtrasDocumented(t, extras)
	}

	compare("backup", r.run("backup", "--json", "--limit-upload", "1000", src), e.runWith(slow, "--json", "backup", src))
	// A second backup: changed, new and removed files, for diff.
	writeTree(t, src, map[string][]byte{"docs/a.txt": []byte("alpha, changed\n"), "docs/new.txt": []byte("new\n")})
	if err := os.Remove(filepath.Join(src, "docs", "b.txt")); err != nil {
		t.Fatal(err)
	}
	// Too quick for status lines of cairn's, which the first backup had.
	compare("backup", r.run("backup", "--json", src), e.run("--json", "backup", src), "status")

	resticSnaps, cairnSnaps := r.run("snapshots", "--json"), e.must("--json", "snapshots")
	compare("snapshots", resticSnaps, cairnSnaps)
	rids, cids := snapshotIDs(t, resticSnaps), snapshotIDs(t, cairnSnaps.stdout)
	if len(rids) != 2 || len(cids) != 2 {
		t.Fatalf("snapshots: restic %v, cairn %v", rids, cids)
	}
	compare("ls", r.run("ls", "--json", "latest"), e.run("--json", "ls", "latest"))
	compare("find", r.run("find", "--json", "*.txt"), e.run("--json", "find", "*.txt"))
	compare("stats", r.run("stats", "--json"), e.run("--json", "stats"))
	compare("diff", r.run("diff", "--json", rids[0], rids[1]), e.run("--json", "diff", cids[0], cids[1]))
	compare("restore", r.run("restore", "--json", "--limit-download", "1000", "--target", filepath.Join(e.dir, "rr"), "latest"),
		e.runWith(slow, "--json", "restore", "--target", filepath.Join(e.dir, "cr"), "latest"))
	compare("check", r.run("check", "--json"), e.run("--json", "check"))
	compare("key list", r.run("key", "list", "--json"), e.run("--json", "key", "list"))
	compare("forget", r.run("forget", "--json", "--dry-run", "--keep-last", "1"), e.run("--json", "forget", "--dry-run", "--keep-last", "1"))
	// With --prune, still one document: restic's groups.
	forgot := e.run("--json", "forget", "--prune", "--keep-last", "1")
	compare("forget", r.run("forget", "--json", "--prune", "--keep-last", "1"), forgot)
	var doc []map[string]any
	if err := json.Unmarshal([]byte(forgot.stdout), &doc); err != nil {
		t.Errorf("forget --prune --json is not one JSON array: %v\n%s", err, forgot.stdout)
	}
}

// checkExtrasDocumented fails for an extra field of cairn's (a path from
// compareShapes) whose name docs/user-guide.md does not mention as
// `name`.
func checkExtrasDocumented(t *testing.T, extras []string) {
	t.Helper()
	guide, err := os.ReadFile(filepath.Join("..", "..", "docs", "user-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range extras {
		path := x[strings.LastIndexByte(x, ' ')+1:]
		name := strings.TrimSuffix(path[strings.LastIndexByte(path, '.')+1:], "[]")
		name = strings.TrimSuffix(name, "[]")
		if name == "" {
			continue
		}
		if !bytes.Contains(guide, []byte("`"+name+"`")) {
			t.Errorf("cairn's extra JSON field %s is not documented in docs/user-guide.md", x)
		}
	}
}

// writeTree writes files (parents made) under root.
func writeTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pseudoRandom returns n bytes that do not compress, from seed.
func pseudoRandom(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
	return b
}
