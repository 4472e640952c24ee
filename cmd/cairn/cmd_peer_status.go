package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/policy"
	"github.com/urfave/cli/v2"
)

// Exit statuses of peer status (see exitStatusHelp).
var (
	errStale           = errors.New("a destination is stale")
	errUnderReplicated = errors.New("a snapshot is on too few destinations")
)

func (e *appEnv) peerStatusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "how each destination of the repository stands, for cron",
		ArgsUsage: "[DEST...]",
		Description: "Reads each DEST (a path, sftp:..., peer://...) without changing it and prints, per DEST:\n" +
			"reachable or not, the last successful mirror (its newest receipt or mirror record),\n" +
			"the newest log sequence number it holds against the repository's (-r), how many\n" +
			"log entries it lacks, its files and bytes, and for a peer the usage and quota the\n" +
			"server reports; then, per snapshot, how many DESTs hold it whole (its log entry\n" +
			"and every pack it needs, by listing). Each DEST is compared with every receipt\n" +
			"known (in the repository, in every DEST and on this device), as check does.\n" +
			"For a peer DEST it also shows its server's last scrub result: when its last full\n" +
			"pass over the repository ended, how many files it checked and found damaged, and\n" +
			"how many it keeps moved aside (the next mirror puts them again).\n" +
			"With no DEST, the destinations saved in the repository ('cairn peer add').\n\n" +
			"It needs the password (it reads the index and the snapshots' trees) and takes a\n" +
			"shared lock on -r. -r may itself be one of the copies: on a machine that lost\n" +
			"everything, 'cairn -r peer://A... peer status peer://A... peer://B...' compares the\n" +
			"friends with each other.\n\n" +
			"Exit status, the first that applies: 21 when a DEST is rolled back, frozen or\n" +
			"forked; 22 when a DEST is unreachable or its last successful mirror is older than\n" +
			"--max-age; 23 when a snapshot is whole on fewer than --min-copies DESTs; else 0.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "max-age", Usage: "exit 22 when a DEST's last successful mirror is older than `DURATION` (e.g. 3d, 12h)"},
			&cli.IntFlag{Name: "min-copies", Usage: "exit 23 when a snapshot is whole on fewer than `N` DESTs"},
		},
		Action: e.runPeerStatus,
	}
}

func (e *appEnv) runPeerStatus(c *cli.Context) error {
	if err := wantArgs(c, 0, -1); err != nil {
		return err
	}
	var maxAge policy.Duration
	if s := c.String("max-age"); s != "" {
		var err error
		if maxAge, err = policy.ParseDuration(s); err != nil {
			return fmt.Errorf("--max-age: %w", err)
		}
	}
	minCopies := c.Int("min-copies")
	if minCopies < 0 {
		return fmt.Errorf("--min-copies: %d is negative", minCopies)
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		env := e.locEnv(s.g, s.p)
		locs := c.Args().Slice()
		if len(locs) == 0 {
			saved, err := savedDestinations(ctx, s.repo)
			if err != nil {
				return fmt.Errorf("peer status: %w", err)
			}
			for _, d := range saved {
				locs = append(locs, d.location)
			}
		}
		var dests []snapshot.Dest
		for _, loc := range locs {
			d := snapshot.Dest{Location: redactLocation(loc), Self: ackSelf(loc)}
			be, err := openBackend(ctx, loc, env)
			if err != nil {
				d.Err = err
			} else {
				defer be.Close()
				d.Be = be
			}
			dests = append(dests, d)
		}
		rep, err := snapshot.CopyStatus(ctx, s.repo, l, dests)
		if err != nil {
			return err
		}
		cutoff := time.Time{}
		if !maxAge.Zero() {
			cutoff = maxAge.Before(s.now())
		}
		printPeerStatus(ctx, s.p, rep, l.MaxSeq(), dests, cutoff)
		return peerStatusResult(rep, cutoff, minCopies)
	})
}

// peerStatusResult is the command's result: the exit status of the worst
// finding.
func peerStatusResult(rep snapshot.CopiesReport, cutoff time.Time, minCopies int) error {
	var bad []repo.AckFinding
	stale := 0
	for _, d := range rep.Dests {
		for _, f := range d.Findings {
			if f.Error() {
				bad = append(bad, f)
			}
		}
		if !d.Reachable || !cutoff.IsZero() && d.Stale(cutoff) {
			stale++
		}
	}
	under := 0
	for _, sc := range rep.Snapshots {
		if len(sc.Holders) < minCopies {
			under++
		}
	}
	switch {
	case len(bad) > 0:
		return &repo.AckError{Findings: bad}
	case stale > 0:
		return fmt.Errorf("%w: %d of %d destinations unreachable or not mirrored to since the cutoff", errStale, stale, len(rep.Dests))
	case under > 0:
		return fmt.Errorf("%w: %d snapshots are whole on fewer than %d destinations", errUnderReplicated, under, minCopies)
	}
	return nil
}

