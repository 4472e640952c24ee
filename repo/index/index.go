package index

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// PackedBlob is a blob and the pack that holds it.
type PackedBlob struct {
	pack.Blob
	PackID backend.ID
}

// treeBit marks a tree blob in entry.ref; the other 31 bits are the pack
// index. Putting the type in the top bit makes sorting by (id, ref) sort by
// (id, type, pack index), so the entries of one (type, id) are adjacent.
const treeBit = 1 << 31

// entry is one blob in one pack: 48 bytes, no padding.
type entry struct {
	id     backend.ID
	ref    uint32 // treeBit for a tree blob | index into the pack table
	offset uint32
	length uint32
	raw    uint32
}

// oval is an entry without its ID, the value of the overflow maps.
type oval struct {
	ref, offset, length, raw uint32
}

func (e *entry) val() oval { return oval{e.ref, e.offset, e.length, e.raw} }

func refOf(t pack.BlobType, packIdx uint32) uint32 {
	switch t {
	case pack.DataBlob:
		return packIdx
	case pack.TreeBlob:
		return packIdx | treeBit
	}
	panic(fmt.Sprintf("index: bug: blob type %d reached the index; parsers and pack.Writer reject it", t))
}

func typeBitOf(t pack.BlobType) uint32 {
	if t == pack.TreeBlob {
		return treeBit
	}
	return 0
}

