package backend

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParseID(f *testing.F) {
	id := Hash([]byte("cairn")).String()
	for _, s := range []string{id, strings.ToUpper(id), id[:63], id + "0", "", "config",
		"../" + id[3:], strings.Repeat("g", 64), strings.Repeat("0", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseID(s)
		herr := (Handle{Type: PackFile, Name: s}).Valid()
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ParseID(%q): %v does not wrap ErrInvalidName", s, err)
			}
			if !got.IsNull() {
				t.Fatalf("ParseID(%q) failed but returned %v", s, got)
			}
			if herr == nil {
				t.Fatalf("Valid accepted %q that ParseID refuses", s)
			}
			return
		}
		if got.String() != s {
			t.Fatalf("ParseID(%q) = %s: not canonical", s, got)
		}
		if herr != nil {
			t.Fatalf("Valid refused %q: %v", s, herr)
		}
	})
}
