package peer

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

var _ backend.Backend = (*Backend)(nil)

// Defaults of Dialer.
const (
	DefaultConnectTimeout      = 10 * time.Second
	DefaultClientStreamTimeout = time.Minute
)

// ErrNoAnswer: the server accepted a connection or a request and then
// stopped answering: it is stuck, not restarting or cut off, so the
// request is not tried again; the backend gives every later request the
// same error at once.
var ErrNoAnswer = errors.New("server does not answer")

// Dialer connects to peer servers. Its zero value uses the defaults;
// Dial and Create use the zero value.
type Dialer struct {
	// ConnectTimeout bounds making one connection: the TCP connect, the
	// TLS handshake and the hello. A server that accepts the TCP
	// connection and then does not finish its handshake in time is stuck
	// (the request fails with ErrNoAnswer); one that cannot be reached in
	// time may be restarting (the error may be retried). A server checks
	// the ClientHello within 3 s and the rest within 10 s (see
	// ServerConfig), so a live one is always within the default.
	// Default 10 seconds.
	ConnectTimeout time.Duration
	// StreamTimeout bounds how long one read or write of a request may
	// wait for the server. When it passes, the client pings the
	// connection: a server that answers the ping but not the request is
	// stuck (ErrNoAnswer); one that answers neither is cut off, and the
	// connection is made again at the next request. Default 1 minute.
	StreamTimeout time.Duration
}

func (d Dialer) connectTimeout() time.Duration {
	if d.ConnectTimeout > 0 {
		return d.ConnectTimeout
	}
	return DefaultConnectTimeout
}

func (d Dialer) streamTimeout() time.Duration {
	if d.StreamTimeout > 0 {
		return d.StreamTimeout
	}
	return DefaultClientStreamTimeout
}

// Client limits.
const (
	// maxClientStreams is how many requests the client runs at once
	// (Properties.Connections), when the server allows as many.
	maxClientStreams = 8
	// maxListTotal bounds how many entries one listing may hold: the
	// whole listing is read before the callback runs (see List).
	maxListTotal = 1 << 22
)

// Backend is a repository on a peer server, reached over one multiplexed
// TLS connection that is made again, at the next request, after it breaks.
type Backend struct {
	loc    Location
	self   crypt.PeerID // this device, named when the server refuses it
	tls    *tls.Config
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	dialer Dialer // its timeouts

	// connecting is a one-token lock held while a connection is made, so
	// that a burst of requests after a break makes one, and a waiter can
	// give up when its context ends.
	connecting chan struct{}
	// slots holds a token per request under way, sized by the server's
	// max streams at the first connection: requests beyond it wait here
	// rather than be reset by the server, even when a caller runs more
	// at once than Properties().Connections.
	slots chan struct{}

	mu     sync.Mutex // guards the fields below
	sess   *session
	hello  serverHello // of the latest connection
	closed bool
	// stuck is the ErrNoAnswer error of a server found stuck: every later
	// request fails with it at once.
	stuck error
}

// session is one connection.
type session struct {
	mux *yamux.Session
}

// Dial connects to the repository at loc as the device id with the
// default timeouts (Dialer.Dial).
func Dial(ctx context.Context, loc Location, id *crypt.Identity) (*Backend, error) {
	return Dialer{}.Dial(ctx, loc, id)
}

// Create connects for a new repository with the default timeouts
// (Dialer.Create).
func Create(ctx context.Context, loc Location, id *crypt.Identity) (*Backend, error) {
	return Dialer{}.Create(ctx, loc, id)
}

// Dial connects to the repository at loc as the device id. Like opening a
// local repository, it fails with an error wrapping
// backend.ErrNoRepository when the repository has no config; use Create
// to make a new one. A server whose key does not match loc.Peer is refused
// with ErrPeerMismatch; a server that does not know this device answers
// with ErrNotAllowed; one that does not answer in time, with ErrNoAnswer.
func (d Dialer) Dial(ctx context.Context, loc Location, id *crypt.Identity) (*Backend, error) {
	b, err := d.connect(ctx, loc, id)
	if err != nil {
		return nil, err
	}
	if _, err := b.Stat(ctx, configHandle); err != nil {
		_ = b.Close() // the error below says what matters
		if backend.IsNotExist(err) {
			return nil, fmt.Errorf("open %s: %w", loc, backend.ErrNoRepository)
		}
		return nil, fmt.Errorf("open %s: %w", loc, err)
	}
	return b, nil
}

