package backend

import (
	"context"
	"io"
)

// ContextReader reads from another reader until a context ends; from
// then on every Read fails with the context's error, so a copy into
// storage (Put) stops between two reads once its operation is cancelled,
// and stores nothing. It remembers the first error other than io.EOF that
// the reader or the context gave (Err), so that a caller can tell a
// failing source from a failing destination. The context is held only for
// the life of the one operation that made the reader.
type ContextReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

// NewContextReader returns a reader of r that stops when ctx ends.
func NewContextReader(ctx context.Context, r io.Reader) *ContextReader {
	return &ContextReader{ctx: ctx, r: r}
}

// Read implements io.Reader.
func (c *ContextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		if c.err == nil {
			c.err = err
		}
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// Err is the first error other than io.EOF that Read returned, from the
// reader or the context; nil if none.
func (c *ContextReader) Err() error { return c.err }
