package repo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// clockReading is one reading of this device's clocks, for the ages of
// locks: the wall clock (Options.Now) and, where the system has them, the
// current boot's ID and the time since boot (see sinceBoot).
type clockReading struct {
	wall time.Time
	boot string        // "" when unknown
	up   time.Duration // time since boot, when boot is known
}

// until returns the time from c to later, never negative: on the boot
// clock when both readings are of one boot, so that setting the wall
// clock changes nothing; else on the wall clock (across a reboot there is
// nothing better). Within one process the wall clock readings carry Go's
// monotonic clock, which Sub then uses.
func (c clockReading) until(later clockReading) time.Duration {
	var d time.Duration
	if c.boot != "" && c.boot == later.boot {
		d = later.up - c.up
	} else {
		d = later.wall.Sub(c.wall)
	}
	return max(d, 0)
}

// clock reads this device's clocks (the test seam clockFn, if set).
func (r *Repository) clock() clockReading {
	if r.clockFn != nil {
		return r.clockFn()
	}
	c := clockReading{wall: r.opts.Now()}
	if r.bootID != "" {
		if up, ok := sinceBoot(); ok {
			c.boot, c.up = r.bootID, up
		}
	}
	return c
}

// lockSightingsFile, in the repository's cache folder, remembers when this
// device first saw each lock file of the repository, by its own clocks.
// It is this device's observation, not a copy of a repository file.
// Losing it only makes locks look younger: it errs towards live.
const lockSightingsFile = "locks.json"

// maxSightingsFile caps the file before it is parsed: at about 150 bytes
// an entry, it holds thousands of readable lock files.
const maxSightingsFile = 1 << 20

// lockSightings is the content of lockSightingsFile.
type lockSightings struct {
	Locks map[backend.ID]lockSighting `json:"locks"`
}

// lockSighting is when this device first saw a lock file: its wall clock
// and, when known, its boot and time since boot at that moment.
type lockSighting struct {
	Wall time.Time     `json:"wall"`
	Boot string        `json:"boot,omitempty"`
	Up   time.Duration `json:"up,omitempty"`
}

func (s lockSighting) reading() clockReading {
	return clockReading{wall: s.Wall, boot: s.Boot, up: s.Up}
}

// sightingAt is a sighting at the reading c.
func sightingAt(c clockReading) lockSighting {
	return lockSighting{Wall: c.wall.Round(0).UTC(), Boot: c.boot, Up: c.up}
}

// decodeLockSightings parses lockSightingsFile.
func decodeLockSightings(b []byte) (map[backend.ID]lockSighting, error) {
	if len(b) > maxSightingsFile {
		return nil, fmt.Errorf("%d bytes is too large", len(b))
	}
	var s lockSightings
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return s.Locks, nil
}

// sightLocks records that the lock files ids are present now, forgets the
// ones no longer present, and returns how long this device has seen each
// (0 for one seen for the first time). Without a cache the sightings last
// as long as the Repository. Sightings are re-based on the current boot,
// so that each later age is measured on the boot clock where it can be.
func (r *Repository) sightLocks(ids []backend.ID) map[backend.ID]time.Duration {
	r.sightMu.Lock()
	defer r.sightMu.Unlock()
	now := r.clock()
	old := r.sightings
	path := ""
	if r.cache != nil {
		path = filepath.Join(r.cache.dir, lockSightingsFile)
		old = r.loadSightings(path)
	}
	next := make(map[backend.ID]lockSighting, len(ids))
	ages := make(map[backend.ID]time.Duration, len(ids))
	changed := len(old) != len(ids)
	for _, id := range ids {
		s, ok := old[id]
		if !ok {
			next[id] = sightingAt(now)
			changed = true
			continue
		}
		age := s.reading().until(now)
		ages[id] = age
		rebased := sightingAt(clockReading{wall: now.wall.Add(-age), boot: now.boot, up: now.up - age})
		if drift := s.Wall.Sub(rebased.Wall); s.Boot != rebased.Boot || drift > time.Minute || drift < -time.Minute {
			s, changed = rebased, true
		}
		next[id] = s
	}
	r.sightings = next
	if path != "" && changed {
		r.saveSightings(path, next)
	}
	return ages
}

// loadSightings reads lockSightingsFile; a missing or unreadable file is
// no sightings (an unreadable one with a warning).
func (r *Repository) loadSightings(path string) map[backend.ID]lockSighting {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	var m map[backend.ID]lockSighting
	if err == nil {
		var buf bytes.Buffer
		_, err = buf.ReadFrom(io.LimitReader(f, maxSightingsFile+1))
		_ = f.Close()
		if err == nil {
			m, err = decodeLockSightings(buf.Bytes())
		}
	}
	if err != nil {
		r.opts.Warn(fmt.Sprintf("warning: lock sightings %s: %v; starting afresh", path, err))
		return nil
	}
	return m
}

// saveSightings replaces lockSightingsFile atomically; a failure costs
// only sightings (a warning).
func (r *Repository) saveSightings(path string, m map[backend.ID]lockSighting) {
	b, err := json.Marshal(lockSightings{Locks: m})
	if err == nil {
		err = writeCacheFile(path, b)
	}
	if err != nil {
		r.opts.Warn(fmt.Sprintf("warning: cache: remember lock sightings: %v", err))
	}
}