// Create connects like Dial for a repository that does not exist yet: it
// refuses, with an error wrapping backend.ErrAlreadyExists, a location
// that holds a config. The server makes the repository's folder at the
// first put; the caller stores the config.
func (d Dialer) Create(ctx context.Context, loc Location, id *crypt.Identity) (*Backend, error) {
	b, err := d.connect(ctx, loc, id)
	if err != nil {
		return nil, err
	}
	_, err = b.Stat(ctx, configHandle)
	switch {
	case err == nil:
		_ = b.Close() // the error below says what matters
		return nil, fmt.Errorf("create %s: %w: it holds a repository config", loc, backend.ErrAlreadyExists)
	case !backend.IsNotExist(err):
		_ = b.Close() // see above
		return nil, fmt.Errorf("create %s: %w", loc, err)
	}
	return b, nil
}

var configHandle = backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}

// connect makes the backend and its first connection.
func (d Dialer) connect(ctx context.Context, loc Location, id *crypt.Identity) (*Backend, error) {
	if id == nil {
		return nil, errors.New("peer: no identity")
	}
	if err := ValidName(loc.Name); err != nil {
		return nil, fmt.Errorf("connect %s: %w", loc, err)
	}
	conf, err := newTLSConfig(id, func(got crypt.PeerID) error {
		if got != loc.Peer {
			return fmt.Errorf("%w: the server at %s presented peer ID %s, the location pins %s",
				ErrPeerMismatch, loc.Addr, got, loc.Peer)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", loc, err)
	}
	nd := &net.Dialer{KeepAlive: 30 * time.Second} // handshake bounds the whole connection setup
	b := &Backend{loc: loc, self: id.PeerID(), tls: conf, dial: nd.DialContext, dialer: d, connecting: make(chan struct{}, 1)}
	if _, err := b.session(ctx); err != nil {
		return nil, err
	}
	b.slots = make(chan struct{}, max(int(b.hello.MaxStreams), 1))
	return b, nil
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.loc.String() }

// Properties implements backend.Backend: up to 8 requests at once (fewer
// if the server allows fewer), and atomic replace only in read-write mode,
// since an append-only server refuses to replace files.
func (b *Backend) Properties() backend.Properties {
	b.mu.Lock()
	defer b.mu.Unlock()
	return backend.Properties{
		Connections:      min(maxClientStreams, max(int(b.hello.MaxStreams), 1)),
		HasAtomicReplace: b.hello.Mode == ModeReadWrite,
	}
}

// Mode is what the server lets this device do, as of the latest connection.
func (b *Backend) Mode() Mode {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hello.Mode
}

// Usage returns this device's quota on the server (0: none) and the bytes
// its files took there when the latest connection was made.
func (b *Backend) Usage() (quota, used int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hello.Quota, b.hello.Used
}

// Close implements backend.Backend.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.sess != nil {
		err := b.sess.mux.Close()
		b.sess = nil
		return err
	}
	return nil
}

var errClosed = errors.New("peer backend is closed")

// session returns the live connection, making one if there is none.
func (b *Backend) session(ctx context.Context) (*session, error) {
	select {
	case b.connecting <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-b.connecting }()
	b.mu.Lock()
	s, closed, stuck := b.sess, b.closed, b.stuck
	b.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if stuck != nil {
		return nil, stuck
	}
	if s != nil && !s.mux.IsClosed() {
		return s, nil
	}
	s, hello, err := b.handshake(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = s.mux.Close() // nobody will use it
		return nil, errClosed
	}
	b.sess, b.hello = s, hello
	return s, nil
}

// setStuck records err, an ErrNoAnswer, as the verdict on the server and
// returns it, permanent.
func (b *Backend) setStuck(err error) error {
	err = backend.Permanent(err)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stuck == nil {
		b.stuck = err
	}
	return err
}

// drop forgets s if it is the current connection and has failed.
func (b *Backend) drop(s *session) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess == s {
		_ = s.mux.Close() // it failed already
		b.sess = nil
	}
}

