package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// A hostile client: messages cut short, too long, out of turn, replayed
// and with names that try to leave the client's folder, on top of
// TestBadRequests, TestHostileConnections and TestStreamFlood in
// server_test.go and the process-level TestServerResourceBounds.

// answer sends b on a new stream, half-closes it when closeAfter, and
// returns the server's response; answered is false when the server ended
// the stream without one. The stream must end within 10 seconds; answer
// closes it, as a client must once it has read the answer.
func answer(t *testing.T, be *Backend, b []byte, closeAfter bool) (resp response, answered bool) {
	t.Helper()
	st := rawStream(t, be)
	defer st.Close()
	if _, err := st.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	if closeAfter {
		_ = st.Close()
	}
	p, err := readFrame(st, maxResponseFrame)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrConnectionReset):
		return response{}, false
	case err != nil:
		t.Fatalf("read response: %v", err)
	}
	resp, err = decodeResponse(p)
	if err != nil {
		t.Fatalf("decode response: %v", err)
	}
	// Nothing follows a response but the end of the stream.
	if _, err := io.Copy(io.Discard, st); err != nil && !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("after the response: %v", err)
	}
	return resp, true
}

// stillServes checks that be's connection answers a plain request.
func stillServes(t *testing.T, be *Backend, what string) {
	t.Helper()
	if _, err := be.Stat(t.Context(), handleOf(backend.KeyFile, []byte(what))); !backend.IsNotExist(err) {
		t.Fatalf("%s: the connection no longer serves: %v", what, err)
	}
}

func putFrame(h backend.Handle, length int64) []byte {
	return frame(request{Op: opPut, Type: h.Type, Name: h.Name, Length: length}.encode())
}

func commitFrame(data []byte) []byte {
	return frame(commit{Sum: sha256.Sum256(data)}.encode())
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestTruncatedMessages(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	data := []byte("a file whose upload the client cuts short")
	h := handleOf(backend.PackFile, data)
	stat := frame(request{Op: opStat, Type: h.Type, Name: h.Name}.encode())
	for _, c := range []struct {
		name string
		send []byte
	}{
		{"half a length prefix", []byte{0, 0}},
		{"length prefix only", stat[:4]},
		{"request cut mid-payload", stat[:12]},
		{"put content cut", concat(putFrame(h, int64(len(data))), data[:7])},
		{"put without commit", concat(putFrame(h, int64(len(data))), data)},
		{"commit length prefix only", concat(putFrame(h, int64(len(data))), data, commitFrame(data)[:4])},
		{"commit cut", concat(putFrame(h, int64(len(data))), data, commitFrame(data)[:20])},
	} {
		start := time.Now()
		resp, answered := answer(t, be, c.send, true)
		if answered && resp.Status == codeOK {
			t.Errorf("%s: answered OK", c.name)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: the server took %v to end the stream after the client closed it", c.name, d)
		}
		if _, err := be.Stat(t.Context(), h); !backend.IsNotExist(err) {
			t.Fatalf("%s: the file was stored: %v", c.name, err)
		}
		stillServes(t, be, c.name)
	}
	if files := regularFiles(t, ts.cfg.Root); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}
}

