package backend

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FormatSize prints a byte count for people, in binary units with
// decimals digits after the point: "512 B", "1.5 MiB". The peer server's
// quota messages and the CLI's output share it.
func FormatSize(n uint64, decimals int) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.*f %ciB", decimals, float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseSize parses a byte count with an optional K, M, G or T suffix in
// binary units ("B" and "iB" optional: 512, 10K, 1.5G, 2MiB), as the CLI's
// size flags and the peer server's peers file spell them.
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := float64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = float64(int64(1) << (10 * (i + 1)))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.Trim(t, "0123456789.") != "" || v*mult >= 1<<62 {
		return 0, errors.New("invalid size " + strconv.Quote(s) + " (want e.g. 500K, 10M, 2G)")
	}
	return int64(v * mult), nil
}
