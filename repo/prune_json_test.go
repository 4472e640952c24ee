package repo

import (
	"encoding/json"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// TestPrunePackJSON pins the JSON of a planned pack: BlobUse's counts
// stand among the pack's own fields, in this order, as they did before
// they were a type of their own.
func TestPrunePackJSON(t *testing.T) {
	p := PrunePack{ID: backend.Hash([]byte("p")), Size: 100, BlobUse: BlobUse{UsedBlobs: 1, UsedBytes: 2, UnusedBlobs: 3, UnusedBytes: 4, DuplicateBlobs: 5, DuplicateBytes: 6}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + p.ID.String() + `","size":100,"used_blobs":1,"used_bytes":2,"unused_blobs":3,"unused_bytes":4,"duplicate_blobs":5,"duplicate_bytes":6}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var plan PrunePlan
	plan.add(p.BlobUse)
	plan.add(p.BlobUse)
	if plan.UsedBlobs != 2 || plan.UsedBytes != 4 || plan.UnusedBlobs != 6 || plan.UnusedBytes != 8 || plan.DuplicateBlobs != 10 || plan.DuplicateBytes != 12 {
		t.Errorf("sum of two: %+v", plan.BlobUse)
	}
}