func TestOversizedMessages(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Quota: 1 << 20, Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	data := []byte("declared length and content disagree")
	h := handleOf(backend.PackFile, data)
	junk := bytes.Repeat([]byte{0xff}, 5000)
	statReq := request{Op: opStat, Type: h.Type, Name: h.Name}.encode()
	for _, c := range []struct {
		name string
		send []byte
		want code
	}{
		// More content than declared: the surplus is read as the commit.
		{"content longer than declared", concat(putFrame(h, int64(len(data))), data, junk, commitFrame(data)), codeFrameTooLarge},
		{"content twice the declared length", concat(putFrame(h, int64(len(data))), data, data, commitFrame(data)), codeFrameTooLarge},
		{"put over 4 GiB", putFrame(h, MaxFileSize+1), codeBadRequest},
		{"put of 2^63-1 bytes", putFrame(h, math.MaxInt64), codeBadRequest},
		// Refused before a byte of content is read.
		{"put over the quota", putFrame(h, 2<<20), codeQuota},
		{"get over 4 GiB", frame(request{Op: opGet, Type: h.Type, Name: h.Name, Length: MaxFileSize + 1}.encode()), codeBadRequest},
		{"request frame at its limit", frame(append(statReq, make([]byte, maxRequestFrame-len(statReq))...)), codeBadRequest},
		{"request frame over its limit", frame(make([]byte, maxRequestFrame+1)), codeFrameTooLarge},
	} {
		resp, answered := answer(t, be, c.send, false)
		if !answered || resp.Status != c.want {
			t.Errorf("%s: answered %v, status %v (%q), want %v", c.name, answered, resp.Status, resp.Message, c.want)
		}
		if _, err := be.Stat(t.Context(), h); !backend.IsNotExist(err) {
			t.Fatalf("%s: the file was stored: %v", c.name, err)
		}
		stillServes(t, be, c.name)
	}

	// An oversized hello is refused in the server hello.
	conf, err := newTLSConfig(client, func(crypt.PeerID) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", ts.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(frame(append([]byte{msgClientHello, 0, 1, 0, 1, 1, 'r'}, make([]byte, maxHelloFrame)...))); err != nil {
		t.Fatal(err)
	}
	p, err := readFrame(conn, maxHelloFrame)
	if err != nil {
		t.Fatal(err)
	}
	if sh, err := decodeServerHello(p); err != nil || sh.Status != codeFrameTooLarge {
		t.Errorf("oversized hello: %+v, %v; want codeFrameTooLarge", sh, err)
	}
	if files := regularFiles(t, ts.cfg.Root); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}
}

