package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) mirrorCommand() *cli.Command {
	return &cli.Command{
		Name:      "mirror",
		Usage:     "copy the repository to other locations (peers, sftp, local)",
		ArgsUsage: "[DEST...]",
		Description: "Copies every file each DEST lacks from the repository given by -r: packs first, then\n" +
			"index files, keys and the config, then the snapshot log, one entry at a time and\n" +
			"each after the entries it follows, so a DEST never refers to a file it does not\n" +
			"have, and a mirror stopped at any moment leaves a valid, shorter log. Each file's\n" +
			"hash is checked before it is sent; an interrupted mirror resumes by copying what\n" +
			"is still missing. A DEST that does not hold a repository yet is created. No\n" +
			"password is needed (except for --prune): everything copied is encrypted and\n" +
			"named by its hash.\n\n" +
			"Before copying log entries, mirror checks that DEST's log is a prefix of the\n" +
			"source's; a DEST that holds entries the source lacks (someone else wrote to it, or\n" +
			"the source was rolled back) is refused, and nothing is copied to it.\n\n" +
			"A source file whose content does not match its name is not copied; a file under\n" +
			"log/ that is not a log entry (on either side) is skipped with a warning; a DEST\n" +
			"file whose size differs from the source's is replaced, with a warning. The rest\n" +
			"is still copied, and a damaged source file, or a DEST that refuses to replace a\n" +
			"file, makes the exit status 1 naming the files.\n\n" +
			"--prune removes files DEST holds that the source dropped on purpose (after\n" +
			"prune or forget): packs its index no longer lists, index files it replaced,\n" +
			"keys, and log entries a checkpoint covers. It needs the password, to read the\n" +
			"source's index, and holds a shared lock on the source. A pack or log entry the\n" +
			"source lacks but still names is damage, not a drop, and so is an index file it\n" +
			"lost (one that lists packs the source holds but no longer indexes): then nothing\n" +
			"is removed, the files are named, and the exit status is 1; heal the source with\n" +
			"\"cairn repair packs --from DEST\", or \"cairn repair index\" for an index file.\n" +
			"An append-only peer keeps removed files: old snapshots stay restorable from it.\n\n" +
			"--dry-run prints the plan and changes nothing: how many packs, index files, keys\n" +
			"and log entries would be copied (with sizes), each DEST file that would be\n" +
			"replaced, what --prune would remove and why (or that it removes nothing, and\n" +
			"which index files the source lost), and what would be skipped; with\n" +
			"--verbose every file in the order it would be copied or removed. With --json the\n" +
			"plan is one {\"message_type\":\"plan\",...} line per DEST listing every file with its\n" +
			"size, before the summary line.\n\n" +
			"DEST is any location: a path, sftp:user@host:/path, peer://PEERID@host:port/NAME.\n" +
			"A DEST that fails is reported and the others are still copied (exit status 1); a\n" +
			"peer that hangs is given up within about two minutes (see docs/peers.md).\n" +
			"With no DEST, mirror copies to every destination saved in the repository ('cairn\n" +
			"peer add NAME LOCATION'; reading them needs the password), in the order saved; a\n" +
			"failed one is reported by its NAME and the others are still copied (exit 1, the\n" +
			"last line naming every NAME that failed).\n" +
			"A mirror with nothing to copy only lists files, which is quick.\n\n" +
			"A peer DEST's server re-hashes its files in the background (its scrub) and moves\n" +
			"a damaged one aside; mirror asks it for the files it moved, warns about each and\n" +
			"puts it again from the source (append-only peers included), then says how many it\n" +
			"healed. --verify asks the server to re-hash all its files now, --verify=5% a\n" +
			"random 5% of them, at the server's scrub rate, and heals what it finds in the same\n" +
			"run (not with --dry-run: a verify moves damaged files aside).\n\n" +
			"Receipts: after copying to a peer, mirror asks its server for a receipt it signs\n" +
			"with its peer key (what it holds: log heads, files, bytes, its time), checks it\n" +
			"against the pinned peer ID and, when the password is given without asking\n" +
			"(--password-file, --password-command, $CAIRN_PASSWORD), keeps it in the repository,\n" +
			"in this device's state and at the destinations of the run; an sftp or local\n" +
			"DEST gets an unsigned mirror record instead. Before copying, a DEST that serves\n" +
			"less than it acknowledged is named: it is healed, and the exit status is 21\n" +
			"(see 'cairn peer status' and docs/peers.md).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "prune", Usage: "remove files DEST has that the source dropped on purpose, where DEST allows it (needs the password)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only print the plan: what would be copied, replaced and removed"},
			&cli.GenericFlag{Name: "verify", Value: &verifyFlag{}, Usage: "ask each peer DEST to re-hash its files now (`--verify[=SAMPLE%]`: all, or a sample) and heal the damaged"},
		},
		Action: e.runMirror,
	}
}

