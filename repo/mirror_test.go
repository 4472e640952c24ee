package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// mirrorSource makes a repository with a few packs, index files and log
// entries (written as raw envelopes: the repo layer does not know bodies).
func mirrorSource(t *testing.T, ident *crypt.Identity, entries int) (*mem.Backend, *Repository) {
	t.Helper()
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	rnd := rand.New(rand.NewSource(9))
	for i := 0; i < 40; i++ {
		data := randomBlob(rnd, 50000, false)
		if _, err := r.SaveBlob(ctx, pack.DataBlob, backend.Hash(data), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	appendEntries(t, be, ident, entries)
	return be, r
}

// appendEntries appends n entries to the log in be, each naming the
// current heads.
func appendEntries(t *testing.T, be *mem.Backend, ident *crypt.Identity, n int) {
	t.Helper()
	appendOps(t, be, ident, n, 'a')
}

// appendOps is appendEntries with entries of the given op.
func appendOps(t *testing.T, be *mem.Backend, ident *crypt.Identity, n int, op byte) {
	t.Helper()
	for i := 0; i < n; i++ {
		var parents [][32]byte
		var seq uint64
		all := map[[32]byte]*crypt.Entry{}
		for h, data := range be.Files() {
			if h.Type == backend.LogFile {
				e, err := crypt.DecodeEntry(data)
				if err != nil {
					t.Fatal(err)
				}
				all[crypt.EntryID(data)] = e
			}
		}
		chain := crypt.VerifyChain(all)
		for _, h := range chain.Heads {
			parents = append(parents, h)
			seq = max(seq, all[h].Seq)
		}
		e := &crypt.Entry{Seq: seq + 1, Time: time.Now().UnixNano(), Op: op, Parents: parents, Body: []byte("opaque sealed body")}
		data, err := ident.EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := be.SetFile(backend.Handle{Type: backend.LogFile, Name: backend.Hash(data).String()}, data); err != nil {
			t.Fatal(err)
		}
	}
}

func sameFiles(t *testing.T, a, b *mem.Backend) {
	t.Helper()
	fa, fb := a.Files(), b.Files()
	for h, data := range fa {
		if h.Type == backend.LockFile {
			continue
		}
		if !bytes.Equal(fb[h], data) {
			t.Fatalf("%s missing or different on the destination", h)
		}
	}
	for h := range fb {
		if _, ok := fa[h]; !ok {
			t.Fatalf("%s only on the destination", h)
		}
	}
}

func TestMirrorCopiesEverythingAndOpens(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 3)
	dst := mem.New()
	st, err := Mirror(ctx, src, dst, MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, src, dst)
	if st.FilesCopied == 0 || st.FilesCopied != st.FilesToCopy {
		t.Fatalf("stats %+v", st)
	}
	// The copy is a working repository.
	testOpen(t, dst, Options{})
	// Nothing new: nothing copied.
	st, err = Mirror(ctx, src, dst, MirrorOptions{})
	if err != nil || st.FilesCopied != 0 || st.FilesSkipped == 0 {
		t.Fatalf("second mirror: %+v %v", st, err)
	}
}

func TestMirrorResumesAfterInterruption(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 2)
	dstMem := mem.New()
	dst := faulty.New(dstMem)
	dst.AddFault(faulty.Put).Match(backend.PackFile, "").Times(1).FailAfter(1000, errors.New("connection cut"))
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err == nil {
		t.Fatal("mirror through a cut connection succeeded")
	}
	// Nothing that references missing data arrived: no index, no log.
	for h := range dstMem.Files() {
		if h.Type == backend.IndexFile || h.Type == backend.LogFile || h.Type == backend.ConfigFile {
			t.Fatalf("%s copied before all packs", h)
		}
	}
	st, err := Mirror(ctx, src, dstMem, MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, src, dstMem)
	// Whether a pack landed before the cut depends on the upload workers'
	// timing; every file is accounted for either way.
	if st.FilesCopied+st.FilesSkipped != st.FilesToCopy+st.FilesSkipped || st.FilesCopied == 0 {
		t.Fatalf("resumed mirror stats %+v", st)
	}
}

func TestMirrorRefusesDivergedDestination(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 2)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	// Someone else writes to the destination.
	other, _ := crypt.NewIdentity()
	appendEntries(t, dst, other, 1)
	before := dst.Files()
	appendEntries(t, src, ident, 1)
	_, err := Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("diverged destination: %v", err)
	}
	if len(dst.Files()) != len(before) {
		t.Fatal("a refused mirror changed the destination")
	}
}

func TestMirrorRefusesAnotherRepository(t *testing.T) {
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 1)
	dst, _ := mirrorSource(t, ident, 1)
	if _, err := Mirror(context.Background(), src, dst, MirrorOptions{}); !errors.Is(err, ErrOtherRepository) {
		t.Fatalf("got %v", err)
	}
}

// appendOnly refuses deletes, as an append-only peer does.
type appendOnly struct{ backend.Backend }

func (appendOnly) Delete(context.Context, backend.Handle) error { return backend.ErrAppendOnly }

