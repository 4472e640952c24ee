package main

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "check the repository for damage",
		ArgsUsage: " ",
		Description: "Checks the repository's structure: the config and key files, every index\n" +
			"file, every pack the index lists (present, with a size that fits), every\n" +
			"tree of every live snapshot (it loads, and the data its files need is\n" +
			"indexed), and the snapshot log (links, signatures, writers, and no rollback\n" +
			"since this device last read it there). A copy that only lacks the newest\n" +
			"entries this device saw at another location (a friend's copy not mirrored to\n" +
			"yet) is reported as \"log is behind by N entries\", a warning, not damage.\n\n" +
			"With --read-data it downloads every pack and verifies every byte;\n" +
			"--read-data-subset reads a part: \"n/m\" reads the packs whose ID's first\n" +
			"byte modulo m is n-1, so running n = 1..m on m nights reads every pack once,\n" +
			"e.g. from cron:\n\n" +
			"   cairn check --read-data-subset \"$(( $(date +%-j) % 30 + 1 ))/30\"\n\n" +
			"and \"P%\" reads a random P percent of the packs.\n\n" +
			"It first says what it checks (its plan, from listing the repository's files):\n" +
			"how many key files, index files and packs, and how many packs (and bytes) it\n" +
			"reads; --verbose names each pack read. There is no --dry-run: check changes\n" +
			"nothing, and the plan costs only the listing.\n\n" +
			"Each problem is printed on a line: a damaged pack is named by its file\n" +
			"(data/<id>). Packs no index lists are warnings only (an interrupted backup\n" +
			"or prune leaves them; the next prune removes them), and so is a missing\n" +
			"pack whose every blob another pack holds too (a backup after the loss\n" +
			"stored them again; the next prune drops it from the index). Files that\n" +
			"anyone who can add files may have put there are warnings too: a file under\n" +
			"log/ that is not a log entry, one under keys/ that is not a key file, and a\n" +
			"key file whose KDF exceeds the cost limit (never tried). The exit\n" +
			"status is 1 when any damage is found. With --json the plan is a first line\n" +
			"{\"message_type\":\"plan\",...}, each problem a line {\"message_type\":\"problem\",...},\n" +
			"then a summary line.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "read-data", Usage: "read and verify all data"},
			&cli.StringFlag{Name: "read-data-subset", Usage: "read and verify a `SUBSET` of the packs: n/m or P%"},
		},
		Action: e.runCheck,
	}
}

// checkProblemJSON is one problem of "check --json".
type checkProblemJSON struct {
	MessageType string `json:"message_type"`
	repo.Problem
}

// checkSummaryJSON is the last line of "check --json".
type checkSummaryJSON struct {
	MessageType string `json:"message_type"`
	IndexFiles  int    `json:"index_files"`
	Packs       int    `json:"packs"`
	Blobs       int    `json:"blobs"`
	PacksRead   int    `json:"packs_read"`
	BytesRead   int64  `json:"bytes_read"`
	Snapshots   int    `json:"snapshots"`
	Problems    int    `json:"problems"`
	Damage      bool   `json:"damage"`
}

// checkPlanJSON is the first line of "check --json": what it reads.
type checkPlanJSON struct {
	MessageType string `json:"message_type"`
	KeyFiles    int    `json:"key_files"`
	IndexFiles  int    `json:"index_files"`
	Packs       int    `json:"packs"`
	PackBytes   int64  `json:"pack_bytes"`
	ReadData    bool   `json:"read_data"`
	Subset      string `json:"subset"`
	PacksToRead int    `json:"packs_to_read"`
	BytesToRead int64  `json:"bytes_to_read"`
}

// damageError says check found damage: exit status 1.
type damageError struct{ problems, damage int }

func (e *damageError) Error() string {
	return fmt.Sprintf("check found damage: %d of %d problem(s) are damage, see above", e.damage, e.problems)
}

