package repo

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo/pack"
)

// TestCopyBlobs copies blobs between two repositories with their own keys
// and chunker polynomials: the destination stores them sealed with its
// key (no pack of the source appears in it, and the source's key does not
// open its blobs), loads them with their content, and copying again
// stores nothing.
func TestCopyBlobs(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 7, 30, 30)
	src := testOpen(t, fx.be, Options{})
	dstBe := mem.New()
	dst := testInit(t, dstBe, InitOptions{Compression: CompressionMax})
	if src.ChunkerPolynomial() == dst.ChunkerPolynomial() || src.Config().ID == dst.Config().ID {
		t.Fatal("two inits made the same repository")
	}
	// The first round, and one tree blob of the second.
	set := NewBlobSet()
	want := append([]testBlob(nil), fx.rounds[0]...)
	for _, b := range fx.rounds[0] {
		set.Insert(b.t, b.id)
	}
	for _, b := range fx.rounds[1] {
		if b.t == pack.TreeBlob {
			set.Insert(b.t, b.id)
			want = append(want, b)
			break
		}
	}
	var calls int
	st, err := dst.CopyBlobs(ctx, src, set, func(phase string, done, total int64) {
		calls++
		if phase != "copy" || done > total {
			t.Errorf("progress %q %d/%d", phase, done, total)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var size uint64
	for _, b := range want {
		size += uint64(len(b.data))
	}
	if st.Blobs != len(want) || st.Bytes != size || st.PacksRead < 2 || calls != st.PacksRead {
		t.Fatalf("stats %+v (progress called %d times), want %d blobs of %d bytes from at least 2 packs", st, calls, len(want), size)
	}
	assertIndexedExactly(t, dst, want)
	// Read back through a fresh open: the blobs are in packs and indexed.
	again := testOpen(t, dstBe, Options{})
	assertLoadable(t, again, want)
	assertCheckClean(t, again)
	for _, id := range packIDs(dstBe) {
		if _, ok := fx.be.Files()[backend.Handle{Type: backend.PackFile, Name: id.String()}]; ok {
			t.Fatalf("pack %s is in both repositories: not re-encrypted", id.Str())
		}
	}
	pb, _ := again.Lookup(want[0].t, want[0].id)
	sealed := dstBe.Files()[backend.Handle{Type: backend.PackFile, Name: pb.PackID.String()}][pb.Offset : pb.Offset+pb.Length]
	if _, err := pack.OpenBlob(src.keys, nil, pb.Blob, sealed); err == nil {
		t.Fatal("the source's key opens a blob of the destination")
	}

	// Again: everything is there, nothing is stored.
	packs := len(packIDs(dstBe))
	st, err = again.CopyBlobs(ctx, src, set, nil)
	if err != nil || st.Blobs != 0 || st.Bytes != 0 {
		t.Fatalf("second copy: %+v, %v", st, err)
	}
	if n := len(packIDs(dstBe)); n != packs {
		t.Fatalf("second copy wrote %d packs", n-packs)
	}
}

// TestCopyBlobsErrors checks that a blob the source does not index, or
// whose only copy is damaged, fails the copy with an error naming it.
func TestCopyBlobsErrors(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 8, 5)
	src := testOpen(t, fx.be, Options{})
	dst := testInit(t, mem.New(), InitOptions{})

	set := NewBlobSet()
	absent := backend.Hash([]byte("never saved"))
	set.Insert(pack.DataBlob, absent)
	if _, err := dst.CopyBlobs(ctx, src, set, nil); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("copy of a blob the source lacks: %v", err)
	}

	b := fx.rounds[0][0]
	pb, _ := src.Lookup(b.t, b.id)
	h := backend.Handle{Type: backend.PackFile, Name: pb.PackID.String()}
	data := bytes.Clone(fx.be.Files()[h])
	data[pb.Offset+pb.Length/2] ^= 1
	fx.be.SetFile(h, data)
	set = NewBlobSet()
	set.Insert(b.t, b.id)
	_, err := dst.CopyBlobs(ctx, src, set, nil)
	if !errors.Is(err, ErrDamaged) || !bytes.Contains([]byte(err.Error()), []byte(b.id.Str())) {
		t.Fatalf("copy of a damaged blob: %v", err)
	}
	if dst.Has(b.t, b.id) {
		t.Fatal("the damaged blob was stored")
	}
}
