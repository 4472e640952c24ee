package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
)

// destPassword is the password of copyDest's repository.
const destPassword = "another password, another key"

// copyDest makes a second repository beside e's, with its own password,
// and returns an environment whose commands work on it.
func copyDest(t *testing.T, e *testEnv) *testEnv {
	t.Helper()
	d := copyDestEnv(t, e)
	d.init()
	return d
}

// copyDestEnv is copyDest without the init.
func copyDestEnv(t *testing.T, e *testEnv) *testEnv {
	t.Helper()
	d := *e
	d.repo = filepath.Join(e.dir, "dest")
	d.pwFile = filepath.Join(e.dir, "dest-password")
	e.writeFile(d.pwFile, destPassword+"\n")
	d.env = append(slices.Clone(e.env), envRepository+"="+d.repo, envPasswordFile+"="+d.pwFile)
	return &d
}

// copyFixture backs up a changing folder n times into e's repository,
// keeping a copy of each state; want maps a snapshot, by its ID or its
// original's, to what it must restore to.
func copyFixture(t *testing.T, e *testEnv, rnd *rand.Rand, n int) (src string, xattrs bool, want func(map[string]any) (string, string)) {
	t.Helper()
	src = filepath.Join(e.dir, "src")
	xattrs = makeTree(t, src, rnd.Uint64())
	states := map[string]string{}
	for i := 0; i < n; i++ {
		writeRandomFiles(t, filepath.Join(src, "round"), rnd, fmt.Sprintf("r%d-", i), 2, 600<<10)
		sum, _ := e.backupJSON(0, src)
		id := sum["snapshot_id"].(string)
		states[id] = filepath.Join(e.dir, "states", "src-"+strconv.Itoa(i))
		copyDir(t, src, states[id])
	}
	return src, xattrs, func(sn map[string]any) (string, string) {
		id, _ := sn["original"].(string)
		if id == "" {
			id = sn["id"].(string)
		}
		exp, ok := states[id]
		if !ok {
			t.Fatalf("snapshot %v (original %v) was never made", sn["id"], sn["original"])
		}
		return src, exp
	}
}

