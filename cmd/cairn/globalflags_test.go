package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withoutEnv returns env without the variables named.
func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// jsonArray parses a JSON array of objects (snapshots --json).
func jsonArray(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, s)
	}
	return out
}

// TestRetryLock is issue 13's --retry-lock, with real processes: a prune
// while a paused backup holds its lock fails at once with the lock exit
// code without the flag, and after the duration with it; a prune with a
// longer --retry-lock waits (it says so on stderr), and succeeds once the
// backup finishes and lets go.
func TestRetryLock(t *testing.T) {
	e := newTestEnv(t)
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 300<<10, 1)
	e.init()
	b := e.startPaused("before-snapshot", nil, "backup", data)

	if r := e.run("prune"); r.code != exitLocked || strings.Contains(r.stderr, "retrying") {
		t.Fatalf("prune without --retry-lock: want exit %d at once\n%s", exitLocked, r)
	}
	start := time.Now()
	r := e.run("--retry-lock", "1s", "prune")
	if r.code != exitLocked || time.Since(start) < time.Second {
		t.Fatalf("prune --retry-lock 1s: want exit %d after at least 1s, got it after %v\n%s", exitLocked, time.Since(start), r)
	}
	if !strings.Contains(r.stderr, "retrying in") || !strings.Contains(r.stderr, "gave up after retrying for 1s") {
		t.Errorf("prune --retry-lock 1s: want a warning of the retry and the give-up\n%s", r)
	}
	if r := e.run("--retry-lock", "-1s", "snapshots"); r.code != exitError {
		t.Fatalf("a negative --retry-lock: want exit %d\n%s", exitError, r)
	} else {
		checkOneErrorLine(t, r, `--retry-lock -1s: not a positive duration`)
	}

	cmd := exec.Command(cairnBin, "--retry-lock", "2m", "prune")
	cmd.Env, cmd.Dir = e.env, e.dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(stderr)
	var said []string
	for sc.Scan() {
		said = append(said, sc.Text())
		if strings.Contains(sc.Text(), "retrying in") {
			break
		}
	}
	if len(said) == 0 || !strings.Contains(said[len(said)-1], "retrying in") {
		t.Fatalf("prune --retry-lock 2m did not say it waits: %q", said)
	}
	if res := b.resume(); res.code != 0 {
		t.Fatalf("the backup holding the lock\n%s", res)
	}
	for sc.Scan() {
		said = append(said, sc.Text())
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		t.Fatal(werr)
	}
	if werr != nil {
		t.Fatalf("prune --retry-lock 2m after the backup let go: exit %d\nstdout:\n%s\nstderr:\n%s", ee.ExitCode(), stdout.String(), strings.Join(said, "\n"))
	}
	if n := len(e.snapshotsJSON()); n != 1 {
		t.Fatalf("%d snapshots, want the backup's", n)
	}
}

// TestLimitUploadDownload is issue 13's --limit-upload/--limit-download
// reaching the backend (the limiter itself: backend/limit's tests), on a
// local repository: see checkLimits. Bad values are refused.
func TestLimitUploadDownload(t *testing.T) {
	e := newTestEnv(t)
	checkLimits(t, e, e.repo)
	for _, args := range [][]string{{"--limit-upload", "-1"}, {"--limit-download", "-5"}} {
		r := e.run(append(args, "snapshots")...)
		if r.code != exitError {
			t.Fatalf("want exit %d\n%s", exitError, r)
		}
		checkOneErrorLine(t, r, `^cairn: `+args[0]+` -\d+: want KiB per second, 0 for no limit`)
	}
}

// TestLimitSFTP: the limits hold on an sftp repository too (see
// checkLimits); peer:// is covered by the mirror tests of peer_e2e_test.go,
// which time a mirror under --limit-upload.
func TestLimitSFTP(t *testing.T) {
	e := newTestEnv(t)
	s := sftpServer(t, e)
	checkLimits(t, e, s.Location(filepath.Join(e.dir, "on-server", "repo")))
}

