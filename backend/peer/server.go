package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// ServerConfig configures a Server. Identity, Root and Allow are
// required; every limit left zero takes the default named in its comment.
type ServerConfig struct {
	// Identity is the server's device identity; clients pin its peer ID.
	Identity *crypt.Identity
	// Root is the folder that holds one folder per client, named by the
	// client's peer ID. It is made (mode 0700) if missing. One server at a
	// time may serve a root.
	Root string
	// Allow lists the clients served and what each may do, besides those
	// of PeersFile.
	Allow map[crypt.PeerID]Mode
	// PeersFile is the path of the peers file (see peersfile.go), read at
	// start and again by Reload; "" for none. Its friends are served as
	// well as Allow's, with its mode and quota where both name one.
	PeersFile string
	// Pairing lets devices join with an invitation code (see join.go):
	// invitations are read from InviteDir(Root) and joined devices added
	// to PeersFile, which must be set.
	Pairing bool
	// Now is the clock invitations expire by and signed receipts are
	// dated with; nil means time.Now.
	Now func() time.Time
	// Quota bounds what each client's files and folders cost, all its
	// repositories together: their bytes plus InodeCost for each file and
	// each folder. 0 means no quota. A friend of PeersFile with a quota of
	// its own has that one instead.
	Quota int64
	// MaxRepos bounds the repositories (folders under the client's own)
	// each client may keep. Default 16.
	MaxRepos int
	// Logf receives one line per notable event (connections, refusals,
	// storage errors); nil discards them. It is called from many
	// goroutines.
	Logf func(format string, args ...any)
	// testOnlyUnknownOps are ops the server answers as unknown, as a
	// server older than them does.
	testOnlyUnknownOps map[op]bool

	// MaxConnsPerClient bounds the connections one client may hold open.
	// Default 4: a client needs one.
	MaxConnsPerClient int
	// MaxStreams bounds the requests served at once on one connection;
	// up to as many more wait to be accepted and the rest are reset.
	// Default 64, at most 65535.
	MaxStreams int
	// MaxHandshakes bounds the connections in their TLS handshake or
	// hello at once, before the client is known. A new connection is
	// always admitted: when there are as many, the oldest one from the
	// remote host that holds the most, in the network that holds the
	// most, is closed (see preauth). Each costs a goroutine, a socket and
	// a few KiB. Default 256.
	MaxHandshakes int
	// ClientHelloTimeout bounds the wait for the first message of the
	// TLS handshake (the ClientHello), which a client sends at once.
	// Default 3 seconds.
	ClientHelloTimeout time.Duration
	// HandshakeTimeout bounds the rest of the TLS handshake and the hello
	// of a connection. Default 10 seconds.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection on which no request has run for
	// this long. Default 5 minutes.
	IdleTimeout time.Duration
	// StreamTimeout bounds how long one read or write of a request may
	// wait for the client: a client that stalls mid-request loses the
	// stream. Default 1 minute.
	StreamTimeout time.Duration

	// ScrubRate is the bytes per second at which the server re-hashes
	// the files it stores in the background (see scrub.go); 0: no scrub.
	// At least MinScrubRate. Verifications and audits clients ask for
	// read at most this fast (DefaultScrubRate when it is 0).
	ScrubRate int64
	// ScrubInterval is the least time between the starts of two passes
	// of the scrub. Default DefaultScrubInterval.
	ScrubInterval time.Duration
}

// Defaults of ServerConfig.
const (
	DefaultMaxConnsPerClient  = 4
	DefaultMaxRepos           = 16
	DefaultMaxStreams         = 64
	DefaultMaxHandshakes      = 256
	DefaultClientHelloTimeout = 3 * time.Second
	DefaultHandshakeTimeout   = 10 * time.Second
	DefaultIdleTimeout        = 5 * time.Minute
	DefaultStreamTimeout      = time.Minute
)

