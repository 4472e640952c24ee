package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) keyCommand() *cli.Command {
	newPW := func() cli.Flag {
		return &cli.StringFlag{Name: "new-password-file", Usage: "read the new password from `FILE` (else it is asked twice on a terminal)"}
	}
	return &cli.Command{
		Name:  "key",
		Usage: "manage the passwords (key files) of a repository",
		Description: "Each key file wraps the repository's master key with one password. Any key\n" +
			"opens the repository; removing a key file revokes its password.",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list key files", ArgsUsage: " ",
				Description: "Lists the key files; the one that opened the repository is marked \"*\".\n" +
					"Key files keep who made them and when sealed with the password, so only\n" +
					"the current key shows them; others show \"-\" (key files written by\n" +
					"earlier versions of cairn, format 1, show them to anyone). A key file\n" +
					"whose KDF parameters exceed cairn's cost limit is marked \"(too costly)\":\n" +
					"it is never tried. One that cannot be read is listed as unreadable.\n" +
					"Remove key files you do not know: anyone who can write to the repository\n" +
					"can add some, and each costs every command on a new device one try.",
				Action: e.runKeyList,
			},
			{
				Name: "add", Usage: "add a password", ArgsUsage: " ",
				Description: "Adds a key file for a new password. The current password keeps working.",
				Flags:       []cli.Flag{newPW()},
				Action:      e.runKeyAdd,
			},
			{
				Name: "remove", Usage: "remove a key file", ArgsUsage: "ID",
				Description: "Removes the key file whose ID starts with ID (a unique prefix). The key\n" +
					"that opened the repository cannot be removed: use \"key passwd\" for that.",
				Action: e.runKeyRemove,
			},
			{
				Name: "passwd", Usage: "change the password in use", ArgsUsage: " ",
				Description: "Writes a key file for the new password, then removes the key file that\n" +
					"opened the repository.",
				Flags:  []cli.Flag{newPW()},
				Action: e.runKeyPasswd,
			},
			e.keyRotateCommand(),
		},
	}
}

// keyJSON follows restic's "key list --json" field names. Metadata sealed
// in a key file that did not open is "".
type keyJSON struct {
	Current  bool   `json:"current"`
	ID       string `json:"id"`
	UserName string `json:"userName"`
	HostName string `json:"hostName"`
	Created  string `json:"created"`
	KDF      string `json:"kdf"`
	// TooCostly: the KDF parameters exceed the cost limit; never tried.
	TooCostly bool `json:"too_costly,omitempty"`
	// Error says why the key file could not be read.
	Error string `json:"error,omitempty"`
}

func (e *appEnv) runKeyList(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	return e.withRepo(c, noLock, func(ctx context.Context, s *session) error {
		keys, err := s.repo.ListKeys(ctx)
		if err != nil {
			return err
		}
		if s.g.JSON {
			out := make([]keyJSON, 0, len(keys))
			for _, k := range keys {
				j := keyJSON{Current: k.Current, ID: k.ID.String(), UserName: k.Username, HostName: k.Hostname, KDF: k.KDF.Algorithm}
				if !k.Created.IsZero() {
					j.Created = k.Created.Local().Format(time.RFC3339)
				}
				if k.Err != nil {
					j.Error = k.Err.Error()
				} else {
					j.TooCostly = k.KDF.CheckCost() != nil
				}
				out = append(out, j)
			}
			s.p.JSON(out)
			return nil
		}
		s.p.Printf(" %-10s %-12s %-20s %-19s %s", "ID", "User", "Host", "Created", "KDF")
		for _, k := range keys {
			mark := " "
			if k.Current {
				mark = "*"
			}
			if k.Err != nil {
				s.p.Printf("%s%-10s unreadable: %v", mark, k.ID.Str(), k.Err)
				continue
			}
			user, host, created, kdf := "-", "-", "-", k.KDF.Algorithm
			if !k.Sealed() {
				user, host, created = k.Username, k.Hostname, k.Created.Local().Format("2006-01-02 15:04:05")
			}
			if k.KDF.CheckCost() != nil {
				kdf += " (too costly)"
			}
			s.p.Printf("%s%-10s %-12s %-20s %-19s %s", mark, k.ID.Str(), user, host, created, kdf)
		}
		return nil
	})
}

func (e *appEnv) runKeyAdd(c *cli.Context) error {
	return e.writeKey(c, appendLock, "add key", "key_added", "saved new key as %s",
		func(ctx context.Context, r *repo.Repository, pw []byte, kdf crypt.KDFParams) (backend.ID, error) {
			return r.AddKey(ctx, pw, kdf)
		})
}

// writeKey reads the new password and writes a key file for it with
// write, then reports the new key's ID.
func (e *appEnv) writeKey(c *cli.Context, lock lockMode, what, msgType, done string,
	write func(ctx context.Context, r *repo.Repository, pw []byte, kdf crypt.KDFParams) (backend.ID, error)) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	return e.withRepo(c, lock, func(ctx context.Context, s *session) error {
		pw, kdf, err := e.keySecret(func() ([]byte, error) {
			return e.newPassword(ctx, c.String("new-password-file"), "--new-password-file")
		})
		if err != nil {
			return err
		}
		defer zero(pw)
		id, err := write(ctx, s.repo, pw, kdf)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		s.p.Printf(done, id.Str())
		if s.g.JSON {
			s.p.JSON(map[string]string{"message_type": msgType, "id": id.String()})
		}
		return nil
	})
}

func (e *appEnv) runKeyRemove(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	prefix := c.Args().First()
	return e.withRepo(c, exclusiveLock, func(ctx context.Context, s *session) error {
		id, err := s.repo.FindKey(ctx, prefix)
		if err != nil {
			return err
		}
		if err := s.repo.RemoveKey(ctx, id); err != nil {
			return fmt.Errorf("remove key %s: %w", id.Str(), err)
		}
		s.p.Printf("removed key %s", id.Str())
		if s.g.JSON {
			s.p.JSON(map[string]string{"message_type": "key_removed", "id": id.String()})
		}
		return nil
	})
}

func (e *appEnv) runKeyPasswd(c *cli.Context) error {
	return e.writeKey(c, exclusiveLock, "change password", "password_changed", "password changed: new key %s",
		func(ctx context.Context, r *repo.Repository, pw []byte, kdf crypt.KDFParams) (backend.ID, error) {
			return r.ChangePassword(ctx, pw, kdf)
		})
}
