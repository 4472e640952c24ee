package peer

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/crypt"
)

func TestParseLocation(t *testing.T) {
	id := newIdentity(t).PeerID()
	ids := id.String()
	// ids with its last character (a check character) changed.
	wrongCheck := ids[:len(ids)-1] + "A"
	if strings.HasSuffix(ids, "A") {
		wrongCheck = ids[:len(ids)-1] + "B"
	}
	good := []struct {
		in   string
		want Location
	}{
		{"peer://" + ids + "@example.org:7890/laptop", Location{id, "example.org:7890", "laptop"}},
		{"peer://" + strings.ToLower(ids) + "@10.0.0.1:1/a", Location{id, "10.0.0.1:1", "a"}},
		{"peer://" + strings.ReplaceAll(ids, "-", "") + "@[::1]:65535/home.v2_x-y", Location{id, "[::1]:65535", "home.v2_x-y"}},
	}
	for _, c := range good {
		got, err := ParseLocation(c.in)
		if err != nil {
			t.Errorf("ParseLocation(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseLocation(%q) = %+v, want %+v", c.in, got, c.want)
		}
		// The canonical text parses to the same location.
		again, err := ParseLocation(got.String())
		if err != nil || again != got {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
	bad := []string{
		"",
		"sftp://" + ids + "@host:1/x",
		"peer://" + ids + "@host:1",
		"peer://" + ids + "@host:1/",
		"peer://host:1/x",
		"peer://" + wrongCheck + "@host:1/x",
		"peer://" + ids + "@host/x",
		"peer://" + ids + "@host:0/x",
		"peer://" + ids + "@host:65536/x",
		"peer://" + ids + "@host:01/x",
		"peer://" + ids + "@host:http/x",
		"peer://" + ids + "@:1/x",
		"peer://" + ids + "@::1:1/x",
		"peer://" + ids + "@host:1/..",
		"peer://" + ids + "@host:1/.",
		"peer://" + ids + "@host:1/../other",
		"peer://" + ids + "@host:1/a/b",
		"peer://" + ids + "@host:1/Laptop",
		"peer://" + ids + "@host:1/.hidden",
		"peer://" + ids + "@host:1/" + strings.Repeat("a", 65),
		"peer://" + ids + "@host:1/a?b",
		"peer://" + ids + "@host:1/a b",
	}
	for _, in := range bad {
		if loc, err := ParseLocation(in); err == nil {
			t.Errorf("ParseLocation(%q) = %+v, want an error", in, loc)
		} else if !errors.Is(err, ErrLocation) && !errors.Is(err, crypt.ErrFormat) {
			t.Errorf("ParseLocation(%q): %v does not wrap ErrLocation or crypt.ErrFormat", in, err)
		}
	}
}

func TestParseAllow(t *testing.T) {
	id := newIdentity(t).PeerID()
	for in, want := range map[string]Mode{
		id.String():                  ModeAppendOnly,
		id.String() + ":append-only": ModeAppendOnly,
		id.String() + ":read-write":  ModeReadWrite,
	} {
		got, mode, err := ParseAllow(in)
		if err != nil || got != id || mode != want {
			t.Errorf("ParseAllow(%q) = %v, %v, %v; want %v, %v", in, got.Short(), mode, err, id.Short(), want)
		}
	}
	for _, in := range []string{"", id.String() + ":", id.String() + ":rw", id.String() + ":read-write:x", "nonsense:read-write"} {
		if _, _, err := ParseAllow(in); err == nil {
			t.Errorf("ParseAllow(%q) succeeded", in)
		}
	}
	if ModeAppendOnly.String() != "append-only" || ModeReadWrite.String() != "read-write" {
		t.Errorf("mode names: %v, %v", ModeAppendOnly, ModeReadWrite)
	}
}
