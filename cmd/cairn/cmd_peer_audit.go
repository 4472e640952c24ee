package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/repo"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) peerAuditCommand() *cli.Command {
	return &cli.Command{
		Name:      "audit",
		Usage:     "prove a peer still holds a random sample of the packs, without downloading them",
		ArgsUsage: "DEST",
		Description: "Picks a random --sample of the packs of the repository given by -r and, for each,\n" +
			"a random byte range (up to 64 KiB) and a fresh random nonce; the peer server DEST\n" +
			"answers with SHA-256(nonce || the bytes it holds there), which only a server that\n" +
			"holds the bytes can compute, and the answers are compared with the source's own\n" +
			"bytes. No password is needed, and only the digests cross the network. When DEST\n" +
			"lost L of N packs, an audit of S packs finds it with probability\n" +
			"1 - C(N-L, S)/C(N, S): see docs/peers.md for a table.\n\n" +
			"A pack DEST does not hold, holds shorter, or answers wrongly for is named, and\n" +
			"the exit status is 17. DEST must be a peer:// location.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "sample", Value: "5%", Usage: "audit `P%` of the packs (at least one)"},
		},
		Action: e.runPeerAudit,
	}
}

// auditFailedError: a peer failed an audit (exit 17).
type auditFailedError struct {
	dest   string
	failed []repo.AuditFailure
}

func (e *auditFailedError) Error() string {
	names := make([]string, 0, min(len(e.failed), 10))
	for _, f := range e.failed[:min(len(e.failed), 10)] {
		names = append(names, f.Handle.String())
	}
	more := ""
	if len(e.failed) > 10 {
		more = fmt.Sprintf(" and %d more", len(e.failed)-10)
	}
	return fmt.Sprintf("audit of %s failed for %d packs: %s%s", e.dest, len(e.failed), strings.Join(names, ", "), more)
}

func (e *appEnv) runPeerAudit(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	ctx := c.Context
	g := e.globals(c)
	p := e.printer(g)
	if g.runOptions.err != nil {
		return g.runOptions.err
	}
	sample, err := parsePercent(c.String("sample"))
	if err != nil {
		return fmt.Errorf("--sample: %w", err)
	}
	dest := c.Args().First()
	if err := checkOptionsUsed(g.Options, g.Repo, dest); err != nil {
		return err
	}
	if _, err := peer.ParseLocation(dest); err != nil {
		return fmt.Errorf("peer audit: DEST must be a peer:// location (a copy elsewhere cannot answer challenges: run \"cairn -r DEST check --read-data\"): %w", err)
	}
	env := e.locEnv(g, p)
	src, err := openBackend(ctx, g.Repo, env)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openBackend(ctx, dest, env)
	if err != nil {
		return err
	}
	defer dst.Close()
	pb, ok := peer.Find(dst)
	if !ok {
		return errors.New("peer audit: internal error: a peer:// location opened no peer backend")
	}
	d := redactLocation(dest)
	res, err := repo.Audit(ctx, src, pb, repo.AuditOptions{Sample: sample})
	if err != nil {
		return err
	}
	for _, f := range res.Failed {
		p.Warnf("%s: %s: %s", d, f.Handle, f.Reason)
	}
	if g.JSON {
		failed := make([]map[string]string, 0, len(res.Failed))
		for _, f := range res.Failed {
			failed = append(failed, map[string]string{"file": f.Handle.String(), "reason": f.Reason})
		}
		p.JSON(map[string]any{"message_type": "audit", "destination": d, "packs": res.Packs, "audited": res.Audited,
			"bytes": res.Bytes, "failed": failed})
	}
	p.Printf("%s: audited %d of %d packs (%s challenged): %d failed", d, res.Audited, res.Packs,
		backend.FormatSize(uint64(res.Bytes), 1), len(res.Failed))
	if len(res.Failed) > 0 {
		return &auditFailedError{dest: d, failed: res.Failed}
	}
	return nil
}
