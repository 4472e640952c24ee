package peer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// TestPreauthExhaustion: 500 hostile connections from 16 addresses, none
// of which ever proves a key, cannot keep an allowed client out. They
// connect and stay silent, send a ClientHello a byte at a time, or
// reconnect as soon as the server closes them; meanwhile the client makes
// six connections in turn, each storing and reading back a file, and
// every one must succeed at its first attempt (there is no retry here).
// The server must hold no more unauthenticated connections than its bound.
func TestPreauthExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 500 hostile connections")
	}
	t.Parallel()
	client := newIdentity(t)
	ts := startServer(t, ServerConfig{Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})

	attack, stop := context.WithCancel(t.Context())
	defer stop()
	var attackers sync.WaitGroup
	var opened, held atomic.Int64
	// Each attacker is a bounded loop: it ends when the attack does, or
	// after 10,000 connections, whichever comes first.
	const hosts, perHost = 16, 32 // 512 connections at once
	ready := make(chan struct{}, hosts*perHost)
	for h := range hosts {
		for i := range perHost {
			attackers.Go(func() {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+h))}}
				first := true
				for n := 0; n < 10_000 && attack.Err() == nil; n++ {
					c, err := d.DialContext(attack, "tcp", ts.addr)
					if err != nil {
						if attack.Err() == nil {
							time.Sleep(10 * time.Millisecond) // out of ports for a moment
						}
						continue
					}
					opened.Add(1)
					held.Add(1)
					if first {
						ready <- struct{}{}
						first = false
					}
					stopped := context.AfterFunc(attack, func() { _ = c.Close() })
					switch i % 3 {
					case 0: // silent until closed
						_, _ = io.Copy(io.Discard, c)
					case 1: // a ClientHello, a byte every 100 ms
						hello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
						for _, b := range bytes.Repeat(hello, 20) {
							if _, err := c.Write([]byte{b}); err != nil {
								break
							}
							select {
							case <-time.After(100 * time.Millisecond):
							case <-attack.Done():
							}
						}
					case 2: // reconnect as soon as the server closes it
						_, _ = io.Copy(io.Discard, c)
					}
					stopped()
					_ = c.Close()
					held.Add(-1)
					if i%3 == 0 {
						// Silent ones come back too, after a pause.
						select {
						case <-time.After(50 * time.Millisecond):
						case <-attack.Done():
						}
					}
				}
			})
		}
	}
	// The attack is in place: every attacker has been connected once.
	for range hosts * perHost {
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			t.Fatalf("the attackers could not connect within 30 s (%d opened)", opened.Load())
		}
	}

	var maxPreauth atomic.Int64
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for attack.Err() == nil {
			if n := int64(ts.srv.preauthCount()); n > maxPreauth.Load() {
				maxPreauth.Store(n)
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case <-attack.Done():
			}
		}
	}()

	for i := range 6 {
		start := time.Now()
		name := fmt.Sprintf("r%d", i)
		be, err := Create(t.Context(), ts.loc(name), client)
		if err != nil {
			t.Fatalf("connection %d of the allowed client, with %d hostile connections open: %v", i, held.Load(), err)
		}
		data := fmt.Appendf(nil, "stored through the attack, %d", i)
		h := handleOf(backend.PackFile, data)
		if err := be.Put(t.Context(), h, backend.NewByteReader(data)); err != nil {
			t.Fatalf("connection %d: put: %v", i, err)
		}
		if got := getAll(t, be, h); !bytes.Equal(got, data) {
			t.Fatalf("connection %d: got %q", i, got)
		}
		_ = be.Close()
		t.Logf("connection %d served in %v with %d hostile connections open", i, time.Since(start).Round(time.Millisecond), held.Load())
	}
	stop()
	attackers.Wait()
	<-sampleDone
	t.Logf("%d hostile connections made; at most %d unauthenticated at once (bound %d)",
		opened.Load(), maxPreauth.Load(), DefaultMaxHandshakes)
	if maxPreauth.Load() > DefaultMaxHandshakes {
		t.Errorf("the server held %d unauthenticated connections, bound %d", maxPreauth.Load(), DefaultMaxHandshakes)
	}
}

// addrConn is a net.Conn that only has a remote address.
type addrConn struct {
	net.Conn
	addr string
}

func (c addrConn) RemoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(c.addr))
}

// TestPreauthVictims: which connection a full table gives up. An
// attacker that spreads over the addresses of an IPv6 /64, or over a
// whole IPv4 /24, is one host or one network; a lone client never pays
// for them.
func TestPreauthVictims(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		held   []string // admitted in this order
		newbie string
		want   string // the one evicted
	}{
		{"the host with the most", []string{"192.0.2.1:1", "192.0.2.7:1", "192.0.2.7:2", "198.51.100.1:1"}, "203.0.113.9:1", "192.0.2.7:1"},
		{"the network with the most", []string{"198.51.100.1:1", "192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1"}, "203.0.113.9:1", "192.0.2.1:1"},
		{"an IPv6 /64 is one host", []string{"[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8::3]:1", "[2001:db8:1::1]:1"}, "[2001:db8:2::1]:1", "[2001:db8::1]:1"},
		{"mapped IPv4 is IPv4", []string{"[::ffff:192.0.2.1]:1", "192.0.2.1:2", "192.0.2.9:1", "198.51.100.1:1"}, "203.0.113.9:1", "[::ffff:192.0.2.1]:1"},
		{"the oldest on a tie", []string{"192.0.2.1:1", "198.51.100.1:1", "203.0.113.1:1", "192.0.2.1:2"}, "192.0.2.1:3", "192.0.2.1:1"},
		{"a newcomer of the flooding host", []string{"192.0.2.1:1", "192.0.2.1:2", "192.0.2.1:3", "198.51.100.1:1"}, "192.0.2.1:4", "192.0.2.1:1"},
	} {
		p := newPreauth(len(c.held))
		entries := map[string]*preauthConn{}
		for _, a := range c.held {
			e, ev := p.admit(addrConn{addr: a})
			if ev != nil {
				t.Fatalf("%s: evicted %v before the table was full", c.name, ev.RemoteAddr())
			}
			entries[a] = e
		}
		_, ev := p.admit(addrConn{addr: c.newbie})
		if ev == nil || ev.(addrConn).addr != c.want {
			t.Errorf("%s: evicted %v, want %s", c.name, ev, c.want)
		}
		if p.count() != len(c.held) {
			t.Errorf("%s: %d in the table, want %d", c.name, p.count(), len(c.held))
		}
		// The evicted one's own release changes nothing; the others
		// give their places back.
		for _, e := range entries {
			p.release(e)
			p.release(e)
		}
		if p.count() != 1 || len(p.nets) != 1 {
			t.Errorf("%s: %d left after every release but the newcomer's, in %d networks", c.name, p.count(), len(p.nets))
		}
	}
}
