package repo

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileAtomic: the folder is made, the file is private and holds
// the data, a second write replaces it, and a failed rename (a folder in
// the way) leaves no temporary file behind.
func TestWriteFileAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "sub")
	p := filepath.Join(dir, "f.json")
	for _, write := range []func(string, []byte) error{WriteFileAtomic, writeCacheFile} {
		for _, data := range []string{"first\n", "second, longer\n"} {
			if err := write(p, []byte(data)); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != data {
				t.Fatalf("read back %q, %v; want %q", got, err, data)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("file mode %v, %v", fi.Mode(), err)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("folder mode %v, %v", fi.Mode(), err)
			}
		}
		in := filepath.Join(dir, "in-the-way")
		if err := os.MkdirAll(filepath.Join(in, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := write(in, []byte("x")); err == nil {
			t.Error("write over a folder: no error")
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 2 {
			t.Errorf("folder holds %v, %v; want f.json and in-the-way only", ents, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
}