// Server serves the peer protocol: each allowed client gets its own
// folder under the root and may list, stat, get, put and, in read-write
// mode, delete files in the repositories there.
type Server struct {
	cfg   ServerConfig
	tls   *tls.Config
	store *store
	// preauth holds the connections not yet past their hello.
	preauth *preauth
	// preauthLog limits the lines logged about connections whose client
	// is not known yet, which anyone can open by the thousand.
	preauthLog *rateLog
	// counted makes the first Serve count the clients' folders.
	counted sync.Once
	// scrubbing says a Serve has started the scrub.
	scrubbing atomic.Bool
	// friends is who is served, with mode and quota: Allow's and the
	// peers file's, replaced whole by each reload.
	friends atomic.Pointer[map[crypt.PeerID]friendPolicy]
	// reloadMu serializes reloads and joins, which write the peers file.
	reloadMu sync.Mutex
	// peersSum is the hash of the peers file's content at the last load
	// or try (zero when it could not be read); peersPending its hash at
	// the last poll. Guarded by reloadMu.
	peersSum, peersPending [32]byte
	// joins bounds failed joins; guarded by reloadMu.
	joins joinLimit
	// joinTLS is the TLS configuration of the join exchange (nil without
	// Pairing).
	joinTLS *tls.Config
}

// NewServer checks cfg, fills in its defaults and makes the root folder.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Identity == nil {
		return nil, errors.New("peer server: no identity")
	}
	if cfg.Root == "" {
		return nil, errors.New("peer server: no root folder")
	}
	if len(cfg.Allow) == 0 && cfg.PeersFile == "" {
		return nil, errors.New("peer server: no client allowed (use --allow PEERID, or a peers file)")
	}
	if cfg.Pairing && cfg.PeersFile == "" {
		return nil, errors.New("peer server: pairing needs a peers file")
	}
	allow := make(map[crypt.PeerID]Mode, len(cfg.Allow))
	for id, m := range cfg.Allow {
		if !m.valid() {
			return nil, fmt.Errorf("peer server: client %s: invalid mode %d", id.Short(), m)
		}
		allow[id] = m
	}
	cfg.Allow = allow
	if cfg.Quota < 0 || cfg.MaxRepos < 0 || cfg.MaxConnsPerClient < 0 || cfg.MaxStreams < 0 || cfg.MaxHandshakes < 0 ||
		cfg.ClientHelloTimeout < 0 || cfg.HandshakeTimeout < 0 || cfg.IdleTimeout < 0 || cfg.StreamTimeout < 0 {
		return nil, errors.New("peer server: negative limit")
	}
	if cfg.ScrubRate < 0 || cfg.ScrubRate > 0 && cfg.ScrubRate < MinScrubRate {
		return nil, fmt.Errorf("peer server: scrub rate %d: not 0 (off) nor at least %d bytes per second", cfg.ScrubRate, MinScrubRate)
	}
	if cfg.ScrubInterval < 0 {
		return nil, errors.New("peer server: negative scrub interval")
	}
	if cfg.MaxStreams > math.MaxUint16 {
		return nil, fmt.Errorf("peer server: at most %d streams per connection", math.MaxUint16)
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.MaxConnsPerClient, DefaultMaxConnsPerClient)
	setDefault(&cfg.MaxRepos, DefaultMaxRepos)
	setDefault(&cfg.MaxStreams, DefaultMaxStreams)
	setDefault(&cfg.MaxHandshakes, DefaultMaxHandshakes)
	setDefault(&cfg.ClientHelloTimeout, DefaultClientHelloTimeout)
	setDefault(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.StreamTimeout, DefaultStreamTimeout)
	setDefault(&cfg.ScrubInterval, DefaultScrubInterval)
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("peer server: %w", err)
	}
	s := &Server{
		cfg:        cfg,
		store:      newStore(cfg.Root, cfg.MaxRepos, cfg.Logf),
		preauth:    newPreauth(cfg.MaxHandshakes),
		preauthLog: &rateLog{out: cfg.Logf, max: 20, per: time.Minute},
	}
	if err := s.Reload("start"); err != nil {
		return nil, err
	}
	conf, err := newTLSConfig(cfg.Identity, func(id crypt.PeerID) error {
		if _, ok := s.friend(id); !ok {
			return fmt.Errorf("%w: peer %s is not in the allow list", ErrNotAllowed, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peer server: %w", err)
	}
	if cfg.Pairing {
		// Anyone may join: the invitation's secret is the check.
		if s.joinTLS, err = newTLSConfig(cfg.Identity, func(crypt.PeerID) error { return nil }); err != nil {
			return nil, fmt.Errorf("peer server: %w", err)
		}
		s.joinTLS.NextProtos = []string{joinALPN}
	}
	// The ClientHello is in: the client gets the rest of its time.
	conf.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		_ = hi.Conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout)) // fails only on a closed conn, which the handshake reports
		if s.joinTLS != nil && len(hi.SupportedProtos) == 1 && hi.SupportedProtos[0] == joinALPN {
			return s.joinTLS, nil
		}
		return nil, nil
	}
	s.tls = conf
	return s, nil
}

