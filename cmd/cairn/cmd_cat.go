package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) catCommand() *cli.Command {
	return &cli.Command{
		Name:      "cat",
		Usage:     "print a repository object: config, index, snapshot, key, lock, pack, blob or tree",
		ArgsUsage: "config | index ID | snapshot SNAPSHOT | key ID | lock ID | pack ID | blob ID | tree SNAPSHOT[:SUBPATH]|ID",
		Description: "Prints one object of the repository on stdout, decrypted, as restic's cat does:\n\n" +
			"   config         the repository configuration, as JSON (the chunker polynomial\n" +
			"                  in it is kept from the storage: do not paste it where the\n" +
			"                  storage's owner may read it)\n" +
			"   index ID       an index file, as JSON: the packs it lists and their blobs\n" +
			"   snapshot SNAP  a snapshot, as JSON (SNAP as for restore: an ID, a prefix,\n" +
			"                  or latest with --host, --path and --tag)\n" +
			"   key ID         a key file's public fields, as JSON: format, KDF and, for the\n" +
			"                  key in use or a version 1 file, when, where and by whom it was\n" +
			"                  made; never the wrapped master key\n" +
			"   lock ID        a lock file, as JSON\n" +
			"   pack ID        a pack file, its stored (encrypted) bytes as they are\n" +
			"   blob ID        a blob's plaintext, data or tree\n" +
			"   tree SNAP[:SUBPATH] or tree ID\n" +
			"                  a tree blob (a folder listing, JSON), of the snapshot's root\n" +
			"                  or of SUBPATH in it, or by its ID\n\n" +
			"File IDs (index, key, lock, pack) may be unique prefixes; a blob or tree ID is\n" +
			"the full 64 hex digits. Pack, blob and tree bytes are written unchanged: a\n" +
			"pack's SHA-256 is its ID, as is a blob's (a mismatch is reported after the\n" +
			"bytes, exit 1). Output is the same with or without --json.\n\n" +
			"\"cat masterkey\" (restic prints the master key) is refused: whoever reads that\n" +
			"line can decrypt the repository for good, whatever passwords are changed, and\n" +
			"cairn never writes a secret in plain text. To keep a way in offline, add a\n" +
			"password with \"cairn key add\" and store it safely.\n\n" + selectorHelp,
		Flags:  filterFlags(),
		Action: e.runCat,
	}
}

// catType says whether typ is an object "cat" prints and whether it
// takes an ID.
func catType(typ string) (known, needsID bool) {
	switch typ {
	case "config":
		return true, false
	case "index", "snapshot", "key", "lock", "pack", "blob", "tree":
		return true, true
	}
	return false, false
}

// errMasterKey refuses "cat masterkey".
var errMasterKey = errors.New("cat masterkey: refused: cairn never prints the master key (whoever reads it can decrypt the repository for good); add a password with \"cairn key add\" instead")

func (e *appEnv) runCat(c *cli.Context) error {
	if err := wantArgs(c, 1, 2); err != nil {
		return err
	}
	typ, arg := c.Args().Get(0), c.Args().Get(1)
	if typ == "masterkey" {
		return errMasterKey
	}
	ok, needsID := catType(typ)
	switch {
	case !ok:
		return fmt.Errorf("cat: unknown type %q (want config, index, snapshot, key, lock, pack, blob or tree)", typ)
	case needsID && arg == "":
		return fmt.Errorf("cat %s: missing ID (usage: cairn cat %s ID)", typ, typ)
	case !needsID && arg != "":
		return fmt.Errorf("cat %s: unexpected argument %q", typ, arg)
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		switch typ {
		case "config":
			return e.printIndented(s.repo.Config())
		case "index":
			return e.catIndex(ctx, s, arg)
		case "snapshot":
			return e.catSnapshot(ctx, s, arg, filterFrom(c))
		case "key":
			return e.catKey(ctx, s, arg)
		case "lock":
			id, err := s.repo.FindFile(ctx, backend.LockFile, arg)
			if err != nil {
				return err
			}
			info, err := s.repo.LoadLock(ctx, id)
			if err != nil {
				return err
			}
			return e.printIndented(info)
		case "pack":
			id, err := s.repo.FindFile(ctx, backend.PackFile, arg)
			if err != nil {
				return err
			}
			_, err = s.repo.CopyFile(ctx, backend.PackFile, id, e.stdout)
			return err
		case "blob":
			return e.catBlob(ctx, s, arg)
		}
		return e.catTree(ctx, s, arg, filterFrom(c))
	})
}

// printIndented writes v as indented JSON, restic's form for cat.
func (e *appEnv) printIndented(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(append(b, '\n'))
	return err
}

// indexJSON is an index file as "cat index" prints it: restic's form,
// with the key that sealed each pack's blobs.
type indexJSON struct {
	Supersedes []backend.ID    `json:"supersedes,omitempty"`
	Packs      []indexPackJSON `json:"packs"`
}

