package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// ErrBlobNotFound is returned for a blob no index lists.
var ErrBlobNotFound = errors.New("blob not in index")

// maxRangeGap is the largest gap between two wanted blobs of one pack that
// LoadPack reads through rather than issuing a second request: one round
// trip costs more than reading a few hundred KiB on any remote backend.
const maxRangeGap = 512 << 10

// maxRangeRead caps one ranged read of LoadPack, bounding its memory.
const maxRangeRead = 32 << 20

// LoadBlob returns the plaintext of a blob, appended to buf[:0]. It tries
// every pack that holds the blob, and checks the plaintext's hash.
func (r *Repository) LoadBlob(ctx context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error) {
	locs := r.idx.LookupAll(t, id)
	if len(locs) == 0 {
		return nil, fmt.Errorf("load %s blob %s: %w", t, id.Str(), ErrBlobNotFound)
	}
	var firstErr error
	for _, pb := range locs {
		sealed, err := r.readBlobBytes(ctx, pb)
		if err == nil {
			var plain []byte
			plain, err = r.openBlob(buf, pb.Blob, sealed)
			if err == nil {
				return plain, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("load %s blob %s from pack %s: %w", t, id.Str(), pb.PackID, err)
		}
	}
	return nil, firstErr
}

// readBlobBytes reads a sealed blob, from the cache for tree packs.
func (r *Repository) readBlobBytes(ctx context.Context, pb index.PackedBlob) ([]byte, error) {
	if pb.Type == pack.TreeBlob && r.cache != nil {
		if b := r.cache.readRange(cacheData, pb.PackID, int64(pb.Offset), int(pb.Length)); b != nil {
			return b, nil
		}
		// Fetch the whole tree pack once: the next trees come from it.
		if data, err := r.fetchPack(ctx, pb.PackID); err == nil {
			end := int64(pb.Offset) + int64(pb.Length)
			if end <= int64(len(data)) {
				return data[pb.Offset:end], nil
			}
		}
	}
	buf := make([]byte, pb.Length)
	h := backend.Handle{Type: backend.PackFile, Name: pb.PackID.String()}
	err := r.be.Get(ctx, h, int(pb.Length), int64(pb.Offset), func(rd io.Reader) error {
		_, err := io.ReadFull(rd, buf)
		return err
	})
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// fetchPack downloads a whole tree pack into the cache after checking its
// hash.
func (r *Repository) fetchPack(ctx context.Context, id backend.ID) ([]byte, error) {
	h := backend.Handle{Type: backend.PackFile, Name: id.String()}
	data, err := r.readWhole(ctx, h, MaxPackSize+MaxPackSize/4)
	if err != nil {
		return nil, err
	}
	if backend.Hash(data) != id {
		return nil, fmt.Errorf("%s: %w: content does not match its name", h, ErrDamaged)
	}
	r.cache.put(cacheData, id, data)
	return data, nil
}

// openBlob authenticates, decompresses and verifies a sealed blob. The
// plaintext is appended to buf[:0], so a caller that passes the previous
// result back allocates nothing per blob; a compressed blob is decrypted
// into a pooled scratch buffer first.
func (r *Repository) openBlob(buf []byte, b pack.Blob, sealed []byte) ([]byte, error) {
	if uint32(len(sealed)) != b.Length {
		return nil, fmt.Errorf("%w: short read", ErrDamaged)
	}
	var plain []byte
	if b.RawLength == 0 {
		var err error
		if plain, err = pack.OpenBlob(r.keys, buf[:0], b, sealed); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
	} else {
		scratch := r.codec.getScratch()
		comp, err := pack.OpenBlob(r.keys, *scratch, b, sealed)
		if err != nil {
			r.codec.putScratch(scratch)
			return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
		*scratch = comp[:0]
		plain, err = r.codec.decompress(buf[:0], comp, int(b.RawLength))
		r.codec.putScratch(scratch)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
	}
	if backend.Hash(plain) != b.ID {
		return nil, fmt.Errorf("%w: plaintext does not match blob id", ErrDamaged)
	}
	return plain, nil
}

// openBlobInPlace is openBlob for a caller that owns sealed and needs it no
// more: the blob is decrypted where it lies (a sealed blob is the nonce,
// then the ciphertext, which the AEAD may overwrite exactly with the
// plaintext), so no scratch buffer is needed. A blob stored raw returns a
// slice of sealed; a compressed one is decompressed into buf[:0]. Either
// way sealed is overwritten, also when an error is returned.
func (r *Repository) openBlobInPlace(buf []byte, b pack.Blob, sealed []byte) ([]byte, error) {
	if uint32(len(sealed)) != b.Length || len(sealed) < crypt.NonceSize {
		return nil, fmt.Errorf("%w: short read", ErrDamaged)
	}
	plain, err := pack.OpenBlob(r.keys, sealed[crypt.NonceSize:crypt.NonceSize], b, sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	if b.RawLength != 0 {
		if plain, err = r.codec.decompress(buf[:0], plain, int(b.RawLength)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
	}
	if backend.Hash(plain) != b.ID {
		return nil, fmt.Errorf("%w: plaintext does not match blob id", ErrDamaged)
	}
	return plain, nil
}

// LoadPack reads the given blobs of one pack in as few ranged reads as
// sensible, and calls fn for each in offset order on the caller's
// goroutine. A blob that cannot be read or verified is passed with err set
// and plaintext nil; an error returned by fn aborts LoadPack. plaintext is
// valid only during fn.
func (r *Repository) LoadPack(ctx context.Context, packID backend.ID, blobs []pack.Blob, fn func(b pack.Blob, plaintext []byte, err error) error) error {
	blobs = append([]pack.Blob(nil), blobs...)
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Offset < blobs[j].Offset })
	h := backend.Handle{Type: backend.PackFile, Name: packID.String()}
	// Blobs are decrypted in place in the read buffer unless two of them
	// overlap (the same blob asked for twice, or a damaged index): then
	// the first would destroy the second's bytes.
	inPlace := true
	for i := 1; i < len(blobs); i++ {
		if uint64(blobs[i].Offset) < uint64(blobs[i-1].Offset)+uint64(blobs[i-1].Length) {
			inPlace = false
			break
		}
	}
	var plainBuf []byte
	for start := 0; start < len(blobs); {
		// Extend the range while the next blob is close and the read stays bounded.
		end := start + 1
		lo := int64(blobs[start].Offset)
		hi := lo + int64(blobs[start].Length)
		for end < len(blobs) {
			b := blobs[end]
			bEnd := int64(b.Offset) + int64(b.Length)
			if int64(b.Offset)-hi > maxRangeGap || bEnd-lo > maxRangeRead {
				break
			}
			if bEnd > hi {
				hi = bEnd
			}
			end++
		}
		// Ranges are up to maxRangeRead: fresh buffers of that size per
		// pack (a restore of small files reads most of a pack for each
		// batch) would cost more in page faults than the reads.
		pooled := r.readBufs.get(int(hi - lo))
		buf := (*pooled)[:hi-lo]
		readErr := r.be.Get(ctx, h, len(buf), lo, func(rd io.Reader) error {
			_, err := io.ReadFull(rd, buf)
			return err
		})
		if ctx.Err() != nil {
			r.readBufs.put(pooled)
			return ctx.Err()
		}
		for _, b := range blobs[start:end] {
			var plain []byte
			err := readErr
			if err == nil {
				off := int64(b.Offset) - lo
				sealed := buf[off : off+int64(b.Length)]
				if inPlace {
					// The read buffer is ours and this blob's
					// bytes are read once: no scratch copy.
					plain, err = r.openBlobInPlace(plainBuf, b, sealed)
				} else {
					plain, err = r.openBlob(plainBuf, b, sealed)
				}
			}
			if err != nil {
				err = fmt.Errorf("blob %s in pack %s: %w", b.ID.Str(), packID, err)
				plain = nil
			}
			if ferr := fn(b, plain, err); ferr != nil {
				r.readBufs.put(pooled)
				return ferr
			}
			// Keep the output buffer for the next blob; in place, a
			// raw blob's plaintext is a slice of the read buffer.
			if (b.RawLength != 0 || !inPlace) && plain != nil && cap(plain) <= 16<<20 {
				plainBuf = plain[:0]
			}
		}
		r.readBufs.put(pooled)
		start = end
	}
	return nil
}

// readBufPool recycles LoadPack's read buffers by size class: powers of
// two from 64 KiB to maxRangeRead. A buffer is as large as its class, not
// as the largest read, because the runtime zeroes a new buffer whole and
// so makes all of it resident: one pool of pack-sized buffers kept a
// restore of small blobs at 20 MiB a worker for reads of a few hundred KiB.
type readBufPool struct {
	classes [readBufClasses]sync.Pool
}

const (
	minReadBufShift = 16                       // 64 KiB
	readBufClasses  = 25 - minReadBufShift + 1 // up to 32 MiB, maxRangeRead
)

// readBufClass returns the class of a buffer for n bytes.
func readBufClass(n int) int {
	c := 0
	for n > 1<<(minReadBufShift+c) && c < readBufClasses-1 {
		c++
	}
	return c
}

// get returns a buffer of at least n bytes (n at most maxRangeRead); the
// caller puts it back when done.
func (p *readBufPool) get(n int) *[]byte {
	c := readBufClass(n)
	if n > 1<<(minReadBufShift+c) {
		b := make([]byte, n) // beyond every class; put drops it
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<(minReadBufShift+c))
	return &b
}

func (p *readBufPool) put(b *[]byte) {
	c := readBufClass(cap(*b))
	if cap(*b) == 1<<(minReadBufShift+c) {
		p.classes[c].Put(b)
	}
}
