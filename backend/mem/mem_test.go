package mem_test

import (
	"bytes"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/mem"
)

func TestSuite(t *testing.T) {
	backendtest.RunTests(t, func(t *testing.T) backend.Backend { return mem.New() })
}

func TestTestHelpers(t *testing.T) {
	ctx := t.Context()
	be := mem.New()
	data := []byte("some pack bytes")
	h := backend.Handle{Type: backend.PackFile, Name: backend.Hash(data).String()}
	if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}

	files := be.Files()
	if len(files) != 1 || !bytes.Equal(files[h], data) {
		t.Fatalf("Files() = %v", files)
	}
	files[h][0] = 'X' // a snapshot: changing it changes nothing stored
	if got := be.Files()[h]; !bytes.Equal(got, data) {
		t.Fatalf("changing the snapshot changed the store: %q", got)
	}

	if err := be.Corrupt(h, 3); err != nil {
		t.Fatal(err)
	}
	got := be.Files()[h]
	if got[3] != data[3]^1 || !bytes.Equal(got[4:], data[4:]) || !bytes.Equal(got[:3], data[:3]) {
		t.Fatalf("corrupt flipped the wrong bits: %q", got)
	}
	if backend.Hash(got).String() == h.Name {
		t.Fatal("corrupted content still matches its name")
	}
	if err := be.Corrupt(h, int64(len(data))); err == nil {
		t.Error("corrupting past the end succeeded")
	}
	if err := be.Corrupt(backend.Handle{Type: backend.PackFile, Name: backend.Hash(nil).String()}, 0); !backend.IsNotExist(err) {
		t.Errorf("corrupting a missing file: %v", err)
	}

	if err := be.SetFile(h, []byte("edited")); err != nil {
		t.Fatal(err)
	}
	if fi, err := be.Stat(ctx, h); err != nil || fi.Size != 6 {
		t.Errorf("stat after SetFile: %+v, %v", fi, err)
	}
	if err := be.SetFile(backend.Handle{Type: backend.PackFile, Name: "x"}, nil); err == nil {
		t.Error("SetFile accepted an invalid handle")
	}

	if !be.DeleteRaw(h) || be.DeleteRaw(h) {
		t.Error("DeleteRaw did not report presence")
	}
	if _, err := be.Stat(ctx, h); !backend.IsNotExist(err) {
		t.Errorf("stat after DeleteRaw: %v", err)
	}
}
