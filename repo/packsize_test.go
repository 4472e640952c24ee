package repo

import (
	"testing"

	"github.com/cairn-backup/cairn/backend/mem"
)

// TestSetPackSizeBounds: SetPackSize takes MinPackSize to MaxPackSize and
// refuses the rest, leaving the size it had; the config is unchanged.
func TestSetPackSizeBounds(t *testing.T) {
	r := testInit(t, mem.New(), InitOptions{PackSize: DefaultPackSize})
	for _, n := range []int{MinPackSize - 1, MaxPackSize + 1, 0, -1} {
		if err := r.SetPackSize(n); err == nil {
			t.Errorf("SetPackSize(%d) accepted", n)
		}
	}
	if r.packSize != DefaultPackSize {
		t.Fatalf("a refused size changed the pack size to %d", r.packSize)
	}
	for _, n := range []int{MinPackSize, MaxPackSize, 4 << 20} {
		if err := r.SetPackSize(n); err != nil || r.packSize != n {
			t.Errorf("SetPackSize(%d): %v, size now %d", n, err, r.packSize)
		}
	}
	if r.cfg.PackSize != DefaultPackSize {
		t.Errorf("the config's pack size became %d", r.cfg.PackSize)
	}
}
