package peer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// emptyFolders lists the folders under dir that hold nothing.
func emptyFolders(t *testing.T, dir string) []string {
	t.Helper()
	var empty []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				empty = append(empty, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return empty
}

// TestQuotaCountsWhatClientCosts stores 3,000 tiny files under 300
// repository names, the case of the issue that cost the friend 82k inodes
// and 337 MB while the quota counted 9.9 KB: the quota must count what
// the files and folders cost (docs/peer-protocol.md, section 9), folders
// must be made only where a file goes, and the bound on repositories
// refuses the 301st name.
func TestQuotaCountsWhatClientCosts(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 3,000 synced puts")
	}
	t.Parallel()
	client := newIdentity(t)
	root := t.TempDir()
	const names, perName = 300, 10
	ts := startServer(t, ServerConfig{
		Root: root, MaxRepos: names, MaxConnsPerClient: 64,
		Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly},
	})
	types := []backend.FileType{backend.PackFile, backend.PackFile, backend.PackFile, backend.IndexFile,
		backend.IndexFile, backend.LogFile, backend.LogFile, backend.KeyFile, backend.LockFile, backend.ConfigFile}
	var wg sync.WaitGroup
	work := make(chan int)
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Go(func() {
			for i := range work {
				be, err := Create(t.Context(), ts.loc(fmt.Sprintf("repo-%03d", i)), client)
				if err == nil {
					for j := range perName {
						data := fmt.Appendf(nil, "file %d of repository %d", j, i)
						if err = be.Put(t.Context(), handleOf(types[j], data), backend.NewByteReader(data)); err != nil {
							break
						}
					}
					_ = be.Close()
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("repository %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range names {
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}

	clientDir := filepath.Join(root, client.PeerID().String())
	cost, files, folders := diskCost(t, clientDir)
	t.Logf("%d names, %d files: %d folders, %d bytes counted with inodes", names, files, folders, cost)
	if files != names*perName {
		t.Fatalf("%d files on disk, want %d", files, names*perName)
	}
	if empty := emptyFolders(t, clientDir); len(empty) > 0 {
		t.Errorf("%d empty folders, such as %s: folders must be made only for a file", len(empty), empty[0])
	}
	be, err := Dial(t.Context(), ts.loc("repo-000"), client)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if _, used := be.Usage(); used != cost {
		t.Errorf("the server counts %d against the quota, the disk holds %d (%d files, %d folders)", used, cost, files, folders)
	}

	// The 301st name: its connection is fine (it may read nothing), its
	// first put is refused, and the client says why.
	extra := ts.create(t, client, "one-too-many")
	data := []byte("one too many")
	err = extra.Put(t.Context(), handleOf(backend.PackFile, data), backend.NewByteReader(data))
	if !errors.Is(err, backend.ErrQuota) || !strings.Contains(err.Error(), fmt.Sprintf("keeps %d repositories", names)) ||
		!strings.Contains(err.Error(), `"one-too-many"`) {
		t.Fatalf("put into the 301st repository: %v", err)
	}
	if _, err := os.Stat(filepath.Join(clientDir, "one-too-many")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused repository has a folder: %v", err)
	}
	// The others still take files.
	putBytes(t, be, handleOf(backend.PackFile, data), data)
}

// TestRepositoryBound: the default bound on repositories per client, and
// a recount after the friend removed a repository by hand makes room.
func TestRepositoryBound(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	root := t.TempDir()
	ts := startServer(t, ServerConfig{Root: root, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeAppendOnly}})
	data := []byte("a key")
	h := handleOf(backend.KeyFile, data)
	for i := range DefaultMaxRepos {
		be := ts.create(t, client, fmt.Sprintf("r%d", i))
		putBytes(t, be, h, data)
		_ = be.Close()
	}
	be := ts.create(t, client, "over")
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); !errors.Is(err, backend.ErrQuota) {
		t.Fatalf("put into repository %d: %v, want ErrQuota", DefaultMaxRepos+1, err)
	}
	if err := os.RemoveAll(filepath.Join(root, client.PeerID().String(), "r0")); err != nil {
		t.Fatal(err)
	}
	// Until it is asked to count again, the server does not know.
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); !errors.Is(err, backend.ErrQuota) {
		t.Fatalf("put before the recount: %v, want ErrQuota", err)
	}
	ts.srv.Recount()
	if !ts.log.logged(fmt.Sprintf("%d repositories, %d files", DefaultMaxRepos-1, DefaultMaxRepos-1)) {
		t.Errorf("the recount did not log what it found")
	}
	putBytes(t, be, h, data)
}

// TestSeededFolderCounted: files put in a client's folder by hand before
// the server starts (a copy seeded from a disk) are counted at start, and
// files added and removed by hand while it runs are counted when it is
// asked to count again; the quota then follows the new count.
func TestSeededFolderCounted(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	root := t.TempDir()
	clientDir := filepath.Join(root, client.PeerID().String())
	seed := func(repo string, n, size int) {
		t.Helper()
		for i := range n {
			data := fmt.Appendf(nil, "%s %d %s", repo, i, strings.Repeat("x", size))
			h := handleOf(backend.PackFile, data)
			dir := filepath.Join(clientDir, repo, "data", h.Name[:2])
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, h.Name), data, 0o400); err != nil {
				t.Fatal(err)
			}
		}
	}
	seed("seeded", 40, 1000)
	seededCost, _, _ := diskCost(t, clientDir)
	const quota = 1 << 20
	ts := startServer(t, ServerConfig{Root: root, Quota: quota, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "seeded")
	// Counted before the first connection was accepted.
	if !ts.log.logged("peer " + client.PeerID().Short() + ": 1 repositories, 40 files") {
		t.Errorf("the server did not log the count at start")
	}
	if _, used := be.Usage(); used != seededCost {
		t.Fatalf("counted at start: %d, the disk holds %d", used, seededCost)
	}

	// While it runs: a second repository seeded, and most of the first
	// removed, by hand.
	seed("more", 60, 2000)
	if err := os.RemoveAll(filepath.Join(clientDir, "seeded", "data")); err != nil {
		t.Fatal(err)
	}
	ts.srv.Recount()
	now, _, _ := diskCost(t, clientDir)
	be2 := ts.create(t, client, "more")
	if _, used := be2.Usage(); used != now {
		t.Fatalf("counted on request: %d, the disk holds %d", used, now)
	}
	// Exactly the room the new count leaves: one byte more is refused.
	room := quota - now - InodeCost // the file; more/index/ is new too
	room -= InodeCost
	big := make([]byte, room+1)
	bigH := handleOf(backend.IndexFile, big)
	if err := be2.Put(t.Context(), bigH, backend.NewByteReader(big)); !errors.Is(err, backend.ErrQuota) {
		t.Fatalf("put one byte over the recounted quota: %v", err)
	}
	putBytes(t, be2, handleOf(backend.IndexFile, big[:room]), big[:room])
	if cost, _, _ := diskCost(t, clientDir); cost != quota {
		t.Errorf("the folder costs %d, want the quota %d", cost, quota)
	}
}
