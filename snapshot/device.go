package snapshot

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cairn-backup/cairn/crypt"
)

// Device is this device's own state, kept in its config dir and never in
// a repository: the ed25519 identity that signs the log entries it writes
// (and authenticates it to peers), and what it remembers of each
// repository's log (Seen), which is how it notices a log rolled back. It
// is safe for concurrent use.
type Device struct {
	dir string

	mu    sync.Mutex // guards ident
	ident *crypt.Identity
}

// ErrNoConfigDir is returned by Device.Identity when no config dir is
// known (no --config-dir, and neither $XDG_CONFIG_HOME nor $HOME set).
var ErrNoConfigDir = errors.New("no config dir for this device's identity (use --config-dir or $CAIRN_CONFIG_DIR)")

// DeviceAt returns the device whose state lives in dir. It reads nothing
// yet: the identity is loaded, or created, when first asked for, so a
// command that never signs creates none. An empty dir is a device without
// state: Identity fails with ErrNoConfigDir, Seen is the zero state and
// Remember keeps nothing.
func DeviceAt(dir string) *Device { return &Device{dir: dir} }

// Dir is the device's config dir ("" when none is known).
func (d *Device) Dir() string { return d.dir }

// Identity returns the device's signing identity, loading it from the
// config dir, or creating it there on first use
// (crypt.LoadOrCreateIdentity).
func (d *Device) Identity() (*crypt.Identity, error) {
	if d.dir == "" {
		return nil, ErrNoConfigDir
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ident == nil {
		id, err := crypt.LoadOrCreateIdentity(d.dir)
		if err != nil {
			return nil, fmt.Errorf("device identity: %w", err)
		}
		d.ident = id
	}
	return d.ident, nil
}

// Seen returns what the device remembers of the log of the repository
// with ID repoID: the zero state when it remembers nothing (or has no
// config dir). A damaged state file is an error, with the zero state.
func (d *Device) Seen(repoID string) (Seen, error) {
	if d.dir == "" {
		return Seen{}, nil
	}
	return LoadSeen(SeenFile(d.dir, repoID))
}

// Remember saves what the device should remember after reading log l of
// repository repoID at location loc, given what it remembered before
// (Log.Remember: it never moves back, and keeps remembered heads that went
// missing, so that a rollback stays reported). Without a config dir it
// keeps nothing.
func (d *Device) Remember(repoID string, before Seen, l *Log, loc string) error {
	if d.dir == "" {
		return nil
	}
	return SaveSeen(SeenFile(d.dir, repoID), l.Remember(before, loc))
}
