package restorer

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
)

var _ Repository = (*repo.Repository)(nil)

// TestRestoreFromRealRepository restores from an encrypted, compressed
// repository in memory, then again after corrupting one pack.
func TestRestoreFromRealRepository(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r, err := repo.Init(ctx, be, []byte("pw"), repo.InitOptions{KDF: crypt.FastKDFParamsForTests(), PackSize: repo.MinPackSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	rnd := rand.New(rand.NewPCG(13, 14))
	want := map[string][]byte{}
	save := func(tp pack.BlobType, b []byte) backend.ID {
		id := backend.Hash(b)
		if _, err := r.SaveBlob(ctx, tp, id, b); err != nil {
			t.Fatal(err)
		}
		return id
	}
	var tree snapshot.Tree
	for i := range 12 {
		content := randBytes(rnd, 200_000+rnd.IntN(100_000))
		if i%3 == 0 {
			content = append(content, make([]byte, 300_000)...) // compressible zeros
		}
		name := string(rune('a' + i))
		want[name] = content
		n := &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o640, Size: uint64(len(content)), ModTime: t0}
		for c := range slices.Chunk(content, 64<<10) {
			n.Content = append(n.Content, save(pack.DataBlob, c))
		}
		if err := tree.Insert(n); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := snapshot.EncodeTree(&tree)
	if err != nil {
		t.Fatal(err)
	}
	root := save(pack.TreeBlob, tb)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	target := t.TempDir()
	st, rep := restoreT(t, r, root, Options{Verify: true}, target)
	if len(rep.errs) > 0 {
		t.Fatal(rep.errs)
	}
	if st.Files != 12 || st.Verified != 12 {
		t.Errorf("stats %+v", st)
	}
	for name, content := range want {
		checkFile(t, filepath.Join(target, name), content)
	}

	// Damage the pack holding file "b"'s second chunk: "b" and any other
	// file sharing that blob are named, the rest is intact.
	pb, ok := r.Lookup(pack.DataBlob, tree.Find("b").Content[1])
	if !ok {
		t.Fatal("blob not in index")
	}
	if err := be.Corrupt(backend.Handle{Type: backend.PackFile, Name: pb.PackID.String()}, int64(pb.Offset)+30); err != nil {
		t.Fatal(err)
	}
	target = t.TempDir()
	_, rep = restoreT(t, r, root, Options{Verify: true}, target)
	if !slices.Contains(rep.paths(), "/b") {
		t.Fatalf("damaged blob not reported against /b: %v", rep.errs)
	}
	for name, content := range want {
		if _, bad := rep.errs["/"+name]; bad {
			continue
		}
		checkFile(t, filepath.Join(target, name), content)
	}
	for p, errs := range rep.errs {
		if len(errs) != 1 || !errors.Is(errs[0], repo.ErrDamaged) {
			t.Errorf("%s: %v", p, errs)
		}
	}
	got, _ := os.ReadFile(filepath.Join(target, "b"))
	if bytes.Equal(got, want["b"]) {
		t.Error("damaged file has the right content")
	}
}
