package crypt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config", "cairn")
	id1, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	path := filepath.Join(dir, IdentityFileName)
	st, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the identity file", len(entries))
	}

	id2, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id1.PeerID() != id2.PeerID() || !bytes.Equal(id1.PrivateKey(), id2.PrivateKey()) {
		t.Fatal("reloaded identity differs")
	}
	checkIdentity(t, id2)
}

func checkIdentity(t *testing.T, id *Identity) {
	t.Helper()
	pub := id.Public()
	if !bytes.Equal(pub, id.PrivateKey().Public().(ed25519.PublicKey)) {
		t.Error("Public does not match PrivateKey")
	}
	if id.PeerID() != PeerIDFromKey(pub) {
		t.Error("PeerID is not the hash of the public key")
	}
	msg := []byte("message")
	if !ed25519.Verify(pub, msg, id.Sign(msg)) {
		t.Error("signature does not verify")
	}
	// Returned keys are copies.
	pub[0] ^= 1
	priv := id.PrivateKey()
	priv[0] ^= 1
	if !ed25519.Verify(id.Public(), msg, id.Sign(msg)) {
		t.Error("mutating returned keys changed the identity")
	}
}

func TestNewIdentity(t *testing.T) {
	a, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if a.PeerID() == b.PeerID() {
		t.Fatal("two new identities are equal")
	}
	checkIdentity(t, a)
}

func TestLoadOrCreateIdentityConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cairn")
	const n = 8
	ids := make([]*Identity, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = LoadOrCreateIdentity(dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i].PeerID() != ids[0].PeerID() {
			t.Fatalf("concurrent first use made two identities: %s and %s", ids[0], ids[i])
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the identity file", len(entries))
	}
}

func TestLoadIdentityCorrupt(t *testing.T) {
	good := newIdentityFromSeed(bytes.Repeat([]byte{7}, 32)).marshal()
	lines := strings.SplitAfter(string(good), "\n")
	other := newIdentityFromSeed(bytes.Repeat([]byte{8}, 32)).marshal()
	otherLines := strings.SplitAfter(string(other), "\n")
	seedLine := lines[1]
	flipped := []byte(seedLine)
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}
	for name, data := range map[string]string{
		"empty":          "",
		"truncated":      string(good[:len(good)-1]),
		"trailing line":  string(good) + "\n",
		"trailing data":  string(good) + "x",
		"crlf":           strings.ReplaceAll(string(good), "\n", "\r\n"),
		"header":         "cairn identity v2\n" + lines[1] + lines[2],
		"no seed line":   lines[0] + lines[2] + lines[2],
		"no peer line":   lines[0] + lines[1] + lines[1],
		"flipped seed":   lines[0] + string(flipped) + lines[2],
		"other peer":     lines[0] + lines[1] + otherLines[2],
		"short seed":     lines[0] + "seed: " + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n" + lines[2],
		"lower-case id":  lines[0] + lines[1] + strings.ToLower(lines[2]),
		"unpadded seed":  lines[0] + strings.Replace(seedLine, "=", "", 1) + lines[2],
		"huge":           strings.Repeat("x", maxIdentityFile+1),
		"bad peer check": lines[0] + lines[1] + lines[2][:len(lines[2])-2] + "A\n",
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, IdentityFileName)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		id, err := LoadOrCreateIdentity(dir)
		if id != nil {
			t.Errorf("%s: loaded", name)
			continue
		}
		wantErr(t, err, ErrFormat)
		if strings.Contains(err.Error(), strings.TrimSpace(strings.TrimPrefix(seedLine, "seed: "))) {
			t.Errorf("%s: error shows the seed: %v", name, err)
		}
		after, _ := os.ReadFile(path)
		if string(after) != data {
			t.Errorf("%s: corrupt file was changed", name)
		}
	}
	// A directory where the file belongs is an error, not a reason to create.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, IdentityFileName), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(dir); err == nil {
		t.Error("loaded a directory as identity")
	}
}

func TestIdentityNeverPrintsSecret(t *testing.T) {
	seed := bytes.Repeat([]byte{0x42}, 32)
	id := newIdentityFromSeed(seed)
	if got, want := id.String(), id.PeerID().String(); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	texts := append(formats(id), formats(*id)...)
	texts = append(texts, formats(struct{ i Identity }{*id})...)
	texts = append(texts, formats(struct{ I *Identity }{id})...)
	priv := id.PrivateKey()
	for _, text := range texts {
		for _, secret := range append(secretForms(seed), secretForms(priv[:32])...) {
			if strings.Contains(text, secret) {
				t.Errorf("%q shows the private key", text)
			}
		}
	}
	if got := nilIdentityString(); got != "crypt.Identity(nil)" {
		t.Errorf("nil identity prints %q", got)
	}
}

func nilIdentityString() string {
	var id *Identity
	return id.String()
}