// friend returns what the client id may do, and whether it is served.
func (s *Server) friend(id crypt.PeerID) (friendPolicy, bool) {
	p, ok := (*s.friends.Load())[id]
	return p, ok
}

// countAtStart counts, once, what each allowed client's folder holds,
// before the first connection is accepted: the only moment the temporary
// files a crash left can be told from those of puts under way.
func (s *Server) countAtStart() {
	s.counted.Do(func() {
		for id, p := range *s.friends.Load() {
			s.countClient(s.store.client(id, p), true)
		}
	})
}

// Recount counts again, from the disk, what each allowed client's folder
// holds, for its quota and its bound on repositories, and logs one line
// per client; files added or removed by hand since the server started
// are counted from then on. It may run while clients are served.
func (s *Server) Recount() {
	for id, p := range *s.friends.Load() {
		s.countClient(s.store.client(id, p), false)
	}
}

// countClient counts c's folder and logs the result; a failure is logged
// and the count is tried again at the client's next connection.
func (s *Server) countClient(c *clientStore, removeTemp bool) {
	u, err := c.count(removeTemp)
	if err != nil {
		s.cfg.Logf("peer server: peer %s: %v", c.id.Short(), err)
		return
	}
	quota := "no quota"
	if q := c.policy().quota; q > 0 {
		quota = "its quota is " + formatBytes(q)
	}
	s.cfg.Logf("peer server: peer %s: %d repositories, %d files (%s), %d folders: %s counted, %s",
		c.id.Short(), u.repos, u.files, formatBytes(u.bytes), u.folders+u.others, formatBytes(u.cost()), quota)
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// yamuxConfig is the server's multiplexer configuration.
func (s *Server) yamuxConfig(who string) *yamux.Config {
	return &yamux.Config{
		// Streams beyond MaxStreams wait here until a handler is free;
		// beyond that yamux resets them.
		AcceptBacklog:   s.cfg.MaxStreams,
		EnableKeepAlive: true,
		// A ping every 30 s notices a vanished client within a minute.
		KeepAliveInterval:      30 * time.Second,
		ConnectionWriteTimeout: 30 * time.Second,
		MaxStreamWindowSize:    streamWindow,
		StreamOpenTimeout:      60 * time.Second,
		// A client that never closes its side of a finished stream gets
		// it reset after this.
		StreamCloseTimeout: s.cfg.StreamTimeout,
		Logger:             &yamuxLogger{logf: s.cfg.Logf, who: who},
	}
}

// streamWindow is the most bytes in flight on one stream. One stream
// moves at most window/round-trip: measured (BenchmarkWindow, 20 ms round
// trip) 11 MB/s with yamux's 256 KiB, 41 MB/s with 1 MiB, 140 MB/s with
// 4 MiB. 1 MiB, with a client running up to 8 streams, fills a home
// uplink; it also bounds what the server buffers: per connection about
// MaxStreams MiB for the streams served plus 256 KiB (yamux's initial
// window) for each one waiting.
const streamWindow = 1 << 20

// Serve accepts connections on ln until ctx is cancelled, then closes ln
// and every connection, waits for their goroutines and returns nil. It
// returns early, with an error and ln closed, only when ln fails for good.
// Serve may run on several listeners at once. The first call counts what
// each allowed client's folder holds (see Recount) before it accepts a
// connection.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close() // as net/http does; a second close after cancel reports nothing of use
	s.countAtStart()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: deferred calls run last first
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() }) // the accept loop's error is the one to report
	defer stop()
	if s.cfg.ScrubRate > 0 && s.scrubbing.CompareAndSwap(false, true) {
		wg.Go(func() { s.scrubLoop(ctx) })
	}
	delay := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, as
				// net/http does, rather than spin or give up.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.cfg.Logf("peer server: accept: %v; retrying in %v", err, delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("peer server: accept: %w", err)
		}
		delay = 0
		entry, evicted := s.preauth.admit(conn)
		if evicted != nil {
			s.preauthLog.logf("peer server: %s: %d connections are in their handshake, the most allowed; closed the oldest from the host with the most",
				evicted.RemoteAddr(), s.cfg.MaxHandshakes)
			_ = evicted.Close() // its handshake fails and its goroutine ends
		}
		wg.Go(func() { s.serveConn(ctx, conn, entry) })
	}
}

