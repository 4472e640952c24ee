package peer

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// The resource test runs the server in a child process (this test binary
// run again), so that its memory and file descriptors can be measured
// from /proc without the attackers' own counting in.
const (
	envChildServer = "CAIRN_TEST_PEER_CHILD_SERVER" // comma-separated peer IDs to allow
	childReady     = "child server ready"
)

// childServerConfig is the configuration of the child server: the
// defaults of "cairn peer serve", but a handshake timeout short enough to
// see silent connections dropped within the test.
func childServerConfig() ServerConfig {
	return ServerConfig{HandshakeTimeout: 2 * time.Second}
}

// TestChildServerProcess is not a test of its own: it is the server that
// TestServerResourceBounds runs in a child process. It serves until its
// standard input closes.
func TestChildServerProcess(t *testing.T) {
	allowList := os.Getenv(envChildServer)
	if allowList == "" {
		t.Skip("the child server process of TestServerResourceBounds")
	}
	cfg := childServerConfig()
	cfg.Identity = newIdentity(t)
	cfg.Root = t.TempDir()
	cfg.Allow = map[crypt.PeerID]Mode{}
	for _, s := range strings.Split(allowList, ",") {
		id, err := crypt.ParsePeerID(s)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Allow[id] = ModeReadWrite
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
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or exits
		cancel()
	}()
	fmt.Printf("%s %s %s\n", childReady, ln.Addr(), cfg.Identity.PeerID())
	if err := srv.Serve(ctx, ln); err != nil {
		t.Fatal(err)
	}
}

// childServer is the running child.
type childServer struct {
	pid  int
	addr string
	peer crypt.PeerID
}

func startChildServer(t *testing.T, allow ...crypt.PeerID) *childServer {
	t.Helper()
	var ids []string
	for _, id := range allow {
		ids = append(ids, id.String())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildServerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), envChildServer+"="+strings.Join(ids, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("child server did not stop within 20s")
			_ = cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), childReady+" "); ok {
				ready <- line
			}
		}
	}()
	select {
	case line := <-ready:
		f := strings.Fields(line)
		peer, err := crypt.ParsePeerID(f[1])
		if err != nil {
			t.Fatal(err)
		}
		return &childServer{pid: cmd.Process.Pid, addr: f[0], peer: peer}
	case <-time.After(30 * time.Second):
		t.Fatal("child server did not start")
		return nil
	}
}

// rss is the child's resident memory in bytes.
func (c *childServer) rss(t *testing.T) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// fds is how many file descriptors the child has open.
func (c *childServer) fds(t *testing.T) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func (c *childServer) loc(name string) Location {
	return Location{Peer: c.peer, Addr: c.addr, Name: name}
}

