package monitor

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// pingServer records the pings it receives, on 127.0.0.1.
type pingServer struct {
	*httptest.Server
	mu    sync.Mutex // guards pings
	pings []string   // "METHOD PATH?QUERY BODY"
}

func newPingServer(t *testing.T, status int) *pingServer {
	t.Helper()
	ps := &pingServer{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps.Server = &httptest.Server{
		Listener: l,
		Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			ps.mu.Lock()
			ps.pings = append(ps.pings, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
			ps.mu.Unlock()
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "OK")
		})},
	}
	ps.Start()
	t.Cleanup(ps.Close)
	return ps
}

func (ps *pingServer) got() []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]string(nil), ps.pings...)
}

const checkUUID = "0c2f4f8e-secret-uuid"

func TestPingStartSuccess(t *testing.T) {
	ps := newPingServer(t, http.StatusOK)
	p := Pinger{URL: ps.URL + "/" + checkUUID + "/"}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Success(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"GET /" + checkUUID + "/start", "GET /" + checkUUID}
	if got := ps.got(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server saw %q, want %q", got, want)
	}
}

func TestPingStartFailWithLogTail(t *testing.T) {
	ps := newPingServer(t, http.StatusOK)
	p := Pinger{URL: ps.URL + "/ping/" + checkUUID + "?create=1"}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// A long log whose last line says what failed; the body keeps its tail.
	log := strings.Repeat("cairn: backup: file ok\n", 1000) + "é" + "error: mirror peer:bob: connection refused\n"
	if err := p.Fail(ctx, log); err != nil {
		t.Fatal(err)
	}
	got := ps.got()
	if len(got) != 2 || got[0] != "GET /ping/"+checkUUID+"/start?create=1" {
		t.Fatalf("server saw %q, want a start ping first", got)
	}
	prefix := "POST /ping/" + checkUUID + "/fail?create=1 "
	if !strings.HasPrefix(got[1], prefix) {
		t.Fatalf("second ping %.80q, want %q", got[1], prefix)
	}
	body := strings.TrimPrefix(got[1], prefix)
	if !strings.HasSuffix(body, "error: mirror peer:bob: connection refused") {
		t.Errorf("fail body does not end with the log's last line: %q", body[max(0, len(body)-80):])
	}
	if len(body) > MaxLogTail {
		t.Errorf("fail body %d bytes, want at most %d", len(body), MaxLogTail)
	}
	if len(body) < MaxLogTail-100 {
		t.Errorf("fail body %d bytes, want about %d of the log's tail", len(body), MaxLogTail)
	}
}

func TestTailCutsAtCharacter(t *testing.T) {
	s := strings.Repeat("é", 10) // 20 bytes
	for max := 0; max <= 21; max++ {
		got := tail(s, max)
		if !strings.HasSuffix(s, got) || len(got) > max || len(got) < max-1 {
			t.Errorf("tail(%d) = %q", max, got)
		}
		if got != "" && got[0] != "é"[0] {
			t.Errorf("tail(%d) = %q starts inside a character", max, got)
		}
	}
}

// An error answer is an error naming the host and status, never the path
// (the check's secret).
func TestPingHTTPErrorHidesPath(t *testing.T) {
	ps := newPingServer(t, http.StatusNotFound)
	p := Pinger{URL: ps.URL + "/" + checkUUID}
	err := p.Success(context.Background())
	if err == nil {
		t.Fatal("404 answer gave no error")
	}
	if !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), strings.TrimPrefix(ps.URL, "http://")) {
		t.Errorf("error %q does not name the host and the status", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the URL's path", err)
	}
}

// A server that accepts the connection and never answers is given up on
// after the timeout, with an error that names the host only.
func TestPingHangingServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	conns.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				<-stop // read nothing, answer nothing
				c.Close()
			})
		}
	})
	t.Cleanup(func() { l.Close(); close(stop); conns.Wait() })

	p := Pinger{URL: "http://" + l.Addr().String() + "/" + checkUUID, Timeout: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- p.Start(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ping to a hanging server did not return within 30 s (timeout 200 ms)")
	}
	if err == nil {
		t.Fatal("ping to a hanging server succeeded")
	}
	if !strings.Contains(err.Error(), "timeout") || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q: want a timeout naming the host only", err)
	}
}

func TestPingConnectionRefusedHidesPath(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := Pinger{URL: "http://user:pw@" + addr + "/" + checkUUID}
	err = p.Fail(context.Background(), "log")
	if err == nil {
		t.Fatal("ping to a closed port succeeded")
	}
	for _, leak := range []string{"secret", "pw"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q shows %q of the URL", err, leak)
		}
	}
}

func TestPingValidate(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://hc-ping.com/" + checkUUID, true},
		{"http://127.0.0.1:8000/ping/x", true},
		{"ftp://host/x", false},
		{"hc-ping.com/" + checkUUID, false},
		{"https:///" + checkUUID, false},
		{"", false},
		{"http://[::1/%zz" + checkUUID, false},
	} {
		err := Pinger{URL: c.url}.Validate()
		if (err == nil) != c.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", c.url, err, c.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Validate(%q) error %q shows the URL", c.url, err)
		}
	}
}
