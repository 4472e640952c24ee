package repo

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// cutAfterLogPuts is a destination whose connection breaks after n log
// entries were stored: every later put fails, as a mirror killed there
// leaves it.
type cutAfterLogPuts struct {
	backend.Backend
	n int

	mu   sync.Mutex // guards puts
	puts int
}

var errCut = errors.New("connection cut")

func (c *cutAfterLogPuts) Put(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if h.Type == backend.LogFile {
		c.mu.Lock()
		c.puts++
		cut := c.puts > c.n
		c.mu.Unlock()
		if cut {
			return errCut
		}
	}
	return c.Backend.Put(ctx, h, rd)
}

// putEntry stores an entry with the given parents in be and returns its ID.
func putEntry(t *testing.T, be *mem.Backend, ident *crypt.Identity, seq uint64, parents ...[32]byte) [32]byte {
	t.Helper()
	e := &crypt.Entry{Seq: seq, Time: time.Now().UnixNano(), Op: 'a', Parents: parents, Body: []byte("opaque sealed body")}
	data, err := ident.EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	id := crypt.EntryID(data)
	if err := be.SetFile(backend.Handle{Type: backend.LogFile, Name: backend.ID(id).String()}, data); err != nil {
		t.Fatal(err)
	}
	return id
}

// logOf decodes every log entry in be.
func logOf(t *testing.T, be *mem.Backend) map[[32]byte]*crypt.Entry {
	t.Helper()
	out := make(map[[32]byte]*crypt.Entry)
	for h, data := range be.Files() {
		if h.Type != backend.LogFile {
			continue
		}
		e, err := crypt.DecodeEntry(data)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		out[crypt.EntryID(data)] = e
	}
	return out
}

// TestMirrorLogPrefixValid mirrors a log that forks and merges (two
// devices wrote at once) into destinations cut after 0, 1, 2, ... log
// entries: each one's log must verify without a broken link, hold as many
// entries as arrived, and the next mirror must complete it.
func TestMirrorLogPrefixValid(t *testing.T) {
	ctx := context.Background()
	a, _ := crypt.NewIdentity()
	b, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, a, 0)
	//   1 - 2a - 3 - 4 - 5 - 6
	//     \ 2b /        \ 6b
	e1 := putEntry(t, src, a, 1)
	e2a := putEntry(t, src, a, 2, e1)
	e2b := putEntry(t, src, b, 2, e1)
	p := [][32]byte{e2a, e2b}
	if string(e2b[:]) < string(e2a[:]) {
		p = [][32]byte{e2b, e2a}
	}
	e3 := putEntry(t, src, a, 3, p...)
	e4 := putEntry(t, src, a, 4, e3)
	e5 := putEntry(t, src, b, 5, e4)
	putEntry(t, src, a, 6, e5)
	putEntry(t, src, b, 6, e5)
	total := len(logOf(t, src))
	if c := crypt.VerifyChain(logOf(t, src)); len(c.Problems) != 0 {
		t.Fatalf("the source's log: %v", c.Problems)
	}

	for k := 0; k <= total; k++ {
		dst := mem.New()
		_, err := Mirror(ctx, src, &cutAfterLogPuts{Backend: dst, n: k}, MirrorOptions{})
		if k < total && !errors.Is(err, errCut) || k == total && err != nil {
			t.Fatalf("cut after %d of %d entries: %v", k, total, err)
		}
		got := logOf(t, dst)
		if len(got) != k {
			t.Fatalf("cut after %d entries: the destination holds %d", k, len(got))
		}
		if c := crypt.VerifyChain(got); len(c.Problems) != 0 {
			t.Fatalf("cut after %d entries: the destination's log is not valid: %v", k, c.Problems)
		}
		if _, err := Mirror(ctx, src, dst, MirrorOptions{}); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, src, dst)
	}
}
