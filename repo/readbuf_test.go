package repo

import "testing"

func TestReadBufPoolSizes(t *testing.T) {
	var p readBufPool
	for _, n := range []int{0, 1, 64 << 10, 64<<10 + 1, 3 << 20, maxRangeRead, maxRangeRead + 1} {
		b := p.get(n)
		if len(*b) < n {
			t.Fatalf("get(%d) gave %d bytes", n, len(*b))
		}
		// A buffer is its class's size, not a pack's: at most twice
		// the request (or 64 KiB) unless beyond every class.
		if want := max(2*n, 64<<10); n <= maxRangeRead && cap(*b) > want {
			t.Fatalf("get(%d) gave a buffer of %d bytes, more than %d", n, cap(*b), want)
		}
		p.put(b)
	}
}
