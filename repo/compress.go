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

// The compression modes, restic's names and levels. Auto is the zero
// value's meaning once defaults are applied. New modes go at the end: a
// mode's name, not its number, is what the config stores.
const (
	CompressionAuto    CompressionMode = iota // zstd's default level
	CompressionOff                            // no compression
	CompressionMax                            // zstd's best level
	CompressionFastest                        // zstd's fastest level
)

// String prints the mode as the CLI spells it.
func (m CompressionMode) String() string {
	switch m {
	case CompressionOff:
		return "off"
	case CompressionMax:
		return "max"
	case CompressionFastest:
		return "fastest"
	}
	return "auto"
}

// Set parses a mode's name, so the mode can be a CLI flag value.
func (m *CompressionMode) Set(s string) error {
	v, err := ParseCompression(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseCompression parses off, fastest, auto or max.
func ParseCompression(s string) (CompressionMode, error) {
	switch s {
	case "auto", "":
		return CompressionAuto, nil
	case "off":
		return CompressionOff, nil
	case "max":
		return CompressionMax, nil
	case "fastest":
		return CompressionFastest, nil
	}
	return CompressionAuto, fmt.Errorf("invalid compression mode %q (want off, fastest, auto or max)", s)
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
// Encoders are made on first use: a run uses one mode, and each state of
// an encoder holds megabytes of history.
type codec struct {
	enc [CompressionFastest + 1]lazyEncoder
	// dec decodes blobs into a buffer of exactly their recorded raw
	// length; decFile decodes whole files (index) up to maxFilePlain.
	dec     *zstd.Decoder
	decFile *zstd.Decoder
	// scratch holds *[]byte buffers for the compressed plaintext of a
	// blob between decryption and decompression.
	scratch sync.Pool
}

// lazyEncoder is an encoder made on first use.
type lazyEncoder struct {
	once sync.Once
	opts []zstd.EOption
	enc  *zstd.Encoder
}

// encoder returns the encoder of mode, which must not be off.
func (c *codec) encoder(mode CompressionMode) *zstd.Encoder {
	if int(mode) >= len(c.enc) || mode == CompressionOff {
		panic(fmt.Sprintf("repo: internal error: no encoder for compression mode %d", mode))
	}
	l := &c.enc[mode]
	l.once.Do(func() {
		var err error
		if l.enc, err = zstd.NewWriter(nil, l.opts...); err != nil {
			// The options are constants zstd accepts; an error is
			// our bug, not the data's.
			panic(fmt.Sprintf("repo: internal error: zstd encoder for %s: %v", mode, err))
		}
	})
	return l.enc
}

// encodeFile compresses a whole repository file (an index) at the auto
// level, whatever the mode of blobs.
func (c *codec) encodeFile(src []byte) []byte {
	return c.encoder(CompressionAuto).EncodeAll(src, nil)
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

// encoderWindow is the window of the fastest and auto modes' encoders.
const encoderWindow = 1 << 20

func newCodec() (*codec, error) {
	n := runtime.GOMAXPROCS(0)
	c := &codec{}
	// The fastest and auto encoders' window is 1 MiB instead of their
	// levels' 8 MiB: each of an encoder's n states keeps a history buffer
	// about twice the window, 16 MiB apiece at 8 MiB, and chunks average
	// 1 MiB, so a longer reach finds few more matches (0.1-0.2% on the
	// bench trees). Auto is zstd's default level, as restic's auto:
	// fastest makes a source tree's repository about 5% larger (67.7
	// against 64.1 MB of compressed data for GOROOT) for about 20% less
	// CPU time in a backup; a backup tool keeps its bytes for years.
	common := []zstd.EOption{zstd.WithEncoderConcurrency(n), zstd.WithEncoderCRC(false)}
	c.enc[CompressionFastest].opts = append([]zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(encoderWindow)}, common...)
	c.enc[CompressionAuto].opts = append([]zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(encoderWindow)}, common...)
	c.enc[CompressionMax].opts = append([]zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBestCompression)}, common...)
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
	c.dec, c.decFile = dec, decFile
	return c, nil
}

// compress appends the compressed form of src to dst and reports whether
// it is worth keeping: a chunk that does not shrink is stored raw.
func (c *codec) compress(dst, src []byte, mode CompressionMode) ([]byte, bool) {
	if mode == CompressionOff || len(src) == 0 {
		return dst, false
	}
	enc := c.encoder(mode)
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
	for i := range c.enc {
		l := &c.enc[i]
		l.once.Do(func() {}) // an encoder not made by now never will be
		if l.enc != nil {
			_ = l.enc.Close()
		}
	}
	c.dec.Close()
}
