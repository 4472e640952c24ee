package sftp

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// proxy forwards loopback TCP connections to a target and can break them:
// cut closes the connection once a number of further bytes have gone from
// client to server; freeze silently drops all traffic of the connections
// open now, as a dead network would. Connections made afterwards pass.
type proxy struct {
	l      net.Listener
	target string

	budget atomic.Int64 // client-to-server bytes left before a cut; -1: no cut
	cuts   atomic.Int64 // connections cut so far

	mu    sync.Mutex // guards pairs and done
	pairs []*pipePair
	done  bool
	wg    sync.WaitGroup
}

type pipePair struct {
	client, server net.Conn
	frozen         atomic.Bool
	closeOnce      sync.Once
}

func (p *pipePair) close() {
	p.closeOnce.Do(func() {
		_ = p.client.Close()
		_ = p.server.Close()
	})
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.budget.Store(-1)
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		p.done = true
		for _, pp := range p.pairs {
			pp.close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *proxy) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port())) }

func (p *proxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pp := &pipePair{client: c, server: s}
		p.mu.Lock()
		if p.done {
			p.mu.Unlock()
			pp.close()
			return
		}
		p.pairs = append(p.pairs, pp)
		p.wg.Go(func() { p.pipe(pp, pp.server, pp.client, true) })
		p.wg.Go(func() { p.pipe(pp, pp.client, pp.server, false) })
		p.mu.Unlock()
	}
}

// cutAfter arms a cut after n more client-to-server bytes.
func (p *proxy) cutAfter(n int64) { p.budget.Store(n) }

// freeze makes every open connection drop its traffic from now on.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.pairs {
		pp.frozen.Store(true)
	}
}

func (p *proxy) pipe(pp *pipePair, dst, src net.Conn, upstream bool) {
	defer pp.close()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pp.frozen.Load() {
			if upstream && p.budget.Load() >= 0 {
				if p.budget.Add(-int64(n)) < 0 {
					p.budget.Store(-1)
					p.cuts.Add(1)
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
