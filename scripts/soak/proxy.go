package main

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
)

// proxy forwards loopback TCP connections to a target and, while cutting
// is on, cuts each connection after a random number of bytes in a random
// direction with a TCP reset, as a dropped link or a NAT timeout would.
type proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex // guards the fields below
	cutting bool
	rng     *rand.Rand
	conns   map[net.Conn]struct{}
	closed  bool

	cuts atomic.Int64 // connections cut so far
	wg   sync.WaitGroup
}

// newProxy listens on a free loopback port and forwards to target.
func newProxy(target string, seed uint64) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, rng: rand.New(rand.NewPCG(seed, 0x50a4)), conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// addr is where clients connect.
func (p *proxy) addr() string { return p.ln.Addr().String() }

// setCutting turns cutting of new connections on or off.
func (p *proxy) setCutting(on bool) {
	p.mu.Lock()
	p.cutting = on
	p.mu.Unlock()
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		// Half the cuts land in the first 64 KiB (handshakes, listings),
		// the rest within 1 MiB (mid-transfer: a night's mirror carries
		// a few MiB).
		cutAt, up := int64(-1), false
		if p.cutting {
			limit := int64(64 << 10)
			if p.rng.IntN(2) == 0 {
				limit = 1 << 20
			}
			cutAt, up = p.rng.Int64N(limit), p.rng.IntN(2) == 0
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(c, cutAt, up) })
	}
}

// serve forwards one connection; cutAt ≥ 0 cuts it after that many bytes
// of the upstream (up) or downstream direction.
func (p *proxy) serve(c net.Conn, cutAt int64, up bool) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	t, err := net.Dial("tcp", p.target)
	if err != nil {
		reset(c)
		return
	}
	p.mu.Lock()
	p.conns[t] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, t)
		p.mu.Unlock()
	}()
	var once sync.Once
	cut := func() {
		once.Do(func() {
			p.cuts.Add(1)
			reset(c)
			reset(t)
		})
	}
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn, limit int64) {
		defer wg.Done()
		if limit < 0 {
			_, _ = io.Copy(dst, src)
		} else {
			n, err := io.CopyN(dst, src, limit)
			if err == nil && n == limit {
				cut()
				return
			}
		}
		// One side finished: pass the end on and let the other drain.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	wg.Add(2)
	upLimit, downLimit := int64(-1), int64(-1)
	if cutAt >= 0 {
		if up {
			upLimit = cutAt
		} else {
			downLimit = cutAt
		}
	}
	go pipe(t, c, upLimit)
	go pipe(c, t, downLimit)
	wg.Wait()
	_ = c.Close()
	_ = t.Close()
}

// reset closes c with a TCP reset rather than an orderly end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// close stops the proxy and cuts every connection.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		reset(c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return
	}
	p.wg.Wait()
}
