package peer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// The peers file lists the friends a server serves, each with its mode
// and, optionally, its own quota. `cairn peer join` adds to it; its owner
// may edit it by hand; the server reloads it on SIGHUP and when its
// content changes (see Server.WatchPeersFile). It is TOML:
//
//	[[peer]]
//	id = "PEERID"          # required
//	name = "alice laptop"  # optional label for the logs
//	mode = "append-only"   # or "read-write"; default append-only
//	quota = "500G"         # optional: overrides --quota; "none" for no quota
//
// It lives, with the pending invitations, in the root's ".cairn" folder,
// which is never served: a client's folder is named by its peer ID.

// ErrPeersFile: the peers file or an invitation file does not parse.
var ErrPeersFile = errors.New("invalid peers file")

// StateDir is the folder under a server's root that holds the peers file
// and the pending invitations.
const StateDir = ".cairn"

// DefaultPeersFile returns the peers file's path for a server root.
func DefaultPeersFile(root string) string {
	return filepath.Join(root, StateDir, "peers.toml")
}

// maxPeersFile bounds what a load reads: a friend takes under 200 bytes.
const maxPeersFile = 1 << 20

// maxFriendName bounds a friend's label.
const maxFriendName = 64

// Friend is one entry of the peers file.
type Friend struct {
	ID   crypt.PeerID
	Name string
	Mode Mode
	// Quota is the friend's own quota in bytes (0: none); it applies only
	// when HasQuota, else the server's --quota does.
	Quota    int64
	HasQuota bool
}

type friendTOML struct {
	ID    string `toml:"id"`
	Name  string `toml:"name"`
	Mode  string `toml:"mode"`
	Quota string `toml:"quota"`
}

// ParseMode parses "append-only" or "read-write".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "append-only":
		return ModeAppendOnly, nil
	case "read-write":
		return ModeReadWrite, nil
	}
	return 0, fmt.Errorf("mode %q: must be append-only or read-write", sanitize(s))
}

// parseQuota parses a quota as the peers file spells it: a size, or
// "none".
func parseQuota(s string) (int64, error) {
	if s == "none" {
		return 0, nil
	}
	v, err := backend.ParseSize(s)
	if err != nil {
		return 0, err
	}
	return v, nil
}

// FormatQuota spells a quota for the peers file and for people.
func FormatQuota(q int64) string {
	if q <= 0 {
		return "none"
	}
	return backend.FormatSize(uint64(q), 1)
}

// ParsePeersFile parses the content of a peers file. Unknown keys, a
// repeated peer ID and bad values are errors wrapping ErrPeersFile, so a
// typo never silently drops a setting.
func ParsePeersFile(data []byte) ([]Friend, error) {
	var doc struct {
		Peer []friendTOML `toml:"peer"`
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrPeersFile, sanitize(err.Error()))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%w: unknown key %q", ErrPeersFile, sanitize(und[0].String()))
	}
	out := make([]Friend, 0, len(doc.Peer))
	seen := make(map[crypt.PeerID]bool, len(doc.Peer))
	for i, p := range doc.Peer {
		f, err := p.friend()
		if err != nil {
			return nil, fmt.Errorf("%w: peer %d: %v", ErrPeersFile, i+1, err)
		}
		if seen[f.ID] {
			return nil, fmt.Errorf("%w: peer %d: %s is listed twice", ErrPeersFile, i+1, f.ID.Short())
		}
		seen[f.ID] = true
		out = append(out, f)
	}
	return out, nil
}

func (p friendTOML) friend() (Friend, error) {
	id, err := crypt.ParsePeerID(p.ID)
	if err != nil {
		return Friend{}, err
	}
	f := Friend{ID: id, Name: p.Name, Mode: ModeAppendOnly}
	if len(f.Name) > maxFriendName || !printable(f.Name) {
		return Friend{}, fmt.Errorf("name must be at most %d printable characters", maxFriendName)
	}
	if p.Mode != "" {
		if f.Mode, err = ParseMode(p.Mode); err != nil {
			return Friend{}, err
		}
	}
	if p.Quota != "" {
		if f.Quota, err = parseQuota(p.Quota); err != nil {
			return Friend{}, err
		}
		f.HasQuota = true
	}
	return f, nil
}

// entry returns the friend as a [[peer]] table.
func (f Friend) entry() string {
	var b strings.Builder
	b.WriteString("\n[[peer]]\n")
	fmt.Fprintf(&b, "id = %q\n", f.ID.String())
	if f.Name != "" {
		fmt.Fprintf(&b, "name = %q\n", f.Name)
	}
	fmt.Fprintf(&b, "mode = %q\n", f.Mode.String())
	if f.HasQuota {
		q := "none"
		if f.Quota > 0 {
			q = fmt.Sprint(f.Quota)
		}
		fmt.Fprintf(&b, "quota = %q\n", q)
	}
	return b.String()
}

// readPeersFile reads and parses the peers file at path; a missing file is
// an empty list. It also returns the hash of the content, which tells a
// change, when the file could be read, parsed or not.
func readPeersFile(path string) ([]Friend, [32]byte, error) {
	data, err := readCapped(path, maxPeersFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, sha256.Sum256(nil), nil
	}
	if err != nil {
		return nil, [32]byte{}, err
	}
	sum := sha256.Sum256(data)
	friends, err := ParsePeersFile(data)
	if err != nil {
		return nil, sum, fmt.Errorf("%s: %w", path, err)
	}
	return friends, sum, nil
}

// readCapped reads a small file, refusing one over limit bytes.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // read-only
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// addFriend appends f to the peers file at path, keeping what is there
// (comments included) byte for byte. It fails if f's peer ID is listed.
func addFriend(path string, f Friend) error {
	data, err := readCapped(path, maxPeersFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = []byte("# The friends this server serves (cairn peer serve). Edit by hand or with\n" +
			"# 'cairn peer invite'; the server reloads it on change and on SIGHUP.\n")
	case err != nil:
		return err
	}
	friends, err := ParsePeersFile(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, g := range friends {
		if g.ID == f.ID {
			return fmt.Errorf("%w: %s is already in %s", errAlreadyFriend, f.ID.Short(), path)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = append(data, f.entry()...)
	if _, err := ParsePeersFile(data); err != nil {
		return fmt.Errorf("internal error: the peers file would not parse after adding %s: %w", f.ID.Short(), err)
	}
	return writeAtomic(path, data)
}

var errAlreadyFriend = errors.New("this device is already a friend of the server")

// writeAtomic replaces path with data: a temporary file in the same
// folder, synced, renamed over path, and the folder synced, so a crash
// leaves the old content or the new, never a mix.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()     // already failed; the error below says why
			_ = os.Remove(name) // best effort: a stray temporary file is harmless
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close() // read-only
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
