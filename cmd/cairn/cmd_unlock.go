package main

import (
	"context"

	"github.com/urfave/cli/v2"
)

func (e *appEnv) unlockCommand() *cli.Command {
	return &cli.Command{
		Name:      "unlock",
		Usage:     "remove stale locks",
		ArgsUsage: " ",
		Description: "Removes locks left by processes that are gone: on this host, a lock whose\n" +
			"process no longer runs; on any host, a lock not refreshed for 30 minutes.\n" +
			"--remove-all removes every lock, live ones too: use it only when you know\n" +
			"no other cairn is working on the repository.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "remove-all", Usage: "remove all locks, even live ones"},
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, 0, 0); err != nil {
				return err
			}
			return e.withRepo(c, noLock, func(ctx context.Context, s *session) error {
				n, err := s.repo.RemoveLocks(ctx, c.Bool("remove-all"))
				if err != nil {
					return err
				}
				if s.g.JSON {
					s.p.JSON(map[string]any{"message_type": "unlocked", "removed": n})
					return nil
				}
				s.p.Printf("removed %d lock(s)", n)
				return nil
			})
		},
	}
}
