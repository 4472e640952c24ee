package snapshot

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// Summary holds the figures of a backup, with restic's field names: the
// one type the archiver fills (snapshot/archiver), the snapshot stores and
// the CLI prints.
type Summary struct {
	// BackupStart is when the archiver started; BackupEnd is when the
	// last pack was uploaded and confirmed (for a dry run, when the
	// archiver was done).
	BackupStart time.Time `json:"backup_start"`
	BackupEnd   time.Time `json:"backup_end"`
	// Files and directories are new when the parent snapshot has no node
	// of that name and type, unmodified when the node equals the parent's
	// in every field, else changed.
	FilesNew        uint64 `json:"files_new"`
	FilesChanged    uint64 `json:"files_changed"`
	FilesUnmodified uint64 `json:"files_unmodified"`
	DirsNew         uint64 `json:"dirs_new"`
	DirsChanged     uint64 `json:"dirs_changed"`
	DirsUnmodified  uint64 `json:"dirs_unmodified"`
	// DataBlobs and TreeBlobs count the blobs the repository did not
	// hold, and DataAdded is their plaintext size.
	DataBlobs uint64 `json:"data_blobs"`
	TreeBlobs uint64 `json:"tree_blobs"`
	DataAdded uint64 `json:"data_added"`
	// DataAddedPacked is what the backup added to the repository's data:
	// the sizes of the packs it uploaded (its new blobs compressed and
	// encrypted, with the packs' headers), so how much data/ grew. A dry
	// run uploads nothing and reports 0.
	DataAddedPacked uint64 `json:"data_added_packed"`
	// TotalFilesProcessed and TotalBytesProcessed count every regular
	// file recorded, read or unchanged, and their sizes.
	TotalFilesProcessed uint64 `json:"total_files_processed"`
	TotalBytesProcessed uint64 `json:"total_bytes_processed"`
	// ErrorCount counts the items left out because they could not be
	// read (the CLI then exits 3).
	ErrorCount uint64 `json:"error_count,omitempty"`
}

// Snapshot records one backup: its root tree and what it was made of.
// Its ID is the ID of the log entry that added it.
type Snapshot struct {
	ID             backend.ID  `json:"-"`
	Time           time.Time   `json:"time"`
	Parent         *backend.ID `json:"parent,omitempty"`
	Tree           backend.ID  `json:"tree"`
	Paths          []string    `json:"paths"`
	Hostname       string      `json:"hostname,omitempty"`
	Username       string      `json:"username,omitempty"`
	UID            uint32      `json:"uid,omitempty"`
	GID            uint32      `json:"gid,omitempty"`
	Excludes       []string    `json:"excludes,omitempty"`
	Tags           []string    `json:"tags,omitempty"`
	ProgramVersion string      `json:"program_version,omitempty"`
	Summary        *Summary    `json:"summary,omitempty"`
	// Original is set on a snapshot made from another: the ID of the
	// snapshot rewrite made it from, or, for copy, of the first snapshot
	// of the chain of copies it comes from (restic's "original").
	Original *backend.ID `json:"original,omitempty"`
}

// HasTags reports whether the snapshot carries every tag in tags.
func (sn *Snapshot) HasTags(tags []string) bool {
	for _, t := range tags {
		if !slices.Contains(sn.Tags, t) {
			return false
		}
	}
	return true
}

// HasPaths reports whether the snapshot's paths include every path given.
func (sn *Snapshot) HasPaths(paths []string) bool {
	for _, p := range paths {
		if !slices.Contains(sn.Paths, path.Clean(p)) {
			return false
		}
	}
	return true
}

// SamePaths reports whether the snapshot was made of exactly these paths.
func (sn *Snapshot) SamePaths(paths []string) bool {
	a := slices.Clone(sn.Paths)
	b := slices.Clone(paths)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// Filter selects snapshots by host, paths and tags; empty fields match all.
// A tag entry may hold several tags separated by commas, all of which must
// be present (restic's --tag a,b); several entries are alternatives.
type Filter struct {
	Hosts []string
	Paths []string
	Tags  []string
}

// Match reports whether sn passes the filter.
func (f Filter) Match(sn *Snapshot) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, sn.Hostname) {
		return false
	}
	if len(f.Paths) > 0 && !sn.HasPaths(f.Paths) {
		return false
	}
	if len(f.Tags) > 0 {
		ok := false
		for _, group := range f.Tags {
			if sn.HasTags(splitTags(group)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Apply returns the snapshots that pass the filter, oldest first.
func (f Filter) Apply(snaps []*Snapshot) []*Snapshot {
	var out []*Snapshot
	for _, sn := range snaps {
		if f.Match(sn) {
			out = append(out, sn)
		}
	}
	SortByTime(out)
	return out
}

// SortByTime orders snapshots oldest first, ties broken by ID.
func SortByTime(snaps []*Snapshot) {
	sort.SliceStable(snaps, func(i, j int) bool {
		if !snaps[i].Time.Equal(snaps[j].Time) {
			return snaps[i].Time.Before(snaps[j].Time)
		}
		return snaps[i].ID.Less(snaps[j].ID)
	})
}

// Selector errors.
var (
	ErrNoSnapshot        = errors.New("no matching snapshot")
	ErrAmbiguousSnapshot = errors.New("snapshot prefix is ambiguous")
)

// SplitSelector splits "SNAPSHOT:SUBPATH" into its parts; subpath is ""
// when there is none.
func SplitSelector(sel string) (snap, subpath string) {
	if i := strings.IndexByte(sel, ':'); i >= 0 {
		return sel[:i], sel[i+1:]
	}
	return sel, ""
}

// Find resolves a selector: a full ID, a unique ID prefix, or "latest" (the
// newest snapshot passing the filter). A full ID or prefix must also pass
// the filter.
func Find(snaps []*Snapshot, sel string, f Filter) (*Snapshot, error) {
	cands := f.Apply(snaps)
	if sel == "latest" {
		if len(cands) == 0 {
			return nil, fmt.Errorf("latest: %w", ErrNoSnapshot)
		}
		return cands[len(cands)-1], nil
	}
	sel = strings.ToLower(sel)
	if sel == "" || len(sel) > 64 || strings.Trim(sel, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("invalid snapshot selector %q (want an ID, an ID prefix or \"latest\")", sel)
	}
	var found *Snapshot
	for _, sn := range cands {
		if strings.HasPrefix(sn.ID.String(), sel) {
			if found != nil {
				return nil, fmt.Errorf("%s: %w", sel, ErrAmbiguousSnapshot)
			}
			found = sn
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%s: %w", sel, ErrNoSnapshot)
	}
	return found, nil
}

// FindParent returns the newest snapshot of the same host and paths made
// before t, the parent a new backup compares files against.
func FindParent(snaps []*Snapshot, host string, paths []string, t time.Time) *Snapshot {
	var best *Snapshot
	for _, sn := range snaps {
		if sn.Hostname != host || !sn.SamePaths(paths) || sn.Time.After(t) {
			continue
		}
		if best == nil || sn.Time.After(best.Time) {
			best = sn
		}
	}
	return best
}