// handshake makes a connection: TCP, TLS, hello, yamux.
func (b *Backend) handshake(ctx context.Context) (*session, serverHello, error) {
	fail := func(err error) (*session, serverHello, error) {
		return nil, serverHello{}, fmt.Errorf("connect %s: %w", b.loc, err)
	}
	timeout := b.dialer.connectTimeout()
	deadline := time.Now().Add(timeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	raw, err := b.dial(dctx, "tcp", b.loc.Addr)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		return fail(err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = raw.Close() // the handshake failed; its error is reported
		}
	}()
	_ = raw.SetDeadline(deadline) // fails only on a closed conn, which the handshake reports
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	tc := tls.Client(raw, b.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(b.handshakeError(ctx, err, timeout))
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != alpn {
		return fail(backend.Permanent(fmt.Errorf("%w: server negotiated protocol %q, want %q", ErrProtocol, p, alpn)))
	}
	ch := clientHello{MinVersion: ProtocolVersion, MaxVersion: ProtocolVersion, Repo: b.loc.Name}
	if err := writeFrame(tc, ch.encode()); err != nil {
		return fail(b.handshakeError(ctx, err, timeout))
	}
	p, err := readFrame(tc, maxHelloFrame)
	if err != nil {
		return fail(b.handshakeError(ctx, err, timeout))
	}
	sh, err := decodeServerHello(p)
	if err != nil {
		return fail(backend.Permanent(err))
	}
	if sh.Status != codeOK {
		return fail(helloError(sh))
	}
	if sh.Version != ProtocolVersion {
		return fail(backend.Permanent(fmt.Errorf("%w: server chose version %d, we speak %d", ErrProtocol, sh.Version, ProtocolVersion)))
	}
	if stop() {
		_ = raw.SetDeadline(time.Time{}) // see above
	} else {
		return fail(ctx.Err())
	}
	mux, err := yamux.Client(tc, b.dialer.yamuxConfig())
	if err != nil {
		return fail(err) // our config is valid; cannot happen
	}
	ok = true
	return &session{mux: mux}, sh, nil
}

// handshakeError explains a failed handshake or hello.
func (b *Backend) handshakeError(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, ErrPeerMismatch) || errors.Is(err, ErrProtocol) {
		return backend.Permanent(err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The server took the connection and said nothing for the
		// whole timeout: it is stuck, and will be at the next attempt.
		return b.setStuck(fmt.Errorf("%w: it accepted the connection but did not finish the handshake within %v", ErrNoAnswer, timeout))
	}
	// In TLS 1.3 the client finishes its handshake before the server has
	// checked the client's certificate, so a refusal arrives as an alert
	// on the first read.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		return backend.Permanent(fmt.Errorf("%w (%v): is this device's peer ID %s in the server's --allow list?", ErrNotAllowed, err, b.self))
	}
	return err
}

// helloError turns a refusing server hello into an error.
func helloError(sh serverHello) error {
	err := &serverError{code: sh.Status, msg: sh.Message}
	if sh.Status == codeBusy || sh.Status == codeInternal {
		return err
	}
	return backend.Permanent(err)
}

// yamuxConfig is the client's multiplexer configuration.
func (d Dialer) yamuxConfig() *yamux.Config {
	return &yamux.Config{
		// The client accepts no streams; the backlog also bounds its
		// own streams waiting for the server's acknowledgement, far
		// above the requests it runs at once.
		AcceptBacklog:     64,
		EnableKeepAlive:   true,
		KeepAliveInterval: 30 * time.Second,
		// Also how long a ping waits for its answer: after a request's
		// stream timeout, the ping that tells a stuck server from a
		// broken connection (see request) waits at most this, so it is
		// never longer than the stream timeout.
		ConnectionWriteTimeout: min(30*time.Second, d.streamTimeout()),
		MaxStreamWindowSize:    streamWindow,
		StreamOpenTimeout:      60 * time.Second,
		StreamCloseTimeout:     30 * time.Second,
		LogOutput:              io.Discard,
	}
}

// serverError is a status the server answered with. It wraps the backend
// sentinel for the status, or ErrProtocol.
type serverError struct {
	code code
	msg  string
}

func (e *serverError) Error() string {
	if e.msg == "" {
		return e.code.String()
	}
	return e.msg
}