func TestMirrorPruneRespectsAppendOnly(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 2)
	dst := mem.New()
	if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	// The source drops a pack from its index and deletes it, as its
	// prune would.
	var gone backend.Handle
	for h := range src.Files() {
		if h.Type == backend.PackFile {
			gone = h
			break
		}
	}
	id, _ := backend.ParseID(gone.Name)
	r.Index().RemovePacks(map[backend.ID]bool{id: true})
	src.DeleteRaw(gone)
	refs := r.MirrorRefs()
	st, err := Mirror(ctx, src, appendOnly{dst}, MirrorOptions{Prune: true, Refs: refs})
	if err != nil || st.FilesKept != 1 || st.FilesRemoved != 0 {
		t.Fatalf("append-only prune: %+v %v", st, err)
	}
	if _, ok := dst.Files()[gone]; !ok {
		t.Fatal("append-only destination lost a file")
	}
	st, err = Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: refs})
	if err != nil || st.FilesRemoved != 1 {
		t.Fatalf("read-write prune: %+v %v", st, err)
	}
	sameFiles(t, src, dst)
}

func TestMirrorDryRunChangesNothing(t *testing.T) {
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 1)
	dst := mem.New()
	st, err := dryRun(context.Background(), src, dst, MirrorOptions{})
	if err != nil || st.FilesToCopy == 0 || st.FilesCopied != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	if len(dst.Files()) != 0 {
		t.Fatal("dry run wrote files")
	}
}

func TestMirrorRefusesDamagedSource(t *testing.T) {
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 1)
	for h := range src.Files() {
		if h.Type == backend.PackFile {
			if err := src.Corrupt(h, 100); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	_, err := Mirror(context.Background(), src, mem.New(), MirrorOptions{})
	if !errors.Is(err, backend.ErrHashMismatch) {
		t.Fatalf("got %v", err)
	}
}

// plantTemps writes, in the local repository at root, temporary files
// three hours old in the config's folder, index/ and data/ab/, as killed
// uploads leave them, and one ten minutes old in data/ab/, as an upload
// still running on another host has. It returns the old ones' paths and
// bytes, and the fresh one's path.
func plantTemps(t *testing.T, root string) (old []string, oldBytes int64, fresh string) {
	t.Helper()
	write := func(p string, size int, age time.Duration) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		mtime := time.Now().Add(-age)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range []string{".", "index", "data/ab"} {
		p := filepath.Join(root, filepath.FromSlash(d), ".tmp-killed"+fmt.Sprint(i))
		write(p, 1000*(i+1), 3*time.Hour)
		old = append(old, p)
		oldBytes += int64(1000 * (i + 1))
	}
	fresh = filepath.Join(root, "data", "ab", ".tmp-running")
	write(fresh, 10, 10*time.Minute)
	return old, oldBytes, fresh
}

// checkTemps checks that the old temporary files are gone and the fresh
// one is still there.
func checkTemps(t *testing.T, old []string, fresh string) {
	t.Helper()
	for _, p := range old {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale temporary file %s: %v, want it removed", p, err)
		}
	}
	if _, err := os.Lstat(fresh); err != nil {
		t.Errorf("the fresh temporary file must stay: %v", err)
	}
}

func TestMirrorRemovesStaleTemp(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, r := mirrorSource(t, ident, 2)
	dir := filepath.Join(t.TempDir(), "dst")
	dst, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Mirror(ctx, src, dst, MirrorOptions{})
	if err != nil || st.FilesCopied == 0 || st.TempFilesRemoved != 0 {
		t.Fatalf("first mirror: %+v, %v", st, err)
	}
	old, oldBytes, fresh := plantTemps(t, dir)

	// A dry run changes nothing, temporary files included.
	if st, err := dryRun(ctx, src, dst, MirrorOptions{}); err != nil || st.TempFilesRemoved != 0 {
		t.Fatalf("dry run: %+v, %v", st, err)
	}
	for _, p := range append(old, fresh) {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("dry run removed %s: %v", p, err)
		}
	}

	// A mirror with nothing to copy still removes them.
	warn := func(msg string) { t.Errorf("unexpected warning: %s", msg) }
	st, err = Mirror(ctx, src, dst, MirrorOptions{Warn: warn})
	if err != nil {
		t.Fatal(err)
	}
	if st.FilesCopied != 0 || st.TempFilesRemoved != len(old) || st.TempBytesRemoved != oldBytes {
		t.Errorf("mirror stats %+v; want nothing copied and %d temporary files (%d bytes) removed", st, len(old), oldBytes)
	}
	checkTemps(t, old, fresh)
	// The copy still opens and is whole.
	testOpen(t, dst, Options{})
	st, err = Mirror(ctx, src, dst, MirrorOptions{Warn: warn, Prune: true, Refs: r.MirrorRefs()})
	if err != nil || st.FilesCopied != 0 || st.FilesRemoved != 0 || st.TempFilesRemoved != 0 {
		t.Errorf("last mirror: %+v, %v", st, err)
	}
}

// failingCleaner is a destination whose temporary files cannot all be
// removed.
type failingCleaner struct{ *mem.Backend }

func (failingCleaner) RemoveStaleTemp(context.Context, time.Duration) (int, int64, error) {
	return 2, 20, errors.New("remove data/ab/.tmp-x: permission denied")
}

func TestMirrorStaleTempFailureIsAWarning(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 1)
	var warnings []string
	st, err := Mirror(ctx, src, failingCleaner{mem.New()}, MirrorOptions{Warn: func(msg string) { warnings = append(warnings, msg) }})
	if err != nil {
		t.Fatalf("mirror failed for a temporary file: %v", err)
	}
	if st.TempFilesRemoved != 2 || st.TempBytesRemoved != 20 {
		t.Errorf("stats %+v; want the 2 files removed counted", st)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "permission denied") {
		t.Errorf("warnings %q; want one naming the failure", warnings)
	}
}
