package repo

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// FuzzMirrorLog mirrors between logs made of arbitrary files: the input
// is split at "|" into log files, each stored (under its hash) at the
// source, the destination or both, as its first byte says. Whatever they
// hold, Mirror must not panic, must fail only by refusing a diverged
// destination or naming files (a MirrorError), must never copy a file
// that is not a valid entry, and must leave the destination's log free of
// broken links whenever the source's own valid entries have none.
func FuzzMirrorLog(f *testing.F) {
	ident, err := crypt.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	var seed [][]byte
	var parent [32]byte
	for i := range 3 {
		e := &crypt.Entry{Seq: uint64(i + 1), Time: int64(i) * int64(time.Hour), Op: 'a', Body: []byte("body")}
		if i > 0 {
			e.Parents = [][32]byte{parent}
		}
		data, err := ident.EncodeEntry(e)
		if err != nil {
			f.Fatal(err)
		}
		parent = crypt.EntryID(data)
		seed = append(seed, data)
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, []byte("|")) }
	tag := func(where byte, data []byte) []byte { return append([]byte{where}, data...) }
	f.Add(join(tag(0, seed[0]), tag(0, seed[1]), tag(0, seed[2])))
	f.Add(join(tag(2, seed[0]), tag(0, seed[1]), tag(1, seed[2])))
	f.Add(join(tag(1, seed[0]), tag(1, []byte("junk")), tag(0, seed[2])))
	f.Add(join(tag(2, seed[0]), tag(1, seed[1])))

	// One source repository, copied for each input: opening it costs a
	// key derivation.
	base := mem.New()
	func() {
		r, err := Init(context.Background(), base, testPassword, InitOptions{KDF: crypt.FastKDFParamsForTests(), PackSize: MinPackSize})
		if err != nil {
			f.Fatal(err)
		}
		r.Close()
	}()

	f.Fuzz(func(t *testing.T, data []byte) {
		src, dst := mem.New(), mem.New()
		for h, b := range base.Files() {
			if err := src.SetFile(h, b); err != nil {
				t.Fatal(err)
			}
		}
		srcValid := make(map[[32]byte]*crypt.Entry)
		parts := bytes.Split(data, []byte("|"))
		if len(parts) > 8 {
			parts = parts[:8]
		}
		for _, p := range parts {
			if len(p) == 0 {
				continue
			}
			where, content := p[0]%3, p[1:]
			h := backend.Handle{Type: backend.LogFile, Name: backend.Hash(content).String()}
			if where != 1 {
				if err := src.SetFile(h, content); err != nil {
					t.Fatal(err)
				}
				if e, err := crypt.DecodeEntry(content); err == nil {
					srcValid[crypt.EntryID(content)] = e
				}
			}
			if where != 0 {
				if err := dst.SetFile(h, content); err != nil {
					t.Fatal(err)
				}
			}
		}
		before := dst.Files()
		_, err := Mirror(context.Background(), src, dst, MirrorOptions{})
		var me *MirrorError
		if err != nil && !errors.Is(err, ErrDiverged) && !errors.As(err, &me) {
			t.Fatalf("mirror: %v", err)
		}
		for h, b := range dst.Files() {
			if _, ok := before[h]; ok || h.Type != backend.LogFile {
				continue
			}
			if _, err := crypt.DecodeEntry(b); err != nil {
				t.Fatalf("copied %s, which is not a log entry: %v", h, err)
			}
		}
		if len(crypt.VerifyChain(srcValid).Problems) > 0 || err != nil {
			return
		}
		got := make(map[[32]byte]*crypt.Entry)
		for h, b := range dst.Files() {
			if h.Type != backend.LogFile {
				continue
			}
			if e, err := crypt.DecodeEntry(b); err == nil && backend.Hash(b).String() == h.Name {
				got[crypt.EntryID(b)] = e
			}
		}
		if p := crypt.VerifyChain(got).Problems; len(p) > 0 {
			t.Fatalf("the destination's log after a mirror from a valid one: %v", p)
		}
	})
}
