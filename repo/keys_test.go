package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// otherKeyFile is a genuine key file of another ring for password, with
// KDF parameters p and the given creation time: to whoever does not know
// that password, it is indistinguishable from a key of this repository.
func otherKeyFile(t *testing.T, password string, p crypt.KDFParams, created time.Time) []byte {
	t.Helper()
	ring, err := crypt.NewKeyRing()
	if err != nil {
		t.Fatal(err)
	}
	data, err := crypt.NewKeyFile(ring, []byte(password), p, crypt.KeyFileInfo{Created: created, Hostname: "evil", Username: "evil"})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func putKeyFile(t *testing.T, be *mem.Backend, data []byte) backend.ID {
	t.Helper()
	id := backend.Hash(data)
	if err := be.SetFile(backend.Handle{Type: backend.KeyFile, Name: id.String()}, data); err != nil {
		t.Fatal(err)
	}
	return id
}

// cheapKDF costs less than crypt.FastKDFParamsForTests: key files with it
// are tried first.
func cheapKDF() crypt.KDFParams {
	p := crypt.FastKDFParamsForTests()
	p.MemoryKiB = 8
	return p
}

func TestUnlockOrderAndMemory(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	state := t.TempDir()
	r := testInit(t, be, InitOptions{Options: Options{StateDir: state}})
	real := r.KeyFileID()
	// 40 cheaper key files that claim to be newer, made with the very
	// password, so each costs a full try and opens, but to a ring that
	// does not open the config.
	for range 40 {
		putKeyFile(t, be, otherKeyFile(t, string(testPassword), cheapKDF(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
	var warnings []string
	opts := func(stateDir string) Options {
		return Options{StateDir: stateDir, Warn: func(m string) { warnings = append(warnings, m) }}
	}
	open := func(stateDir string) *Repository {
		t.Helper()
		r, err := Open(ctx, be, testPassword, opts(stateDir))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if r.KeyFileID() != real {
			t.Fatalf("opened with %s, want %s", r.KeyFileID().Str(), real.Str())
		}
		return r
	}
	// Init remembered its key for this device.
	if r := open(state); r.KeysTried() != 1 {
		t.Errorf("after init: tried %d, want 1", r.KeysTried())
	}
	fresh := t.TempDir()
	if r := open(fresh); r.KeysTried() != 41 {
		t.Errorf("new device: tried %d, want 41 (the cheaper ones first)", r.KeysTried())
	}
	if r := open(fresh); r.KeysTried() != 1 {
		t.Errorf("same device again: tried %d, want 1", r.KeysTried())
	}
	if r := open(""); r.KeysTried() != 41 {
		t.Errorf("no state dir: tried %d, want 41", r.KeysTried())
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "41 key files") {
		t.Errorf("warnings %q, want one about the count per full search", warnings)
	}
	// A damaged remembered file is no memory at all.
	cfg := be.Files()[backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}]
	if err := saveLastKey(lastKeyFile(fresh, cfg), backend.Hash([]byte("gone"))); err != nil {
		t.Fatal(err)
	}
	if r := open(fresh); r.KeysTried() != 41 {
		t.Errorf("remembered key gone: tried %d, want 41", r.KeysTried())
	}
}

func TestUnlockSkipsAndFails(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	real := r.KeyFileID()
	kf := otherKeyFile(t, "x", crypt.FastKDFParamsForTests(), time.Now())
	// A costly key file can only be made by editing one: NewKeyFile
	// refuses such parameters.
	tooCostly := bytes.Replace(kf, []byte(`"time": 1`), []byte(`"time": 2`), 1)
	tooCostly = bytes.Replace(tooCostly, []byte(`"memory_kib": 64`), []byte(`"memory_kib": 1048576`), 1)
	putKeyFile(t, be, tooCostly)
	putKeyFile(t, be, []byte("not a key file"))
	// A file whose content does not match its name.
	h := backend.Handle{Type: backend.KeyFile, Name: backend.Hash([]byte("x")).String()}
	if err := be.SetFile(h, kf); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	opts := Options{Warn: func(m string) { warnings = append(warnings, m) }}
	r2, err := Open(ctx, be, testPassword, opts)
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
	if len(warnings) != 3 || !strings.Contains(strings.Join(warnings, "\n"), "exceed the cost limit") {
		t.Errorf("warnings %q, want the three bad files named", warnings)
	}
	warnings = nil
	_, err = Open(ctx, be, []byte("wrong"), opts)
	if !errors.Is(err, crypt.ErrWrongPassword) || !strings.Contains(err.Error(), "tried 1 key file)") {
		t.Errorf("wrong password: %v", err)
	}
	// Only unusable key files left: the password was never tried.
	if err := be.Delete(ctx, backend.Handle{Type: backend.KeyFile, Name: real.String()}); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, be, testPassword, opts)
	if !errors.Is(err, ErrNoUsableKey) || errors.Is(err, crypt.ErrWrongPassword) {
		t.Errorf("all skipped: %v", err)
	}
	// More skipped files than maxSkipWarnings are summed up.
	for i := range 2 * maxSkipWarnings {
		putKeyFile(t, be, fmt.Appendf(nil, "junk %d", i))
	}
	warnings = nil
	_, err = Open(ctx, be, testPassword, opts)
	if !errors.Is(err, ErrNoUsableKey) || len(warnings) != maxSkipWarnings+1 || !strings.Contains(warnings[maxSkipWarnings], "skipped 8 more key files") {
		t.Errorf("%v; warnings %q", err, warnings)
	}
}

func TestOpenDamagedConfigWithRightPassword(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	testInit(t, be, InitOptions{})
	h := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	cfg := bytes.Clone(be.Files()[h])
	cfg[len(cfg)-1] ^= 1
	if err := be.SetFile(h, cfg); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, be, testPassword, Options{})
	if !errors.Is(err, crypt.ErrAuth) || errors.Is(err, crypt.ErrWrongPassword) || !strings.Contains(err.Error(), "open config") {
		t.Fatalf("damaged config: %v, want an authentication error naming the config", err)
	}
}

// interruptedInit runs an init that stops between its key file and its
// config, as a kill there would.
func interruptedInit(t *testing.T, be backend.Backend) backend.ID {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Init(ctx, be, testPassword, InitOptions{KDF: crypt.FastKDFParamsForTests(), TestOnlyAfterKeyFile: func(context.Context) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted init: %v", err)
	}
	var keys []backend.ID
	_ = be.List(context.Background(), backend.KeyFile, func(fi backend.FileInfo) error {
		id, _ := backend.ParseID(fi.Name)
		keys = append(keys, id)
		return nil
	})
	if len(keys) != 1 {
		t.Fatalf("%d key files after an interrupted init", len(keys))
	}
	return keys[0]
}

func TestInitInterrupted(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	key := interruptedInit(t, be)
	if err := CheckInterruptedInit(ctx, be); !errors.Is(err, ErrInitInterrupted) || !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("CheckInterruptedInit: %v", err)
	}
	if _, err := Open(ctx, be, testPassword, Options{}); !errors.Is(err, ErrInitInterrupted) {
		t.Fatalf("Open: %v", err)
	}
	before := be.Files()
	if _, err := Init(ctx, be, []byte("another"), InitOptions{KDF: crypt.FastKDFParamsForTests()}); !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("init with another password: %v", err)
	}
	if len(be.Files()) != len(before) {
		t.Fatal("a refused init changed the backend")
	}
	var warnings []string
	r, err := Init(ctx, be, testPassword, InitOptions{Options: Options{Warn: func(m string) { warnings = append(warnings, m) }}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if r.KeyFileID() != key || len(warnings) != 1 || !strings.Contains(warnings[0], "interrupted") {
		t.Errorf("finished with key %s (want %s), warnings %q", r.KeyFileID().Str(), key.Str(), warnings)
	}
	r2, err := Open(ctx, be, testPassword, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
	if r2.Config().ID != r.Config().ID {
		t.Error("opened another config")
	}
	if err := CheckInterruptedInit(ctx, be); err != nil {
		t.Errorf("CheckInterruptedInit on a repository: %v", err)
	}

	// Key files and data but no config is not an interrupted init:
	// nothing is touched.
	be2 := mem.New()
	interruptedInit(t, be2)
	if err := be2.SetFile(backend.Handle{Type: backend.IndexFile, Name: backend.Hash([]byte("i")).String()}, []byte("i")); err != nil {
		t.Fatal(err)
	}
	if err := CheckInterruptedInit(ctx, be2); err != nil {
		t.Errorf("CheckInterruptedInit with an index file: %v", err)
	}
	if _, err := Init(ctx, be2, testPassword, InitOptions{}); !errors.Is(err, ErrAlreadyInitialized) {
		t.Errorf("Init with an index file: %v", err)
	}
	if err := CheckInterruptedInit(ctx, mem.New()); err != nil {
		t.Errorf("CheckInterruptedInit on nothing: %v", err)
	}
}
