//go:build !race

package pack

// raceEnabled skips tests too slow under the race detector.
const raceEnabled = false
