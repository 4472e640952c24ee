package repo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// TestRotateRevokeRepo: after a revoking rotation, data saved is sealed
// with the new key; the password in use reaches it on a fresh open, a
// second password does not (its blob loads fail as unknown key), and its
// prune refuses rather than replace the index file it cannot read.
// Without revocation the second password follows.
func TestRotateRevokeRepo(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	if _, err := r.AddKey(ctx, []byte("second"), crypt.FastKDFParamsForTests()); err != nil {
		t.Fatal(err)
	}
	old := r.Keys().Current().ID()
	res, err := r.RotateKey(ctx, true)
	if err != nil || res.Keys != 2 || res.NewKey == old || r.Keys().Current().ID() != res.NewKey {
		t.Fatalf("rotate: %+v, %v", res, err)
	}
	blob := []byte("sealed after the rotation")
	id := backend.Hash(blob)
	if _, err := r.SaveBlob(ctx, pack.DataBlob, id, blob); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	cur := testOpen(t, be, Options{})
	if cur.KeyRingLen() != 2 {
		t.Fatalf("the password in use reaches a ring of %d keys, want 2", cur.KeyRingLen())
	}
	if got, err := cur.LoadBlob(ctx, pack.DataBlob, id, nil); err != nil || string(got) != string(blob) {
		t.Fatalf("load with the password in use: %q, %v", got, err)
	}

	var warnings []string
	second, _, err := OpenForJob(ctx, be, []byte("second"), Options{Warn: func(m string) { warnings = append(warnings, m) }}, NoLock)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if second.KeyRingLen() != 1 {
		t.Fatalf("the revoked password reaches %d keys, want 1", second.KeyRingLen())
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "this key file was revoked") {
		t.Errorf("warnings do not say why the new index does not open: %q", warnings)
	}
	if _, err := second.LoadBlob(ctx, pack.DataBlob, id, nil); err == nil {
		t.Fatal("the revoked password loaded a blob sealed after the rotation")
	}
	before := snapshotFiles(be)
	if _, _, err := lockedPrune(ctx, second, NewBlobSet(), PruneOptions{}); !errors.Is(err, crypt.ErrUnknownKey) {
		t.Fatalf("prune with the revoked password: %v, want a refusal naming the unknown key", err)
	}
	dropLocks(be)
	if after := snapshotFiles(be); after != before {
		t.Fatal("the refused prune changed the repository")
	}

	// A rotation without revocation reaches every password.
	if _, err := cur.RotateKey(ctx, false); err != nil {
		t.Fatal(err)
	}
	third, err := Open(ctx, be, testPassword, Options{})
	if err != nil || third.KeyRingLen() != 3 {
		t.Fatalf("after a second rotation: %v", err)
	}
	third.Close()
	again, err := Open(ctx, be, []byte("second"), Options{Warn: func(string) {}})
	if err != nil || again.KeyRingLen() != 1 {
		t.Fatalf("the revoked password must not follow a later rotation sealed with the new key: %v", err)
	}
	again.Close()
}