// rateLog passes at most max lines per period to out and says how many
// it dropped.
type rateLog struct {
	out func(format string, args ...any)
	max int
	per time.Duration

	mu      sync.Mutex // guards the fields below
	start   time.Time  // of the current period
	n       int        // lines in the current period
	dropped int
}

func (r *rateLog) logf(format string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	dropped := 0
	if now.Sub(r.start) >= r.per {
		dropped = r.dropped
		r.start, r.n, r.dropped = now, 0, 0
	}
	ok := r.n < r.max
	if ok {
		r.n++
	} else {
		r.dropped++
	}
	r.mu.Unlock()
	if dropped > 0 {
		r.out("peer server: %d more messages about unauthenticated connections were suppressed", dropped)
	}
	if ok {
		r.out(format, args...)
	}
}

// isTemporary recognises accept errors that pass (EMFILE, ENFILE,
// ECONNABORTED).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// serveConn runs one connection: handshake, hello, then streams. entry
// is its place among the connections not yet past their hello.
func (s *Server) serveConn(ctx context.Context, raw net.Conn, entry *preauthConn) {
	release := func() { s.preauth.release(entry) }
	defer release()
	defer raw.Close() // every path out ends the connection; nothing to report
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()

	remote := raw.RemoteAddr().String()
	// Until the ClientHello is in; then GetConfigForClient extends it.
	_ = raw.SetDeadline(time.Now().Add(s.cfg.ClientHelloTimeout)) // fails only on a closed conn, which the handshake reports
	tc := tls.Server(raw, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		s.preauthLog.logf("peer server: %s: handshake: %v", remote, err)
		return
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != alpn && (s.joinTLS == nil || st.NegotiatedProtocol != joinALPN) {
		s.preauthLog.logf("peer server: %s: client did not negotiate %s", remote, alpn)
		return
	}
	id, err := peerFromCerts([][]byte{st.PeerCertificates[0].Raw})
	if err != nil {
		s.cfg.Logf("peer server: %s: %v", remote, err) // verified in the handshake; cannot happen
		return
	}
	who := fmt.Sprintf("peer %s (%s)", id.Short(), remote)
	if st.NegotiatedProtocol == joinALPN {
		s.serveJoin(tc, id, who)
		return
	}
	p, ok := s.friend(id)
	if !ok {
		// Removed from the peers file during the handshake.
		s.refuse(tc, who, codeBadRequest, ProtocolVersion, "this device is no longer allowed on this server")
		return
	}
	client := s.store.client(id, p)

	repo, ok := s.hello(tc, client, who)
	if !ok {
		return
	}
	defer client.detach()
	defer client.release(repo)
	release()
	_ = raw.SetDeadline(time.Time{}) // see above

	sess, err := yamux.Server(tc, s.yamuxConfig(who))
	if err != nil {
		s.cfg.Logf("peer server: %s: %v", who, err) // our config is valid; cannot happen
		return
	}
	defer sess.Close() // closing a session reports nothing of use
	s.cfg.Logf("peer server: %s: connected to repository %q (%s)", who, repo.name, client.policy().mode)
	s.serveStreams(ctx, sess, repo, who)
	s.cfg.Logf("peer server: %s: disconnected", who)
}

// hello reads the client's hello and answers it. On success the client
// has been attached and the caller must detach it.
func (s *Server) hello(conn net.Conn, client *clientStore, who string) (*repoStore, bool) {
	p, err := readFrame(conn, maxHelloFrame)
	if err != nil {
		s.cfg.Logf("peer server: %s: hello: %v", who, err)
		if errors.Is(err, ErrProtocol) {
			s.refuse(conn, who, codeOf(err), ProtocolVersion, "malformed hello")
		}
		return nil, false
	}
	ch, err := decodeClientHello(p)
	if err != nil {
		s.cfg.Logf("peer server: %s: %v", who, err)
		s.refuse(conn, who, codeBadRequest, ProtocolVersion, "malformed hello")
		return nil, false
	}
	if ch.MinVersion > ProtocolVersion || ch.MaxVersion < ProtocolVersion {
		s.refuse(conn, who, codeVersion, ProtocolVersion, fmt.Sprintf(
			"unsupported protocol version: client speaks %d..%d, server %d", ch.MinVersion, ch.MaxVersion, ProtocolVersion))
		return nil, false
	}
	if err := ValidName(ch.Repo); err != nil {
		s.refuse(conn, who, codeInvalidName, ProtocolVersion, err.Error())
		return nil, false
	}
	if !client.attach(s.cfg.MaxConnsPerClient) {
		s.refuse(conn, who, codeBusy, ProtocolVersion, fmt.Sprintf(
			"too many connections from this device (limit %d)", s.cfg.MaxConnsPerClient))
		return nil, false
	}
	used, err := client.usage()
	if err != nil {
		client.detach()
		s.cfg.Logf("peer server: %s: %v", who, err)
		s.refuse(conn, who, codeInternal, ProtocolVersion, internalMessage)
		return nil, false
	}
	pol := client.policy()
	sh := serverHello{
		Status: codeOK, Version: ProtocolVersion, Mode: pol.mode,
		MaxStreams: uint16(s.cfg.MaxStreams), Quota: pol.quota, Used: used,
	}
	if err := writeFrame(conn, sh.encode()); err != nil {
		client.detach()
		s.cfg.Logf("peer server: %s: hello: %v", who, err)
		return nil, false
	}
	return client.repo(ch.Repo), true
}

const internalMessage = "storage error on the server (details are in its log)"

func (s *Server) refuse(conn net.Conn, who string, c code, version uint16, msg string) {
	s.cfg.Logf("peer server: %s: refused: %s", who, msg)
	sh := serverHello{Status: c, Version: version, Message: sanitize(msg)}
	_ = writeFrame(conn, sh.encode()) // the connection closes next either way
}

// serveStreams accepts streams until the session ends, the connection has
// been idle for IdleTimeout, or ctx is cancelled.
func (s *Server) serveStreams(ctx context.Context, sess *yamux.Session, repo *repoStore, who string) {
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	defer stop()
	idle := newIdleTimer(s.cfg.IdleTimeout, func() {
		s.cfg.Logf("peer server: %s: idle for %v; closing", who, s.cfg.IdleTimeout)
		_ = sess.Close()
	})
	defer idle.stop()
	slots := make(chan struct{}, s.cfg.MaxStreams)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		// Take a slot before accepting, so streams beyond MaxStreams
		// wait in yamux's backlog and overflow it into resets.
		select {
		case slots <- struct{}{}:
		case <-sess.CloseChan():
			return
		}
		st, err := sess.AcceptStream()
		if err != nil {
			<-slots
			return
		}
		idle.begin()
		wg.Go(func() {
			defer func() { <-slots }()
			defer idle.end()
			s.serveStream(ctx, st, repo, who)
		})
	}
}

