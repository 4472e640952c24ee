package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/backend/sftp"
	"github.com/cairn-backup/cairn/crypt"
)

// Junk and fake key files, put where a client can put files: a device
// with write access to a peer (append-only is enough: these are new
// files, named by their hash as the server demands), an SFTP account, or
// a careless second device writing into the main repository. None may
// lock the real password out, wedge a mirror, count as damage in check,
// or keep a snapshot from restoring.

// junkKinds are the kinds of junk the soak plants.
var junkKinds = []string{
	"junk log file", // random bytes under log/
	"junk key file", // random bytes under keys/
	"fake key file (v1, created in the future)", // well-formed, bogus salt and ring, the newest "created"
	"fake key file (v2)",                        // well-formed, bogus salt and ring
	"costly key file",                           // well-formed, KDF beyond the cost bound
}

// clientBackend opens loc the way a client of it would: the local folder,
// an SFTP session with the account's key, or the peer protocol with the
// owner's device identity (alpha's, the one the server allows).
func (s *soak) clientBackend(ctx context.Context, loc *location) (backend.Backend, error) {
	switch loc {
	case s.main:
		return local.Open(ctx, loc.dir)
	case s.sftp:
		cfg, err := sftp.ParseLocation(loc.url)
		if err != nil {
			return nil, err
		}
		cfg.KnownHostsFile = filepath.Join(s.sshHome, ".ssh", "known_hosts")
		cfg.IdentityFiles = []string{filepath.Join(s.sshHome, ".ssh", "id_ed25519")}
		cfg.DisableAgent = true
		return sftp.Open(ctx, cfg)
	case s.peer:
		pl, err := peer.ParseLocation(loc.url)
		if err != nil {
			return nil, err
		}
		id, err := crypt.LoadOrCreateIdentity(s.alpha.configDir)
		if err != nil {
			return nil, err
		}
		return peer.Dial(ctx, pl, id)
	}
	return nil, fmt.Errorf("no client for %s", loc.name)
}

// junkFile makes the content of one junk file of kind and says where it
// goes.
func (s *soak) junkFile(kind string) (backend.FileType, []byte) {
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(s.rng.Uint32())
		}
		return b
	}
	b64 := base64.StdEncoding.EncodeToString
	// A sealed ring as a key file holds it: format version 1, the
	// all-zero key ID of a password-derived key, then nonce, ciphertext
	// and tag, here random.
	ring := func() string {
		return b64(append(append([]byte{1}, make([]byte, 8)...), random(120+s.rng.IntN(100))...))
	}
	kdf := func(memKiB, t uint32, threads uint8) map[string]any {
		return map[string]any{"algorithm": "argon2id", "time": t, "memory_kib": memKiB, "threads": threads,
			"salt": b64(random(16 + s.rng.IntN(49)))}
	}
	// Fake keys cost what the real one does (the soak's repositories use
	// the fast test KDF), so a new device tries them, in random order
	// with the real one, and what the cost bound lets through.
	cheap := func() map[string]any {
		if s.rng.IntN(4) == 0 {
			return kdf(8<<10, 1, 1) // a little dearer than the real key: tried after it
		}
		return kdf(64, 1, 1)
	}
	var v any
	switch kind {
	case "junk log file":
		return backend.LogFile, random(1 + s.rng.IntN(600))
	case "junk key file":
		return backend.KeyFile, random(1 + s.rng.IntN(600))
	case "fake key file (v1, created in the future)":
		v = map[string]any{"version": 1,
			"created":  time.Date(2090+s.rng.IntN(9), time.Month(1+s.rng.IntN(12)), 1+s.rng.IntN(28), 0, 0, 0, 0, time.UTC).Format(time.RFC3339Nano),
			"hostname": "alpha", "username": "root", "kdf": cheap(), "data": ring()}
	case "fake key file (v2)":
		v = map[string]any{"version": 2, "kdf": cheap(), "data": ring()}
	case "costly key file":
		// argon2id with 1 GiB and 2 passes: four times the memory the
		// bound allows (crypt.MaxKDFMemoryKiB).
		v = map[string]any{"version": 2, "kdf": kdf(1<<20, 2, 4), "data": ring()}
	default:
		panic("soak: internal error: unknown junk kind " + kind)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic("soak: internal error: " + err.Error())
	}
	return backend.KeyFile, append(b, '\n')
}