// checkLimits makes a repository at loc and backs 1 MiB up into it with
// --limit-upload 256, which cannot take less than about 4 s, then
// restores it with --limit-download 256 (no cache: every pack is read
// from loc), which cannot either; the restore is compared byte for byte.
func checkLimits(t *testing.T, e *testEnv, loc string) {
	t.Helper()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 1<<20, 2)
	e.must("-r", loc, "init")
	start := time.Now()
	e.must("-r", loc, "--limit-upload", "256", "backup", data)
	// 1 MiB of packs and more: at 256 KiB/s, 4 s less the 0.1 s burst.
	if d := time.Since(start); d < 3800*time.Millisecond {
		t.Fatalf("backup of 1 MiB to %s with --limit-upload 256 took %v", loc, d)
	}
	target := filepath.Join(e.dir, "restored")
	start = time.Now()
	e.must("-r", loc, "--limit-download", "256", "--no-cache", "restore", "latest", "--target", target)
	if d := time.Since(start); d < 3800*time.Millisecond {
		t.Fatalf("restore of 1 MiB from %s with --limit-download 256 took %v", loc, d)
	}
	compareTrees(t, data, filepath.Join(target, data), false)
}

// packSizes returns the pack files of a local repository: name -> size.
func packSizes(t *testing.T, repoDir string) map[string]int64 {
	t.Helper()
	sizes := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(repoDir, "data"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sizes[d.Name()] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sizes
}

// newDataPacks returns the sizes of the packs over 1 MiB (data packs,
// not tree packs) in after and not in before.
func newDataPacks(before, after map[string]int64) []int64 {
	var out []int64
	for name, s := range after {
		if _, ok := before[name]; !ok && s > 1<<20 {
			out = append(out, s)
		}
	}
	return out
}

// TestPackSize is issue 13's --pack-size: 12 MiB of new data goes into
// one pack by default (16 MiB) but into three or more with --pack-size 4
// or $CAIRN_PACK_SIZE=4, and by default in a repository made with
// init --pack-size 4; values out of 4..128 are refused with one line.
func TestPackSize(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	for i, how := range []struct {
		args []string
		env  []string
		want func(int) bool
	}{
		{nil, nil, func(n int) bool { return n == 1 }},
		{[]string{"--pack-size", "4"}, nil, func(n int) bool { return n >= 3 }},
		{nil, []string{envPackSize + "=4"}, func(n int) bool { return n >= 3 }},
	} {
		data := filepath.Join(e.dir, "data", string(rune('a'+i)))
		writeRandom(t, filepath.Join(data, "f"), 12<<20, uint64(10+i))
		before := packSizes(t, e.repo)
		r := e.runWith(runOpts{env: how.env}, append(how.args, "backup", data)...)
		if r.code != 0 {
			t.Fatalf("want exit 0\n%s", r)
		}
		added := newDataPacks(before, packSizes(t, e.repo))
		if !how.want(len(added)) {
			t.Fatalf("%v %v: new data packs of %v bytes", how.args, how.env, added)
		}
	}
	// At init, --pack-size is the repository's default (its config).
	e2 := newTestEnv(t)
	e2.must("--pack-size", "4", "init")
	data := filepath.Join(e2.dir, "data")
	writeRandom(t, filepath.Join(data, "f"), 12<<20, 20)
	e2.must("backup", data)
	if added := newDataPacks(nil, packSizes(t, e2.repo)); len(added) < 3 {
		t.Fatalf("a repository made with --pack-size 4: data packs of %v bytes", added)
	}
	for _, bad := range []string{"3", "129", "-4"} {
		r := e.run("--pack-size", bad, "backup", e.dir)
		if r.code != exitError {
			t.Fatalf("want exit %d\n%s", exitError, r)
		}
		checkOneErrorLine(t, r, `^cairn: --pack-size -?\d+: want 4 to 128 MiB$`)
	}
}

// TestCairnHost is issue 13's $CAIRN_HOST: backup records it as the host
// (--host wins over it), and the snapshot filters select by it.
func TestCairnHost(t *testing.T) {
	e := newTestEnv(t)
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 10<<10, 3)
	e.init()
	box := runOpts{env: []string{envHost + "=box"}}
	if r := e.runWith(box, "backup", data); r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	if r := e.runWith(box, "backup", "--host", "other", data); r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	var hosts []string
	for _, s := range e.snapshotsJSON() {
		hosts = append(hosts, s["hostname"].(string))
	}
	if strings.Join(hosts, ",") != "box,other" {
		t.Fatalf("hosts %q, want box (from $%s), other (--host)", hosts, envHost)
	}
	r := e.runWith(box, "--json", "snapshots")
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	if got := jsonArray(t, r.stdout); len(got) != 1 || got[0]["hostname"] != "box" {
		t.Fatalf("snapshots with $%s=box: %v", envHost, got)
	}
	r = e.runWith(box, "--json", "snapshots", "--host", "other")
	if got := jsonArray(t, r.stdout); r.code != 0 || len(got) != 1 || got[0]["hostname"] != "other" {
		t.Fatalf("snapshots --host other with $%s=box: %v\n%s", envHost, got, r)
	}
}

