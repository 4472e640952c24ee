package repo

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
)

func TestRepairIndexAfterLosingAllIndexFiles(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 21, 20, 20, 20)
	var all []testBlob
	for _, round := range fx.rounds {
		all = append(all, round...)
	}
	for _, h := range filesOf(fx.be, backend.IndexFile) {
		fx.be.DeleteRaw(h)
	}
	r := testOpen(t, fx.be, Options{})
	if _, err := r.LoadBlob(ctx, all[0].t, all[0].id, nil); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("before repair: got %v, want ErrBlobNotFound", err)
	}
	plan, st, err := lockedRepairIndex(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Packs != 6 || plan.Blobs != 60 || plan.Added != 6 || plan.IndexFiles != 1 || len(plan.Replace) != 0 || len(plan.Damaged) != 0 {
		t.Errorf("plan: %+v", plan)
	}
	if st.IndexWritten != 1 || st.IndexRemoved != 0 {
		t.Errorf("result: %+v", st)
	}
	assertLoadable(t, r, all) // the in-memory index is rebuilt too
	r2 := testOpen(t, fx.be, Options{})
	assertLoadable(t, r2, all)
	assertIndexedExactly(t, r2, all)
	assertCheckClean(t, r2)
}

func TestRepairIndexDropsMissingAndDamagedPacks(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 22, 10, 10, 10)
	packs := packIDs(fx.be)
	gone, bad := packs[0], packs[1]
	fx.be.DeleteRaw(backend.Handle{Type: backend.PackFile, Name: gone.String()})
	badH := backend.Handle{Type: backend.PackFile, Name: bad.String()}
	// The last bytes are the header length: the header no longer reads.
	if err := fx.be.Corrupt(badH, int64(len(fx.be.Files()[badH])-2)); err != nil {
		t.Fatal(err)
	}
	r := testOpen(t, fx.be, Options{})
	oldIndex := filesOf(fx.be, backend.IndexFile)
	plan, st, err := lockedRepairIndex(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Damaged) != 1 || plan.Damaged[0].File != "data/"+bad.String() || plan.Damaged[0].Kind != ProblemPackDamaged {
		t.Errorf("damaged: %v", plan.Damaged)
	}
	if plan.Packs != 4 || st.IndexRemoved != len(oldIndex) || len(plan.Replace) != len(oldIndex) ||
		len(plan.Dropped) != 2 || plan.Added != 0 {
		t.Errorf("plan %+v, result %+v", plan, st)
	}
	if _, ok := fx.be.Files()[badH]; !ok {
		t.Error("repair deleted the damaged pack")
	}
	// Check now sees no missing pack, only the damaged one no index lists.
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{}).Problems, "warning pack_unindexed data/"+bad.String())
	for _, h := range oldIndex {
		if _, ok := fx.be.Files()[h]; ok {
			t.Errorf("old index file %s still there", h)
		}
	}
}

// TestRepairIndexCrashSafety stops a repair at each write and delete in
// turn; a second repair completes it.
func TestRepairIndexCrashSafety(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 23, 10, 10, 10, 10)
	var all []testBlob
	for _, round := range fx.rounds {
		all = append(all, round...)
	}
	for _, m := range []faulty.Method{faulty.Put, faulty.Delete} {
		for k := 1; k <= 4; k++ {
			name := fmt.Sprintf("%v/%d", m, k)
			inner := copyBackend(t, fx.be)
			f := faulty.New(inner)
			if k > 1 {
				f.AddFault(m).Times(k - 1)
			}
			f.AddFault(m).Times(1 << 20).ErrorInstead(errCrash)
			r := testOpen(t, f, Options{})
			_, _, err := lockedRepairIndex(ctx, r)
			if m == faulty.Put && k > 2 {
				// The lock file and a single index file are written:
				// no later put to fail.
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			} else if !errors.Is(err, errCrash) {
				t.Fatalf("%s: got %v, want the crash", name, err)
			}
			dropLocks(inner) // the crashed process is gone
			r = testOpen(t, inner, Options{})
			assertLoadable(t, r, all)
			if _, _, err := lockedRepairIndex(ctx, r); err != nil {
				t.Fatalf("%s: second repair: %v", name, err)
			}
			r = testOpen(t, inner, Options{})
			assertIndexedExactly(t, r, all)
			assertCheckClean(t, r)
			if n := len(filesOf(inner, backend.IndexFile)); n != 1 {
				t.Errorf("%s: %d index files, want 1", name, n)
			}
		}
	}
}
