package repo

import (
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bootID names the current boot of this machine (the kernel's random
// boot_id); "" when it cannot be read.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || len(b) > 64 {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// sinceBoot reads CLOCK_BOOTTIME: the time since boot, suspend included,
// which no one sets (unlike the wall clock) and which, unlike Go's
// monotonic clock (CLOCK_MONOTONIC), keeps counting while the machine
// sleeps. ok is false when it cannot be read.
func sinceBoot() (d time.Duration, ok bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