// dataFiles lists data/ and index/ of a repository: name and size.
func dataFiles(t *testing.T, repoDir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, pat := range []string{"data/*/*", "index/*"} {
		names, err := filepath.Glob(filepath.Join(repoDir, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			fi, err := os.Stat(n)
			if err != nil {
				t.Fatal(err)
			}
			out[strings.TrimPrefix(n, repoDir)] = fi.Size()
		}
	}
	return out
}

// TestCopy copies every snapshot of a repository into a second one with
// another password (so other keys and another chunker polynomial): each
// copy restores exactly from the destination; copying again uploads
// nothing; after a new backup only its new data is uploaded; check
// --read-data finds the destination clean.
func TestCopy(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	rnd := testRand(t)
	src, xattrs, want := copyFixture(t, e, rnd, 2)
	d := copyDest(t, e)
	from := []string{"--from-repo", e.repo, "--from-password-file", e.pwFile}

	r := d.must(append([]string{"copy"}, from...)...)
	if strings.Count(r.stdout, "copied as") != 2 || !strings.Contains(r.stdout, "copied 2 snapshot(s), 0 in the destination already") ||
		!strings.Contains(r.stdout, "chunker polynomials differ") {
		t.Fatalf("first copy:\n%s", r)
	}
	srcSnaps := e.snapshotsJSON()
	dstSnaps := d.snapshotsJSON()
	if len(dstSnaps) != 2 {
		t.Fatalf("%d snapshots in the destination, want 2", len(dstSnaps))
	}
	for i, sn := range dstSnaps {
		o := srcSnaps[i]
		if sn["original"] != o["id"] || sn["id"] == o["id"] || sn["time"] != o["time"] || sn["hostname"] != o["hostname"] ||
			sn["tree"] != o["tree"] || sn["parent"] != nil || !slices.Equal(toStrings(sn["paths"]), toStrings(o["paths"])) {
			t.Fatalf("copy %v of %v", sn, o)
		}
	}
	d.restoreAll(xattrs, want)
	// The two snapshots share most of their data (the tree of makeTree,
	// 4 MiB of it random): stored once, the destination's packs are the
	// size of the source's; stored twice, they would be 4 MiB larger.
	srcPacks, dstPacks := srcSize(t, e.repo), srcSize(t, d.repo)
	t.Logf("two snapshots sharing data: source packs %d bytes, destination packs %d bytes", srcPacks, dstPacks)
	if diff := dstPacks - srcPacks; diff > srcPacks/50 || -diff > srcPacks/50 {
		t.Fatalf("the copy of 2 snapshots sharing data stored %d bytes of packs, the source %d", dstPacks, srcPacks)
	}
	// Re-encrypted: no pack file is in both, and the source's password
	// opens nothing in the destination.
	srcFiles := dataFiles(t, e.repo)
	for name := range dataFiles(t, d.repo) {
		if _, ok := srcFiles[name]; ok {
			t.Fatalf("%s is in both repositories", name)
		}
	}
	if r := d.run("--password-file", e.pwFile, "snapshots"); r.code != 12 {
		t.Fatalf("the source's password opens the destination\n%s", r)
	}

	// Again, with the source from the environment: nothing is uploaded.
	before := dataFiles(t, d.repo)
	logBefore, _ := filepath.Glob(filepath.Join(d.repo, "log", "*"))
	r = d.runWith(runOpts{env: []string{envFromRepository + "=" + e.repo, envFromPassword + "=" + testPassword}}, "-v", "copy")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to copy: all 2 snapshot(s) are in the destination already") ||
		strings.Count(r.stdout, "in the destination already as") != 2 {
		t.Fatalf("second copy:\n%s", r)
	}
	logAfter, _ := filepath.Glob(filepath.Join(d.repo, "log", "*"))
	if after := dataFiles(t, d.repo); !maps.Equal(before, after) || len(logAfter) != len(logBefore) {
		t.Fatalf("a copy with nothing to copy wrote to the destination")
	}

	// A new backup holding 1 MiB of new data: only that is uploaded.
	writeRandomFiles(t, filepath.Join(src, "new"), rnd, "n", 1, 1<<20)
	e.must("backup", src)
	locFile := filepath.Join(e.dir, "source-location")
	e.writeFile(locFile, e.repo+"\n")
	r = d.must("--json", "copy", "--from-repository-file", locFile, "--from-password-file", e.pwFile)
	lines := jsonLines(t, r.stdout)
	sum := lines[len(lines)-1]
	if len(lines) != 4 || sum["message_type"] != "summary" || sum["copied"] != float64(1) || sum["skipped"] != float64(2) ||
		lines[2]["message_type"] != "copied" || lines[2]["skipped"] != false {
		t.Fatalf("copy after a new backup:\n%s", r)
	}
	var added int64
	after := dataFiles(t, d.repo)
	for name, size := range after {
		if _, ok := before[name]; !ok && strings.HasPrefix(name, "/data/") {
			added += size
		}
	}
	t.Logf("the copy of a backup adding 1 MiB (of %d MiB in the source) uploaded %d bytes of packs", srcSize(t, e.repo)>>20, added)
	if added < 1<<20 || added > 1<<20+256<<10 || int64(sum["data_added_packed"].(float64)) != added {
		t.Fatalf("the copy of a backup adding 1 MiB uploaded %d bytes of packs (summary says %v)", added, sum["data_added_packed"])
	}
	d.checkReadData(true)
	if n := len(d.restoreAll(false, func(sn map[string]any) (string, string) {
		if sn["original"] == e.snapshotsJSON()[2]["id"] {
			return src, src
		}
		return want(sn)
	})); n != 3 {
		t.Fatalf("%d snapshots in the destination, want 3", n)
	}
}

// srcSize is the size of the packs of a repository.
func srcSize(t *testing.T, repoDir string) int64 {
	t.Helper()
	var n int64
	for name, size := range dataFiles(t, repoDir) {
		if strings.HasPrefix(name, "/data/") {
			n += size
		}
	}
	return n
}

// TestCopySelect copies snapshots chosen by --host, --path, --tag and ID,
// with the source and its password given by every flag and environment
// variable.
func TestCopySelect(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src, other := filepath.Join(e.dir, "src"), filepath.Join(e.dir, "other")
	mkdirAll(t, src)
	mkdirAll(t, other)
	for i, b := range []struct{ tag, host, path string }{{"a", "h1", src}, {"b", "h2", src}, {"a", "h1", src}, {"a", "h1", other}} {
		e.writeFile(filepath.Join(b.path, "f"), strconv.Itoa(i))
		e.must("backup", "--tag", b.tag, "--host", b.host, b.path)
	}
	snaps := e.snapshotsJSON()
	d := copyDest(t, e)
	locFile := filepath.Join(e.dir, "source-location")
	e.writeFile(locFile, e.repo+"\n")
	originals := func() []any {
		var out []any
		for _, sn := range d.snapshotsJSON() {
			out = append(out, sn["original"])
		}
		return out
	}
	r := d.must("copy", "--from-repo", e.repo, "--from-password-file", e.pwFile, "--host", "h9")
	if !strings.Contains(r.stdout, "no snapshot to copy") || len(originals()) != 0 {
		t.Fatalf("copy --host h9:\n%s", r)
	}
	d.must("copy", "--from-repo", e.repo, "--from-password-command", "cat '"+e.pwFile+"'", "--tag", "a", "--path", src)
	if got, want := originals(), []any{snaps[0]["id"], snaps[2]["id"]}; !slices.Equal(got, want) {
		t.Fatalf("copy --tag a --path %s copied %v, want %v", src, got, want)
	}
	// (snapshots lists them by time, and copies keep the source's times)
	r = d.runWith(runOpts{env: []string{envFromRepositoryFile + "=" + locFile, envFromPasswordFile + "=" + e.pwFile}}, "copy", snaps[1]["id"].(string)[:8])
	if r.code != 0 {
		t.Fatalf("copy by ID:\n%s", r)
	}
	if got, want := originals(), []any{snaps[0]["id"], snaps[1]["id"], snaps[2]["id"]}; !slices.Equal(got, want) {
		t.Fatalf("copy by ID: the destination holds copies of %v, want %v", got, want)
	}
	r = d.runWith(runOpts{env: []string{envFromRepository + "=" + e.repo, envFromPasswordCommand + "=cat '" + e.pwFile + "'"}}, "copy", "--host", "h1")
	if r.code != 0 || !strings.Contains(r.stdout, "copied 1 snapshot(s), 2 in the destination already") {
		t.Fatalf("copy --host h1:\n%s", r)
	}
	if got, want := originals(), []any{snaps[0]["id"], snaps[1]["id"], snaps[2]["id"], snaps[3]["id"]}; !slices.Equal(got, want) {
		t.Fatalf("copy --host h1: the destination holds copies of %v, want %v", got, want)
	}
}

// TestCopyErrors checks copy's refusals: one line on stderr and the
// documented exit status, the destination unchanged.
func TestCopyErrors(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	mkdirAll(t, src)
	e.writeFile(filepath.Join(src, "f"), "x")
	e.must("backup", src)
	d := copyDest(t, e)
	wrong := filepath.Join(e.dir, "wrong-password")
	e.writeFile(wrong, "not it\n")
	locFile := filepath.Join(e.dir, "loc")
	e.writeFile(locFile, e.repo)
	before := withoutLocks(listing(t, d.repo))
	for _, tc := range []struct {
		args    []string
		code    int
		pattern string
	}{
		{[]string{"copy"}, 1, "give the source repository with --from-repo"},
		{[]string{"copy", "--from-repo", e.repo, "--from-repository-file", locFile}, 1, "not both"},
		{[]string{"copy", "--from-repository-file", filepath.Join(e.dir, "none")}, 1, "repository file"},
		{[]string{"copy", "--from-repo", filepath.Join(e.dir, "none"), "--from-password-file", e.pwFile}, 10, "--from-repo .*none"},
		{[]string{"copy", "--from-repo", e.repo, "--from-password-file", wrong}, 12, "^cairn: --from-repo .*: wrong password"},
		{[]string{"copy", "--from-repo", e.repo, "--from-password-command", "echo not it"}, 12, "^cairn: --from-repo .*: wrong password"},
		{[]string{"copy", "--from-repo", e.repo}, 1, "no password given for the source repository"},
		{[]string{"copy", "--from-repo", d.repo, "--from-password-file", d.pwFile}, 1, "is the repository itself"},
		{[]string{"copy", "--from-repo", e.repo, "--from-password-file", e.pwFile, "deadbeef"}, 1, "no matching snapshot"},
		{[]string{"copy", "--from-repo", e.repo, "--from-password-file", e.pwFile, "latest:/x"}, 1, "not SNAPSHOT:SUBPATH"},
		{[]string{"--no-lock", "copy", "--from-repo", e.repo, "--from-password-file", e.pwFile}, 1, "must lock it"},
	} {
		r := d.run(tc.args...)
		if r.code != tc.code {
			t.Fatalf("want exit %d\n%s", tc.code, r)
		}
		checkOneErrorLine(t, r, tc.pattern)
	}
	if after := withoutLocks(listing(t, d.repo)); after != before {
		t.Fatal("a refused copy changed the destination")
	}
}

// TestCopySurvivesKill9 kills a copy once a snapshot's data is in the
// destination and before its log entry: the destination stays sound with
// no snapshot, and the next copy uploads nothing again and records it.
func TestCopySurvivesKill9(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	rnd := testRand(t)
	_, _, want := copyFixture(t, e, rnd, 1)
	d := copyDest(t, e)
	args := []string{"copy", "--from-repo", e.repo, "--from-password-file", e.pwFile}
	p := d.startPaused("copy-before-snapshot", nil, args...)
	_ = p.cmd.Process.Kill()
	<-p.done
	if n := len(d.snapshotsJSON()); n != 0 {
		t.Fatalf("a copy killed before its log entry left %d snapshots", n)
	}
	d.must("check")
	before := dataFiles(t, d.repo)
	if len(before) == 0 {
		t.Fatal("the killed copy stored nothing: the pause came too early")
	}
	r := d.must(args...)
	if !strings.Contains(r.stdout, "copied as") || !strings.Contains(r.stdout, "(0 new blobs, 0 B)") {
		t.Fatalf("copy after the kill:\n%s", r)
	}
	if after := dataFiles(t, d.repo); !maps.Equal(before, after) {
		t.Fatal("the copy after the kill uploaded data again")
	}
	d.checkReadData(true)
	if n := len(d.restoreAll(false, want)); n != 1 {
		t.Fatalf("%d snapshots, want 1", n)
	}
}

// TestCopySurvivesRandomKill9 kills copies of three snapshots into a
// destination with 1 MiB packs (so a kill lands between uploads) at random
// moments, each from the same empty destination: after each kill the
// destination checks clean and every snapshot it lists restores exactly;
// the next copy completes, reusing what the killed one stored, and check
// --read-data finds no damage.
func TestCopySurvivesRandomKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills real processes")
	}
	e := newTestEnv(t)
	e.init()
	rnd := testRand(t)
	_, _, want := copyFixture(t, e, rnd, 3)
	d := copyDestEnv(t, e)
	ctx := context.Background()
	be, err := createBackend(ctx, d.repo, locEnv{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, []byte(destPassword), repo.InitOptions{PackSize: repo.MinPackSize, KDF: crypt.FastKDFParamsForTests()})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	be.Close()
	d.saveState("empty")
	args := []string{"copy", "--from-repo", e.repo, "--from-password-file", e.pwFile}
	span := d.timeRun(args...)
	// A copy with nothing to copy opens both repositories and reads
	// their logs: the kills aim past that.
	open := d.timeRun(args...)
	t.Logf("a whole copy takes %v, one with nothing to copy %v", span, open)
	d.killLoop(rnd, killPlan{
		args:  args,
		runs:  8,
		span:  span,
		from:  min(open, span/2),
		start: func() { d.restoreState("empty") },
		afterKill: func(run int) {
			if r := d.run("check"); r.code != 0 {
				t.Fatalf("check of the destination after kill %d:\n%s", run, r)
			}
			if n := len(d.restoreAll(false, want)); n > 3 {
				t.Fatalf("kill %d left %d snapshots, want at most 3", run, n)
			}
		},
		done: func(run int) {
			// A run killed after uploading a pack and before indexing
			// it leaves the pack unindexed, as a killed backup does.
			d.checkReadDataAllowing("pack_unindexed")
			if n := len(d.restoreAll(false, want)); n != 3 {
				t.Fatalf("run %d: %d snapshots after the copy completed, want 3", run, n)
			}
		},
	})
}
