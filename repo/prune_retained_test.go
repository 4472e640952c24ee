package repo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// refusingDeletes refuses, as an append-only peer or an S3 bucket's
// object lock does, to delete the files in refuse.
type refusingDeletes struct {
	backend.Backend
	refuse map[backend.Handle]bool
}

func (b refusingDeletes) Delete(ctx context.Context, h backend.Handle) error {
	if b.refuse[h] {
		return fmt.Errorf("delete %s: %w", h, backend.ErrRetained)
	}
	return b.Backend.Delete(ctx, h)
}

// TestPruneKeepsRetained: the backend refuses to delete an index file the
// prune replaces and a pack it deletes. The prune finishes the rest,
// names what it kept (the refused files, and the packs the kept index
// file lists), and the repository stays consistent.
func TestPruneKeepsRetained(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 3, 30, 30, 30, 30, 30, 30)
	r := testOpen(t, fx.be, Options{})
	packOf := func(b testBlob) backend.ID {
		pb, ok := r.Index().Lookup(b.t, b.id)
		if !ok {
			t.Fatalf("blob %s not indexed", b.id.Str())
		}
		return pb.PackID
	}
	// Round 1 is dropped whole: its data pack and the index file that
	// lists it are retained. Round 4 is dropped too: its data pack is
	// retained, its index file is not.
	round1, round4 := packOf(fx.rounds[1][0]), packOf(fx.rounds[4][0])
	var index1 backend.ID
	for _, h := range filesOf(fx.be, backend.IndexFile) {
		id, _ := backend.ParseID(h.Name)
		f, err := r.loadIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Packs {
			if p.ID == round1 {
				index1 = id
			}
		}
	}
	if index1.IsNull() {
		t.Fatal("no index file lists the pack of round 1")
	}
	idxH := backend.Handle{Type: backend.IndexFile, Name: index1.String()}
	p4 := backend.Handle{Type: backend.PackFile, Name: round4.String()}
	be := refusingDeletes{Backend: fx.be, refuse: map[backend.Handle]bool{idxH: true, p4: true}}
	r = testOpen(t, be, Options{})
	used, usedBlobs, _ := usedSet(fx, mixedUse)

	_, res, err := lockedPrune(ctx, r, used, PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatalf("prune with retained files: %v", err)
	}
	// What index1 lists (round 1's packs) stays with it.
	f, err := r.loadIndexFile(ctx, index1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{idxH.String(), p4.String()}
	for _, p := range f.Packs {
		want = append(want, backend.Handle{Type: backend.PackFile, Name: p.ID.String()}.String())
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(res.Kept, want) {
		t.Errorf("kept %v\nwant %v", res.Kept, want)
	}
	if res.DeletedPacks == 0 {
		t.Errorf("nothing deleted: %+v", res)
	}
	for _, k := range want {
		if _, ok := fx.be.Files()[parseKept(t, k)]; !ok {
			t.Errorf("%s is gone", k)
		}
	}
	r2 := testOpen(t, fx.be, Options{})
	assertLoadable(t, r2, usedBlobs)
	assertCheckClean(t, r2)
}

// parseKept parses "index/ID" or "data/ID".
func parseKept(t *testing.T, s string) backend.Handle {
	t.Helper()
	for _, ft := range []backend.FileType{backend.IndexFile, backend.PackFile} {
		if name, ok := strings.CutPrefix(s, ft.Dir()+"/"); ok {
			return backend.Handle{Type: ft, Name: name}
		}
	}
	t.Fatalf("not a handle: %q", s)
	return backend.Handle{}
}
