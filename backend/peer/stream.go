package peer

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// errAborted: a stream was cut short on purpose (the context was
// cancelled, the other side hung up, or the answer came early).
var errAborted = errors.New("stream aborted")

// timedStream is a yamux stream on which every Read and Write must make
// progress within timeout (0: no limit), and which abort stops at once.
type timedStream struct {
	st      *yamux.Stream
	timeout time.Duration
	aborted atomic.Bool
}

func newTimedStream(st *yamux.Stream, timeout time.Duration) *timedStream {
	return &timedStream{st: st, timeout: timeout}
}

// Read implements io.Reader.
func (s *timedStream) Read(p []byte) (int, error) {
	if s.timeout > 0 {
		_ = s.st.SetReadDeadline(time.Now().Add(s.timeout)) // never fails
	}
	// Checked after the deadline is set, so an abort racing with this
	// call either is seen here or overrides the deadline just set.
	if s.aborted.Load() {
		return 0, errAborted
	}
	n, err := s.st.Read(p)
	if err != nil && s.aborted.Load() {
		err = errAborted
	}
	return n, err
}

// Write implements io.Writer.
func (s *timedStream) Write(p []byte) (int, error) {
	if s.timeout > 0 {
		_ = s.st.SetWriteDeadline(time.Now().Add(s.timeout)) // never fails
	}
	if s.aborted.Load() {
		return 0, errAborted
	}
	n, err := s.st.Write(p)
	if err != nil && s.aborted.Load() {
		err = errAborted
	}
	return n, err
}

// abort makes every blocked and later Read and Write fail. It may be
// called from any goroutine, any number of times.
func (s *timedStream) abort() {
	s.aborted.Store(true)
	_ = s.st.SetDeadline(time.Unix(1, 0)) // never fails
}

// Close half-closes the stream: the other side reads EOF.
func (s *timedStream) Close() error { return s.st.Close() }

// maxYamuxLines bounds the yamux log lines kept per connection: a client
// flooding the server with streams must not flood its log too.
const maxYamuxLines = 10

// yamuxLogger hands a connection's yamux log lines to a printf-style
// function, prefixed with who the connection is, up to maxYamuxLines.
type yamuxLogger struct {
	logf func(format string, args ...any)
	who  string
	n    atomic.Int32
}

func (l *yamuxLogger) line(s string) {
	switch n := l.n.Add(1); {
	case n < maxYamuxLines:
		l.logf("peer server: %s: %s", l.who, s)
	case n == maxYamuxLines:
		l.logf("peer server: %s: %s (further multiplexer messages on this connection suppressed)", l.who, s)
	}
}

func (l *yamuxLogger) Print(v ...any)                 { l.line(fmt.Sprint(v...)) }
func (l *yamuxLogger) Printf(format string, v ...any) { l.line(fmt.Sprintf(format, v...)) }
func (l *yamuxLogger) Println(v ...any)               { l.line(fmt.Sprint(v...)) }
