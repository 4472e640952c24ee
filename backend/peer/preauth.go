package peer

import (
	"net"
	"net/netip"
	"sync"
)

// preauth holds the connections that have not yet proved an allowed key
// (TLS handshake and hello under way). Anyone can open such connections,
// by the hundred and from many addresses, so a full table must never turn
// an allowed client away: a new connection is always admitted, and when
// the table is full the oldest connection of the most represented remote
// host, in the most represented network, is closed to make room. An
// allowed client completes its handshake in a few round trips, while a
// flood of connections comes from the hosts that hold the most slots, so
// the flood evicts itself.
//
// Hosts are IPv4 addresses and IPv6 /64 prefixes (what one machine
// typically has); networks are IPv4 /24 and IPv6 /48 prefixes (what one
// site typically has).
type preauth struct {
	max int

	mu   sync.Mutex // guards the fields below
	n    int
	seq  uint64 // admission order
	nets map[netip.Prefix]*preauthNet
}

type preauthNet struct {
	n     int
	hosts map[netip.Prefix][]*preauthConn // each oldest first
}

// preauthConn is one admitted connection.
type preauthConn struct {
	conn    net.Conn
	net     netip.Prefix
	host    netip.Prefix
	seq     uint64
	evicted bool // guarded by preauth.mu
}

func newPreauth(max int) *preauth {
	return &preauth{max: max, nets: map[netip.Prefix]*preauthNet{}}
}

// groups returns the host and network conn comes from.
func groups(conn net.Conn) (host, network netip.Prefix) {
	ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
	if err != nil {
		// Not an IP connection (tests over pipes): one group for all.
		return netip.Prefix{}, netip.Prefix{}
	}
	a := ap.Addr().Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32), netip.PrefixFrom(a, 24).Masked()
	}
	h, _ := a.Prefix(64) // never fails for an IPv6 address
	n, _ := a.Prefix(48)
	return h, n
}

// admit adds conn to the table and returns its entry, which must be given
// to release when the connection is past its hello or has ended; and the
// connection it evicted to make room, if any, which the caller must close.
func (p *preauth) admit(conn net.Conn) (e *preauthConn, evicted net.Conn) {
	host, network := groups(conn)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n >= p.max {
		if v := p.victim(); v != nil {
			p.remove(v)
			v.evicted = true
			evicted = v.conn
		}
	}
	p.seq++
	e = &preauthConn{conn: conn, net: network, host: host, seq: p.seq}
	g := p.nets[network]
	if g == nil {
		g = &preauthNet{hosts: map[netip.Prefix][]*preauthConn{}}
		p.nets[network] = g
	}
	g.hosts[host] = append(g.hosts[host], e)
	g.n++
	p.n++
	return e, evicted
}

// victim picks the connection to evict: the oldest of the host with the
// most connections within the network with the most. Ties go to the
// group whose oldest connection is older.
func (p *preauth) victim() *preauthConn {
	var best *preauthNet
	var bestOldest uint64
	for _, g := range p.nets {
		oldest := g.oldest()
		if best == nil || g.n > best.n || g.n == best.n && oldest < bestOldest {
			best, bestOldest = g, oldest
		}
	}
	if best == nil {
		return nil
	}
	var v []*preauthConn
	for _, conns := range best.hosts {
		if v == nil || len(conns) > len(v) || len(conns) == len(v) && conns[0].seq < v[0].seq {
			v = conns
		}
	}
	return v[0]
}

// oldest is the admission number of the network's oldest connection.
func (g *preauthNet) oldest() uint64 {
	var o uint64
	for _, conns := range g.hosts {
		if o == 0 || conns[0].seq < o {
			o = conns[0].seq
		}
	}
	return o
}

// remove takes e out of the table; p.mu is held.
func (p *preauth) remove(e *preauthConn) {
	g := p.nets[e.net]
	conns := g.hosts[e.host]
	for i, c := range conns {
		if c == e {
			conns = append(conns[:i], conns[i+1:]...)
			break
		}
	}
	if len(conns) == 0 {
		delete(g.hosts, e.host)
	} else {
		g.hosts[e.host] = conns
	}
	g.n--
	if g.n == 0 {
		delete(p.nets, e.net)
	}
	p.n--
}

// release gives back e's place; a second call, or one for an evicted
// connection, does nothing.
func (p *preauth) release(e *preauthConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.evicted {
		return
	}
	e.evicted = true
	p.remove(e)
}

// count is the number of connections in the table.
func (p *preauth) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