// peerStatusJSON is the --json line of one destination.
type peerStatusJSON struct {
	MessageType string   `json:"message_type"` // "destination"
	Location    string   `json:"location"`
	Reachable   bool     `json:"reachable"`
	Error       string   `json:"error,omitempty"`
	LastMirror  *string  `json:"last_mirror"`
	Signed      bool     `json:"signed"`
	Stale       bool     `json:"stale"`
	Seq         uint64   `json:"seq"`
	SourceSeq   uint64   `json:"source_seq"`
	Behind      int      `json:"entries_behind"`
	Files       int64    `json:"files"`
	Bytes       int64    `json:"bytes"`
	Used        *int64   `json:"used,omitempty"`
	Quota       *int64   `json:"quota,omitempty"`
	Findings    []string `json:"findings"`
	// Scrub is the peer server's last scrub result; nil for an sftp or
	// local DEST, or when the server could not give it (ScrubError).
	Scrub      *scrubStatusJSON `json:"scrub,omitempty"`
	ScrubError string           `json:"scrub_error,omitempty"`
}

// scrubStatusJSON is a peer server's scrub report (peer.ScrubReport).
type scrubStatusJSON struct {
	LastPass    *string `json:"last_pass"` // null: no full pass yet
	Files       int64   `json:"files"`
	Bytes       int64   `json:"bytes"`
	Damaged     int64   `json:"damaged"`
	Quarantined int64   `json:"quarantined"`
}

// snapshotCopiesJSON is the --json line of one snapshot.
type snapshotCopiesJSON struct {
	MessageType string   `json:"message_type"` // "snapshot"
	ID          string   `json:"id"`
	Time        string   `json:"time"`
	Copies      int      `json:"copies"`
	Holders     []string `json:"holders"`
}

func printPeerStatus(ctx context.Context, p *printer, rep snapshot.CopiesReport, srcSeq uint64, dests []snapshot.Dest, cutoff time.Time) {
	for i, d := range rep.Dests {
		j := peerStatusJSON{MessageType: "destination", Location: d.Location, Reachable: d.Reachable, Signed: d.LastAck.Signed,
			Stale: !d.Reachable || !cutoff.IsZero() && d.Stale(cutoff), Seq: d.Seq, SourceSeq: srcSeq, Behind: d.Behind,
			Files: d.Files, Bytes: d.Bytes, Findings: []string{}}
		if d.Err != nil {
			j.Error = d.Err.Error()
		}
		if !d.LastAck.Time.IsZero() {
			t := d.LastAck.Time.UTC().Format(time.RFC3339)
			j.LastMirror = &t
		}
		if pb := peerBackend(dests[i].Be); pb != nil && d.Reachable {
			quota, used := pb.Usage()
			j.Used, j.Quota = &used, &quota
			if sr, err := pb.ScrubReport(ctx); err != nil {
				j.ScrubError = err.Error()
			} else {
				j.Scrub = &scrubStatusJSON{Files: sr.Files, Bytes: sr.Bytes, Damaged: sr.Damaged, Quarantined: sr.Quarantined}
				if !sr.LastPass.IsZero() {
					t := sr.LastPass.UTC().Format(time.RFC3339)
					j.Scrub.LastPass = &t
				}
			}
		}
		for _, f := range d.Findings {
			j.Findings = append(j.Findings, f.String())
		}
		if p.json {
			p.JSON(j)
			continue
		}
		printDestStatus(p, j)
	}
	for _, sc := range rep.Snapshots {
		j := snapshotCopiesJSON{MessageType: "snapshot", ID: sc.Snapshot.ID.String(), Time: sc.Snapshot.Time.UTC().Format(time.RFC3339),
			Copies: len(sc.Holders), Holders: sc.Holders}
		if j.Holders == nil {
			j.Holders = []string{}
		}
		if p.json {
			p.JSON(j)
			continue
		}
		p.Printf("snapshot %s %s: whole on %d of %d destinations", sc.Snapshot.ID.Str(), sc.Snapshot.Time.Format("2006-01-02 15:04:05"),
			len(sc.Holders), len(rep.Dests))
	}
}

func printDestStatus(p *printer, j peerStatusJSON) {
	if !j.Reachable {
		p.Printf("%s: unreachable: %s", j.Location, j.Error)
		return
	}
	last := "never (no receipt or mirror record known)"
	if j.LastMirror != nil {
		last = *j.LastMirror
		if !j.Signed {
			last += " (unsigned mirror record)"
		}
	}
	stale := ""
	if j.Stale {
		stale = " (stale)"
	}
	p.Printf("%s: last mirror %s%s; log seq %d of %d, %d entries behind; %d files, %s", j.Location, last, stale, j.Seq, j.SourceSeq,
		j.Behind, j.Files, formatBytes(uint64(max(j.Bytes, 0))))
	if j.Used != nil {
		quota := "no quota"
		if *j.Quota > 0 {
			quota = "quota " + formatBytes(uint64(*j.Quota))
		}
		p.Printf("%s: uses %s on the server, %s", j.Location, formatBytes(uint64(max(*j.Used, 0))), quota)
	}
	switch {
	case j.ScrubError != "":
		p.Printf("%s: scrub: no report: %s", j.Location, j.ScrubError)
	case j.Scrub != nil && j.Scrub.LastPass == nil:
		p.Printf("%s: scrub: no full pass yet; %d damaged found, %d moved aside", j.Location, j.Scrub.Damaged, j.Scrub.Quarantined)
	case j.Scrub != nil:
		p.Printf("%s: scrub: last pass %s, %d files (%s) checked; %d damaged found, %d moved aside", j.Location, *j.Scrub.LastPass,
			j.Scrub.Files, formatBytes(uint64(max(j.Scrub.Bytes, 0))), j.Scrub.Damaged, j.Scrub.Quarantined)
	}
	for _, f := range j.Findings {
		p.Printf("%s: %s", j.Location, f)
	}
}
