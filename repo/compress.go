package repo

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// CompressionMode says how blobs are compressed before they are sealed.
type CompressionMode uint8

// The compression modes. Auto is the zero value's meaning once defaults
// are applied.
const (
	CompressionAuto CompressionMode = iota
	CompressionOff
	CompressionMax
)

// String prints the mode as the CLI spells it.
func (m CompressionMode) String() string {
	switch m {
	case CompressionOff:
		return "off"
	case CompressionMax:
		return "max"
	}
	return "auto"
}

// Set parses off, auto or max, so the mode can be a CLI flag value.
func (m *CompressionMode) Set(s string) error {
	v, err := ParseCompression(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseCompression parses off, auto or max.
func ParseCompression(s string) (CompressionMode, error) {
	switch s {
	case "auto", "":
		return CompressionAuto, nil
	case "off":
		return CompressionOff, nil
	case "max":
		return CompressionMax, nil
	}
	return CompressionAuto, fmt.Errorf("invalid compression mode %q (want off, auto or max)", s)
}

// MarshalText stores the mode by name in the config.
func (m CompressionMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses the mode's name.
func (m *CompressionMode) UnmarshalText(b []byte) error { return m.Set(string(b)) }

// maxBlobSize caps a blob's plaintext. Chunks are at most 8 MiB; a tree of
// a directory with a million entries stays well below this.
const maxBlobSize = 128 << 20

// codec holds the zstd encoders and decoder. EncodeAll and DecodeAll are
// safe for concurrent use; each keeps up to GOMAXPROCS internal states.
type codec struct {
	fast *zstd.Encoder
	best *zstd.Encoder
	// dec decodes blobs into a buffer of exactly their recorded raw
	// length; decFile decodes whole files (index) up to maxFilePlain.
	dec     *zstd.Decoder
	decFile *zstd.Decoder
	// scratch holds *[]byte buffers for the compressed plaintext of a
	// blob between decryption and decompression.
	scratch sync.Pool
}

// getScratch returns an empty scratch buffer.
func (c *codec) getScratch() *[]byte {
	if b, ok := c.scratch.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 1<<20)
	return &b
}

// putScratch keeps a scratch buffer for reuse unless it grew beyond a
// large chunk (a tree blob of a huge directory).
func (c *codec) putScratch(b *[]byte) {
	if cap(*b) <= 16<<20 {
		*b = (*b)[:0]
		c.scratch.Put(b)
	}
}

// maxFilePlain caps the decompressed size of a compressed repository file
// (an index): 128 MiB holds over two million blob entries.
const maxFilePlain = 128 << 20

// fastWindow is the window of the auto mode's encoder.
const fastWindow = 1 << 20

func newCodec() (*codec, error) {
	n := runtime.GOMAXPROCS(0)
	// The fast encoder's window is 1 MiB instead of the level's 8 MiB:
	// each of its n states keeps a history buffer about twice the window,
	// 16 MiB apiece at 8 MiB, and chunks average 1 MiB, so a longer
	// reach finds few more matches (0.1-0.2% on the bench trees).
	fast, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(fastWindow), zstd.WithEncoderConcurrency(n), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	best, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(n), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	// The decoder's output is capped: a hostile blob must not make us
	// allocate more than a blob may hold.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(n), zstd.WithDecoderMaxMemory(maxBlobSize), zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxWindow(maxBlobSize))
	if err != nil {
		return nil, err
	}
	decFile, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(n), zstd.WithDecoderMaxMemory(maxFilePlain), zstd.WithDecoderMaxWindow(maxFilePlain))
	if err != nil {
		return nil, err
	}
	return &codec{fast: fast, best: best, dec: dec, decFile: decFile}, nil
}

// compress appends the compressed form of src to dst and reports whether
// it is worth keeping: a chunk that does not shrink is stored raw.
func (c *codec) compress(dst, src []byte, mode CompressionMode) ([]byte, bool) {
	if mode == CompressionOff || len(src) == 0 {
		return dst, false
	}
	enc := c.fast
	if mode == CompressionMax {
		enc = c.best
	}
	out := enc.EncodeAll(src, dst[:0])
	if len(out) >= len(src) {
		return out[:0], false
	}
	return out, true
}

var errDecompress = errors.New("decompress blob")

// decompress appends exactly rawLen bytes decompressed from src to dst.
func (c *codec) decompress(dst, src []byte, rawLen int) ([]byte, error) {
	if rawLen > maxBlobSize {
		return nil, fmt.Errorf("%w: raw length %d too large", errDecompress, rawLen)
	}
	if cap(dst) < rawLen {
		dst = make([]byte, 0, rawLen)
	}
	out, err := c.dec.DecodeAll(src, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errDecompress, err)
	}
	if len(out) != rawLen {
		return nil, fmt.Errorf("%w: got %d bytes, want %d", errDecompress, len(out), rawLen)
	}
	return out, nil
}

// decodeFile decompresses a whole file, refusing output over maxFilePlain.
func (c *codec) decodeFile(src []byte) ([]byte, error) {
	return c.decFile.DecodeAll(src, nil)
}

func (c *codec) close() {
	c.decFile.Close()
	_ = c.fast.Close()
	_ = c.best.Close()
	c.dec.Close()
}