// idleTimer runs fn once no stream has been active for d.
type idleTimer struct {
	d      time.Duration
	t      *time.Timer
	mu     sync.Mutex // guards active
	active int
}

func newIdleTimer(d time.Duration, fn func()) *idleTimer {
	it := &idleTimer{d: d}
	it.t = time.AfterFunc(d, func() {
		it.mu.Lock()
		idle := it.active == 0
		it.mu.Unlock()
		if idle {
			fn()
		}
	})
	return it
}

func (it *idleTimer) begin() {
	it.mu.Lock()
	it.active++
	it.t.Stop()
	it.mu.Unlock()
}

func (it *idleTimer) end() {
	it.mu.Lock()
	it.active--
	if it.active == 0 {
		it.t.Reset(it.d)
	}
	it.mu.Unlock()
}

func (it *idleTimer) stop() { it.t.Stop() }

// serveStream answers one request.
func (s *Server) serveStream(ctx context.Context, yst *yamux.Stream, repo *repoStore, who string) {
	st := newTimedStream(yst, s.cfg.StreamTimeout)
	defer s.endStream(st)
	p, err := readFrame(st, maxRequestFrame)
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			s.reply(st, who, err, "request")
		}
		return // a client gone or stalled: nothing to answer
	}
	req, err := decodeRequest(p)
	if err != nil {
		s.reply(st, who, err, "request")
		return
	}
	if s.cfg.testOnlyUnknownOps[req.Op] {
		s.reply(st, who, malformed("request", "unknown op %d", req.Op), "request")
		return
	}
	h := backend.Handle{Type: req.Type, Name: req.Name}
	switch req.Op {
	case opList:
		s.serveList(ctx, st, repo, who, req.Type)
	case opStat:
		fi, err := repo.stat(ctx, h)
		if err != nil {
			s.reply(st, who, err, "stat "+h.String())
			return
		}
		_ = writeFrame(st, response{Status: codeOK, Size: fi.Size}.encode()) // a failed write means the client left
	case opGet:
		s.serveGet(ctx, st, repo, who, h, req)
	case opPut:
		s.servePut(ctx, st, repo, who, h, req)
	case opReceipt:
		s.serveReceipt(ctx, st, repo, who)
	case opDelete:
		if err := repo.delete(ctx, h); err != nil {
			s.reply(st, who, err, "delete "+h.String())
			return
		}
		_ = writeFrame(st, response{Status: codeOK}.encode()) // see above
	case opScrubReport, opVerify, opAudit:
		s.serveScrubOp(ctx, st, repo, who, req)
	}
}