func (e *serverError) Unwrap() error {
	switch e.code {
	case codeNotExist:
		return backend.ErrNotExist
	case codeInvalidName:
		return backend.ErrInvalidName
	case codeAppendOnly:
		return backend.ErrAppendOnly
	case codeQuota:
		return backend.ErrQuota
	case codeHashMismatch:
		return backend.ErrHashMismatch
	case codeBadRequest, codeFrameTooLarge, codeVersion:
		return ErrProtocol
	}
	return nil
}

// request runs one request on a new stream: fn writes the request and
// reads the answer. A connection found broken before the request is sent
// is made again once.
func (b *Backend) request(ctx context.Context, what string, fn func(st *timedStream) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	select {
	case b.slots <- struct{}{}:
		defer func() { <-b.slots }()
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	var (
		s   *session
		yst *yamux.Stream
		err error
	)
	for attempt := 0; attempt < 2; attempt++ {
		s, err = b.session(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		yst, err = s.mux.OpenStream()
		if err == nil {
			break
		}
		b.drop(s)
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", what, b.loc, err)
	}
	timeout := b.dialer.streamTimeout()
	st := newTimedStream(yst, timeout)
	stop := context.AfterFunc(ctx, st.abort)
	err = fn(st)
	stop()
	_ = st.Close() // ends the stream; the answer is in already
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, errAborted) {
		// No progress for the whole timeout. If the connection still
		// answers a ping, the server is stuck on the request; if not,
		// the connection is gone and the next request makes another.
		if _, perr := s.mux.Ping(); perr == nil {
			return fmt.Errorf("%s: %w", what, b.setStuck(fmt.Errorf("%w: peer %s answers pings but made no progress on the request for %v",
				ErrNoAnswer, b.loc.Peer.Short(), timeout)))
		}
		b.drop(s)
		return fmt.Errorf("%s on %s: %w (and the connection does not answer pings)", what, b.loc, err)
	}
	var se *serverError
	if errors.As(err, &se) {
		if se.code == codeBadRequest || se.code == codeFrameTooLarge {
			err = backend.Permanent(err)
		}
		return fmt.Errorf("%s: peer %s: %w", what, b.loc.Peer.Short(), err)
	}
	if s.mux.IsClosed() {
		b.drop(s)
	}
	return fmt.Errorf("%s on %s: %w", what, b.loc, err)
}

// readResponse reads a response frame and turns an error status into a
// *serverError.
func readResponse(r io.Reader) (response, error) {
	p, err := readFrame(r, maxResponseFrame)
	if err != nil {
		return response{}, noEOF(err)
	}
	resp, err := decodeResponse(p)
	if err != nil {
		return response{}, err
	}
	if resp.Status != codeOK {
		return response{}, &serverError{code: resp.Status, msg: resp.Message}
	}
	return resp, nil
}

// noEOF turns the end of a stream in the middle of an answer into
// io.ErrUnexpectedEOF: the server never ends a stream before its answer.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// List implements backend.Backend. The whole listing is read before fn is
// first called, so fn may take as long as it likes and may use the
// backend; it costs about 100 bytes of memory per file, and a listing of
// more than 4 Mi files fails.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if !t.Valid() {
		return fmt.Errorf("list: %w: invalid file type %d", backend.ErrInvalidName, t)
	}
	var entries []backend.FileInfo
	err := b.request(ctx, "list "+t.String(), func(st *timedStream) error {
		entries = entries[:0]
		if err := writeFrame(st, request{Op: opList, Type: t}.encode()); err != nil {
			return err
		}
		for {
			p, err := readFrame(st, maxListFrame)
			if err != nil {
				return noEOF(err)
			}
			if messageType(p) == msgResponse {
				resp, err := decodeResponse(p)
				if err != nil {
					return err
				}
				if resp.Status != codeOK {
					return &serverError{code: resp.Status, msg: resp.Message}
				}
				if resp.Size != 0 {
					return malformed("response", "list ends with a size")
				}
				return nil
			}
			lf, err := decodeListFrame(p)
			if err != nil {
				return err
			}
			if len(entries)+len(lf.Entries) > maxListTotal {
				return malformed("list", "more than %d files", maxListTotal)
			}
			for _, e := range lf.Entries {
				if err := (backend.Handle{Type: t, Name: e.Name}).Valid(); err != nil {
					return malformed("list frame", "server listed an invalid name %q", shorten(e.Name))
				}
			}
			entries = append(entries, lf.Entries...)
		}
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat: %w", err)
	}
	var fi backend.FileInfo
	err := b.request(ctx, "stat "+h.String(), func(st *timedStream) error {
		if err := writeFrame(st, request{Op: opStat, Type: h.Type, Name: h.Name}.encode()); err != nil {
			return err
		}
		resp, err := readResponse(st)
		if err != nil {
			return err
		}
		fi = backend.FileInfo{Name: h.Name, Size: resp.Size}
		return nil
	})
	return fi, err
}