func (e *appEnv) runMirror(c *cli.Context) error {
	if err := wantArgs(c, 0, -1); err != nil {
		return err
	}
	ctx := c.Context
	g := e.globals(c)
	p := e.printer(g)
	if g.runOptions.err != nil {
		return g.runOptions.err
	}
	if err := checkOptionsUsed(g.Options, append([]string{g.Repo}, c.Args().Slice()...)...); err != nil {
		return err
	}
	env := e.locEnv(g, p)
	src, err := openBackend(ctx, g.Repo, env)
	if err != nil {
		return err
	}
	defer src.Close()
	dests := make([]mirrorDestination, 0, c.NArg())
	for _, d := range c.Args().Slice() {
		dests = append(dests, mirrorDestination{location: d})
	}
	var refs *repo.MirrorRefs
	var keeper *repo.Repository // keeps receipts (acks.go); nil without a password
	if c.Bool("prune") || len(dests) == 0 {
		// Only the source's index tells a pack it pruned from one it
		// lost; the shared lock keeps a prune from changing it
		// meanwhile.
		pw, err := e.password(ctx, g)
		if errors.Is(err, errNoPassword) && len(dests) == 0 {
			return fmt.Errorf("mirror with no DEST needs the repository password, to read the saved destinations: %w", err)
		}
		if errors.Is(err, errNoPassword) {
			return fmt.Errorf("mirror --prune needs the repository password, to tell files the source pruned from files it lost: %w", err)
		}
		if err != nil {
			return err
		}
		r, l, err := repo.OpenForJob(ctx, src, pw, e.repoOptions(g, p), repo.LockRead)
		zero(pw)
		if err != nil {
			return err
		}
		defer r.Close()
		defer func() {
			if err := l.Unlock(ctx); err != nil {
				p.Warnf("unlock: %v", err)
			}
		}()
		keeper = r
		if c.Bool("prune") {
			refs = r.MirrorRefs()
			// A pack lost with the only index file naming it leaves no trace
			// in the source's index: only its snapshots still need its blobs.
			log, err := snapshot.LoadLog(ctx, r)
			if err != nil {
				return fmt.Errorf("load snapshot log: %w", err)
			}
			for _, id := range log.Rejected {
				p.Warnf("log entry %s is signed by a revoked device: copied as stored; every reader rejects it (cairn check)", id.Str())
			}
			need, err := snapshot.LostBlobs(ctx, r, log.Snapshots())
			if err != nil {
				return err
			}
			refs.SetUnindexed(need)
		}
		if len(dests) == 0 {
			if dests, err = savedDestinations(ctx, r); err != nil {
				return err
			}
		}
	} else if keeper, err = e.ackKeeper(ctx, g, p, src); err != nil {
		p.Warnf("receipts will not be kept: %v", err)
	} else if keeper != nil {
		defer keeper.Close()
	}
	var failed []string
	var sent []backend.Handle // meta records of receipts kept by this run
	for _, dest := range dests {
		if err := e.mirrorTo(ctx, c, p, env, src, refs, keeper, &sent, dest.location); err != nil {
			if ctx.Err() != nil {
				return err
			}
			if len(dests) == 1 {
				return err
			}
			p.Warnf("mirror to %s: %v", dest, err)
			failed = append(failed, dest.String())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("mirror failed for %d of %d destinations: %v", len(failed), len(dests), failed)
	}
	return nil
}

func (e *appEnv) mirrorTo(ctx context.Context, c *cli.Context, p *printer, env locEnv, src backend.Backend, refs *repo.MirrorRefs, keeper *repo.Repository, sent *[]backend.Handle, dest string) (err error) {
	dry := c.Bool("dry-run")
	var ackErr error // what checkDestAcks found before copying
	defer func() {
		switch {
		case ackErr == nil:
		case err == nil:
			err = ackErr // the destination had rolled back; it is healed now
		default:
			err = fmt.Errorf("%w (and the mirror failed: %v)", ackErr, err)
		}
	}()
	dst, err := openBackend(ctx, dest, env)
	if errors.Is(err, backend.ErrNoRepository) {
		if dry {
			// Planned against an empty store, so the summary counts
			// everything; a dry run writes nothing anywhere.
			p.Printf("%s holds no repository yet: everything would be copied", redactLocation(dest))
			dst, err = mem.New(), nil
		} else {
			dst, err = createBackend(ctx, dest, env)
		}
	}
	if err != nil {
		return err
	}
	defer dst.Close()
	if v, _ := c.Generic("verify").(*verifyFlag); dry && v != nil && v.sample > 0 {
		return errors.New("--verify with --dry-run: a verify moves damaged files aside on the server; run it without --dry-run")
	}
	moved, err := mirrorScrub(ctx, c, p, redactLocation(dest), dst)
	if err != nil {
		return err
	}
	opts := repo.MirrorOptions{Prune: c.Bool("prune"), Refs: refs,
		Warn: func(msg string) { p.Warnf("%s", strings.TrimPrefix(msg, "warning: ")) }}
	mp := startMirrorProgress(p, redactLocation(dest))
	defer mp.stop()
	opts.Progress = e.testOnlyMirrorPause(ctx, p, mp.report)
	if !dry {
		for _, h := range *sent { // this run's receipts of the destinations before
			if err := copyMeta(ctx, src, dst, h); err != nil {
				p.Warnf("%s: receipts not copied there: %v", redactLocation(dest), err)
				break
			}
		}
	}
	ackErr = checkDestAcks(ctx, p, keeper, dst, dest)
	var ae *repo.AckError
	if ackErr != nil && !errors.As(ackErr, &ae) {
		err, ackErr = ackErr, nil
		return err
	}
	plan, err := repo.PlanMirror(ctx, src, dst, opts)
	if err != nil {
		return err
	}
	var st repo.MirrorStats
	if dry {
		printMirrorPlan(p, redactLocation(dest), plan)
		st, err = plan.Stats(), plan.Err()
	} else {
		st, err = repo.ExecuteMirror(ctx, src, dst, plan, opts)
	}
	mp.stop()
	// A mirror that went through but could not copy everything still
	// says what it did; the error follows.
	var incomplete *repo.MirrorError
	if err != nil && !errors.As(err, &incomplete) {
		return err
	}
	printMirrorSummary(p, redactLocation(dest), dry, opts.Prune, st)
	if !dry {
		healed(ctx, p, redactLocation(dest), dst, moved)
	}
	if err == nil && !dry {
		err = keepAck(ctx, p, keeper, src, dst, dest, e.now, sent)
	}
	return err
}
