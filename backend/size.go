package backend

import "fmt"

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
