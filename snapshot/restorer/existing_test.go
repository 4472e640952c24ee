package restorer

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/snapshot"
)

// TestRemoveTreeDeep removes a chain of 3,000 folders, wide at the top,
// with files, fifos and a symlink to a folder outside at every level,
// under a limit of 64 open files: removeTree holds two descriptors at a
// time, never follows the symlink, and leaves the folder beside it alone.
func TestRemoveTreeDeep(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "precious"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	pfd, err := unix.Open(parent, dirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(pfd)
	if err := unix.Mkdirat(pfd, "chain", 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Openat(pfd, "chain", dirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // wide at the top
		if err := unix.Mkdirat(fd, "w"+strconv.Itoa(i), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for level := range 3000 {
		if err := os.WriteFile(procPath(fd, "file"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(procPath(fd, "fifo"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Symlinkat(outside, fd, "link"); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkdirat(fd, "d", 0o700); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, "d", dirFlags, 0)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		closeFD(fd)
		fd = next
	}
	closeFD(fd)

	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	low := rl
	low.Cur = 64
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	err = removeAt(pfd, "chain", true)
	if rerr := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("removeAt: %v", err)
	}
	if got := dirNames(t, pfd); !slices.Equal(got, []string{"outside"}) {
		t.Errorf("left %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "precious")); err != nil || string(b) != "keep" {
		t.Errorf("outside: %q, %v", b, err)
	}
}

// TestRestoreDeleteDryRunDeep restores a chain of 2,000 folders, then
// restores it again with Delete into a target where every level holds an
// extra file: a dry run reports each extra file and removes none, the
// real run removes them all, and both keep the walk's descriptors
// bounded (the chain's folders, found in the target, are opened as the
// restore's own).
func TestRestoreDeleteDryRunDeep(t *testing.T) {
	const depth = 2000
	repo := newFakeRepo()
	files := []int{1, 2, depth}
	root, _ := deepChainTree(t, repo, depth, files)
	target := t.TempDir()
	t.Cleanup(func() { removeDeep(t, target) })
	restoreT(t, repo, root, Options{BatchFiles: 64}, target)

	// An extra file at every level.
	fd, err := unix.Open(target, dirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	for level := 0; ; level++ {
		if err := os.WriteFile(procPath(fd, "extra"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		var sub string
		for _, name := range dirNames(t, fd) {
			if st, _, _ := lstatAt(fd, name); st.Mode&unix.S_IFMT == unix.S_IFDIR {
				sub = name
			}
		}
		if sub == "" {
			break
		}
		next, err := unix.Openat(fd, sub, dirFlags, 0)
		if err != nil {
			t.Fatal(err)
		}
		closeFD(fd)
		fd = next
	}
	closeFD(fd)

	for _, dry := range []bool{true, false} {
		base := openFDs(t)
		var deleted []string
		st, rep := restoreT(t, repo, root, Options{BatchFiles: 64, Delete: true, DryRun: dry, Overwrite: OverwriteIfChanged,
			Report: func(a Action, p string, _ uint64) {
				if a == ActionDeleted {
					deleted = append(deleted, p)
				}
			}}, target)
		if len(rep.errs) > 0 {
			t.Fatalf("dry run %v: errors %v", dry, rep.paths())
		}
		if len(deleted) != depth+1 || st.Deleted != depth+1 {
			t.Errorf("dry run %v: %d reported deleted, %d counted, want %d", dry, len(deleted), st.Deleted, depth+1)
		}
		// The files of levels 1 and 2,000 are kept; that of level 2,
		// hardlinked as "h" at the bottom, is always made anew.
		if st.Files != 1 || st.Updated != 1 || st.Hardlinks != 1 || st.Unchanged != 2 {
			t.Errorf("dry run %v: stats %+v, want 2 files unchanged, 1 updated and its hardlink", dry, st)
		}
		if n := openFDs(t) - base; n != 0 {
			t.Errorf("dry run %v: %d descriptors left open", dry, n)
		}
		_, err := os.Lstat(filepath.Join(target, "extra"))
		if gone := os.IsNotExist(err); gone == dry {
			t.Errorf("dry run %v: top extra file gone: %v", dry, gone)
		}
	}
	checkDeepChain(t, target, depth, files)
}

// TestRestoreDryRunWritesNothing restores a tree with a dry run into a
// target that does not exist (which stays so) and into one that holds a
// file in the way: nothing is written, and Stats say what a real restore
// does.
func TestRestoreDryRunWritesNothing(t *testing.T) {
	repo := newFakeRepo()
	sub := repo.addTree(t, fileNode(repo, "b", []byte("bee"), 10),
		&snapshot.Node{Name: "l", Type: snapshot.NodeSymlink, LinkTarget: "b", Mode: os.ModeSymlink | 0o777})
	root := repo.addTree(t, dirNode("d", sub), fileNode(repo, "a", []byte("ay"), 10))
	missing := filepath.Join(t.TempDir(), "new")
	var actions []string
	report := func(a Action, p string, _ uint64) { actions = append(actions, a.String()+" "+p) }
	st, _ := restoreT(t, repo, root, Options{DryRun: true, Report: report}, missing)
	if _, err := os.Lstat(missing); !os.IsNotExist(err) {
		t.Fatalf("dry run made the target: %v", err)
	}
	want := []string{"restored /a", "restored /d/b", "restored /d/l", "restored /d"}
	if !slices.Equal(actions, want) {
		t.Errorf("actions %q, want %q", actions, want)
	}
	if st.Files != 2 || st.Dirs != 1 || st.Symlinks != 1 || st.Bytes != 5 {
		t.Errorf("stats %+v", st)
	}

	target := t.TempDir()
	if err := os.WriteFile(filepath.Join(target, "a"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	actions = nil
	st, _ = restoreT(t, repo, root, Options{DryRun: true, Report: report, Overwrite: OverwriteIfNewer}, target)
	if got, _ := os.ReadFile(filepath.Join(target, "a")); string(got) != "old" {
		t.Errorf("dry run wrote a: %q", got)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 1 {
		t.Errorf("dry run made %v", ents)
	}
	if want := []string{"skipped /a", "restored /d/b", "restored /d/l", "restored /d"}; !slices.Equal(actions, want) {
		t.Errorf("actions %q, want %q", actions, want)
	}
	if st.Skipped != 1 || st.Files != 1 {
		t.Errorf("stats %+v", st)
	}
}