func TestOutOfOrderMessages(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	data := []byte("stored")
	h := handleOf(backend.IndexFile, data)
	putBytes(t, be, h, data)
	stat := frame(request{Op: opStat, Type: h.Type, Name: h.Name}.encode())
	for _, c := range []struct {
		name string
		send []byte
		want code
	}{
		{"commit first", commitFrame(data), codeBadRequest},
		{"client hello on a stream", frame(clientHello{MinVersion: 1, MaxVersion: 1, Repo: "r"}.encode()), codeBadRequest},
		{"server hello from the client", frame(serverHello{Version: 1, Mode: ModeReadWrite, MaxStreams: 1}.encode()), codeBadRequest},
		{"list frame from the client", frame(listFrame{Entries: []backend.FileInfo{{Name: h.Name, Size: 1}}}.encode()), codeBadRequest},
		// A second request on the stream is never answered: one
		// request, one answer.
		{"two requests on one stream", concat(stat, stat), codeOK},
		{"commit after a stat", concat(stat, commitFrame(data)), codeOK},
	} {
		resp, answered := answer(t, be, c.send, true)
		if !answered || resp.Status != c.want {
			t.Errorf("%s: answered %v, status %v (%q), want %v", c.name, answered, resp.Status, resp.Message, c.want)
		}
		stillServes(t, be, c.name)
	}
	if got := getAll(t, be, h); !bytes.Equal(got, data) {
		t.Errorf("stored file changed: %q", got)
	}

	conf, err := newTLSConfig(client, func(crypt.PeerID) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	// yamux without a hello first: the multiplexer's first header is
	// read as the hello's length prefix, and refused.
	conn, err := tls.Dial("tcp", ts.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	ycfg := yamux.DefaultConfig()
	ycfg.LogOutput = io.Discard
	sess, err := yamux.Client(conn, ycfg)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := sess.OpenStream(); err == nil {
		_, _ = st.Write(stat)
		if _, err := readFrame(st, maxResponseFrame); err == nil {
			t.Errorf("a stream without a hello was answered")
		}
	}
	_ = sess.Close()
	_ = conn.Close()

	// Bytes that are not yamux after the server accepted the hello (here
	// a header of an unknown version): the server ends the connection,
	// and nobody else notices.
	conn, err = tls.Dial("tcp", ts.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(conn, clientHello{MinVersion: 1, MaxVersion: 1, Repo: "r"}.encode()); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(conn, maxHelloFrame); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(bytes.Repeat([]byte{0xff}, 12)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("the server kept a connection that broke the multiplexer's framing")
		}
	}
	_ = conn.Close()
	stillServes(t, be, "after the broken connections")
}

func TestReplayedMessages(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	data := bytes.Repeat([]byte("replayed put "), 1000)
	h := handleOf(backend.PackFile, data)
	put := concat(putFrame(h, int64(len(data))), data, commitFrame(data))

	// The same put on 16 streams at once: each is served whole, one
	// after another, and one file results.
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 16 {
		wg.Go(func() {
			st := rawStream(t, be)
			if _, err := st.Write(put); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			if _, err := readResponse(st); err != nil {
				t.Errorf("replayed put: %v", err)
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	if ok.Load() != 16 {
		t.Errorf("%d of 16 replayed puts succeeded on a read-write connection", ok.Load())
	}
	if got := getAll(t, be, h); !bytes.Equal(got, data) {
		t.Errorf("content after replayed puts differs")
	}
	if files := regularFiles(t, ts.cfg.Root); len(files) != 1 {
		t.Errorf("files after replayed puts: %v", files)
	}

	// A replayed delete finds nothing the second time.
	del := frame(request{Op: opDelete, Type: h.Type, Name: h.Name}.encode())
	if resp, _ := answer(t, be, del, false); resp.Status != codeOK {
		t.Errorf("delete: %v", resp.Status)
	}
	if resp, _ := answer(t, be, del, false); resp.Status != codeNotExist {
		t.Errorf("replayed delete: %v, want not exist", resp.Status)
	}

	// An append-only client's replayed put stores once and is refused
	// after.
	ao := newIdentity(t)
	ts2 := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{ao.PeerID(): ModeAppendOnly}})
	be2 := ts2.create(t, ao, "r")
	if resp, _ := answer(t, be2, put, false); resp.Status != codeOK {
		t.Fatalf("first put: %v", resp.Status)
	}
	for range 3 {
		if resp, _ := answer(t, be2, put, false); resp.Status != codeAppendOnly {
			t.Errorf("replayed put on an append-only connection: %v, want append-only", resp.Status)
		}
	}
}

// TestReplayedSession records the bytes a client sends in a whole session
// that deletes a file, then replays them to the server on a new
// connection after the file was stored again: TLS 1.3 refuses the
// replay, and the file stays.
func TestReplayedSession(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	data := []byte("deleted once, by the recorded session only")
	h := handleOf(backend.KeyFile, data)
	be := ts.create(t, client, "r")
	putBytes(t, be, h, data)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var recorded bytes.Buffer
	var recMu sync.Mutex
	proxyDone := make(chan struct{})
	go func() {
		defer close(proxyDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", ts.addr)
		if err != nil {
			return
		}
		defer s.Close()
		go func() { _, _ = io.Copy(c, s) }()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			recMu.Lock()
			recorded.Write(buf[:n])
			recMu.Unlock()
			if _, werr := s.Write(buf[:n]); werr != nil || err != nil {
				return
			}
		}
	}()
	loc := ts.loc("r")
	loc.Addr = ln.Addr().String()
	rec, err := Create(t.Context(), loc, client)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Delete(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	_ = rec.Close()
	<-proxyDone
	putBytes(t, be, h, data)

	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	recMu.Lock()
	replay := recorded.Bytes()
	recMu.Unlock()
	if len(replay) < 1000 {
		t.Fatalf("recorded only %d bytes", len(replay))
	}
	_, _ = conn.Write(replay) // the server may hang up part-way
	if _, err := io.Copy(io.Discard, conn); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("the server kept the replayed connection open")
		}
	}
	if got := getAll(t, be, h); !bytes.Equal(got, data) {
		t.Errorf("file after the replay: %q", got)
	}
}

// TestTraversalNames adds names to those of TestBadRequests and
// TestRepositoryNamesRefused: NUL bytes, backslashes, look-alike dots,
// and valid names with something after them.
func TestTraversalNames(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	be := ts.create(t, client, "r")
	id := backend.Hash([]byte("x")).String()
	for _, name := range []string{
		id + "\x00", id[:63] + "\x00", "config\x00", "config/", "config/../config", "CONFIG",
		`..\..\..\etc\passwd`, strings.Repeat(`..\`, 21) + "x", "\uff0e\uff0e/" + id[6:],
		id + "/..", "./" + id[2:], id[:32] + "%2f" + id[35:], strings.Repeat("0", 65), "",
	} {
		for _, ft := range []backend.FileType{backend.ConfigFile, backend.PackFile, backend.LockFile} {
			for _, o := range []op{opStat, opGet, opDelete} {
				resp, answered := answer(t, be, frame(request{Op: o, Type: ft, Name: name}.encode()), false)
				if !answered || resp.Status != codeInvalidName && resp.Status != codeBadRequest {
					t.Errorf("%v %v %q: answered %v, status %v", o, ft, name, answered, resp.Status)
				}
			}
		}
	}
	conf, err := newTLSConfig(client, func(crypt.PeerID) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"a\x00b", `..\..`, "\uff41", "-x", ".x", "x y", "x/", "r\n", "r/../../" + client.PeerID().String()} {
		conn, err := tls.Dial("tcp", ts.addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := writeFrame(conn, clientHello{MinVersion: 1, MaxVersion: 1, Repo: repo}.encode()); err != nil {
			t.Fatal(err)
		}
		p, err := readFrame(conn, maxHelloFrame)
		_ = conn.Close()
		if err != nil {
			t.Fatalf("%q: %v", repo, err)
		}
		if sh, err := decodeServerHello(p); err != nil || sh.Status != codeInvalidName {
			t.Errorf("repository %q: %+v, %v; want codeInvalidName", repo, sh, err)
		}
	}
	// Only the one repository's folder was ever made.
	if files := regularFiles(t, ts.cfg.Root); len(files) != 0 {
		t.Errorf("files made: %v", files)
	}
}

// TestAnsweredStreamHoldsSlot: a stream counts against MaxStreams until
// the client closes it, also after it was answered, and what the client
// sends on it meanwhile is thrown away. (Before, an answered stream gave
// its slot back at once while the multiplexer kept buffering what the
// client sent on it, so streams never closed piled up memory without
// bound; TestServerResourceBounds measures that.)
func TestAnsweredStreamHoldsSlot(t *testing.T) {
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{
		Allow:         map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite},
		MaxStreams:    1,
		StreamTimeout: 2 * time.Second,
	})
	be := ts.create(t, client, "r")
	data := []byte("stat me")
	h := handleOf(backend.KeyFile, data)
	putBytes(t, be, h, data)
	stat := frame(request{Op: opStat, Type: h.Type, Name: h.Name}.encode())

	first := rawStream(t, be)
	if _, err := first.Write(stat); err != nil {
		t.Fatal(err)
	}
	if _, err := readResponse(first); err != nil {
		t.Fatal(err)
	}
	// The client neither reads the end nor closes, and sends junk.
	if _, err := first.Write(make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	second := rawStream(t, be)
	if _, err := second.Write(stat); err != nil {
		t.Fatal(err)
	}
	_ = second.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := readResponse(second); err == nil {
		t.Fatalf("a second stream was served while the first, answered but open, held the only slot")
	}
	// Closing the first frees the slot.
	_ = first.Close()
	_ = second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readResponse(second); err != nil {
		t.Fatalf("second stream after the first closed: %v", err)
	}
	_ = second.Close()

	// A client that never closes loses the slot after the stream timeout.
	third := rawStream(t, be)
	if _, err := third.Write(stat); err != nil {
		t.Fatal(err)
	}
	if _, err := readResponse(third); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := be.Stat(ctx, h); err != nil {
		t.Fatalf("after a stream left open: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("served after %v, before the open stream's timeout", d)
	}
}
