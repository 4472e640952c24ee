package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"

	"github.com/urfave/cli/v2"
)

func (e *appEnv) keyRotateCommand() *cli.Command {
	return &cli.Command{
		Name: "rotate", Usage: "add a new data key to the key ring and seal new data with it", ArgsUsage: " ",
		Description: "Adds a fresh random key to the repository's key ring and makes it the key\n" +
			"new data (packs, index files, snapshots) is sealed with. Old keys stay in\n" +
			"the ring, so everything stored before still opens. The rotated ring is\n" +
			"stored in a ring record under keys/; no key file changes.\n\n" +
			"Without --revoke-old-passwords the record is sealed with the old ring:\n" +
			"every password reaches the new key.\n\n" +
			"With --revoke-old-passwords the record is sealed for the key file in use:\n" +
			"only this password reaches the new key. Every other key file, including\n" +
			"old key files left on append-only friends, keeps the old ring and opens\n" +
			"only what was sealed before the rotation; reading newer data with it\n" +
			"fails with \"sealed with a key this key ring lacks\". To keep another\n" +
			"password, add it again after the rotation (cairn key add). Data stored\n" +
			"before the rotation stays readable with the old passwords: rotation does\n" +
			"not re-seal it (there is no --rewrite yet).\n\n" +
			"Takes an exclusive lock, so no backup seals data with the old key after\n" +
			"the rotation. A crash leaves the old ring or the new one, never neither.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "revoke-old-passwords", Usage: "only the password in use reaches the new key"},
		},
		Action: e.runKeyRotate,
	}
}

func (e *appEnv) runKeyRotate(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	revoke := c.Bool("revoke-old-passwords")
	return e.withRepo(c, exclusiveLock, func(ctx context.Context, s *session) error {
		res, err := s.repo.RotateKey(ctx, revoke)
		if err != nil {
			return err
		}
		who := "every password"
		if revoke {
			who = "only the key file in use (" + s.repo.KeyFileID().Str() + ")"
		}
		s.p.Printf("rotated: new data key %s (ring of %d keys, record %s), reachable from %s", res.NewKey, res.Keys, res.Record.Str(), who)
		if s.g.JSON {
			s.p.JSON(map[string]any{"message_type": "key_rotated", "key": res.NewKey.String(), "keys": res.Keys,
				"record": res.Record.String(), "revoked_others": revoke})
		}
		return nil
	})
}

// errRevoked is what a command says when it selects data sealed with a
// key its key ring lacks.
var errRevoked = errors.New("sealed with a key added by a key rotation after this key file was revoked (cairn key rotate --revoke-old-passwords): open with the current password")

// lockedSnapshot is the error for selector name that matched no snapshot:
// errRevoked when name is the ID or prefix of a log entry sealed with a
// key this ring lacks, else err.
func lockedSnapshot(l *snapshot.Log, name string, err error) error {
	for _, id := range l.Locked {
		if name != "latest" && name != "" && strings.HasPrefix(id.String(), strings.ToLower(name)) {
			return fmt.Errorf("snapshot %s: %w", id.Str(), errRevoked)
		}
	}
	return err
}
