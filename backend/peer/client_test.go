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

// fakeServer is a hostile or broken server on the far end of a net.Pipe:
// it does the handshake and hello properly, then hands each request to
// answer, which writes whatever it likes.
func fakeServer(t *testing.T, hello serverHello, answer func(st *yamux.Stream, req request)) *Backend {
	t.Helper()
	serverID, clientID := newIdentity(t), newIdentity(t)
	serverConf, err := newTLSConfig(serverID, func(crypt.PeerID) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	loc := Location{Peer: serverID.PeerID(), Addr: "pipe:1", Name: "r"}
	clientConf, err := newTLSConfig(clientID, func(got crypt.PeerID) error {
		if got != loc.Peer {
			return ErrPeerMismatch
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		c1, c2 := net.Pipe()
		wg.Go(func() {
			defer c2.Close()
			tc := tls.Server(c2, serverConf)
			if _, err := readFrame(tc, maxHelloFrame); err != nil {
				return
			}
			if err := writeFrame(tc, hello.encode()); err != nil {
				return
			}
			conf := yamux.DefaultConfig()
			conf.LogOutput = io.Discard
			sess, err := yamux.Server(tc, conf)
			if err != nil {
				return
			}
			defer sess.Close()
			for {
				st, err := sess.AcceptStream()
				if err != nil {
					return
				}
				wg.Go(func() {
					defer st.Close()
					p, err := readFrame(st, maxRequestFrame)
					if err != nil {
						return
					}
					req, err := decodeRequest(p)
					if err != nil {
						return
					}
					answer(st, req)
				})
			}
		})
		return c1, nil
	}
	b := &Backend{loc: loc, tls: clientConf, dial: dial, connecting: make(chan struct{}, 1), slots: make(chan struct{}, 4)}
	if _, err := b.session(t.Context()); err != nil {
		t.Fatalf("connect to the fake server: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var okHello = serverHello{Status: codeOK, Version: 1, Mode: ModeReadWrite, MaxStreams: 4}

func TestClientRefusesBadAnswers(t *testing.T) {
	id := backend.Hash([]byte("x")).String()
	h := backend.Handle{Type: backend.PackFile, Name: id}
	write := func(st *yamux.Stream, frames ...[]byte) {
		for _, f := range frames {
			if _, err := st.Write(f); err != nil {
				return
			}
		}
	}
	t.Run("list with an invalid name", func(t *testing.T) {
		be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
			write(st, frame(listFrame{Entries: []backend.FileInfo{{Name: "../../etc/passwd", Size: 1}}}.encode()),
				frame(response{}.encode()))
		})
		err := be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error {
			t.Error("callback called for a bad listing")
			return nil
		})
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("got %v, want ErrProtocol", err)
		}
	})
	t.Run("list cut short", func(t *testing.T) {
		be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
			write(st, frame(listFrame{Entries: []backend.FileInfo{{Name: id, Size: 1}}}.encode()))
		})
		err := be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error { return nil })
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("got %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("oversized list frame", func(t *testing.T) {
		be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
			write(st, []byte{0, 2, 0, 0})
		})
		err := be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error { return nil })
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("got %v, want ErrProtocol", err)
		}
	})
	t.Run("get body shorter than announced", func(t *testing.T) {
		be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
			write(st, frame(response{Size: 100}.encode()), make([]byte, 40))
		})
		err := be.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
			_, err := io.ReadAll(r)
			return err
		})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("got %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("get longer than asked", func(t *testing.T) {
		be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
			write(st, frame(response{Size: 100}.encode()), make([]byte, 100))
		})
		called := false
		err := be.Get(t.Context(), h, 10, 0, func(io.Reader) error { called = true; return nil })
		if !errors.Is(err, ErrProtocol) || called {
			t.Errorf("got %v (callback called %v), want ErrProtocol", err, called)
		}
	})
	t.Run("terminal escapes in a message", func(t *testing.T) {
		be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
			p := response{Status: codeInternal, Message: "x"}.encode()
			p[len(p)-1] = 0x1b
			write(st, frame(p))
		})
		if _, err := be.Stat(t.Context(), h); !errors.Is(err, ErrProtocol) {
			t.Errorf("got %v, want ErrProtocol", err)
		}
	})
	t.Run("statuses map to sentinels", func(t *testing.T) {
		for c, want := range map[code]error{
			codeNotExist:     backend.ErrNotExist,
			codeInvalidName:  backend.ErrInvalidName,
			codeAppendOnly:   backend.ErrAppendOnly,
			codeQuota:        backend.ErrQuota,
			codeHashMismatch: backend.ErrHashMismatch,
			codeBadRequest:   ErrProtocol,
		} {
			be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
				write(st, frame(response{Status: c, Message: "says the server"}.encode()))
			})
			_, err := be.Stat(t.Context(), h)
			if !errors.Is(err, want) || !backend.IsPermanent(err) {
				t.Errorf("status %v: got %v, want a permanent %v", c, err, want)
			}
		}
		be := fakeServer(t, okHello, func(st *yamux.Stream, req request) {
			write(st, frame(response{Status: codeInternal, Message: "disk on fire"}.encode()))
		})
		if _, err := be.Stat(t.Context(), h); err == nil || backend.IsPermanent(err) {
			t.Errorf("internal error: got %v, want a retryable error", err)
		}
	})
	t.Run("stalled server and cancelled context", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		be := fakeServer(t, okHello, func(st *yamux.Stream, req request) { <-release })
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := be.Stat(ctx, h); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("cancelled request returned after %v", d)
		}
	})
}

// countingReader is a RewindReader over n zero bytes that counts what it
// hands out.
type countingReader struct {
	n, pos, read int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.pos >= r.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n-r.pos)
	clear(p[:k])
	r.pos += k
	r.read += k
	return int(k), nil
}

func (r *countingReader) Rewind() error { r.pos = 0; return nil }
func (r *countingReader) Length() int64 { return r.n }

// TestEarlyRefusalStopsUpload: a put the server refuses before reading
// its content returns at once, without sending the content.
func TestEarlyRefusalStopsUpload(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Quota: 1 << 20, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	const size = 256 << 20
	rd := &countingReader{n: size}
	h := handleOf(backend.PackFile, []byte("not the content's hash, never checked"))
	if err := be.Put(t.Context(), h, rd); !errors.Is(err, backend.ErrQuota) {
		t.Fatalf("put over quota: got %v, want ErrQuota", err)
	}
	if rd.read > 32<<20 {
		t.Errorf("%d MiB of a refused put were read", rd.read>>20)
	}
	t.Logf("%d KiB read before the refusal arrived", rd.read>>10)
	data := bytes.Repeat([]byte("y"), 1000)
	putBytes(t, be, handleOf(backend.PackFile, data), data)
}

// TestClientKeepsToMaxStreams: a caller running far more requests at once
// than the server serves sees them wait, not fail.
func TestClientKeepsToMaxStreams(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{MaxStreams: 2, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	if c := be.Properties().Connections; c != 2 {
		t.Errorf("connections %d, want the server's 2", c)
	}
	data := bytes.Repeat([]byte("z"), 3<<20)
	h := handleOf(backend.PackFile, data)
	putBytes(t, be, h, data)
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			err := be.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
				n, err := io.Copy(io.Discard, r)
				if err == nil && n != int64(len(data)) {
					err = io.ErrUnexpectedEOF
				}
				return err
			})
			if err != nil {
				t.Errorf("get: %v", err)
			}
		})
	}
	wg.Wait()
}
