package peer

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cairn-backup/cairn/crypt"
)

// A pending invitation is one small TOML file, named by its ID, in the
// root's .cairn/invites folder. It holds the SHA-256 of the secret, never
// the secret: whoever reads the file cannot join with it. The server marks
// it used (single use), counts wrong secrets against it, and leaves it in
// place as a record.

// InviteDir returns the folder of a server root's pending invitations.
func InviteDir(root string) string { return filepath.Join(root, StateDir, "invites") }

// maxInviteAttempts is how many wrong secrets an invitation takes before
// the server revokes it. With a 128-bit secret the bound is not what stops
// a guesser; it stops a leaked ID from being hammered at all.
const maxInviteAttempts = 5

// DefaultInviteExpiry is how long an invitation is valid by default.
const DefaultInviteExpiry = 24 * time.Hour

// InviteOptions says what an invitation grants.
type InviteOptions struct {
	// Addr is the host:port the joining device dials.
	Addr string
	// Mode is the joined device's mode.
	Mode Mode
	// Quota is its quota in bytes (0: none) when HasQuota; otherwise the
	// server's --quota applies.
	Quota    int64
	HasQuota bool
	// Expires is how long the invitation stays valid.
	Expires time.Duration
}

// inviteRecord is an invitation file.
type inviteRecord struct {
	SecretSHA256 string    `toml:"secret_sha256"`
	Mode         string    `toml:"mode"`
	Quota        string    `toml:"quota,omitempty"`
	Created      time.Time `toml:"created"`
	Expires      time.Time `toml:"expires"`
	Attempts     int       `toml:"attempts,omitempty"`
	Revoked      string    `toml:"revoked,omitempty"`
	UsedBy       string    `toml:"used_by,omitempty"`
	UsedAt       time.Time `toml:"used_at,omitzero"`
}

// secretHash is what an invitation file keeps of the secret.
func secretHash(secret [inviteSecretSize]byte) string {
	h := sha256.New()
	h.Write([]byte("cairn invite secret\x00"))
	h.Write(secret[:])
	return hex.EncodeToString(h.Sum(nil))
}

// CreateInvite writes a new pending invitation under root for the server
// whose peer ID is server, and returns it (its Code is what the user
// passes on). now is the creation time.
func CreateInvite(root string, server crypt.PeerID, opts InviteOptions, now time.Time) (Invite, error) {
	if err := validInviteAddr(opts.Addr); err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	if !opts.Mode.valid() {
		return Invite{}, fmt.Errorf("invite: invalid mode %d", opts.Mode)
	}
	if opts.Expires <= 0 {
		return Invite{}, errors.New("invite: the expiry must be positive")
	}
	if opts.Quota < 0 {
		return Invite{}, errors.New("invite: negative quota")
	}
	inv := Invite{Addr: opts.Addr, Server: server}
	if _, err := rand.Read(inv.ID[:]); err != nil {
		return Invite{}, err
	}
	if _, err := rand.Read(inv.Secret[:]); err != nil {
		return Invite{}, err
	}
	rec := inviteRecord{
		SecretSHA256: secretHash(inv.Secret), Mode: opts.Mode.String(),
		Created: now.UTC().Truncate(time.Second), Expires: now.Add(opts.Expires).UTC().Truncate(time.Second),
	}
	if opts.HasQuota {
		rec.Quota = fmt.Sprint(opts.Quota)
		if opts.Quota == 0 {
			rec.Quota = "none"
		}
	}
	dir := InviteDir(root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	if err := writeInvite(filepath.Join(dir, inv.ID.String()+".toml"), rec, true); err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	return inv, nil
}

// writeInvite writes an invitation file: a new one exclusively (an ID
// collision fails rather than replaces), an existing one atomically.
func writeInvite(path string, rec inviteRecord, create bool) error {
	var buf bytes.Buffer
	buf.WriteString("# A pending invitation of cairn peer serve (cairn peer invite). The secret is\n" +
		"# not here, only its hash. Delete this file to withdraw the invitation.\n")
	if err := toml.NewEncoder(&buf).Encode(rec); err != nil {
		return err
	}
	if !create {
		return writeAtomic(path, buf.Bytes())
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		_ = f.Close() // the write error matters
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // see above
		return err
	}
	return f.Close()
}

// readInvite reads the invitation file of id under dir.
func readInvite(dir string, id InviteID) (inviteRecord, string, error) {
	path := filepath.Join(dir, id.String()+".toml")
	data, err := readCapped(path, 64<<10)
	if err != nil {
		return inviteRecord{}, path, err
	}
	var rec inviteRecord
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&rec)
	if err == nil && len(md.Undecoded()) > 0 {
		err = fmt.Errorf("unknown key %q", md.Undecoded()[0].String())
	}
	if err != nil {
		return inviteRecord{}, path, fmt.Errorf("%w: %s: %s", ErrPeersFile, path, sanitize(err.Error()))
	}
	return rec, path, nil
}

// grant returns the friend an invitation makes of id.
func (rec inviteRecord) grant(id crypt.PeerID, name string) (Friend, error) {
	f := Friend{ID: id, Name: name}
	var err error
	if f.Mode, err = ParseMode(rec.Mode); err != nil {
		return Friend{}, err
	}
	if rec.Quota != "" {
		if f.Quota, err = parseQuota(rec.Quota); err != nil {
			return Friend{}, err
		}
		f.HasQuota = true
	}
	return f, nil
}
