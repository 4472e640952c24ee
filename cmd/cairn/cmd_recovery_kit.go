package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
)

// Recovery kit file names, in --out.
const (
	kitTextName = "cairn-recovery-kit.txt"
	kitPNGName  = "cairn-recovery-kit.png"
)

func (e *appEnv) recoveryKitCommand() *cli.Command {
	return &cli.Command{
		Name:      "recovery-kit",
		Usage:     "write what a blank machine needs to find and restore the repository",
		ArgsUsage: " ",
		Description: "Writes " + kitTextName + " and " + kitPNGName + " (a QR code of the kit's lines) to --out:\n" +
			"the repository's ID, every saved destination ('cairn peer add') with its address and,\n" +
			"for a peer, the server's pinned peer ID, and instructions. With --include-identity it\n" +
			"also holds this device's identity sealed under the repository password (the key files'\n" +
			"KDF and cipher), so a new machine is the device friends' servers allow; it asks for\n" +
			"the password again to seal it. The kit holds no password and no key in clear.\n\n" +
			"On a blank machine: cairn --kit " + kitTextName + " restore latest --target DIR\n" +
			"(--kit works with every command that opens a repository, instead of -r): it asks for\n" +
			"the password, opens the sealed identity, tries the destinations in order, and checks\n" +
			"that the one it opens holds the kit's repository.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: ".", Usage: "write the kit's two files to `DIR`"},
			&cli.BoolFlag{Name: "include-identity", Usage: "include this device's identity, sealed under the repository password"},
		},
		Action: e.runRecoveryKit,
	}
}

func (e *appEnv) runRecoveryKit(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	out := c.String("out")
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		dests, err := s.repo.Destinations(ctx)
		if err != nil {
			return err
		}
		kit := repo.Kit{RepoID: s.repo.Config().ID, Destinations: dests}
		if c.Bool("include-identity") {
			if kit.Identity, err = e.sealedIdentity(ctx, s); err != nil {
				return err
			}
		}
		body, err := kit.Body()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(out, 0o700); err != nil {
			return err
		}
		text := kitInstructions(kit, e.now().UTC().Format("2006-01-02")) + body
		if err := writeFileSync(filepath.Join(out, kitTextName), []byte(text)); err != nil {
			return err
		}
		png, err := qrcode.Encode(body, qrcode.Medium, 1024)
		if err != nil {
			return fmt.Errorf("recovery kit: the QR code: %w (the text file is written)", err)
		}
		if err := writeFileSync(filepath.Join(out, kitPNGName), png); err != nil {
			return err
		}
		if len(dests) == 0 {
			s.p.Warnf("no destination is saved: the kit can only name the repository (add them with 'cairn peer add NAME LOCATION')")
		}
		s.p.Printf("wrote %s and %s: %d destinations, identity %s", filepath.Join(out, kitTextName), filepath.Join(out, kitPNGName),
			len(dests), map[bool]string{true: "included (sealed)", false: "not included"}[kit.Identity != ""])
		return nil
	})
}

// sealedIdentity seals this device's identity under the repository
// password, read again (withRepo has zeroed its copy).
func (e *appEnv) sealedIdentity(ctx context.Context, s *session) (string, error) {
	id, err := s.device.Identity()
	if err != nil {
		return "", err
	}
	pw, err := e.password(ctx, s.g)
	if err != nil {
		return "", err
	}
	defer zero(pw)
	kdf, err := e.kdfParams()
	if err != nil {
		return "", err
	}
	return crypt.SealIdentity(id, pw, kdf)
}

func kitInstructions(k repo.Kit, date string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# cairn recovery kit for repository %s, written %s.\n", k.RepoID[:16], date)
	b.WriteString("# Keep it apart from the computer it protects: printed, or on a USB stick. It holds\n" +
		"# no password and no key in clear; without the repository password it opens nothing.\n")
	if k.Identity != "" {
		b.WriteString("# It holds this device's identity, sealed under the repository password: friends'\n" +
			"# servers know the device by it.\n")
	} else {
		b.WriteString("# It holds no device identity: a friend's server must allow the new machine's peer ID\n" +
			"# ('cairn peer id') before it can restore from there.\n")
	}
	b.WriteString("#\n# To restore on a new machine: install cairn, then run\n" +
		"#   cairn --kit " + kitTextName + " restore latest --target /restore\n" +
		"# It asks for the repository password and tries these destinations in order:\n")
	for _, d := range k.Destinations {
		fmt.Fprintf(&b, "#   %s: %s\n", d.Name, d.Location)
	}
	b.WriteString("# Other commands take --kit too: snapshots, ls, check, ... The lines below are for\n" +
		"# cairn (the QR code holds them); a changed line is refused by the check line.\n\n")
	return b.String()
}

// writeFileSync writes a small file (mode 0600) and syncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close() // the write error matters
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // see above
		return err
	}
	return f.Close()
}

// openRepoBackend opens the backend of the repository the global options
// name and reads the password: with -r, the location; with --kit, the
// first of the kit's destinations that opens, with the kit's sealed
// identity if it has one. kitRepo is the kit's repository ID ("" without
// a kit), which the caller checks once the repository is open.
func (e *appEnv) openRepoBackend(ctx context.Context, g globalOptions, p *printer) (be backend.Backend, pw []byte, kitRepo string, err error) {
	env := e.locEnv(g, p)
	if g.Kit == "" {
		if be, err = openBackend(ctx, g.Repo, env); err != nil {
			return nil, nil, "", err
		}
		if pw, err = e.password(ctx, g); err != nil {
			be.Close()
			return nil, nil, "", err
		}
		return be, pw, "", nil
	}
	if g.Repo != "" {
		return nil, nil, "", errors.New("give either a repository (-r or CAIRN_REPOSITORY) or --kit, not both")
	}
	kit, err := readKit(g.Kit)
	if err != nil {
		return nil, nil, "", err
	}
	if len(kit.Destinations) == 0 {
		return nil, nil, "", fmt.Errorf("recovery kit %s names no destination", g.Kit)
	}
	if pw, err = e.password(ctx, g); err != nil {
		return nil, nil, "", err
	}
	if kit.Identity != "" {
		if env.Identity, err = crypt.OpenSealedIdentity(kit.Identity, pw); err != nil {
			zero(pw)
			return nil, nil, "", fmt.Errorf("recovery kit: %w", err)
		}
	}
	for _, d := range kit.Destinations {
		be, err = openBackend(ctx, d.Location, env)
		if err == nil {
			p.Verbosef("recovery kit: using destination %s (%s)", d.Name, redactLocation(d.Location))
			return be, pw, kit.RepoID, nil
		}
		if ctx.Err() != nil {
			break
		}
		p.Warnf("recovery kit: destination %s: %v", d.Name, err)
	}
	zero(pw)
	if ctx.Err() != nil {
		return nil, nil, "", ctx.Err()
	}
	return nil, nil, "", fmt.Errorf("recovery kit: none of its %d destinations could be opened", len(kit.Destinations))
}

func readKit(path string) (repo.Kit, error) {
	f, err := os.Open(path)
	if err != nil {
		return repo.Kit{}, err
	}
	defer f.Close() // read-only
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return repo.Kit{}, fmt.Errorf("read %s: %w", path, err)
	}
	kit, err := repo.ParseKit(string(data))
	if err != nil {
		return repo.Kit{}, fmt.Errorf("%s: %w", path, err)
	}
	return kit, nil
}