func (e *appEnv) runCheck(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	opts := repo.CheckOptions{ReadData: c.Bool("read-data")}
	if s := c.String("read-data-subset"); s != "" {
		sub, err := repo.ParseSubset(s)
		if err != nil {
			return fmt.Errorf("--read-data-subset: %w", err)
		}
		opts.Subset = sub
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		opts.Progress = maintProgress(s.p)
		plan, err := s.repo.PlanCheck(ctx, opts)
		if err != nil {
			return err
		}
		printCheckPlan(s.p, plan)
		res, err := s.repo.ExecuteCheck(ctx, plan, opts)
		if err != nil {
			return err
		}
		s.p.Printf("checking snapshots")
		snapProblems, snapshots, err := checkSnapshotsAndLog(ctx, s)
		if err != nil {
			return err
		}
		if plan.ReadData {
			s.p.Printf("read %d of %d packs (%s)", res.PacksRead, res.Packs, formatBytes(uint64(res.BytesRead)))
		}
		return reportCheck(s.p, res, append(res.Problems, snapProblems...), snapshots)
	})
}

// printCheckPlan says what check reads: one JSON line with --json; with
// --verbose every pack whose data it reads.
func printCheckPlan(p *printer, plan *repo.CheckPlan) {
	if p.json {
		p.JSON(checkPlanJSON{MessageType: "plan", KeyFiles: len(plan.Keys), IndexFiles: len(plan.IndexFiles),
			Packs: len(plan.Packs), PackBytes: plan.PackBytes, ReadData: plan.ReadData, Subset: plan.Subset.String(),
			PacksToRead: len(plan.Read), BytesToRead: plan.ReadBytes})
		return
	}
	p.Printf("checking the repository structure: %d key file(s), %d index file(s), %d pack(s) (%s)", len(plan.Keys), len(plan.IndexFiles),
		len(plan.Packs), formatBytes(uint64(plan.PackBytes)))
	if !plan.ReadData {
		return
	}
	subset := ""
	if !plan.Subset.IsAll() {
		subset = ", subset " + plan.Subset.String()
	}
	p.Printf("then reading the data of %d of %d pack(s) (%s%s)", len(plan.Read), len(plan.Packs), formatBytes(uint64(plan.ReadBytes)), subset)
	for _, pk := range plan.Read {
		p.Verbosef("read data/%s (%s)", pk.ID, formatBytes(uint64(pk.Size)))
	}
}

// checkSnapshotsAndLog checks every live snapshot's trees and the log,
// and returns the problems found and the number of live snapshots.
func checkSnapshotsAndLog(ctx context.Context, s *session) ([]repo.Problem, int, error) {
	l, err := readLog(ctx, s, false)
	if err != nil {
		return nil, 0, err
	}
	problems, err := snapshot.CheckSnapshots(ctx, s.repo, l)
	if err != nil {
		return nil, 0, err
	}
	rep := seenReport(s, l)
	for _, msg := range rep.Problems {
		problems = append(problems, repo.Problem{Kind: snapshot.ProblemLog, Message: msg})
	}
	if rep.Behind != "" {
		// A copy not mirrored to yet: said, but not damage.
		problems = append(problems, repo.Problem{Kind: snapshot.ProblemLog, Warning: true, Message: rep.Behind})
	}
	return problems, len(l.Snapshots()), nil
}

// reportCheck prints the problems and the summary, and returns a
// *damageError when any problem is damage.
func reportCheck(p *printer, res repo.CheckResult, problems []repo.Problem, snapshots int) error {
	damage := 0
	for _, pr := range problems {
		if !pr.Warning {
			damage++
		}
		switch {
		case p.json:
			p.JSON(checkProblemJSON{"problem", pr})
		case pr.Warning:
			p.Printf("%s", pr)
		default:
			p.Printf("error: %s", pr)
		}
	}
	if p.json {
		p.JSON(checkSummaryJSON{MessageType: "summary", IndexFiles: res.IndexFiles, Packs: res.Packs, Blobs: res.Blobs,
			PacksRead: res.PacksRead, BytesRead: res.BytesRead, Snapshots: snapshots,
			Problems: len(problems), Damage: damage > 0})
	}
	switch {
	case damage > 0:
		return &damageError{problems: len(problems), damage: damage}
	case len(problems) > 0:
		p.Printf("no damage found (%d warning(s))", len(problems))
	default:
		p.Printf("no problems found")
	}
	return nil
}

// maintProgress shows the phase of a check, prune or repair as a status
// line (on a terminal only).
func maintProgress(p *printer) repo.ProgressFunc {
	return func(phase string, done, total int64) {
		if total > 0 {
			p.Status(fmt.Sprintf("%s: %d/%d", phase, done, total))
		} else {
			p.Status(phase + "...")
		}
	}
}
