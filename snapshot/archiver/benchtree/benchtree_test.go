package benchtree

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// readTree returns every regular file under dir by its relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeterministic checks what the benchmarks rely on: the same seed and
// scale write the same bytes, another seed other bytes, and Stats counts
// what was written.
func TestDeterministic(t *testing.T) {
	gens := []struct {
		name string
		gen  func(dir string, seed uint64) (Stats, error)
	}{
		{"mixed", func(dir string, seed uint64) (Stats, error) { return Mixed(dir, 0.0002, seed) }},
		{"small", func(dir string, seed uint64) (Stats, error) { return Small(dir, 250, seed) }},
	}
	for _, g := range gens {
		t.Run(g.name, func(t *testing.T) {
			var trees []map[string][]byte
			for _, seed := range []uint64{1, 1, 2} {
				dir := t.TempDir()
				st, err := g.gen(dir, seed)
				if err != nil {
					t.Fatal(err)
				}
				tree := readTree(t, dir)
				var size int64
				for _, data := range tree {
					size += int64(len(data))
				}
				if st.Files != len(tree) || st.Bytes != size || st.Files == 0 {
					t.Fatalf("seed %d: Stats %+v, wrote %d files of %d bytes", seed, st, len(tree), size)
				}
				trees = append(trees, tree)
			}
			if !sameTree(trees[0], trees[1]) {
				t.Error("the same seed wrote different trees")
			}
			if sameTree(trees[0], trees[2]) {
				t.Error("seeds 1 and 2 wrote the same tree")
			}
		})
	}
	if _, err := Mixed(t.TempDir(), 0, 1); err == nil {
		t.Error("Mixed accepted scale 0")
	}
}

func sameTree(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for p, data := range a {
		if !bytes.Equal(data, b[p]) {
			return false
		}
	}
	return true
}