// endStream ends a stream whose answer is out: it half-closes it, so the
// client reads the end of the answer, then waits, still holding the
// request's slot, for the client to close its side as the protocol says
// it must, throwing away anything the client sends meanwhile. After
// StreamTimeout it gives up and leaves the stream to yamux's close
// timeout. Without the wait an answered stream would stop counting
// against MaxStreams while the multiplexer went on buffering what the
// client sends on it (up to a window each), so a client could pile up
// answered streams, and the server's memory, without bound.
func (s *Server) endStream(st *timedStream) {
	_ = st.Close() // fails only when the stream is already gone
	if st.aborted.Load() {
		return // the client hung up, or ctx ended: nobody to wait for
	}
	_ = st.st.SetReadDeadline(time.Now().Add(s.cfg.StreamTimeout)) // one deadline for the whole wait; never fails
	_, _ = io.Copy(io.Discard, st.st)                              // ends at the client's close, a reset, or the deadline
}

// watchHangup stops st's writes when the client closes its side before
// the answer is complete, so a handler never waits on a client that left.
// The returned function ends the watch; call it before the handler ends.
func watchHangup(st *timedStream) (done func()) {
	finished := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(finished)
		var b [1]byte
		// The client sends nothing after its request: any return is
		// either the hang-up (EOF), a protocol breach, or our quit.
		_, _ = st.st.Read(b[:])
		select {
		case <-quit:
		default:
			st.abort()
		}
	}()
	return func() {
		close(quit)
		_ = st.st.SetReadDeadline(time.Unix(1, 0)) // wakes the read; never fails
		<-finished
	}
}

func (s *Server) serveList(ctx context.Context, st *timedStream, repo *repoStore, who string, t backend.FileType) {
	done := watchHangup(st)
	defer done()
	batch := make([]backend.FileInfo, 0, maxListEntries)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := writeFrame(st, listFrame{Entries: batch}.encode())
		batch = batch[:0]
		return err
	}
	var sendErr error
	err := repo.list(ctx, t, func(fi backend.FileInfo) error {
		batch = append(batch, fi)
		if len(batch) == maxListEntries {
			if err := flush(); err != nil {
				sendErr = err
				return err
			}
		}
		return nil
	})
	if sendErr != nil {
		return // the client left
	}
	if err == nil {
		err = flush()
		if err != nil {
			return
		}
	}
	if err != nil {
		s.reply(st, who, err, "list "+t.String())
		return
	}
	_ = writeFrame(st, response{Status: codeOK}.encode()) // a failed write means the client left
}