// TestServerResourceBounds attacks a server process with floods of
// connections and streams, requests left half-sent, puts that stall,
// gets never read, and answered streams the client never closes while
// it sends on them; meanwhile a good client must be served, and the
// server's memory and file descriptors must stay within the bounds its
// limits set, and go back down when the attackers leave.
func TestServerResourceBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	t.Parallel()
	attacker, good := newIdentity(t), newIdentity(t)
	child := startChildServer(t, attacker.PeerID(), good.PeerID())
	ctx := t.Context()

	goodBe, err := Create(ctx, child.loc("good"), good)
	if err != nil {
		t.Fatal(err)
	}
	defer goodBe.Close()
	big := make([]byte, 4<<20)
	_, _ = rand.Read(big)
	bigH := handleOf(backend.PackFile, big)
	evil, err := Create(ctx, child.loc("evil"), attacker)
	if err != nil {
		t.Fatal(err)
	}
	putBytes(t, evil, bigH, big)
	putBytes(t, evil, handleOf(backend.ConfigFile, nil), []byte("config"))
	_ = evil.Close()
	roundTrip := func(i int) error {
		data := fmt.Appendf(nil, "good file %d %x", i, big[i%len(big):i%len(big)+64])
		h := handleOf(backend.IndexFile, data)
		if err := goodBe.Put(ctx, h, backend.NewByteReader(data)); err != nil {
			return err
		}
		var got []byte
		err := goodBe.Get(ctx, h, 0, 0, func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		})
		if err == nil && string(got) != string(data) {
			err = fmt.Errorf("got %q", got)
		}
		return err
	}
	if err := roundTrip(0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	baseRSS, baseFDs := child.rss(t), child.fds(t)
	t.Logf("before the attack: %d MiB resident, %d fds", baseRSS>>20, baseFDs)

	attack, stop := context.WithCancel(ctx)
	var attackers sync.WaitGroup
	var maxRSS atomic.Int64
	var maxFDs atomic.Int64
	sample := func() {
		if r := child.rss(t); r > maxRSS.Load() {
			maxRSS.Store(r)
		}
		if f := int64(child.fds(t)); f > maxFDs.Load() {
			maxFDs.Store(f)
		}
	}

	// The attacker's own connections: one more than it may hold, each
	// flooded with streams of every hostile kind.
	var evils []*Backend
	for i := range DefaultMaxConnsPerClient + 1 {
		be, err := Dial(ctx, child.loc("evil"), attacker)
		if err != nil {
			if i < DefaultMaxConnsPerClient {
				t.Fatalf("attacker connection %d: %v", i, err)
			}
			t.Logf("attacker connection %d refused: %v", i, err)
			continue
		}
		evils = append(evils, be)
	}
	if len(evils) > DefaultMaxConnsPerClient {
		t.Errorf("attacker holds %d connections, limit %d", len(evils), DefaultMaxConnsPerClient)
	}
	// Silent TCP connections from 16 loopback addresses, 16 each: the
	// server holds MaxHandshakes of them at most, closing the oldest of
	// the host with the most to admit each newcomer (TestPreauthExhaustion
	// shows new clients still get in).
	var silent []net.Conn
	var silentMu sync.Mutex
	for host := 2; host < 18; host++ {
		attackers.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(host))}}
			for range 16 {
				c, err := d.DialContext(attack, "tcp", child.addr)
				if err != nil {
					return
				}
				silentMu.Lock()
				silent = append(silent, c)
				silentMu.Unlock()
			}
		})
	}

	junk := make([]byte, 256<<10)
	var streams atomic.Int64
	for _, be := range evils {
		s, err := be.session(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for w := range 4 {
			attackers.Go(func() { floodStreams(attack, s.mux, w, bigH, junk, &streams) })
		}
	}

	// The good client is served all along.
	var served atomic.Int64
	var goodErr error
	attackers.Go(func() {
		for i := 1; attack.Err() == nil; i++ {
			start := time.Now()
			if err := roundTrip(i); err != nil {
				if attack.Err() == nil {
					goodErr = fmt.Errorf("round trip %d: %v", i, err)
				}
				return
			}
			if d := time.Since(start); d > 10*time.Second {
				goodErr = fmt.Errorf("round trip %d took %v", i, d)
				return
			}
			served.Add(1)
		}
	})
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
		sample()
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	attackers.Wait()
	sample()
	t.Logf("during the attack: %d streams opened, %d good round trips, at most %d MiB resident and %d fds",
		streams.Load(), served.Load(), maxRSS.Load()>>20, maxFDs.Load())
	if goodErr != nil {
		t.Errorf("good client: %v", goodErr)
	}
	if served.Load() == 0 {
		t.Errorf("good client was not served during the attack")
	}

	// File descriptors: a listener, the handshakes it admits, the
	// connections of two clients, and a file per request served at once.
	fdBound := int64(baseFDs) + int64(DefaultMaxHandshakes) + 2*int64(DefaultMaxConnsPerClient) +
		int64(DefaultMaxConnsPerClient*DefaultMaxStreams) + 16
	if maxFDs.Load() > fdBound {
		t.Errorf("server held %d fds, bound %d", maxFDs.Load(), fdBound)
	}
	// Memory: each connection buffers at most a window per stream it
	// serves or keeps waiting (docs/peer-protocol.md, section 8), so 4
	// connections at most 4 × 128 × 1 MiB; well below that in practice.
	memBound := baseRSS + int64(DefaultMaxConnsPerClient)*2*int64(DefaultMaxStreams)*streamWindow
	if raceEnabled {
		memBound *= 4 // the race detector's shadow memory
	}
	if maxRSS.Load() > memBound {
		t.Errorf("server grew to %d MiB resident, bound %d MiB", maxRSS.Load()>>20, memBound>>20)
	}

	// Everything is given back once the attackers leave.
	for _, be := range evils {
		_ = be.Close()
	}
	for _, c := range silent {
		_ = c.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for child.fds(t) > baseFDs+4 {
		if time.Now().After(deadline) {
			t.Fatalf("server still holds %d fds 15s after the attack, %d before", child.fds(t), baseFDs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := roundTrip(1 << 20); err != nil {
		t.Errorf("good client after the attack: %v", err)
	}
}

// floodStreams opens streams on mux until ctx ends, each of one hostile
// kind (chosen by turn): a request header cut short; a put that sends a
// little of its content and stalls; a get of a large file whose body is
// never read; and a stat answered at once, after which the stream is
// never closed while junk follows the request.
func floodStreams(ctx context.Context, mux *yamux.Session, seed int, bigH backend.Handle, junk []byte, n *atomic.Int64) {
	var open []*yamux.Stream
	defer func() {
		for _, st := range open {
			_ = st.Close()
		}
	}()
	for i := seed; ctx.Err() == nil; i++ {
		st, err := mux.OpenStream()
		if err != nil {
			return
		}
		n.Add(1)
		open = append(open, st)
		_ = st.SetWriteDeadline(time.Now().Add(time.Second))
		switch i % 4 {
		case 0:
			_, _ = st.Write([]byte{0, 0, 1})
		case 1:
			req := frame(request{Op: opPut, Type: backend.PackFile, Name: strings.Repeat("ab", 32), Length: 1 << 20}.encode())
			_, _ = st.Write(append(req, junk[:64<<10]...))
		case 2:
			_, _ = st.Write(frame(request{Op: opGet, Type: bigH.Type, Name: bigH.Name}.encode()))
		case 3:
			_, _ = st.Write(frame(request{Op: opStat, Type: bigH.Type, Name: bigH.Name}.encode()))
			_, _ = st.Write(junk)
		}
	}
}
