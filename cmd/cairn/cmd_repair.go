package main

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) repairCommand() *cli.Command {
	return &cli.Command{
		Name:  "repair",
		Usage: "repair the index or damaged snapshots",
		Description: "\"repair index\" rebuilds the index from the packs' own headers.\n" +
			"\"repair snapshots\" saves what can be saved of damaged snapshots.\n\n" +
			"To recover from a damaged pack that \"check --read-data\" named: delete the\n" +
			"pack file, run \"repair index\", then \"repair snapshots --forget\".",
		Subcommands: []*cli.Command{
			{
				Name:      "index",
				Usage:     "rebuild the index from the packs",
				ArgsUsage: " ",
				Description: "Reads the header of every pack and writes a new index listing them, then\n" +
					"removes the old index files. A pack whose header does not read is reported\n" +
					"and left in place, and no longer indexed. Holds an exclusive lock; if it is\n" +
					"killed, running it again finishes the job.",
				Action: e.runRepairIndex,
			},
			{
				Name:      "snapshots",
				Usage:     "replace damaged snapshots by copies without the damaged files",
				ArgsUsage: " ",
				Description: "For each live snapshot that reaches a file whose data is in no pack, or a\n" +
					"folder whose listing does not load, records a new snapshot (same time, host,\n" +
					"paths and tags) that leaves those files and folders out, and lists the paths\n" +
					"left out. With --forget the damaged snapshots are forgotten once their\n" +
					"copies are recorded. A snapshot whose root folder is lost cannot be saved:\n" +
					"it is reported (and forgotten with --forget). Holds an exclusive lock; if it\n" +
					"is killed, running it again finishes the job without making second copies.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "forget", Usage: "forget the damaged snapshots once their copies are recorded"},
					&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only report what would be done"},
				},
				Action: e.runRepairSnapshots,
			},
		},
	}
}

// repairIndexJSON is the output of "repair index --json".
type repairIndexJSON struct {
	MessageType string `json:"message_type"`
	repo.RepairIndexStats
}

func (e *appEnv) runRepairIndex(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	return e.withRepo(c, exclusiveLock, func(ctx context.Context, s *session) error {
		st, err := s.repo.RepairIndex(ctx, repo.RepairIndexOptions{Progress: maintProgress(s.p)})
		if err != nil {
			return err
		}
		for _, p := range st.Damaged {
			s.p.Warnf("%s", p)
		}
		if s.g.JSON {
			s.p.JSON(repairIndexJSON{"summary", st})
			return nil
		}
		s.p.Printf("indexed %d blobs in %d pack(s); wrote %d index file(s), removed %d", st.Blobs, st.Packs, st.IndexWritten, st.IndexRemoved)
		if len(st.Damaged) > 0 {
			s.p.Printf("%d pack(s) could not be read and are no longer indexed: run 'cairn repair snapshots'", len(st.Damaged))
		}
		return nil
	})
}

// repairedJSON is one snapshot of "repair snapshots --json".
type repairedJSON struct {
	MessageType string `json:"message_type"`
	snapshot.RepairedSnapshot
}

func (e *appEnv) runRepairSnapshots(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	opts := snapshot.RepairOptions{Forget: c.Bool("forget"), DryRun: c.Bool("dry-run")}
	return e.withRepo(c, exclusiveLock, func(ctx context.Context, s *session) error {
		var ident *crypt.Identity
		if !opts.DryRun {
			if s.g.ConfigDir == "" {
				return fmt.Errorf("no config dir for this device's identity (use --config-dir or $%s)", envConfigDir)
			}
			var err error
			if ident, err = crypt.LoadOrCreateIdentity(s.g.ConfigDir); err != nil {
				return fmt.Errorf("device identity: %w", err)
			}
		}
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		opts.Now = e.now
		res, err := snapshot.RepairSnapshots(ctx, s.repo, l, ident, opts)
		if err != nil {
			return err
		}
		if !opts.DryRun {
			rememberLog(s, l)
		}
		for _, rs := range res.Snapshots {
			if s.g.JSON {
				s.p.JSON(repairedJSON{"repaired", rs})
				continue
			}
			printRepaired(s.p, rs, opts.DryRun)
		}
		if s.g.JSON {
			s.p.JSON(map[string]any{"message_type": "summary", "damaged_snapshots": len(res.Snapshots), "dry_run": opts.DryRun})
			return nil
		}
		if len(res.Snapshots) == 0 {
			s.p.Printf("no damaged snapshots")
		}
		return nil
	})
}

func printRepaired(p *printer, rs snapshot.RepairedSnapshot, dryRun bool) {
	switch {
	case rs.Lost && rs.Forgotten:
		p.Printf("snapshot %s: root folder lost, nothing to save; forgotten", rs.Snapshot.Str())
	case rs.Lost:
		p.Printf("snapshot %s: root folder lost, nothing to save", rs.Snapshot.Str())
	case dryRun:
		p.Printf("snapshot %s: would leave out %d path(s)", rs.Snapshot.Str(), len(rs.Dropped))
	default:
		how := "saved as"
		if rs.Forgotten {
			how = "replaced by"
		}
		p.Printf("snapshot %s: %s %s, leaving out %d path(s)", rs.Snapshot.Str(), how, rs.New.Str(), len(rs.Dropped))
	}
	if !rs.Lost {
		for _, d := range rs.Dropped {
			p.Printf("  left out %s", d)
		}
	}
}
