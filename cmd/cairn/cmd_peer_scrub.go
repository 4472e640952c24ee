package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/urfave/cli/v2"
)

// The scrub's side of the CLI: peer serve's --scrub-rate and
// --scrub-interval, and mirror's --verify and scrub report.

// scrubFlags are peer serve's flags for the scrub.
func scrubFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "scrub-rate", Value: "8M",
			Usage: "re-hash stored files in the background at `RATE` bytes per second (e.g. 10M; 0: off; at least 64K)"},
		&cli.DurationFlag{Name: "scrub-interval", Value: peer.DefaultScrubInterval,
			Usage: "start a new pass of the scrub at most every `DURATION`"},
	}
}

// scrubOptions reads peer serve's scrub flags.
func scrubOptions(c *cli.Context) (rate int64, every time.Duration, err error) {
	rate, err = parseSize(c.String("scrub-rate"))
	if err != nil {
		return 0, 0, fmt.Errorf("--scrub-rate: %w", err)
	}
	if rate != 0 && rate < peer.MinScrubRate {
		return 0, 0, fmt.Errorf("--scrub-rate: %s is below the least rate, 64K (or 0 to turn the scrub off)", c.String("scrub-rate"))
	}
	every = c.Duration("scrub-interval")
	if every <= 0 {
		return 0, 0, fmt.Errorf("--scrub-interval: %v is not a positive duration", every)
	}
	return rate, every, nil
}

// verifyFlag is mirror's --verify[=SAMPLE%]: alone, every file.
type verifyFlag struct {
	sample float64 // 0: off
}

func (v *verifyFlag) Set(s string) error {
	switch s {
	case "true":
		v.sample = 1
		return nil
	case "false":
		v.sample = 0
		return nil
	}
	f, err := parsePercent(s)
	if err != nil {
		return err
	}
	v.sample = f
	return nil
}

func (v *verifyFlag) String() string {
	if v == nil || v.sample == 0 {
		return ""
	}
	return strconv.FormatFloat(v.sample*100, 'g', -1, 64) + "%"
}

// IsBoolFlag lets --verify stand alone (Go's flag package).
func (v *verifyFlag) IsBoolFlag() bool { return true }

// parsePercent reads "P%" (or a plain number, also percent) as a share in
// (0, 1].
func parsePercent(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || !(f > 0 && f <= 100) {
		return 0, fmt.Errorf("%q is not a percentage in (0, 100]", s)
	}
	return f / 100, nil
}

// mirrorScrub asks a peer DEST, before mirror plans, for its scrub
// report, or with --verify for a verification now, and prints the files
// it moved aside as damaged: they are absent on DEST now, so the mirror
// that follows puts them again. It returns them, for healed to check; a
// DEST that is no peer has no report (--verify is then an error), a
// server too old for reports is noted only with --verbose, and a report
// that cannot be had is a warning.
func mirrorScrub(ctx context.Context, c *cli.Context, p *printer, dest string, dst backend.Backend) ([]peer.Quarantined, error) {
	v, _ := c.Generic("verify").(*verifyFlag)
	verify := v != nil && v.sample > 0
	pb, ok := peer.Find(dst)
	if !ok {
		if verify {
			return nil, fmt.Errorf("--verify: %s is not a peer:// location: only a peer server can verify its files (use \"cairn -r %s check --read-data\")", dest, dest)
		}
		return nil, nil
	}
	var rep peer.ScrubReport
	var err error
	if verify {
		p.Printf("%s: verifying %s of its files on the server...", dest, v.String())
		rep, err = pb.Verify(ctx, v.sample, 0, func(files, bytes int64) {
			p.Status(fmt.Sprintf("%s: verify: %d files (%s) checked", dest, files, backend.FormatSize(uint64(bytes), 1)))
		})
		p.Status("")
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		p.Printf("%s: verify: %d files (%s) checked, %d damaged", dest, rep.Files, backend.FormatSize(uint64(rep.Bytes), 1), rep.Damaged)
	} else {
		rep, err = pb.ScrubReport(ctx)
		if errors.Is(err, peer.ErrServerTooOld) {
			p.Verbosef("%s: %v", dest, err)
			return nil, nil
		}
		if err != nil {
			// The report is advice: the mirror itself must not fail
			// for want of it.
			p.Warnf("%s: scrub report: %v", dest, err)
			return nil, nil
		}
		if !rep.LastPass.IsZero() {
			p.Verbosef("%s: the server's last scrub ended %s: %d files (%s) checked, %d damaged found in all",
				dest, rep.LastPass.Format(time.DateTime), rep.Files, backend.FormatSize(uint64(rep.Bytes), 1), rep.Damaged)
		}
	}
	putting := "putting it again"
	if c.Bool("dry-run") {
		putting = "mirror would put it again"
	}
	for _, q := range rep.Moved {
		p.Warnf("%s: %s is damaged on the server (found %s, moved aside): %s", dest, q.Handle, q.Found.Format(time.DateTime), putting)
	}
	if n := rep.Quarantined - int64(len(rep.Moved)); n > 0 {
		p.Warnf("%s: %d more damaged files are moved aside on the server: run mirror again to put them", dest, n)
	}
	return rep.Moved, nil
}

// healed checks, after the mirror, that the files DEST had moved aside
// hold a good copy again, and warns about each that does not (the source
// lacks it, or its put failed).
func healed(ctx context.Context, p *printer, dest string, dst backend.Backend, moved []peer.Quarantined) {
	if len(moved) == 0 {
		return
	}
	n := 0
	for _, q := range moved {
		if _, err := dst.Stat(ctx, q.Handle); err != nil {
			p.Warnf("%s: %s could not be put again (%v): is it still in the source?", dest, q.Handle, err)
			continue
		}
		n++
	}
	p.Printf("%s: healed %d of %d damaged files", dest, n, len(moved))
}
