package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// A server that hangs must cost a client a bounded time: the timeouts
// here are the Dialer's, made small; what is under test is that the
// client gives up at all, says why, does not retry a stuck server, and
// does not give up on a slow but live one.

// quick is the Dialer of these tests.
var quick = Dialer{ConnectTimeout: 500 * time.Millisecond, StreamTimeout: time.Second}

// within fails the test if d exceeds a generous multiple of bound.
func within(t *testing.T, what string, d, bound time.Duration) {
	t.Helper()
	t.Logf("%s after %v (timeout %v)", what, d.Round(time.Millisecond), bound)
	if d > 10*bound {
		t.Errorf("%s took %v, more than ten times the timeout %v", what, d, bound)
	}
}

// checkStuck checks that err says the server does not answer and is
// permanent, so no retry wrapper tries again.
func checkStuck(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrNoAnswer) || !backend.IsPermanent(err) {
		t.Fatalf("%s: got %v, want a permanent ErrNoAnswer", what, err)
	}
}

// silentListener accepts TCP connections and never says a word; it
// closes them when the test ends.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func TestHungServerAtConnect(t *testing.T) {
	t.Parallel()
	addr := silentListener(t)
	loc := Location{Peer: newIdentity(t).PeerID(), Addr: addr, Name: "r"}
	start := time.Now()
	_, err := quick.Create(t.Context(), loc, newIdentity(t))
	within(t, "gave up on a server silent after TCP", time.Since(start), quick.ConnectTimeout)
	checkStuck(t, "create", err)
}

// blockingServer is a fake server that reads each request and then
// holds the stream until the test ends, answering nothing; with
// readSome it reads that many bytes of a put's content first.
func blockingServer(t *testing.T, readSome int64) *Backend {
	t.Helper()
	done := make(chan struct{})
	be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
		if req.Op == opPut {
			_, _ = io.CopyN(io.Discard, st, readSome)
		}
		<-done
	})
	t.Cleanup(func() { close(done) }) // runs before fakeServer's wait
	be.dialer = quick
	return be
}

func TestHungServerRequest(t *testing.T) {
	t.Parallel()
	be := blockingServer(t, 0)
	h := handleOf(backend.KeyFile, []byte("k"))
	start := time.Now()
	_, err := be.Stat(t.Context(), h)
	within(t, "gave up on an unanswered request", time.Since(start), quick.StreamTimeout)
	checkStuck(t, "stat", err)
	// The verdict sticks: the next request fails at once.
	start = time.Now()
	_, err = be.Stat(t.Context(), h)
	checkStuck(t, "the next stat", err)
	if d := time.Since(start); d > quick.StreamTimeout/2 {
		t.Errorf("the next request took %v", d)
	}
}

func TestHungServerStopsReading(t *testing.T) {
	t.Parallel()
	be := blockingServer(t, 100<<10)
	data := make([]byte, 8<<20)
	start := time.Now()
	err := be.Put(t.Context(), handleOf(backend.PackFile, data), backend.NewByteReader(data))
	within(t, "gave up on a put the server stopped reading", time.Since(start), quick.StreamTimeout)
	checkStuck(t, "put", err)
}

// slowReader hands out its content a piece at a time, with a pause
// before each.
type slowReader struct {
	data  []byte
	pos   int
	piece int
	pause time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	n := copy(p[:min(len(p), r.piece)], r.data[r.pos:])
	r.pos += n
	return n, nil
}

func (r *slowReader) Rewind() error { r.pos = 0; return nil }
func (r *slowReader) Length() int64 { return int64(len(r.data)) }

// TestSlowPutNotStuck: an upload that takes several stream timeouts, but
// makes progress all along, is not taken for a stuck server, although
// the server answers only at its end.
func TestSlowPutNotStuck(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	d := Dialer{StreamTimeout: 300 * time.Millisecond}
	be, err := d.Create(t.Context(), ts.loc("r"), client)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	data := bytes.Repeat([]byte("slow "), 20000) // 100 kB in 100 pieces, 20 ms apart: 2 s
	h := handleOf(backend.PackFile, data)
	start := time.Now()
	if err := be.Put(t.Context(), h, &slowReader{data: data, piece: 1000, pause: 20 * time.Millisecond}); err != nil {
		t.Fatalf("slow put: %v", err)
	}
	if el := time.Since(start); el < 3*d.StreamTimeout {
		t.Fatalf("the put took %v, not several stream timeouts: the test proves nothing", el)
	}
	if got := getAll(t, be, h); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes", len(got))
	}
}

// TestFrozenServer: a server that stops reading its connection altogether
// after the hello (its process frozen) answers neither the request nor a
// ping: the request fails as the connection's failure, which may be
// retried; the retry, on a new connection the server accepts but never
// serves, gives up as on a stuck server.
func TestFrozenServer(t *testing.T) {
	t.Parallel()
	serverID, clientID := newIdentity(t), newIdentity(t)
	conf, err := newTLSConfig(serverID, func(crypt.PeerID) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	frozen := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		close(frozen)
		wg.Wait()
	})
	wg.Go(func() {
		for first := true; ; first = false {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if first { // handshake and hello, then nothing
					tc := tls.Server(c, conf)
					if _, err := readFrame(tc, maxHelloFrame); err != nil {
						return
					}
					if err := writeFrame(tc, okHello.encode()); err != nil {
						return
					}
				}
				<-frozen
			})
		}
	})
	loc := Location{Peer: serverID.PeerID(), Addr: ln.Addr().String(), Name: "r"}
	be, err := quick.connect(t.Context(), loc, clientID)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	h := handleOf(backend.KeyFile, []byte("k"))
	start := time.Now()
	_, err = be.Stat(t.Context(), h)
	within(t, "gave up on a frozen connection", time.Since(start), quick.StreamTimeout)
	if err == nil || errors.Is(err, ErrNoAnswer) || backend.IsPermanent(err) {
		t.Fatalf("stat on a frozen connection: got %v, want a retryable failure", err)
	}
	start = time.Now()
	_, err = be.Stat(context.Background(), h)
	within(t, "gave up on the reconnection", time.Since(start), quick.ConnectTimeout)
	checkStuck(t, "stat over a new connection", err)
}