// Get implements backend.Backend. The reader given to fn fails with
// io.ErrUnexpectedEOF if the connection ends before the range does.
func (b *Backend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if length < 0 || offset < 0 || int64(length) > MaxFileSize {
		return backend.Permanent(fmt.Errorf("get %s: invalid range: offset %d, length %d", h, offset, length))
	}
	var fnErr error
	err := b.request(ctx, "get "+h.String(), func(st *timedStream) error {
		req := request{Op: opGet, Type: h.Type, Name: h.Name, Offset: offset, Length: int64(length)}
		if err := writeFrame(st, req.encode()); err != nil {
			return err
		}
		resp, err := readResponse(st)
		if err != nil {
			return err
		}
		if length > 0 && resp.Size > int64(length) {
			return malformed("response", "get of %d bytes answered with %d", length, resp.Size)
		}
		fnErr = fn(&bodyReader{r: st, left: resp.Size})
		return fnErr
	})
	if fnErr != nil {
		return fnErr // the callback's own error, unwrapped
	}
	return err
}

// bodyReader reads a get's body of known length.
type bodyReader struct {
	r    io.Reader
	left int64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= int64(n)
	if err != nil && (r.left > 0 || !errors.Is(err, io.EOF)) {
		return n, noEOF(err)
	}
	return n, nil
}

// Put implements backend.Backend. The content is streamed while the
// server's answer is awaited, so a refusal (quota, append-only, bad name)
// stops the upload at once. The server makes the file visible only after
// the commit that follows the content, which is sent only once the
// content has been read whole, matched its length and ctx is still live.
func (b *Backend) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	size := rd.Length()
	if size < 0 || size > MaxFileSize {
		return backend.Permanent(fmt.Errorf("put %s: length %d out of range 0..%d", h, size, int64(MaxFileSize)))
	}
	if err := rd.Rewind(); err != nil {
		return fmt.Errorf("put %s: rewind: %w", h, err)
	}
	var sendErr error
	err := b.request(ctx, "put "+h.String(), func(st *timedStream) error {
		sent := make(chan error, 1)
		st.holdReads()
		go func() {
			err := sendContent(ctx, st, h, size, rd)
			st.releaseReads()
			sent <- err
		}()
		_, err := readResponse(st)
		if err != nil {
			st.abort() // stop the sender if the answer came early
		}
		sendErr = <-sent
		if sendErr != nil && !errors.Is(sendErr, errAborted) {
			return sendErr // the real cause, whatever the server said
		}
		return err
	})
	return err
}

// sendContent writes a put's request, content and commit; on a fault of
// the content it half-closes the stream without the commit, so the server
// stores nothing.
func sendContent(ctx context.Context, st *timedStream, h backend.Handle, size int64, rd io.Reader) error {
	req := request{Op: opPut, Type: h.Type, Name: h.Name, Length: size}
	if err := writeFrame(st, req.encode()); err != nil {
		return err
	}
	hw := sha256.New()
	n, err := io.Copy(io.MultiWriter(st, hw), io.LimitReader(rd, size))
	if err == nil && n < size {
		err = fmt.Errorf("content is %d bytes, reader said %d", n, size)
	}
	if err == nil {
		// One byte more than promised is a fault of the reader too.
		var extra [1]byte
		if k, _ := io.ReadFull(rd, extra[:]); k > 0 {
			err = fmt.Errorf("content is longer than the %d bytes the reader said", size)
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		if !errors.Is(err, errAborted) {
			_ = st.Close() // the server sees the content end early and stores nothing
		}
		return err
	}
	var c commit
	hw.Sum(c.Sum[:0])
	return writeFrame(st, c.encode())
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return b.request(ctx, "delete "+h.String(), func(st *timedStream) error {
		if err := writeFrame(st, request{Op: opDelete, Type: h.Type, Name: h.Name}.encode()); err != nil {
			return err
		}
		_, err := readResponse(st)
		return err
	})
}
