package backend

import "testing"

func TestFormatSize(t *testing.T) {
	for _, c := range []struct {
		n        uint64
		decimals int
		want     string
	}{
		{0, 1, "0 B"},
		{1023, 3, "1023 B"},
		{1024, 1, "1.0 KiB"},
		{1536, 3, "1.500 KiB"},
		{5 << 20, 1, "5.0 MiB"},
		{3<<30 + 1<<29, 3, "3.500 GiB"},
		{1 << 60, 1, "1.0 EiB"},
		{^uint64(0), 1, "16.0 EiB"},
	} {
		if got := FormatSize(c.n, c.decimals); got != c.want {
			t.Errorf("FormatSize(%d, %d) = %q, want %q", c.n, c.decimals, got, c.want)
		}
	}
}