func (s *Server) serveGet(ctx context.Context, st *timedStream, repo *repoStore, who string, h backend.Handle, req request) {
	if req.Length > math.MaxInt {
		s.reply(st, who, malformed("request", "range length %d too large for this server", req.Length), "get "+h.String())
		return
	}
	done := watchHangup(st)
	defer done()
	sent := false
	err := repo.get(ctx, h, int(req.Length), req.Offset, func(size int64, rd io.Reader) error {
		sent = true
		if err := writeFrame(st, response{Status: codeOK, Size: size}.encode()); err != nil {
			return err
		}
		_, err := io.CopyN(st, rd, size)
		return err
	})
	if err == nil {
		return
	}
	if sent {
		// Part of the body may be out: the only signal left is to end the
		// stream short, which the client reports as a short body.
		if !errors.Is(err, errAborted) {
			s.cfg.Logf("peer server: %s: get %s: %v", who, h, err)
		}
		st.abort()
		return
	}
	s.reply(st, who, err, "get "+h.String())
}

func (s *Server) servePut(ctx context.Context, st *timedStream, repo *repoStore, who string, h backend.Handle, req request) {
	finish := func(sum [32]byte) error {
		p, err := readFrame(st, maxRequestFrame)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: no commit after the content", errShortContent)
			}
			return err
		}
		c, err := decodeCommit(p)
		if err != nil {
			return err
		}
		if c.Sum != sum {
			return fmt.Errorf("%w: client's hash %s, content received %s",
				backend.ErrHashMismatch, backend.ID(c.Sum).Str(), backend.ID(sum).Str())
		}
		return nil
	}
	if err := repo.put(ctx, h, req.Length, st, finish); err != nil {
		s.reply(st, who, err, "put "+h.String())
		return
	}
	_ = writeFrame(st, response{Status: codeOK}.encode()) // a failed write means the client left
}

// reply sends the error response for err, logging what the client is not
// told.
func (s *Server) reply(st *timedStream, who string, err error, what string) {
	c := codeOf(err)
	var msg string
	switch c {
	case codeInternal:
		if errors.Is(err, errAborted) || isConnError(err) {
			return // the client left or stalled; nobody to answer
		}
		s.cfg.Logf("peer server: %s: %s: %v", who, what, err)
		msg = internalMessage
	case codeNotExist:
		msg = backend.ErrNotExist.Error()
	default:
		// Our messages name the file after the operation, as the
		// client's own error will: keep only what follows.
		msg = err.Error()
		if i := strings.LastIndex(msg, what+": "); i >= 0 {
			msg = msg[i+len(what)+2:]
		}
		if c == codeBadRequest || c == codeFrameTooLarge {
			s.cfg.Logf("peer server: %s: %s: %v", who, what, err)
		} else {
			// A refusal: append-only, quota, hash mismatch, bad name.
			s.cfg.Logf("peer server: %s: %s: refused: %s", who, what, msg)
		}
	}
	_ = writeFrame(st, response{Status: c, Message: sanitize(msg)}.encode()) // the stream ends next either way
}

// codeOf maps an error to the status that tells the client about it.
func codeOf(err error) code {
	switch {
	case errors.Is(err, backend.ErrNotExist):
		return codeNotExist
	case errors.Is(err, backend.ErrInvalidName):
		return codeInvalidName
	case errors.Is(err, backend.ErrAppendOnly):
		return codeAppendOnly
	case errors.Is(err, backend.ErrQuota):
		return codeQuota
	case errors.Is(err, backend.ErrHashMismatch):
		return codeHashMismatch
	case errors.Is(err, errFrameTooLarge):
		return codeFrameTooLarge
	case errors.Is(err, ErrProtocol):
		return codeBadRequest
	}
	return codeInternal
}

// isConnError recognises the errors of a stream whose client left,
// stalled or was cut off.
func isConnError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, yamux.ErrConnectionReset) || errors.Is(err, yamux.ErrSessionShutdown) ||
		errors.Is(err, yamux.ErrStreamClosed) || errors.As(err, &ne) && ne.Timeout()
}

// preauthCount is the number of connections not yet past their hello.
func (s *Server) preauthCount() int { return s.preauth.count() }