type indexPackJSON struct {
	ID    backend.ID      `json:"id"`
	KeyID string          `json:"key_id"`
	Blobs []indexBlobJSON `json:"blobs"`
}

type indexBlobJSON struct {
	ID                 backend.ID `json:"id"`
	Type               string     `json:"type"`
	Offset             uint32     `json:"offset"`
	Length             uint32     `json:"length"`
	UncompressedLength uint32     `json:"uncompressed_length,omitempty"`
}

func (e *appEnv) catIndex(ctx context.Context, s *session, prefix string) error {
	id, err := s.repo.FindFile(ctx, backend.IndexFile, prefix)
	if err != nil {
		return err
	}
	f, err := s.repo.LoadIndexFile(ctx, id)
	if err != nil {
		return err
	}
	return e.printIndented(toIndexJSON(f))
}

func toIndexJSON(f *index.File) indexJSON {
	out := indexJSON{Supersedes: f.Supersedes, Packs: make([]indexPackJSON, 0, len(f.Packs))}
	for _, p := range f.Packs {
		pj := indexPackJSON{ID: p.ID, Blobs: make([]indexBlobJSON, 0, len(p.Blobs))}
		for _, b := range p.Blobs {
			pj.KeyID = b.KeyID.String()
			pj.Blobs = append(pj.Blobs, indexBlobJSON{ID: b.ID, Type: b.Type.String(), Offset: b.Offset, Length: b.Length, UncompressedLength: b.RawLength})
		}
		out.Packs = append(out.Packs, pj)
	}
	return out
}

func (e *appEnv) catSnapshot(ctx context.Context, s *session, sel string, f snapshot.Filter) error {
	l, err := loadLog(ctx, s)
	if err != nil {
		return err
	}
	name, sub := snapshot.SplitSelector(sel)
	if sub != "" {
		return fmt.Errorf("cat snapshot: %q names a folder in a snapshot: cat tree prints that", sel)
	}
	found, err := selectSnapshot(ctx, s, l, name, f)
	if err != nil {
		return err
	}
	return e.printIndented(toSnapshotJSON(found.sn))
}

// keyFileJSON is a key file's public part as "cat key" prints it.
type keyFileJSON struct {
	ID       string          `json:"id"`
	Current  bool            `json:"current"`
	Version  int             `json:"version"`
	Created  *time.Time      `json:"created,omitempty"`
	Hostname string          `json:"hostname,omitempty"`
	Username string          `json:"username,omitempty"`
	KDF      json.RawMessage `json:"kdf"`
}

func (e *appEnv) catKey(ctx context.Context, s *session, prefix string) error {
	id, err := s.repo.FindFile(ctx, backend.KeyFile, prefix)
	if err != nil {
		return err
	}
	info, data, err := s.repo.KeyFile(ctx, id)
	if err != nil {
		return err
	}
	// The KDF parameters as the file states them; "data" (the wrapped
	// key ring) and anything else stay out.
	var members struct {
		KDF json.RawMessage `json:"kdf"`
	}
	if err := json.Unmarshal(data, &members); err != nil {
		return fmt.Errorf("key %s: %w: %v", id.Str(), repo.ErrFormat, err)
	}
	out := keyFileJSON{ID: id.String(), Current: info.Current, Version: info.Version, KDF: members.KDF}
	if !info.Sealed() {
		created := info.Created.UTC()
		out.Created, out.Hostname, out.Username = &created, info.Hostname, info.Username
	}
	return e.printIndented(out)
}

// fullBlobID parses the full ID "cat blob" and "cat tree" take.
func fullBlobID(typ, s string) (backend.ID, error) {
	id, err := backend.ParseID(strings.ToLower(s))
	if err != nil {
		return id, fmt.Errorf("cat %s: %q is not a blob ID (64 hex digits)", typ, s)
	}
	return id, nil
}

func (e *appEnv) catBlob(ctx context.Context, s *session, arg string) error {
	id, err := fullBlobID("blob", arg)
	if err != nil {
		return err
	}
	for _, t := range []pack.BlobType{pack.DataBlob, pack.TreeBlob} {
		if !s.repo.Has(t, id) {
			continue
		}
		plain, err := s.repo.LoadBlob(ctx, t, id, nil)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(plain)
		return err
	}
	return fmt.Errorf("cat blob: %s: %w", id.Str(), repo.ErrBlobNotFound)
}

// catTree prints a tree blob named by its ID or by SNAPSHOT[:SUBPATH].
func (e *appEnv) catTree(ctx context.Context, s *session, arg string, f snapshot.Filter) error {
	var id backend.ID
	if byID, err := fullBlobID("tree", arg); err == nil && s.repo.Has(pack.TreeBlob, byID) {
		id = byID
	} else {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		sel, err := selectSnapshot(ctx, s, l, arg, f)
		if err != nil {
			return err
		}
		id = sel.tree
	}
	plain, err := s.repo.LoadBlob(ctx, pack.TreeBlob, id, nil)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(plain)
	return err
}
