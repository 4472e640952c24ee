//go:build !linux

package repo

import "time"

// bootID is "" where the system names no boot: lock ages then rest on the
// wall clock alone (see clockReading).
func bootID() string { return "" }

func sinceBoot() (time.Duration, bool) { return 0, false }
