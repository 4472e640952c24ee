package archiver

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

// packsFixture is a repository in memory with one snapshot of a folder of
// a few files, and what Backup needs to make the next.
type packsFixture struct {
	be    *mem.Backend
	r     *repo.Repository
	src   string
	files map[string][]byte
	ident *crypt.Identity
}

func newPacksFixture(t *testing.T, be backend.Backend, inner *mem.Backend) *packsFixture {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Init(ctx, be, []byte("pw"), repo.InitOptions{KDF: crypt.FastKDFParamsForTests(), PackSize: repo.MinPackSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ident, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	fx := &packsFixture{be: inner, r: r, src: t.TempDir(), files: map[string][]byte{}, ident: ident}
	rnd := rand.New(rand.NewPCG(7, 8))
	for i, size := range []int{3 << 20, 600 << 10, 3000} {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		name := filepath.Join(fx.src, string(rune('a'+i)))
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		fx.files[name] = b
	}
	if _, _, err := fx.backup(t, nil); err != nil {
		t.Fatal(err)
	}
	return fx
}

// backup runs Backup over the folder; warnings are returned.
func (fx *packsFixture) backup(t *testing.T, hook func(ctx context.Context) error) (*snapshot.Snapshot, []string, error) {
	t.Helper()
	ctx := context.Background()
	l, err := snapshot.LoadLog(ctx, fx.r)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var warned []string
	sn, _, err := Backup(ctx, fx.r, l, BackupOptions{
		Paths: []string{fx.src}, Hostname: "h", Identity: fx.ident,
		TestOnlyBeforeSnapshot: hook,
		Warn:                   func(m string) { mu.Lock(); warned = append(warned, m); mu.Unlock() },
	})
	return sn, warned, err
}

// dataPacks lists the packs in the backend.
func (fx *packsFixture) dataPacks() []backend.Handle {
	var hs []backend.Handle
	for h := range fx.be.Files() {
		if h.Type == backend.PackFile {
			hs = append(hs, h)
		}
	}
	return hs
}

// checkRestorable opens the repository afresh, forgets the packs it
// lacks, and loads every file of sn from what is left, comparing it with
// the source.
func (fx *packsFixture) checkRestorable(t *testing.T, sn *snapshot.Snapshot) {
	t.Helper()
	ctx := context.Background()
	r, _, err := repo.OpenForJob(ctx, fx.be, []byte("pw"), repo.Options{}, repo.NoLock)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ForgetMissingPacks(ctx); err != nil {
		t.Fatal(err)
	}
	found := 0
	var walk func(tree backend.ID, dir string)
	walk = func(tree backend.ID, dir string) {
		plain, err := r.LoadBlob(ctx, pack.TreeBlob, tree, nil)
		if err != nil {
			t.Fatalf("tree of %s: %v", dir, err)
		}
		tr, err := snapshot.DecodeTree(plain)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			p := filepath.Join(dir, n.Name)
			if n.Subtree != nil {
				walk(*n.Subtree, p)
				continue
			}
			want, ok := fx.files[p]
			if !ok {
				continue
			}
			var got []byte
			for _, id := range n.Content {
				b, err := r.LoadBlob(ctx, pack.DataBlob, id, nil)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				got = append(got, b...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s differs", p)
			}
			found++
		}
	}
	walk(sn.Tree, "/")
	if found != len(fx.files) {
		t.Fatalf("found %d of %d files", found, len(fx.files))
	}
}

// TestBackupUploadsLostPacksAgain: a backup after a pack was lost does
// not deduplicate against it: the data is uploaded again and the new
// snapshot is whole (issue 11 item 1).
func TestBackupUploadsLostPacksAgain(t *testing.T) {
	be := mem.New()
	fx := newPacksFixture(t, be, be)
	for _, h := range fx.dataPacks() {
		fx.be.DeleteRaw(h)
	}
	sn, warned, err := fx.backup(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	fx.checkRestorable(t, sn)
	if len(warned) != 1 || !strings.Contains(warned[0], "missing from the repository") {
		t.Fatalf("warnings: %q", warned)
	}
}

// TestBackupPacksVanishDuringBackup: packs deleted between the
// deduplication and the snapshot (a prune that did not see the lock) make
// the backup archive the paths again; the snapshot it records is whole.
func TestBackupPacksVanishDuringBackup(t *testing.T) {
	be := mem.New()
	fx := newPacksFixture(t, be, be)
	old := fx.dataPacks()
	sn, warned, err := fx.backup(t, func(context.Context) error {
		for _, h := range old {
			fx.be.DeleteRaw(h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fx.checkRestorable(t, sn)
	if len(warned) != 1 || !strings.Contains(warned[0], "deleted while this backup ran") {
		t.Fatalf("warnings: %q", warned)
	}
}

// vanishing deletes every pack in the backend whenever packs are listed,
// once armed: a prune that keeps running under a backup.
type vanishing struct {
	*mem.Backend
	armed bool
	lists int
}

func (v *vanishing) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if v.armed && t == backend.PackFile {
		v.lists++
		for h := range v.Files() {
			if h.Type == backend.PackFile {
				v.DeleteRaw(h)
			}
		}
	}
	return v.Backend.List(ctx, t, fn)
}

// TestBackupGivesUpWhenPacksKeepVanishing: after backupPasses passes that
// each lose packs, the backup fails and records no snapshot.
func TestBackupGivesUpWhenPacksKeepVanishing(t *testing.T) {
	inner := mem.New()
	v := &vanishing{Backend: inner}
	fx := newPacksFixture(t, v, inner)
	v.armed = true
	_, warned, err := fx.backup(t, nil)
	if err == nil || !strings.Contains(err.Error(), "no snapshot written") {
		t.Fatalf("want the backup to give up, got %v", err)
	}
	if v.lists != backupPasses {
		t.Fatalf("listed the packs %d times, want %d (once after each pass)", v.lists, backupPasses)
	}
	if len(warned) != backupPasses-1 {
		t.Fatalf("warnings: %q", warned)
	}
	l, lerr := snapshot.LoadLog(context.Background(), fx.r)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if n := len(l.Snapshots()); n != 1 {
		t.Fatalf("%d snapshots, want the first one only", n)
	}
}
