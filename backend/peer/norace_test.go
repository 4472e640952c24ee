//go:build !race

package peer

// raceEnabled loosens bounds that the race detector's memory overhead
// would break.
const raceEnabled = false
