package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func TestFilePath(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, c := range []struct {
		h    Handle
		want string
	}{
		{Handle{Type: ConfigFile, Name: ConfigName}, "config"},
		{Handle{Type: PackFile, Name: id}, "data/ab/" + id},
		{Handle{Type: KeyFile, Name: id}, "keys/" + id},
		{Handle{Type: IndexFile, Name: id}, "index/" + id},
		{Handle{Type: LogFile, Name: id}, "log/" + id},
		{Handle{Type: LockFile, Name: id}, "locks/" + id},
	} {
		if err := c.h.Valid(); err != nil {
			t.Fatal(err)
		}
		if got := FilePath(c.h); got != c.want {
			t.Errorf("FilePath(%v) = %q, want %q", c.h, got, c.want)
		}
	}
}

// TestStatResult checks the answers Stat and List of the config give for
// a file, a folder, a missing name and another error.
func TestStatResult(t *testing.T) {
	tree := fstest.MapFS{"f": {Data: []byte("12345")}, "d": {Mode: fs.ModeDir}}
	file, _ := fs.Stat(tree, "f")
	dir, _ := fs.Stat(tree, "d")
	h := Handle{Type: ConfigFile, Name: ConfigName}
	other := errors.New("disk on fire")
	for _, c := range []struct {
		name   string
		fi     fs.FileInfo
		err    error
		size   int64  // of the answer, when it has no error
		errHas string // in the error, when there is one
		is     error  // what the error wraps
		listed bool   // whether ListConfig calls fn
	}{
		{"file", file, nil, 5, "", nil, true},
		{"folder", dir, nil, 0, "stat config: not a regular file", nil, false},
		{"missing", nil, fs.ErrNotExist, 0, "stat config: file does not exist", ErrNotExist, false},
		{"other", nil, other, 0, "stat config: disk on fire", other, false},
	} {
		fi, err := StatResult(h, c.fi, c.err)
		switch {
		case c.errHas == "" && (err != nil || fi != FileInfo{Name: ConfigName, Size: c.size}):
			t.Errorf("%s: StatResult = %+v, %v", c.name, fi, err)
		case c.errHas != "" && (err == nil || err.Error() != c.errHas || c.is != nil && !errors.Is(err, c.is)):
			t.Errorf("%s: StatResult error %v, want %q", c.name, err, c.errHas)
		}
		listed := false
		err = ListConfig(c.fi, c.err, func(fi FileInfo) error {
			listed = fi == FileInfo{Name: ConfigName, Size: c.size}
			return nil
		})
		if listed != c.listed || (c.name == "other") != (err != nil) {
			t.Errorf("%s: ListConfig listed %v, error %v", c.name, listed, err)
		}
	}
}

func TestLists(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, c := range []struct {
		t            FileType
		prefix, name string
		want         bool
	}{
		{PackFile, "ab", id, true},
		{PackFile, "cd", id, false}, // in the wrong subfolder
		{PackFile, "ab", TempPrefix + id, false},
		{IndexFile, "", id, true},
		{IndexFile, "", id[:63], false},
		{IndexFile, "", strings.ToUpper(id), false},
		{ConfigFile, "", ConfigName, true},
		{ConfigFile, "", "configs", false},
	} {
		if got := Lists(c.t, c.prefix, c.name); got != c.want {
			t.Errorf("Lists(%v, %q, %q) = %v", c.t, c.prefix, c.name, got)
		}
	}
}

func TestListEntry(t *testing.T) {
	tree := fstest.MapFS{"f": {Data: []byte("12345")}, "d": {Mode: fs.ModeDir}}
	file, _ := fs.Stat(tree, "f")
	dir, _ := fs.Stat(tree, "d")
	id := strings.Repeat("ab", 32)
	other := errors.New("disk on fire")
	stop := errors.New("stop")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name       string
		ctx        context.Context
		prefix     string
		entry      string
		fi         fs.FileInfo
		err        error // of info
		fnErr      error
		wantInfo   bool   // whether info is asked
		wantListed bool   // whether fn is called
		wantErr    string // the error, "" for none
		wantIs     error  // what the error wraps
	}{
		{"file", context.Background(), "ab", id, file, nil, nil, true, true, "", nil},
		{"wrong subfolder", context.Background(), "cd", id, file, nil, nil, false, false, "", nil},
		{"temporary", context.Background(), "ab", TempPrefix + id, file, nil, nil, false, false, "", nil},
		{"folder", context.Background(), "ab", id, dir, nil, nil, true, false, "", nil},
		{"gone", context.Background(), "ab", id, nil, fmt.Errorf("stat: %w", fs.ErrNotExist), nil, true, false, "", nil},
		{"unreadable", context.Background(), "ab", id, nil, other, nil, true, false, "list pack: disk on fire", other},
		{"cancelled", cancelled, "ab", id, file, nil, nil, false, false, "list pack: context canceled", context.Canceled},
		{"fn fails", context.Background(), "ab", id, file, nil, stop, true, true, "stop", stop},
	} {
		asked, listed := false, false
		err := ListEntry(c.ctx, PackFile, c.prefix, c.entry, func() (fs.FileInfo, error) {
			asked = true
			return c.fi, c.err
		}, func(fi FileInfo) error {
			listed = fi == FileInfo{Name: id, Size: 5}
			return c.fnErr
		})
		if asked != c.wantInfo || listed != c.wantListed {
			t.Errorf("%s: info asked %v, listed %v; want %v, %v", c.name, asked, listed, c.wantInfo, c.wantListed)
		}
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: error %v", c.name, err)
		case c.wantErr != "" && (err == nil || err.Error() != c.wantErr || !errors.Is(err, c.wantIs)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.wantErr)
		case c.fnErr != nil && err != c.fnErr:
			t.Errorf("%s: fn's error came back as %v, not as it was", c.name, err)
		}
	}
}
