package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) repairCommand() *cli.Command {
	return &cli.Command{
		Name:  "repair",
		Usage: "repair lost or damaged packs, the index, or damaged snapshots",
		Description: "\"repair packs --from LOCATION\" fetches lost or damaged files back from a copy.\n" +
			"\"repair index\" rebuilds the index from the packs' own headers.\n" +
			"\"repair snapshots\" saves what can be saved of damaged snapshots.\n\n" +
			"To recover from a pack that \"check\" named missing or damaged: if a mirror\n" +
			"holds it, run \"repair packs --from MIRROR\". If no copy has it, delete the pack\n" +
			"file, run \"repair index\", then \"repair snapshots --forget\".",
		Subcommands: []*cli.Command{
			{
				Name:      "packs",
				Usage:     "fetch lost or damaged packs back from a copy of the repository",
				ArgsUsage: " ",
				Description: "Reads every pack the index lists and fetches from LOCATION, a copy of this\n" +
					"repository (a mirror: a path, sftp:user@host:/path, peer://...), each one\n" +
					"that is missing here or whose content does not match its name. So are index\n" +
					"files whose content does not match their names, and log entries the log\n" +
					"names as parents but lacks or holds damaged. Each file's SHA-256 is checked\n" +
					"against its name before it is stored. A file LOCATION lacks or holds damaged\n" +
					"too is named, and nothing is fetched for it. A lost index file is not\n" +
					"fetched: \"repair index\" rebuilds the index from the packs.\n\n" +
					"It reads every pack, like \"check --read-data\", and holds an exclusive lock.\n" +
					"If it is killed, running it again fetches the rest. Unlike restic's \"repair\n" +
					"packs\", which salvages the readable blobs of a damaged pack, it replaces the\n" +
					"whole pack by an intact copy.\n\n" +
					"--dry-run prints the plan: each file lost or damaged, and whether LOCATION\n" +
					"has it (log entries are read there, to follow their links); it fetches\n" +
					"nothing.\n\n" +
					"Exit status: 0 when nothing was lost or everything was fetched (with\n" +
					"--dry-run: LOCATION has everything lost), 1 when some file could not be\n" +
					"fetched (each is named) or on any other error.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "from", Usage: "fetch from the copy at `LOCATION`", Required: true},
					&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only print the plan: what is lost or damaged and whether LOCATION has it"},
				},
				Action: e.runRepairPacks,
			},
			{
				Name:      "index",
				Usage:     "rebuild the index from the packs",
				ArgsUsage: " ",
				Description: "Reads the header of every pack and writes a new index listing them, then\n" +
					"removes the old index files. A pack whose header does not read is reported\n" +
					"and left in place, and no longer indexed. Holds an exclusive lock; if it is\n" +
					"killed, running it again finishes the job. --dry-run prints the plan (how\n" +
					"many packs and blobs the new index lists, which packs it no longer lists,\n" +
					"which index files it replaces) and changes nothing.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only print the plan: what would be done"},
				},
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

// repairIndexJSON is the one document "repair index --json" prints: the
// plan and, unless it was a dry run, what was done.
type repairIndexJSON struct {
	MessageType string                  `json:"message_type"`
	DryRun      bool                    `json:"dry_run"`
	Plan        repo.RepairIndexPlan    `json:"plan"`
	Done        *repo.RepairIndexResult `json:"done,omitempty"`
}

func (e *appEnv) runRepairIndex(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	return e.withRepo(c, dryRunLock(exclusiveLock, dry), func(ctx context.Context, s *session) error {
		progress := maintProgress(s.p)
		plan, err := s.repo.PlanRepairIndex(ctx, progress)
		if err != nil {
			return err
		}
		for _, p := range plan.Damaged {
			s.p.Warnf("%s", p)
		}
		var res *repo.RepairIndexResult
		if !dry {
			done, err := s.repo.ExecuteRepairIndex(ctx, plan, progress)
			if err != nil {
				return err
			}
			res = &done
		}
		if s.g.JSON {
			s.p.JSON(repairIndexJSON{"summary", dry, plan, res})
			return nil
		}
		printRepairIndex(s.p, plan, res)
		return nil
	})
}

// repairPacksJSON is the one document "repair packs --json" prints: the
// plan and, unless it was a dry run, what was done.
type repairPacksJSON struct {
	MessageType string                  `json:"message_type"`
	DryRun      bool                    `json:"dry_run"`
	Plan        repo.RepairPacksPlan    `json:"plan"`
	Done        *repo.RepairPacksResult `json:"done,omitempty"`
}

func (e *appEnv) runRepairPacks(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	return e.withRepo(c, dryRunLock(exclusiveLock, dry), func(ctx context.Context, s *session) error {
		from := c.String("from")
		copyBe, err := openBackend(ctx, from, e.locEnv(s.g, s.p))
		if errors.Is(err, backend.ErrNoRepository) {
			// Not exit status 10: this repository exists.
			return fmt.Errorf("--from %s: no repository there", redactLocation(from))
		}
		if err != nil {
			return fmt.Errorf("--from %s: %w", redactLocation(from), err)
		}
		defer copyBe.Close()
		progress := maintProgress(s.p)
		plan, err := s.repo.PlanRepairPacks(ctx, copyBe, progress)
		if err != nil {
			return fmt.Errorf("repair packs: %w", err)
		}
		var res *repo.RepairPacksResult
		missed := plan.Unavailable()
		if !dry {
			done, err := s.repo.ExecuteRepairPacks(ctx, copyBe, plan, progress)
			if err != nil {
				return fmt.Errorf("repair packs: %w", err)
			}
			res, missed = &done, done.Unrecovered()
		}
		if s.g.JSON {
			s.p.JSON(repairPacksJSON{"summary", dry, plan, res})
		} else {
			printRepairPacks(s.p, redactLocation(from), plan, res)
		}
		if missed > 0 {
			return fmt.Errorf("repair packs: %d file(s) %s fetched from %s (see above); try another copy, or see 'cairn help repair'",
				missed, verb(dry, "cannot be", "could not be"), redactLocation(from))
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
			var err error
			if ident, err = s.device.Identity(); err != nil {
				return err
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