// TestCairnCompression is issue 13's $CAIRN_COMPRESSION: compressible
// data backed up with it "off" takes its full size in packs, with "max"
// a fraction; backup --compression wins over it; at init it sets the
// repository's mode; a bad value is one line.
func TestCairnCompression(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	text := bytes.Repeat([]byte("the same line of text, again and again, to compress well\n"), 4<<20/58)
	grew := func(name string, o runOpts, args ...string) int64 {
		t.Helper()
		data := filepath.Join(e.dir, "data", name)
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		// Each file differs in its first line: no dedup between runs.
		if err := os.WriteFile(filepath.Join(data, "f"), append([]byte(name+"\n"), text...), 0o644); err != nil {
			t.Fatal(err)
		}
		before := packSizes(t, e.repo)
		if r := e.runWith(o, append(append([]string{"backup"}, args...), data)...); r.code != 0 {
			t.Fatalf("want exit 0\n%s", r)
		}
		var n int64
		for name, s := range packSizes(t, e.repo) {
			if _, ok := before[name]; !ok {
				n += s
			}
		}
		return n
	}
	off := runOpts{env: []string{envCompression + "=off"}}
	if n := grew("off", off); n < int64(len(text)) {
		t.Fatalf("$%s=off: the packs grew by %d bytes for %d bytes of text", envCompression, n, len(text))
	}
	if n := grew("max", runOpts{env: []string{envCompression + "=max"}}); n > int64(len(text))/4 {
		t.Fatalf("$%s=max: the packs grew by %d bytes for %d bytes of text", envCompression, n, len(text))
	}
	if n := grew("flag", off, "--compression", "max"); n > int64(len(text))/4 {
		t.Fatalf("--compression max with $%s=off: the packs grew by %d bytes for %d bytes of text", envCompression, n, len(text))
	}
	// At init, it is the repository's default.
	e2 := newTestEnv(t)
	if r := e2.runWith(off, "init"); r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	data := filepath.Join(e2.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	e2.writeFile(filepath.Join(data, "f"), string(text))
	e2.must("backup", data)
	var n int64
	for _, s := range packSizes(t, e2.repo) {
		n += s
	}
	if n < int64(len(text)) {
		t.Fatalf("a repository made with $%s=off: %d bytes of packs for %d bytes of text", envCompression, n, len(text))
	}
	r := e.runWith(runOpts{env: []string{envCompression + "=tiny"}}, "snapshots")
	if r.code != exitError {
		t.Fatalf("want exit %d\n%s", exitError, r)
	}
	checkOneErrorLine(t, r, `^cairn: \$CAIRN_COMPRESSION: .*tiny`)
}

// TestRepositoryFile is issue 13's --repository-file and
// $CAIRN_REPOSITORY_FILE: the location read from a file (white space
// around it dropped); with -r as well, a missing file or an empty one,
// one line and exit 1.
func TestRepositoryFile(t *testing.T) {
	e := newTestEnv(t)
	e.init()
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 10<<10, 4)
	e.must("backup", data)
	loc := filepath.Join(e.dir, "repo-location")
	e.writeFile(loc, "  "+e.repo+"\n")
	bare := *e
	bare.env = withoutEnv(e.env, envRepository)
	if r := bare.run("--json", "snapshots"); r.code == 0 {
		t.Fatalf("the test is wrong: snapshots found a repository with no location\n%s", r)
	}
	for _, o := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--repository-file", loc}},
		{[]string{envRepositoryFile + "=" + loc}, nil},
	} {
		r := bare.runWith(runOpts{env: o.env}, append(o.args, "--json", "snapshots")...)
		if got := jsonArray(t, r.stdout); r.code != 0 || len(got) != 1 {
			t.Fatalf("%v %v: %v\n%s", o.env, o.args, got, r)
		}
	}
	empty := filepath.Join(e.dir, "empty")
	e.writeFile(empty, "\n")
	for _, c := range []struct {
		who  *testEnv
		args []string
		want string
	}{
		{e, []string{"--repository-file", loc}, `cannot be used together`},
		{&bare, []string{"--repository-file", filepath.Join(e.dir, "nonesuch")}, `^cairn: --repository-file: open .*nonesuch: no such file or directory$`},
		{&bare, []string{"--repository-file", empty}, `^cairn: --repository-file .*empty: want one line naming the repository$`},
	} {
		r := c.who.run(append(c.args, "snapshots")...)
		if r.code != exitError {
			t.Fatalf("want exit %d\n%s", exitError, r)
		}
		checkOneErrorLine(t, r, c.want)
	}
}

