package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Folder layout shared by the backends that store files in a tree of
// folders (local, sftp, the peer server's store): packs are spread over
// 256 subfolders of data/ named by the first two hex digits of their name,
// so no folder grows past a few thousand entries.

// PackDir is the subfolder of data/ that holds the pack with this name.
func PackDir(name string) string {
	if len(name) < 2 {
		return ""
	}
	return name[:2]
}

// IsPackDir reports whether s names one of the 256 pack subfolders: two
// lowercase hex digits.
func IsPackDir(s string) bool {
	if len(s) != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// FilePath is where the file of h lies below the repository folder, with
// slashes between the parts: config, keys/NAME, data/NN/NAME, ... h must
// be valid.
func FilePath(h Handle) string {
	switch h.Type {
	case ConfigFile:
		return ConfigName
	case PackFile:
		return h.Type.Dir() + "/" + PackDir(h.Name) + "/" + h.Name
	}
	return h.Type.Dir() + "/" + h.Name
}

// StatResult is what Stat of h answers in a folder store, given what
// stat-ing h's file (following links) returned: an error wrapping
// ErrNotExist for a missing file, and an error for anything that is not
// a regular file.
func StatResult(h Handle, fi fs.FileInfo, err error) (FileInfo, error) {
	if errors.Is(err, fs.ErrNotExist) {
		return FileInfo{}, fmt.Errorf("stat %s: %w", h, ErrNotExist)
	}
	if err != nil {
		return FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	if !fi.Mode().IsRegular() {
		return FileInfo{}, fmt.Errorf("stat %s: not a regular file", h)
	}
	return FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// ListConfig is what List of ConfigFile does in a folder store, given what
// stat-ing the config file (following links) returned: it calls fn when
// the config is a regular file, and nothing else.
func ListConfig(fi fs.FileInfo, err error, fn func(FileInfo) error) error {
	return listFile(ConfigFile, ConfigName, fi, err, fn)
}

// Lists reports whether List of t in a folder store reports a file named
// name found in a folder whose files' names start with prefix (a pack
// subfolder's name, else ""): only valid names for t, and so never a
// temporary file, and for packs only in their own subfolder.
func Lists(t FileType, prefix, name string) bool {
	return strings.HasPrefix(name, prefix) && (Handle{Type: t, Name: name}).Valid() == nil
}

// ListEntry is List's step for one entry of a folder store's folder of
// files of type t (a pack subfolder's, with its name as prefix): when the
// name is one Lists reports and the file, as info describes it, is a
// regular file, it calls fn. info must follow a symbolic link, as Stat
// and Get do; an entry it finds gone (an error wrapping fs.ErrNotExist:
// deleted since the folder was read, or a dangling link) is skipped. A
// cancelled ctx and info's other errors are returned wrapped, fn's as it
// returns them.
func ListEntry(ctx context.Context, t FileType, prefix, name string, info func() (fs.FileInfo, error), fn func(FileInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	if !Lists(t, prefix, name) {
		return nil
	}
	fi, err := info()
	return listFile(t, name, fi, err, fn)
}

// listFile calls fn for the file name of type t when stat-ing it
// (following links) found a regular file; a missing one is skipped, and
// another error is returned wrapped.
func listFile(t FileType, name string, fi fs.FileInfo, err error, fn func(FileInfo) error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	return fn(FileInfo{Name: name, Size: fi.Size()})
}
