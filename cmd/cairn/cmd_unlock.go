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
			"process no longer runs; on any host, a lock file this device has seen, unchanged,\n" +
			"for more than 30 minutes (a running cairn replaces its lock file every 5\n" +
			"minutes). The time written in a lock is not used: the clocks of two hosts may\n" +
			"be hours apart. So a lock seen for the first time is kept, however old it\n" +
			"claims to be; run unlock again 30 minutes later, or from cron as usual. What\n" +
			"this device has seen is kept in its cache (without a cache, only locks of gone\n" +
			"processes on this host are removed). For each lock kept, unlock says why.\n\n" +
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
				locks, err := s.repo.RemoveLocks(ctx, c.Bool("remove-all"))
				removed := 0
				type keptJSON struct {
					ID     string `json:"id"`
					Reason string `json:"reason"`
				}
				kept := []keptJSON{}
				for _, l := range locks {
					if l.Removed {
						removed++
						continue
					}
					kept = append(kept, keptJSON{l.ID.String(), l.Why})
					if s.g.JSON {
						continue
					}
					if l.Err != nil {
						s.p.Printf("kept locks/%s: %s", l.ID, l.Why)
						continue
					}
					kind := "shared"
					if l.Info.Exclusive {
						kind = "exclusive"
					}
					s.p.Printf("kept %s lock %s of PID %d on %s by %s: %s", kind, l.ID.Str(), l.Info.PID, l.Info.Hostname, l.Info.Username, l.Why)
				}
				if err != nil {
					return err
				}
				if s.g.JSON {
					s.p.JSON(map[string]any{"message_type": "unlocked", "removed": removed, "kept": kept})
					return nil
				}
				s.p.Printf("removed %d lock(s)", removed)
				return nil
			})
		},
	}
}
