package restorer

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRestoreTrailingZeros: a file ending in all-zero chunks (left as
// holes, never written) still gets its full size, as does a file that is
// only zeros; a file with data to its end is written whole.
func TestRestoreTrailingZeros(t *testing.T) {
	repo := newFakeRepo()
	const chunk = 64 << 10
	tail := make([]byte, 4*chunk)
	copy(tail, "head")
	zeros := make([]byte, 3*chunk)
	full := make([]byte, 2*chunk)
	for i := range full {
		full[i] = byte(i)
	}
	root := repo.addTree(t,
		fileNode(repo, "tail", tail, chunk),
		fileNode(repo, "zeros", zeros, chunk),
		fileNode(repo, "full", full, chunk),
	)
	target := t.TempDir()
	st, rep := restoreT(t, repo, root, Options{Verify: true}, target)
	if len(rep.errs) > 0 {
		t.Fatal(rep.errs)
	}
	if st.Verified != 3 {
		t.Errorf("verified %d files, want 3", st.Verified)
	}
	for name, want := range map[string][]byte{"tail": tail, "zeros": zeros, "full": full} {
		checkFile(t, filepath.Join(target, name), want)
		fi, err := os.Stat(filepath.Join(target, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != int64(len(want)) {
			t.Errorf("%s: size %d, want %d", name, fi.Size(), len(want))
		}
	}
}
