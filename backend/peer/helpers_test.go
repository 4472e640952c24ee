package peer

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

func newIdentity(t *testing.T) *crypt.Identity {
	t.Helper()
	id, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testLog collects a server's log lines and shows them in the test
// output until the test ends; lines after that are dropped.
type testLog struct {
	t       *testing.T
	mu      sync.Mutex // guards lines and stopped
	lines   []string
	stopped bool
}

func newTestLog(t *testing.T) *testLog {
	l := &testLog{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
	})
	return l
}

func (l *testLog) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.lines = append(l.lines, line)
	l.t.Log(line)
}

// has reports whether a line containing s was logged.
// logged waits, up to ten seconds, for a line holding s: the server logs
// some events (a refusal, a replaced file) after its answer is on the way,
// so the client can see the outcome before the line is written.
func (l *testLog) logged(s string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if l.has(s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func (l *testLog) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

type testServer struct {
	srv  *Server
	id   *crypt.Identity
	cfg  ServerConfig
	addr string
	log  *testLog
	n    atomic.Int64 // repository names handed out
}

// startServer serves cfg on a loopback port until the test ends. Identity
// and Root default to a new identity and a temporary folder.
func startServer(t *testing.T, cfg ServerConfig) *testServer {
	t.Helper()
	log := newTestLog(t)
	if cfg.Identity == nil {
		cfg.Identity = newIdentity(t)
	}
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	if cfg.Logf == nil {
		cfg.Logf = log.logf
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("server did not stop within 10s of cancel")
		}
	})
	return &testServer{srv: srv, id: cfg.Identity, cfg: cfg, addr: ln.Addr().String(), log: log}
}

// loc returns a location on the server; an empty name is a fresh one.
func (ts *testServer) loc(name string) Location {
	if name == "" {
		name = fmt.Sprintf("repo-%d", ts.n.Add(1))
	}
	return Location{Peer: ts.id.PeerID(), Addr: ts.addr, Name: name}
}

// create makes a new repository on the server as client and closes it
// when the test ends.
func (ts *testServer) create(t *testing.T, client *crypt.Identity, name string) *Backend {
	t.Helper()
	be, err := Create(t.Context(), ts.loc(name), client)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

func putBytes(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("put %v: %v", h, err)
	}
}

func handleOf(ft backend.FileType, data []byte) backend.Handle {
	if ft == backend.ConfigFile {
		return backend.Handle{Type: ft, Name: backend.ConfigName}
	}
	return backend.Handle{Type: ft, Name: backend.Hash(data).String()}
}