// cmpID orders IDs bytewise, eight bytes at a time.
func cmpID(a, b *backend.ID) int {
	for i := 0; i < backend.IDSize; i += 8 {
		x, y := binary.BigEndian.Uint64(a[i:]), binary.BigEndian.Uint64(b[i:])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// cmpEntry orders entries by (id, type, pack index, offset).
func cmpEntry(a, b entry) int { return cmpEntryP(&a, &b) }

func cmpEntryP(a, b *entry) int {
	if c := cmpID(&a.id, &b.id); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ref, b.ref); c != 0 {
		return c
	}
	return cmp.Compare(a.offset, b.offset)
}

// overflow holds entries added since the last merge, in maps: the first
// entry seen for an ID in first, any further ones (the same ID in another
// pack, or as the other type) in more, which is nearly always empty.
type overflow struct {
	first map[backend.ID]oval
	more  map[backend.ID][]oval
	n     int
}

func newOverflow() *overflow {
	return &overflow{first: make(map[backend.ID]oval)}
}

// add inserts the entry unless an identical one is present.
func (o *overflow) add(id backend.ID, v oval) {
	f, ok := o.first[id]
	switch {
	case !ok:
		o.first[id] = v
	case f == v || slices.Contains(o.more[id], v):
		return
	default:
		if o.more == nil {
			o.more = make(map[backend.ID][]oval)
		}
		o.more[id] = append(o.more[id], v)
	}
	o.n++
}

// appendEntries appends every entry, unsorted.
func (o *overflow) appendEntries(dst []entry) []entry {
	for id, v := range o.first {
		dst = append(dst, entry{id, v.ref, v.offset, v.length, v.raw})
	}
	for id, vs := range o.more {
		for _, v := range vs {
			dst = append(dst, entry{id, v.ref, v.offset, v.length, v.raw})
		}
	}
	return dst
}

type packInfo struct {
	id  backend.ID
	key crypt.KeyID
}

// packPage is a fixed block of the pack table: appending a pack never moves
// the packs before it, so readers can use the table without a lock.
type packPage [packPageSize]packInfo

const (
	shardBits  = 8
	numShards  = 1 << shardBits
	packPageSz = 10
	// packPageSize packs per page: 40 KiB pages, so the table wastes at
	// most one page.
	packPageSize = 1 << packPageSz

	// defaultMergeMin is the overflow size of a shard below which no merge
	// happens.
	defaultMergeMin = 64
	// mergeDiv: a shard's overflow is merged into its sorted slice once it
	// holds len(main)/mergeDiv entries. 16 bounds the maps, at ~80 bytes an
	// entry, to ~5 bytes per blob of the whole index (~2.5 on average);
	// each merge grows main by 1/16, so a blob is copied ~17 times while
	// an index is built up one pack at a time. The shards keep each merge
	// small (1/256 of the index) and cache-friendly.
	mergeDiv = 16
	// dirWindow is the mean number of entries under one directory slot;
	// the directory costs 4/dirWindow..8/dirWindow bytes per blob.
	dirWindow = 16
	// maxDirBits caps a shard's directory at 2^20 slots (4 MiB).
	maxDirBits = 20
)

// shard holds the entries whose ID starts with one byte.
type shard struct {
	// mu guards the fields below. Lookups hold it for reading during
	// their search; AddPack holds it for writing while it inserts one blob
	// and, when the overflow is full, merges it (O(len(main))).
	mu sync.RWMutex
	// main holds entries sorted by cmpEntry. Its backing array is never
	// written once published (merges and RemovePacks build new ones), so a
	// snapshot of it may be read after mu is released.
	main []entry
	// dir[p]..dir[p+1] is the range of main whose IDs continue (after the
	// shard byte) with the dirBits-bit prefix p; len(dir) == 1<<dirBits+1.
	dir     []uint32
	dirBits uint
	// over takes new entries until the next merge.
	over *overflow
	// mergedMax is the highest pack index of any entry in main, or -1:
	// entries of a pack above it can only be in over, so AddPack skips
	// the search of main for duplicates when adding a new pack.
	mergedMax int64
	// pad keeps neighbouring shards' locks on different cache lines, so
	// lookups in different shards do not contend.
	_ [64]byte
}

// Index is the in-memory index: which pack holds each blob, at which offset.
// It is safe for concurrent use.
//
// Layout, under 60 bytes per blob: entries are split by the first byte of
// their ID into 256 shards. A shard keeps most of its entries in a sorted
// slice of 48-byte entries (main), found through a directory of ID prefixes
// and a binary search over ~16 entries, and new ones in a map overflow that
// is merged into a new sorted slice once it reaches 1/16 of main. Pack IDs
// are interned: an entry holds a 31-bit index into a table of packs.
//
// Locks: each shard has its own (see shard.mu), so lookups contend only
// with adds to the same shard, and a merge blocks only its shard, for
// O(Len/256). Lookups read the pack table without a lock. RemovePacks takes
// every lock.
//
// A (type, ID) pair is the key: a data blob and a tree blob with the same ID
// are different blobs. A blob may be in several packs; each (type, ID,
// pack, offset, length, raw length) is stored once.
type Index struct {
	// removeMu is held for writing by RemovePacks, which renumbers the
	// packs, and for reading by everything that holds pack indices across
	// shard locks: AddPack and the snapshots of Each and ToFiles.
	removeMu sync.RWMutex

	// packMu guards packIdx and npacks, and serialises appends to the
	// pack table.
	packMu  sync.Mutex
	packIdx map[backend.ID]uint32
	npacks  int
	// table holds the pack pages. A new page or a RemovePacks replaces
	// the slice; a page's slots are written once, before any entry refers
	// to them (so under the shard lock that publishes the entry).
	table atomic.Pointer[[]*packPage]

	shards [numShards]shard

	// mergeMin is the overflow size below which a shard does not merge;
	// tests lower it to exercise merges.
	mergeMin int
}

// New returns an empty index.
func New() *Index {
	x := &Index{
		packIdx:  make(map[backend.ID]uint32),
		mergeMin: defaultMergeMin,
	}
	x.table.Store(new([]*packPage))
	for i := range x.shards {
		s := &x.shards[i]
		s.dir = []uint32{0, 0}
		s.over = newOverflow()
		s.mergedMax = -1
	}
	return x
}

func (x *Index) shard(id *backend.ID) *shard { return &x.shards[id[0]] }

// pack returns the pack with index i.
func (x *Index) pack(i uint32) *packInfo {
	pages := *x.table.Load()
	return &pages[i>>packPageSz][i&(packPageSize-1)]
}

// intern returns the pack's index, adding it if new. Callers hold removeMu
// for reading.
func (x *Index) intern(id backend.ID, key crypt.KeyID) uint32 {
	x.packMu.Lock()
	defer x.packMu.Unlock()
	if i, ok := x.packIdx[id]; ok {
		return i
	}
	if x.npacks >= treeBit {
		panic("index: more than 2^31 packs") // 2^31 packs would need ~200 GiB of memory first
	}
	i := uint32(x.npacks)
	pages := *x.table.Load()
	if int(i>>packPageSz) == len(pages) {
		grown := append(slices.Clip(pages), new(packPage))
		x.table.Store(&grown)
		pages = grown
	}
	pages[i>>packPageSz][i&(packPageSize-1)] = packInfo{id, key}
	x.npacks++
	x.packIdx[id] = i
	return i
}

// AddPack records that the pack packID holds blobs (as pack.ReadHeader or
// pack.Writer.Finalize return them). Every blob must have a valid type and
// carry the pack's KeyID; the first blob's KeyID is recorded for the pack,
// and a pack already known keeps the KeyID it was first added with.
// Entries already present are not added twice. Lookups proceed while
// AddPack runs, and may see part of a pack before AddPack returns.
func (x *Index) AddPack(packID backend.ID, blobs []pack.Blob) {
	if len(blobs) == 0 {
		return
	}
	x.removeMu.RLock()
	defer x.removeMu.RUnlock()
	idx := x.intern(packID, blobs[0].KeyID)
	for i := range blobs {
		b := &blobs[i]
		v := oval{refOf(b.Type, idx), b.Offset, b.Length, b.RawLength}
		s := x.shard(&b.ID)
		s.mu.Lock()
		// over.add drops duplicates within over; main needs a search only
		// if it may hold entries of this pack.
		if int64(idx) > s.mergedMax || !s.hasInMain(&b.ID, v) {
			s.over.add(b.ID, v)
			if s.over.n >= max(x.mergeMin, len(s.main)/mergeDiv) {
				s.merge()
			}
		}
		s.mu.Unlock()
	}
}

// AddFile adds every pack of an index file. It ignores f.Supersedes: which
// files to load is the caller's decision.
func (x *Index) AddFile(f *File) {
	for _, p := range f.Packs {
		x.AddPack(p.ID, p.Blobs)
	}
}

// merge moves the overflow into a new main slice. Callers hold s.mu.
func (s *shard) merge() {
	add := s.over.appendEntries(make([]entry, 0, s.over.n))
	slices.SortFunc(add, cmpEntry)
	for i := range add {
		s.mergedMax = max(s.mergedMax, int64(add[i].ref&^treeBit))
	}
	old := s.main
	merged := make([]entry, len(old)+len(add))
	// add is ~1/16 of old: for each new entry, gallop over the run of old
	// entries before it and copy the run in one go.
	i, k := 0, 0
	for j := range add {
		a := &add[j]
		end := i
		step := 1
		for end < len(old) && cmpEntryP(&old[end], a) < 0 {
			i2 := end
			end = min(end+step, len(old))
			step *= 2
			if end == len(old) || cmpEntryP(&old[end], a) >= 0 {
				// The run ends in (i2, end]: binary search it.
				lo, hi := i2+1, end
				for lo < hi {
					m := int(uint(lo+hi) >> 1)
					if cmpEntryP(&old[m], a) < 0 {
						lo = m + 1
					} else {
						hi = m
					}
				}
				end = lo
				break
			}
		}
		k += copy(merged[k:], old[i:end])
		merged[k] = *a
		k++
		i = end
	}
	copy(merged[k:], old[i:])
	s.setMain(merged)
	s.over = newOverflow()
}

// setMain publishes a new sorted main slice and its directory. Callers hold
// s.mu.
func (s *shard) setMain(main []entry) {
	var bits uint
	for bits < maxDirBits && (2<<bits)*dirWindow <= len(main) {
		bits++
	}
	dir := make([]uint32, 1<<bits+1)
	p := 0
	for i := range main {
		q := int(prefix(&main[i].id, bits))
		for p < q {
			p++
			dir[p] = uint32(i)
		}
	}
	for p < len(dir)-1 {
		p++
		dir[p] = uint32(len(main))
	}
	s.main, s.dir, s.dirBits = main, dir, bits
}

// prefix returns the bits of id after the shard byte (0 for bits == 0).
func prefix(id *backend.ID, bits uint) uint32 {
	return binary.BigEndian.Uint32(id[1:5]) >> (32 - bits)
}

// search returns the position in main of the first entry not below
// (id, tbit, pack 0): the first entry of the key (type, id) if present.
// Callers hold s.mu.
func (s *shard) search(id *backend.ID, tbit uint32) int {
	p := prefix(id, s.dirBits)
	lo, hi := int(s.dir[p]), int(s.dir[p+1])
	main := s.main
	below := func(e *entry) bool {
		c := cmpID(&e.id, id)
		return c < 0 || c == 0 && e.ref < tbit
	}
	if n := hi - lo; n > 4 {
		// IDs are SHA-256 hashes, uniform within the window: guess the
		// position from the ID's next 32 bits, then gallop from there.
		// The guess is off by ~sqrt(n)/2 entries, so this touches a cache
		// line or two where a plain binary search touches log2(n). A
		// skewed window only costs time: the gallop bounds the search.
		frac := binary.BigEndian.Uint64(id[1:9]) << s.dirBits >> 32
		g := lo + int(uint64(n)*frac>>32)
		if below(&main[g]) {
			lo = g + 1
			for step := 1; ; step *= 2 {
				m := lo + step - 1
				if m >= hi {
					break
				}
				if !below(&main[m]) {
					hi = m
					break
				}
				lo = m + 1
			}
		} else {
			hi = g
			for step := 1; ; step *= 2 {
				m := hi - step
				if m < lo {
					break
				}
				if below(&main[m]) {
					lo = m + 1
					break
				}
				hi = m
			}
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if below(&main[m]) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// hasInMain reports whether main holds the exact entry. Callers hold s.mu.
func (s *shard) hasInMain(id *backend.ID, v oval) bool {
	tbit := v.ref & treeBit
	for i := s.search(id, tbit); i < len(s.main) && s.main[i].id == *id && s.main[i].ref&treeBit == tbit; i++ {
		if s.main[i].val() == v {
			return true
		}
	}
	return false
}

// visit calls fn for every entry of (tbit, id) until fn returns false.
// Callers hold s.mu.
func (s *shard) visit(id *backend.ID, tbit uint32, fn func(oval) bool) {
	for i := s.search(id, tbit); i < len(s.main) && s.main[i].id == *id && s.main[i].ref&treeBit == tbit; i++ {
		if !fn(s.main[i].val()) {
			return
		}
	}
	if s.over.n == 0 {
		return
	}
	v, ok := s.over.first[*id]
	if !ok {
		return
	}
	if v.ref&treeBit == tbit && !fn(v) {
		return
	}
	for _, v := range s.over.more[*id] {
		if v.ref&treeBit == tbit && !fn(v) {
			return
		}
	}
}

// before orders candidate locations: by pack ID, then offset.
func (x *Index) before(a, b oval) bool {
	pa, pb := &x.pack(a.ref&^treeBit).id, &x.pack(b.ref&^treeBit).id
	if c := cmpID(pa, pb); c != 0 {
		return c < 0
	}
	return a.offset < b.offset
}

func (x *Index) packed(t pack.BlobType, id backend.ID, v oval) PackedBlob {
	p := x.pack(v.ref &^ treeBit)
	return PackedBlob{
		Blob: pack.Blob{
			Type: t, ID: id,
			Offset: v.offset, Length: v.length, RawLength: v.raw,
			KeyID: p.key,
		},
		PackID: p.id,
	}
}

// Lookup returns where the blob (t, id) is stored. If several packs hold
// it, Lookup returns the one with the smallest pack ID (then offset), so
// the answer does not depend on the order packs were added in.
func (x *Index) Lookup(t pack.BlobType, id backend.ID) (PackedBlob, bool) {
	tbit := typeBitOf(t)
	s := x.shard(&id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	// The common case, one location, in main, without the closure.
	i := s.search(&id, tbit)
	main := s.main
	if i < len(main) && main[i].id == id && main[i].ref&treeBit == tbit &&
		(i+1 == len(main) || main[i+1].id != id || main[i+1].ref&treeBit != tbit) {
		if _, inOver := s.over.first[id]; s.over.n == 0 || !inOver {
			return x.packed(t, id, main[i].val()), true
		}
	}
	var best oval
	found := false
	s.visit(&id, tbit, func(v oval) bool {
		if !found || x.before(v, best) {
			best, found = v, true
		}
		return true
	})
	if !found {
		return PackedBlob{}, false
	}
	return x.packed(t, id, best), true
}

// LookupAll returns every location of the blob (t, id), sorted by pack ID
// then offset, or nil.
func (x *Index) LookupAll(t pack.BlobType, id backend.ID) []PackedBlob {
	tbit := typeBitOf(t)
	s := x.shard(&id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	var vs []oval
	s.visit(&id, tbit, func(v oval) bool {
		vs = append(vs, v)
		return true
	})
	slices.SortFunc(vs, func(a, b oval) int {
		if x.before(a, b) {
			return -1
		}
		if x.before(b, a) {
			return 1
		}
		return 0
	})
	var out []PackedBlob
	for _, v := range vs {
		out = append(out, x.packed(t, id, v))
	}
	return out
}

// Has reports whether any pack holds the blob (t, id).
func (x *Index) Has(t pack.BlobType, id backend.ID) bool {
	tbit := typeBitOf(t)
	s := x.shard(&id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := s.search(&id, tbit)
	if i < len(s.main) && s.main[i].id == id && s.main[i].ref&treeBit == tbit {
		return true
	}
	if s.over.n == 0 {
		return false
	}
	if v, ok := s.over.first[id]; ok {
		if v.ref&treeBit == tbit {
			return true
		}
		for _, v := range s.over.more[id] {
			if v.ref&treeBit == tbit {
				return true
			}
		}
	}
	return false
}

// Len returns the number of entries: a blob stored in two packs counts
// twice.
func (x *Index) Len() int {
	n := 0
	for i := range x.shards {
		s := &x.shards[i]
		s.mu.RLock()
		n += len(s.main) + s.over.n
		s.mu.RUnlock()
	}
	return n
}

// Packs returns the IDs of the packs that hold at least one indexed blob,
// in the order they were first added.
func (x *Index) Packs() []backend.ID {
	x.packMu.Lock()
	defer x.packMu.Unlock()
	pages := *x.table.Load()
	ids := make([]backend.ID, x.npacks)
	for i := range ids {
		ids[i] = pages[i>>packPageSz][i&(packPageSize-1)].id
	}
	return ids
}

// snapshot returns, per shard, main as it is and a copy of the overflow,
// and the pack table they refer to; none of them changes afterwards.
func (x *Index) snapshot() (lists [][]entry, pages []*packPage) {
	x.removeMu.RLock()
	defer x.removeMu.RUnlock()
	lists = make([][]entry, 0, 2*numShards)
	for i := range x.shards {
		s := &x.shards[i]
		s.mu.RLock()
		lists = append(lists, s.main, s.over.appendEntries(make([]entry, 0, s.over.n)))
		s.mu.RUnlock()
	}
	// Loaded last: it covers every pack the entries refer to.
	return lists, *x.table.Load()
}

func packedEntry(e *entry, pages []*packPage) PackedBlob {
	i := e.ref &^ treeBit
	p := &pages[i>>packPageSz][i&(packPageSize-1)]
	t := pack.DataBlob
	if e.ref&treeBit != 0 {
		t = pack.TreeBlob
	}
	return PackedBlob{
		Blob:   pack.Blob{Type: t, ID: e.id, Offset: e.offset, Length: e.length, RawLength: e.raw, KeyID: p.key},
		PackID: p.id,
	}
}

// Each calls fn for every entry until fn returns false, in no particular
// order. It visits the index as it was when Each began, without holding
// any lock while fn runs, so fn may call any method of the Index.
func (x *Index) Each(fn func(PackedBlob) bool) {
	lists, pages := x.snapshot()
	for _, list := range lists {
		for i := range list {
			if !fn(packedEntry(&list[i], pages)) {
				return
			}
		}
	}
}

// RemovePacks removes every entry of the given packs. It takes every lock
// and rebuilds the index, blocking lookups for O(Len) time: it is for
// prune and repair, not for use during a backup.
func (x *Index) RemovePacks(ids map[backend.ID]bool) {
	x.removeMu.Lock()
	defer x.removeMu.Unlock()
	x.packMu.Lock()
	defer x.packMu.Unlock()
	for i := range x.shards {
		x.shards[i].mu.Lock()
		defer x.shards[i].mu.Unlock()
	}

	const gone = ^uint32(0)
	old := *x.table.Load()
	remap := make([]uint32, x.npacks)
	var pages []*packPage
	n := 0
	for i := range remap {
		p := old[i>>packPageSz][i&(packPageSize-1)]
		if ids[p.id] {
			remap[i] = gone
			continue
		}
		if n>>packPageSz == len(pages) {
			pages = append(pages, new(packPage))
		}
		pages[n>>packPageSz][n&(packPageSize-1)] = p
		remap[i] = uint32(n)
		n++
	}
	if n == x.npacks {
		return
	}
	// Renumbering keeps the relative order of the packs left, so main
	// stays sorted.
	for i := range x.shards {
		s := &x.shards[i]
		kept := 0
		for _, e := range s.main {
			if remap[e.ref&^treeBit] != gone {
				kept++
			}
		}
		main := make([]entry, 0, kept)
		for _, e := range s.main {
			if idx := remap[e.ref&^treeBit]; idx != gone {
				e.ref = e.ref&treeBit | idx
				main = append(main, e)
			}
		}
		s.setMain(main)
		s.mergedMax = -1
		for i := range main {
			s.mergedMax = max(s.mergedMax, int64(main[i].ref&^treeBit))
		}
		over := newOverflow()
		for _, e := range s.over.appendEntries(nil) {
			if idx := remap[e.ref&^treeBit]; idx != gone {
				e.ref = e.ref&treeBit | idx
				over.add(e.id, e.val())
			}
		}
		s.over = over
	}
	x.table.Store(&pages)
	x.npacks = n
	x.packIdx = make(map[backend.ID]uint32, n)
	for i := range n {
		x.packIdx[pages[i>>packPageSz][i&(packPageSize-1)].id] = uint32(i)
	}
}

// ToFiles groups the index by pack into index files of at most
// maxBlobsPerFile blobs each (no limit if it is not positive); a pack is
// never split, so a pack with more blobs than the limit gets a file to
// itself. Files and packs come in pack ID order; Supersedes is left empty.
// An entry that overlaps an earlier blob of the same pack (possible only
// after loading two index files that disagree about a pack) is left out, so
// every File returned encodes.
func (x *Index) ToFiles(maxBlobsPerFile int) []*File {
	lists, pages := x.snapshot()
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	all := make([]entry, 0, n)
	for _, l := range lists {
		all = append(all, l...)
	}
	info := func(e *entry) *packInfo {
		i := e.ref &^ treeBit
		return &pages[i>>packPageSz][i&(packPageSize-1)]
	}
	slices.SortFunc(all, func(a, b entry) int {
		if c := bytes.Compare(info(&a).id[:], info(&b).id[:]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.offset, b.offset); c != 0 {
			return c
		}
		return cmpEntry(a, b)
	})

	var files []*File
	cur, curBlobs := &File{}, 0
	for i := 0; i < len(all); {
		pi := all[i].ref &^ treeBit
		p := Pack{ID: info(&all[i]).id}
		var end uint64
		for ; i < len(all) && all[i].ref&^treeBit == pi; i++ {
			e := &all[i]
			if uint64(e.offset) < end || e.length < crypt.Overhead || uint64(e.offset)+uint64(e.length) > math.MaxUint32 {
				continue
			}
			end = uint64(e.offset) + uint64(e.length)
			p.Blobs = append(p.Blobs, packedEntry(e, pages).Blob)
		}
		if len(p.Blobs) == 0 {
			continue
		}
		if maxBlobsPerFile > 0 && curBlobs > 0 && curBlobs+len(p.Blobs) > maxBlobsPerFile {
			files = append(files, cur)
			cur, curBlobs = &File{}, 0
		}
		cur.Packs = append(cur.Packs, p)
		curBlobs += len(p.Blobs)
	}
	if curBlobs > 0 {
		files = append(files, cur)
	}
	return files
}
