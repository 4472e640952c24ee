package backend

import (
	"bytes"
	"io"
)

// RewindReader is content of known length that can be read again from the
// start, so a retrying wrapper can resend it and a backend can hash it
// before storing it.
type RewindReader interface {
	io.Reader
	// Rewind starts reading from the beginning again.
	Rewind() error
	// Length is the total number of bytes.
	Length() int64
}

// ByteReader is a RewindReader over a byte slice.
type ByteReader struct {
	*bytes.Reader
	data []byte
}

// NewByteReader returns a RewindReader over data; data must not change
// while the reader is in use.
func NewByteReader(data []byte) *ByteReader {
	return &ByteReader{Reader: bytes.NewReader(data), data: data}
}

// Rewind implements RewindReader.
func (b *ByteReader) Rewind() error {
	_, err := b.Seek(0, io.SeekStart)
	return err
}

// Length implements RewindReader.
func (b *ByteReader) Length() int64 { return int64(len(b.data)) }

// Bytes returns the whole content; callers must not modify it.
func (b *ByteReader) Bytes() []byte { return b.data }
