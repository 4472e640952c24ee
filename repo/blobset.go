package repo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/pack"
)

// BlobSet is a set of blobs, each a (type, ID) pair: the blobs that live
// snapshots use, as prune and check collect them. It is built for tens of
// millions of blobs: each type's IDs sit in one sorted slice (32 bytes a
// blob, found by binary search) plus a small map of recent additions that
// is merged into the slice once it holds an eighth of it, so the set costs
// 32 to 42 bytes a blob, plus the slice once more while a merge runs (a
// plain map costs 40 to 80 bytes a blob).
//
// The zero value is an empty set. A BlobSet is not safe for concurrent use.
type BlobSet struct {
	data, tree idSet
}

// idSet is the set of one blob type.
type idSet struct {
	// main is sorted and holds no ID twice; recent holds additions not in
	// main.
	main   []backend.ID
	recent map[backend.ID]struct{}
	// dir[p]..dir[p+1] is the range of main whose IDs start with the
	// dirBits-bit prefix p (about 16 IDs, so a lookup touches few cache
	// lines); nil while main is empty.
	dir     []uint32
	dirBits uint
}

// blobSetMergeMin is the number of recent additions below which no merge
// happens, so small sets stay plain maps.
const blobSetMergeMin = 4096

// blobSetMergeDiv: recent additions are merged into the sorted slice once
// they number len(main)/blobSetMergeDiv. 8 bounds the map to about 5 bytes
// a blob of the whole set, and each merge grows the slice by an eighth, so
// an ID is copied about nine times while a set is built up one by one.
const blobSetMergeDiv = 8

// NewBlobSet returns an empty set.
func NewBlobSet() *BlobSet { return &BlobSet{} }

func (s *BlobSet) of(t pack.BlobType) *idSet {
	switch t {
	case pack.DataBlob:
		return &s.data
	case pack.TreeBlob:
		return &s.tree
	}
	panic(fmt.Sprintf("repo: BlobSet used with invalid blob type %d (bug in the caller)", t))
}

// Insert adds the blob and reports whether it was not in the set before.
func (s *BlobSet) Insert(t pack.BlobType, id backend.ID) bool {
	return s.of(t).insert(id)
}

// Has reports whether the blob is in the set.
func (s *BlobSet) Has(t pack.BlobType, id backend.ID) bool {
	return s.of(t).has(id)
}

// Len returns the number of blobs in the set.
func (s *BlobSet) Len() int { return s.data.len() + s.tree.len() }

// Each calls fn for every blob, data blobs first, each type in ID order,
// until fn returns false. fn must not change the set.
func (s *BlobSet) Each(fn func(t pack.BlobType, id backend.ID) bool) {
	for _, t := range []pack.BlobType{pack.DataBlob, pack.TreeBlob} {
		is := s.of(t)
		is.compact()
		for _, id := range is.main {
			if !fn(t, id) {
				return
			}
		}
	}
}

// compact merges every recent addition into the sorted slices, after which
// pos numbers the blobs densely.
func (s *BlobSet) compact() {
	s.data.compact()
	s.tree.compact()
}

// pos returns the blob's position in 0..Len()-1: data blobs in ID order,
// then tree blobs. The set must be compacted and not changed since.
func (s *BlobSet) pos(t pack.BlobType, id backend.ID) (int, bool) {
	is := s.of(t)
	if len(is.recent) > 0 {
		panic("repo: BlobSet.pos on a set that is not compacted (bug)")
	}
	i, ok := is.search(id)
	if !ok {
		return 0, false
	}
	if t == pack.TreeBlob {
		i += len(s.data.main)
	}
	return i, true
}

// cmpBlobID orders IDs bytewise; the first eight bytes decide almost
// always, and comparing them as one integer is several times faster.
func cmpBlobID(a, b backend.ID) int {
	x, y := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return bytes.Compare(a[8:], b[8:])
}

// search returns where id is or would be in main.
func (is *idSet) search(id backend.ID) (int, bool) {
	if len(is.dir) == 0 {
		return 0, false
	}
	p := binary.BigEndian.Uint32(id[:4]) >> (32 - is.dirBits) // dirBits >= 1
	lo, hi := int(is.dir[p]), int(is.dir[p+1])
	// A binary search by hand: comparing through pointers, the first
	// eight bytes as one integer, is twice as fast as the generic one.
	k := binary.BigEndian.Uint64(id[:8])
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		e := &is.main[m]
		x := binary.BigEndian.Uint64(e[:8])
		if x < k || x == k && bytes.Compare(e[8:], id[8:]) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(is.main) && is.main[lo] == id
}

// buildDir indexes main by ID prefix, 1 to 24 bits (at most 64 MiB of
// directory, for a quarter billion IDs).
func (is *idSet) buildDir() {
	bits := uint(1)
	for bits < 24 && (2<<bits)*16 <= len(is.main) {
		bits++
	}
	dir := make([]uint32, 1<<bits+1)
	p := 0
	for i := range is.main {
		q := int(binary.BigEndian.Uint32(is.main[i][:4]) >> (32 - bits))
		for p < q {
			p++
			dir[p] = uint32(i)
		}
	}
	for p < len(dir)-1 {
		p++
		dir[p] = uint32(len(is.main))
	}
	is.dir, is.dirBits = dir, bits
}

func (is *idSet) len() int { return len(is.main) + len(is.recent) }

func (is *idSet) has(id backend.ID) bool {
	if _, ok := is.search(id); ok {
		return true
	}
	_, ok := is.recent[id]
	return ok
}

func (is *idSet) insert(id backend.ID) bool {
	if is.has(id) {
		return false
	}
	if is.recent == nil {
		is.recent = make(map[backend.ID]struct{})
	}
	is.recent[id] = struct{}{}
	if len(is.recent) >= max(blobSetMergeMin, len(is.main)/blobSetMergeDiv) {
		is.compact()
	}
	return true
}

// compact merges recent into main.
func (is *idSet) compact() {
	if len(is.recent) == 0 {
		return
	}
	add := make([]backend.ID, 0, len(is.recent))
	for id := range is.recent {
		add = append(add, id)
	}
	slices.SortFunc(add, cmpBlobID)
	// add is much shorter than main: find where each goes and copy the
	// runs of main between them whole.
	merged := make([]backend.ID, 0, len(is.main)+len(add))
	from := 0
	for _, id := range add {
		at, _ := is.search(id)
		merged = append(merged, is.main[from:at]...)
		merged = append(merged, id)
		from = at
	}
	merged = append(merged, is.main[from:]...)
	is.main = merged
	is.recent = nil
	is.buildDir()
}
