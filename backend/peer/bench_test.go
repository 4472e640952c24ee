package peer

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// delayedConn delivers what is written to it after a fixed delay, like a
// long link with plenty of bandwidth.
type delayedConn struct {
	net.Conn
	delay time.Duration
	ch    chan delayed
}

type delayed struct {
	at   time.Time
	data []byte
}

func newDelayedConn(c net.Conn, delay time.Duration) *delayedConn {
	d := &delayedConn{Conn: c, delay: delay, ch: make(chan delayed, 1<<14)}
	go func() {
		for p := range d.ch {
			time.Sleep(time.Until(p.at))
			if _, err := c.Write(p.data); err != nil {
				return
			}
		}
	}()
	return d
}

func (d *delayedConn) Write(p []byte) (int, error) {
	d.ch <- delayed{at: time.Now().Add(d.delay), data: append([]byte(nil), p...)}
	return len(p), nil
}

func (d *delayedConn) Close() error {
	close(d.ch)
	return d.Conn.Close()
}

// benchDelay is the one-way delay of BenchmarkWindow's link.
const benchDelay = 10 * time.Millisecond

// BenchmarkWindow measures what one yamux stream moves over a link with a
// 20 ms round trip for several window sizes: the reason for streamWindow.
// Measured on the development machine (MB/s): 256 KiB: 11, 1 MiB: 41,
// 4 MiB: 140, 16 MiB: 206. One MiB per stream, with the client running up
// to 8 streams at once, fills a typical home uplink while keeping what
// the server buffers per connection small.
func BenchmarkWindow(b *testing.B) {
	for _, window := range []uint32{256 << 10, 1 << 20, 4 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("window=%dKiB", window>>10), func(b *testing.B) {
			c1, c2 := net.Pipe()
			conf := yamux.DefaultConfig()
			conf.LogOutput = io.Discard
			conf.MaxStreamWindowSize = window
			client, err := yamux.Client(newDelayedConn(c1, benchDelay), conf)
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			server, err := yamux.Server(newDelayedConn(c2, benchDelay), conf)
			if err != nil {
				b.Fatal(err)
			}
			defer server.Close()
			const size = 32 << 20
			buf := make([]byte, 64<<10)
			b.SetBytes(size)
			for b.Loop() {
				st, err := client.OpenStream()
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan error, 1)
				go func() {
					rs, err := server.AcceptStream()
					if err != nil {
						done <- err
						return
					}
					_, err = io.Copy(io.Discard, rs)
					done <- err
				}()
				for n := 0; n < size; n += len(buf) {
					if _, err := st.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				_ = st.Close()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoopback moves 16 MiB files through a real server on 127.0.0.1
// (TLS, yamux, disk with fsync).
func BenchmarkLoopback(b *testing.B) {
	client, serverID := mustIdentity(b), mustIdentity(b)
	srv, err := NewServer(ServerConfig{Identity: serverID, Root: b.TempDir(),
		Allow: map[crypt.PeerID]Mode{client.PeerID(): ModeReadWrite}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	be, err := Create(b.Context(), Location{Peer: serverID.PeerID(), Addr: ln.Addr().String(), Name: "bench"}, client)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	data := make([]byte, 16<<20)
	b.Run("put", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; b.Loop(); i++ {
			binary.BigEndian.PutUint64(data, uint64(i))
			h := backend.Handle{Type: backend.PackFile, Name: backend.Hash(data).String()}
			if err := be.Put(b.Context(), h, backend.NewByteReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	h := backend.Handle{Type: backend.PackFile, Name: backend.Hash(data).String()}
	b.Run("get", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			err := be.Get(b.Context(), h, 0, 0, func(r io.Reader) error {
				_, err := io.Copy(io.Discard, r)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

func mustIdentity(b *testing.B) *crypt.Identity {
	id, err := crypt.NewIdentity()
	if err != nil {
		b.Fatal(err)
	}
	return id
}
