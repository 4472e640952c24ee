package peer

import (
	"errors"
	"fmt"
	"strings"
	"sync"
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

	mu sync.Mutex // guards holding and the read deadline's setting
	// holding suspends the read timeout (see holdReads).
	holding bool
}

func newTimedStream(st *yamux.Stream, timeout time.Duration) *timedStream {
	return &timedStream{st: st, timeout: timeout}
}

// holdReads lets reads wait without a timeout until releaseReads: while
// a put's content goes out, the server answers only at its end, however
// long the upload takes, and the writes show the progress.
func (s *timedStream) holdReads() {
	s.mu.Lock()
	s.holding = true
	s.mu.Unlock()
}

// releaseReads ends holdReads: a read waiting now has timeout from now.
func (s *timedStream) releaseReads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holding = false
	if s.timeout > 0 && !s.aborted.Load() {
		_ = s.st.SetReadDeadline(time.Now().Add(s.timeout)) // never fails; wakes a waiting read to see it
	}
}

// Read implements io.Reader.
func (s *timedStream) Read(p []byte) (int, error) {
	if s.timeout > 0 {
		s.mu.Lock()
		if s.holding {
			_ = s.st.SetReadDeadline(time.Time{}) // never fails
		} else {
			_ = s.st.SetReadDeadline(time.Now().Add(s.timeout)) // never fails
		}
		s.mu.Unlock()
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
// Lines that only say the connection ended (the client closed it, was
// killed or lost its network: every connection ends one of these ways)
// are dropped: the server logs the disconnect itself. The rest lose
// yamux's "[ERR] yamux: " prefix, which means nothing to whoever reads
// the server's log.
type yamuxLogger struct {
	logf func(format string, args ...any)
	who  string
	n    atomic.Int32
}

// yamuxIOFailures start the yamux lines that report a failed read or
// write of the connection, followed by the error.
var yamuxIOFailures = []string{
	"Failed to read header: ", "Failed to write header: ", "Failed to write body: ",
	"Failed to copy body into buffer: ", "Failed to discard data: ", "Failed to read stream data: ",
	"failed to send ping reply: ", "failed to send go away: ",
}

// connEnded are the texts that end the errors of a connection that has
// ended (yamux logs only their text).
var connEnded = []string{
	"EOF", // io.EOF, io.ErrUnexpectedEOF
	"connection reset by peer",
	"broken pipe",
	"use of closed network connection",
	"session shutdown",                    // yamux.ErrSessionShutdown
	"connection reset",                    // yamux.ErrConnectionReset
	"connection write timeout",            // yamux.ErrConnectionWriteTimeout, while closing
	"i/o timeout", "i/o deadline reached", // the connection's deadline, while closing
}

// ended reports whether s, a yamux line without its level prefix, only
// says the connection ended.
func ended(s string) bool {
	for _, p := range yamuxIOFailures {
		if rest, ok := strings.CutPrefix(s, p); ok {
			for _, e := range connEnded {
				if strings.HasSuffix(rest, e) {
					return true
				}
			}
			return false
		}
	}
	return false
}

func (l *yamuxLogger) line(s string) {
	for _, prefix := range []string{"[ERR] yamux: ", "[WARN] yamux: "} {
		s = strings.TrimPrefix(s, prefix)
	}
	if ended(s) {
		return
	}
	if strings.HasPrefix(s, "keepalive failed") {
		s = "the client stopped answering keep-alive pings; closing the connection"
	} else {
		s = "multiplexer: " + s
	}
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
