package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/crypt"
)

// TestDeviceIdentity: the identity is created in the config dir on first
// use, only then, and every Device of that dir loads the same one.
func TestDeviceIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cairn")
	d := DeviceAt(dir)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DeviceAt created state: %v", err)
	}
	id, err := d.Identity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, crypt.IdentityFileName)); err != nil {
		t.Fatalf("no identity file after Identity: %v", err)
	}
	again, err := d.Identity()
	if err != nil || again != id {
		t.Fatalf("second Identity: %v, same %v", err, again == id)
	}
	other, err := DeviceAt(dir).Identity()
	if err != nil || other.PeerID() != id.PeerID() {
		t.Fatalf("another Device of the dir: %v, peer %v want %v", err, other, id)
	}
	if err := os.WriteFile(filepath.Join(dir, crypt.IdentityFileName), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := DeviceAt(dir).Identity(); !errors.Is(err, crypt.ErrFormat) {
		t.Fatalf("damaged identity file: %v, want crypt.ErrFormat", err)
	}
}

// TestDeviceWithoutDir: no config dir means no identity (a clear error)
// and nothing remembered, without failing the reads.
func TestDeviceWithoutDir(t *testing.T) {
	d := DeviceAt("")
	if _, err := d.Identity(); !errors.Is(err, ErrNoConfigDir) {
		t.Fatalf("Identity without a dir: %v, want ErrNoConfigDir", err)
	}
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	buildLog(t, r, ident, 2)
	l := mustLoad(t, r)
	if err := d.Remember("repo", Seen{}, l, "/repo"); err != nil {
		t.Fatal(err)
	}
	if s, err := d.Seen("repo"); err != nil || s.MaxSeq != 0 {
		t.Fatalf("Seen without a dir: %+v, %v", s, err)
	}
}

// TestDeviceRemembersHeads: what Remember saves for a repository is what
// Seen returns for it, and only for it; a rollback read later is caught
// against it.
func TestDeviceRemembersHeads(t *testing.T) {
	dir := t.TempDir()
	d := DeviceAt(dir)
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	ids := buildLog(t, r, ident, 3)
	l := mustLoad(t, r)
	before, err := d.Seen("repo-a")
	if err != nil || before.MaxSeq != 0 {
		t.Fatalf("nothing remembered yet: %+v, %v", before, err)
	}
	if err := d.Remember("repo-a", before, l, "/home/repo"); err != nil {
		t.Fatal(err)
	}
	got, err := DeviceAt(dir).Seen("repo-a")
	if err != nil || got.MaxSeq != l.MaxSeq() || len(got.Heads) != len(l.Heads) {
		t.Fatalf("remembered %+v (%v), want max seq %d and %d heads", got, err, l.MaxSeq(), len(l.Heads))
	}
	if other, err := d.Seen("repo-b"); err != nil || other.MaxSeq != 0 {
		t.Fatalf("another repository: %+v, %v", other, err)
	}
	cut := mustLoad(t, copyOf(r, ids[2]))
	if rep := cut.CheckSeenAt(got, "/home/repo"); len(rep.Problems) == 0 {
		t.Fatal("a log rolled back below the remembered heads went unnoticed")
	}
	if err := os.WriteFile(SeenFile(dir, "repo-a"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Seen("repo-a"); err == nil {
		t.Fatal("a damaged state file read without an error")
	}
}