// TestBackupDryRun checks issue 13's backup --dry-run (it was there
// before): it reads everything and reports what it would add, but the
// repository's files stay as they were and no snapshot is made; after a
// real backup, a dry run finds the files unmodified (the folders above
// PATH, /tmp here, may have changed: the tree it would add is small).
func TestBackupDryRun(t *testing.T) {
	e := newTestEnv(t)
	data := filepath.Join(e.dir, "data")
	writeRandom(t, filepath.Join(data, "a"), 2<<20, 5)
	writeRandom(t, filepath.Join(data, "b"), 10<<10, 6)
	e.init()
	before := repoFiles(t, e.repo)
	sum, r := e.backupJSON(0, "--dry-run", data)
	if sum["dry_run"] != true || sum["snapshot_id"] != nil || sum["files_new"] != 2.0 || sum["data_added"].(float64) < 2<<20 {
		t.Fatalf("a dry run's summary: %v\n%s", sum, r)
	}
	if after := repoFiles(t, e.repo); !sameSizes(after, before) {
		t.Fatalf("a dry run changed the repository: %v, was %v", after, before)
	}
	if n := len(e.snapshotsJSON()); n != 0 {
		t.Fatalf("a dry run made %d snapshots", n)
	}
	e.must("backup", data)
	before = repoFiles(t, e.repo)
	if sum, r := e.backupJSON(0, "-n", data); sum["files_unmodified"] != 2.0 || sum["data_blobs"] != 0.0 {
		t.Fatalf("a dry run after the backup: %v\n%s", sum, r)
	}
	if after := repoFiles(t, e.repo); !sameSizes(after, before) || len(e.snapshotsJSON()) != 1 {
		t.Fatal("the second dry run changed the repository")
	}
}
