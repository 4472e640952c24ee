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
					"too is named, and nothing is fetched for it.\n\n" +
					"A pack lost together with the only index file naming it leaves no trace in\n" +
					"the index: it is found by walking the live snapshots for blobs no pack here\n" +
					"holds, and fetched with the copy's index file that lists it (once every\n" +
					"pack that file lists is here). The trees of a pack fetched back may need\n" +
					"more such packs: it repeats, up to 8 rounds, while it finds and fetches\n" +
					"more. Any other lost index file is not fetched: \"repair index\" rebuilds\n" +
					"the index from the packs.\n\n" +
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
		pp := startPhaseProgress(s.p, false)
		defer pp.stop()
		progress := pp.report
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
		pp.stop()
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
		pp := startPhaseProgress(s.p, false)
		defer pp.stop()
		progress := pp.report
		plan, res, err := repairPacksRounds(ctx, s, copyBe, dry, progress)
		if err != nil {
			return fmt.Errorf("repair packs: %w", err)
		}
		missed := plan.Unavailable()
		if res != nil {
			missed = res.Unrecovered()
		}
		pp.stop()
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

// maxRepairRounds bounds the rounds of repairPacksRounds.
const maxRepairRounds = 8

// repairPacksRounds plans and, unless dry, carries out repair packs from
// the copy, in rounds: a pack lost with the only index file naming it is
// found by the blobs the live snapshots need (snapshot.LostBlobs), and
// the trees in a pack fetched back may need more such packs, which only
// the next round's walk finds. It returns the rounds' plans and results
// joined; a round that fetches nothing, or finds nothing lost, is the
// last.
func repairPacksRounds(ctx context.Context, s *session, from backend.Backend, dry bool, progress repo.ProgressFunc) (repo.RepairPacksPlan, *repo.RepairPacksResult, error) {
	all := repo.RepairPacksPlan{Files: []repo.RepairFetch{}}
	var done *repo.RepairPacksResult
	if !dry {
		done = &repo.RepairPacksResult{Files: []repo.RepairedFile{}}
	}
	for round := 0; round < maxRepairRounds; round++ {
		lost, err := lostBlobs(ctx, s)
		if err != nil {
			return all, done, err
		}
		if round > 0 && lost.Len() == 0 {
			break
		}
		plan, err := s.repo.PlanRepairPacks(ctx, from, lost, progress)
		if err != nil {
			return all, done, err
		}
		all.PacksRead += plan.PacksRead
		all.BytesRead += plan.BytesRead
		all.Files = append(all.Files, plan.Files...)
		if dry {
			break
		}
		res, err := s.repo.ExecuteRepairPacks(ctx, from, plan, progress)
		done.Files = append(done.Files, res.Files...)
		if err != nil || lost.Len() == 0 || res.Unrecovered() == len(res.Files) {
			return all, done, err
		}
	}
	return all, done, nil
}

// lostBlobs is what the live snapshots need that no pack here holds.
func lostBlobs(ctx context.Context, s *session) (*repo.BlobSet, error) {
	l, err := snapshot.LoadLog(ctx, s.repo)
	if err != nil {
		return nil, fmt.Errorf("load snapshot log: %w", err)
	}
	return snapshot.LostBlobs(ctx, s.repo, l.Snapshots())
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
