package snapshot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// Device revocation. A revocation is a log entry (op OpRevoke) signed by
// a registered device, naming another device's public key. From then on
// an entry signed by the revoked device is valid only if the revocation
// descends from it: the revoking device had it in its history when it
// revoked. Every other entry of that device (made after the revocation,
// or on a branch the revoker never saw, such as one forged with a stolen
// identity and backdated) is rejected: left out of the log state and
// named in Problems, which check reports as damage. A revoked device
// cannot register again: its registration is one of those entries. A
// checkpoint lists the devices revoked so far, so the rule outlives the
// compaction of the revocation entry: then no later entry of theirs is
// valid. When revocations contradict each other (two devices revoking
// each other on two branches), the first in log order (Ordered) counts
// and the other, signed by a device it revoked, is rejected.

// OpRevoke is the op byte of a device revocation entry.
const OpRevoke byte = 'r'

// ErrDeviceRevoked is returned when a revoked device tries to write.
var ErrDeviceRevoked = errors.New("this device was revoked in the repository's log (cairn device revoke): it may not write")

// Revocation is the body of an OpRevoke entry.
type Revocation struct {
	Device []byte `json:"device"` // ed25519 public key of the revoked device
}

// check refuses a revocation that names no valid key or its own signer.
// Errors wrap ErrFormat.
func (rv *Revocation) check(signer []byte) error {
	if len(rv.Device) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: revocation names a %d-byte device key", ErrFormat, len(rv.Device))
	}
	if bytes.Equal(rv.Device, signer) {
		return fmt.Errorf("%w: a device revoking itself", ErrFormat)
	}
	return nil
}

// revocation is how a device was revoked: by entry (with its ancestors
// the entries of the device still valid), or by the checkpoint (none of
// its later entries valid).
type revocation struct {
	entry     backend.ID // zero when only the checkpoint records it
	time      time.Time
	ancestors map[backend.ID]bool
}

func (rv revocation) by() string {
	if rv.entry == (backend.ID{}) {
		return "revoked before the log's checkpoint"
	}
	return fmt.Sprintf("revoked by log entry %s on %s", rv.entry.Str(), rv.time.UTC().Format(time.RFC3339))
}

// revocations fills l.revoked from the newest checkpoint and the entries
// after it, in log order; a revocation signed by a device already
// revoked (and not an ancestor of that revocation) does not count.
func (l *Log) revocations() {
	l.revoked = make(map[string]revocation)
	registered := make(map[string]bool)
	if cp := l.Checkpoint(); cp != nil {
		for _, d := range cp.Checkpoint.Revoked {
			l.revoked[string(d)] = revocation{}
		}
		for _, w := range cp.Checkpoint.Writers {
			registered[string(w.Device)] = true
		}
	}
	for _, e := range l.Ordered() {
		if l.chain.Covered[e.ID] || l.rejectedBy(e) != nil {
			continue
		}
		if e.Writer != nil {
			registered[string(e.Device)] = true
		}
		if e.Revoke == nil || !registered[string(e.Device)] {
			continue
		}
		if _, done := l.revoked[string(e.Revoke.Device)]; !done {
			l.revoked[string(e.Revoke.Device)] = revocation{entry: e.ID, time: time.Unix(0, e.Time), ancestors: l.ancestors(e.Parents)}
		}
	}
}

// rejectedBy says why entry e is rejected by a revocation of its signer,
// or nil when it is not.
func (l *Log) rejectedBy(e *LogEntry) *string {
	rv, ok := l.revoked[string(e.Device)]
	if !ok || rv.ancestors[e.ID] {
		return nil
	}
	msg := fmt.Sprintf("signed by device %s after it was %s: rejected (a stolen identity?)", crypt.PeerIDFromKey(e.Device).Short(), rv.by())
	return &msg
}

// revokedKeys lists the revoked devices' keys, sorted, for a checkpoint.
func (l *Log) revokedKeys() [][]byte {
	var out [][]byte
	for d := range l.revoked {
		out = append(out, []byte(d))
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	return out
}

// DeviceInfo is a device the log knows: registered as a writer, or revoked.
type DeviceInfo struct {
	Key      []byte    // ed25519 public key
	Hostname string    // from its registration, else its newest snapshot
	Added    time.Time // when it registered (zero if unknown)
	LastSeen time.Time // its newest valid entry (zero if none is left)
	Entries  int       // its valid entries in the log
	Revoked  bool
	// RevokedBy says how it was revoked, when it was.
	RevokedBy string
}

// KnownDevices lists the devices the log knows, sorted by public key.
func (l *Log) KnownDevices() []DeviceInfo {
	byKey := make(map[string]*DeviceInfo)
	get := func(d []byte) *DeviceInfo {
		if di, ok := byKey[string(d)]; ok {
			return di
		}
		di := &DeviceInfo{Key: bytes.Clone(d)}
		byKey[string(d)] = di
		return di
	}
	for d, w := range l.writers {
		di := get([]byte(d))
		di.Added, di.Hostname = w.Added, w.Hostname
	}
	for d, rv := range l.revoked {
		di := get([]byte(d))
		di.Revoked, di.RevokedBy = true, rv.by()
	}
	var newestSnap = make(map[string]time.Time)
	for _, e := range l.Entries {
		if l.rejectedBy(e) != nil {
			continue
		}
		di := get(e.Device)
		di.Entries++
		if t := time.Unix(0, e.Time); t.After(di.LastSeen) {
			di.LastSeen = t
		}
		if e.Snapshot != nil && di.Hostname == "" || e.Snapshot != nil && e.Snapshot.Time.After(newestSnap[string(e.Device)]) {
			newestSnap[string(e.Device)] = e.Snapshot.Time
			if e.Snapshot.Hostname != "" {
				di.Hostname = e.Snapshot.Hostname
			}
		}
	}
	out := make([]DeviceInfo, 0, len(byKey))
	for _, di := range byKey {
		out = append(out, *di)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out
}

// Revoke writes a revocation of device key dev, signed by ident. It
// refuses a device the log does not know, one already revoked, and ident
// itself.
func (l *Log) Revoke(ctx context.Context, r LogRepository, ident *crypt.Identity, dev []byte, now time.Time) (backend.ID, error) {
	if err := l.checkNewer("revoke"); err != nil {
		return backend.ID{}, err
	}
	if bytes.Equal(dev, []byte(ident.Public())) {
		return backend.ID{}, errors.New("revoke: refusing to revoke this device itself; run it from another device")
	}
	if _, ok := l.revoked[string(dev)]; ok {
		return backend.ID{}, fmt.Errorf("revoke: device %s is already revoked", crypt.PeerIDFromKey(dev).Short())
	}
	known := false
	for _, di := range l.KnownDevices() {
		known = known || bytes.Equal(di.Key, dev)
	}
	if !known {
		return backend.ID{}, fmt.Errorf("revoke: device %s never wrote to this repository", crypt.PeerIDFromKey(dev).Short())
	}
	e, err := l.append(ctx, r, ident, OpRevoke, body{Revoke: &Revocation{Device: bytes.Clone(dev)}}, now)
	if err != nil {
		return backend.ID{}, fmt.Errorf("revoke: %w", err)
	}
	return e.ID, nil
}