// plantJunk puts one to three junk or fake key files into loc through a
// client of it, and remembers their names (so that damage is never
// injected into them and the warnings they cause are expected). It
// returns their names.
func (s *soak) plantJunk(loc *location) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	be, err := s.clientBackend(ctx, loc)
	if err != nil {
		s.unexpectedf("junk: connecting to %s as a client: %v", loc.name, err)
		return nil
	}
	defer be.Close()
	n := 1 + s.rng.IntN(3)
	var put []string
	for range n {
		kind := junkKinds[s.rng.IntN(len(junkKinds))]
		t, data := s.junkFile(kind)
		h := backend.Handle{Type: t, Name: backend.Hash(data).String()}
		if err := be.Put(ctx, h, backend.NewByteReader(data)); err != nil {
			s.unexpectedf("junk: putting %s (%s) into %s: %v", h, kind, loc.name, err)
			continue
		}
		put = append(put, h.String())
		s.logf("junk: put %s (%s) into %s", h, kind, loc.name)
		s.mu.Lock()
		s.junk[h.String()] = true
		s.junkKind[h.String()] = kind
		s.st.faults["junk: "+kind+" ("+loc.name+")"]++
		s.mu.Unlock()
	}
	return put
}

// junkNight plants junk into some of the locations, then opens each
// such location from a device that has never opened it (no remembered
// key file, no cache), which must find the real key among the fakes.
func (s *soak) junkNight() {
	planted := map[*location][]string{}
	for _, loc := range []*location{s.main, s.sftp, s.peer} {
		if hasRepo(loc) && s.rng.IntN(2) == 0 {
			if names := s.plantJunk(loc); len(names) > 0 {
				planted[loc] = names
			}
		}
	}
	if len(planted) == 0 {
		if names := s.plantJunk(s.main); len(names) > 0 {
			planted[s.main] = names
		}
	}
	for _, loc := range []*location{s.main, s.sftp, s.peer} {
		if names, ok := planted[loc]; ok {
			s.freshDeviceOpens(loc)
			s.checkNamesJunk(loc, names)
		}
	}
}

// checkNamesJunk checks loc: the junk just put there (names) must be
// named as warnings (except fake key files, which only their password
// could tell from a real one), and nothing may be damage.
func (s *soak) checkNamesJunk(loc *location, names []string) {
	res, probs := s.check(loc, noFaults)
	if res.code != 0 || len(damageOnly(probs)) > 0 {
		s.unexpectedf("check of %s with junk in it: want exit 0, the junk as warnings: %s\n%s", loc.name, res, res.stdout)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		kind := s.junkKind[name]
		if strings.HasPrefix(kind, "fake key file") {
			continue
		}
		named := false
		for _, p := range probs {
			if p.Warning && (p.File == name || strings.Contains(p.Message, name)) {
				named = true
			}
		}
		if !named {
			s.st.unexpected++
			s.failf("UNEXPECTED: check of %s does not name the %s %s as a warning:\n%s", loc.name, kind, name, res.stdout)
			continue
		}
		s.st.outcomes["junk: named by check as a warning ("+kind+")"]++
	}
}

// freshDeviceOpens lists loc's snapshots as a device that never opened
// it: it must find the real key file among every fake one.
func (s *soak) freshDeviceOpens(loc *location) {
	s.freshDevices++
	dir := filepath.Join(s.dir, "fresh", fmt.Sprintf("%s-%d", loc.name, s.freshDevices))
	h := &host{name: "fresh", configDir: filepath.Join(dir, "config"), cacheDir: filepath.Join(dir, "cache")}
	defer os.RemoveAll(dir)
	// The peer lets in only alpha's identity: a new device of alpha's
	// owner, with the identity copied over, as docs/peers.md says.
	if err := copyFile(filepath.Join(s.alpha.configDir, "identity"), filepath.Join(h.configDir, "identity")); err != nil {
		s.mu.Lock()
		s.failf("SOAK BUG: fresh device: %v", err)
		s.mu.Unlock()
		return
	}
	res := s.cairn("snapshots", h, loc, noFaults, "snapshots")
	if res.code != 0 {
		s.unexpectedf("LOCK-OUT: a new device cannot open %s with the real password among junk key files: %s", loc.name, res)
		return
	}
	s.mu.Lock()
	s.st.outcomes["junk: a new device opened the location with the real password"]++
	s.mu.Unlock()
}

// junkWarning says whether a warning line is explained by the junk the
// soak planted; s.mu must be held.
func (s *soak) junkWarning(line string) bool {
	if len(s.junk) == 0 {
		return false
	}
	if strings.Contains(line, "more key files") || strings.Contains(line, "key files: the password is tried on each") {
		return true
	}
	for name := range s.junk {
		_, id, _ := strings.Cut(name, "/")
		if strings.Contains(line, id[:8]) {
			return true
		}
	}
	return false
}
