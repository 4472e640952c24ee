package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/repo"
	"github.com/urfave/cli/v2"
)

// defaultPeerPort is the port of 'peer serve --listen' by default.
const defaultPeerPort = "7484"

func (e *appEnv) peerInviteCommand() *cli.Command {
	return &cli.Command{
		Name:      "invite",
		Usage:     "invite a friend's device to this server: print a one-time code",
		ArgsUsage: " ",
		Description: "Run on the server, as the user who runs 'cairn peer serve --root DIR' (the code\n" +
			"names this device's peer ID). Prints a one-time code to pass to the friend, who runs\n" +
			"'cairn peer join CODE'. The running server accepts the code without a restart, adds\n" +
			"the friend's peer ID to its peers file (--peers-file of 'peer serve', by default\n" +
			"DIR/.cairn/peers.toml) with --mode and --quota, and serves it from then on.\n\n" +
			"The code holds --address (the host:port the friend dials: by default this host's\n" +
			"name and port " + defaultPeerPort + "), this server's peer ID and a 128-bit secret. The server keeps\n" +
			"only the secret's hash, under DIR/.cairn/invites/. A code works once, until --expires;\n" +
			"after 5 wrong secrets its invitation is revoked. Delete the invitation's file to\n" +
			"withdraw it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Usage: "the `DIR` that 'peer serve --root' serves (required)"},
			&cli.StringFlag{Name: "mode", Value: "append-only", Usage: "grant `MODE`: append-only or read-write"},
			&cli.StringFlag{Name: "quota", Usage: "limit the friend to `SIZE` (e.g. 500G; 'none' for no quota); default the server's --quota"},
			&cli.DurationFlag{Name: "expires", Value: peer.DefaultInviteExpiry, Usage: "the code is valid for `DURATION`"},
			&cli.StringFlag{Name: "address", Usage: "the `HOST:PORT` the friend dials (default: this host's name, port " + defaultPeerPort + ")"},
		},
		Action: e.runPeerInvite,
	}
}

func (e *appEnv) peerJoinCommand() *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "pair this device with a friend's server, using the code of 'peer invite'",
		ArgsUsage: "CODE",
		Description: "Connects to the server the code names, checks that it presents the peer ID in the\n" +
			"code, proves the code's secret (sent only inside TLS 1.3, to that server), and is\n" +
			"added to the server's friends with the mode and quota of the invitation. Prints the\n" +
			"location of the repository NAME on that server, for 'cairn mirror' or '-r':\n\n" +
			"  peer://SERVER-PEER-ID@HOST:PORT/NAME\n\n" +
			"With --add DEST the location is also saved as destination DEST of the repository\n" +
			"given by -r, for 'cairn mirror' with no argument (needs the password).\n" +
			"A wrong, used, revoked or expired code is refused with a message saying which.\n" +
			"Exit status: 0 joined, 1 refused or failed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Value: "cairn", Usage: "the repository `NAME` on the server, in the printed location (a-z, 0-9, '.', '_', '-')"},
			&cli.StringFlag{Name: "label", Usage: "this device's `LABEL` in the server's peers file (default: the host name)"},
			&cli.StringFlag{Name: "add", Usage: "also save the location as destination `DEST` of the repository given by -r (as 'peer add')"},
		},
		Action: e.runPeerJoin,
	}
}

func (e *appEnv) runPeerInvite(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	g := e.globals(c)
	root := c.String("root")
	if root == "" {
		return fmt.Errorf("peer invite: --root DIR is required (the folder 'peer serve --root' serves)")
	}
	mode, err := peer.ParseMode(c.String("mode"))
	if err != nil {
		return fmt.Errorf("--mode: %w", err)
	}
	opts := peer.InviteOptions{Mode: mode, Expires: c.Duration("expires"), Addr: c.String("address")}
	if q := c.String("quota"); q != "" {
		opts.HasQuota = true
		if q != "none" {
			if opts.Quota, err = parseSize(q); err != nil {
				return fmt.Errorf("--quota: %w", err)
			}
		}
	}
	if opts.Expires <= 0 {
		return fmt.Errorf("--expires: %v is not a positive duration", opts.Expires)
	}
	guessed := opts.Addr == ""
	if guessed {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return fmt.Errorf("peer invite: give --address HOST:PORT (the host name is unknown: %v)", err)
		}
		opts.Addr = net.JoinHostPort(host, defaultPeerPort)
	}
	id, err := g.device().Identity()
	if err != nil {
		return err
	}
	inv, err := peer.CreateInvite(root, id.PeerID(), opts, time.Now())
	if err != nil {
		return fmt.Errorf("peer invite: %w", err)
	}
	expires := time.Now().Add(opts.Expires).Format("2006-01-02 15:04")
	if g.JSON {
		e.printer(g).JSON(struct {
			MessageType string `json:"message_type"`
			Code        string `json:"code"`
			Address     string `json:"address"`
			PeerID      string `json:"peer_id"`
			Mode        string `json:"mode"`
			Expires     string `json:"expires"`
		}{"invite", inv.Code(), inv.Addr, id.PeerID().String(), mode.String(), time.Now().Add(opts.Expires).UTC().Format(time.RFC3339)})
		return nil
	}
	fmt.Fprintln(e.stdout, inv.Code())
	if !g.Quiet {
		if guessed {
			fmt.Fprintf(e.stderr, "address %s is this host's name and the default port; if friends reach this server by another name or port, run again with --address HOST:PORT\n", opts.Addr)
		}
		fmt.Fprintf(e.stderr, "one-time code for %s, %s, valid until %s: the friend runs 'cairn peer join CODE'\n", opts.Addr, mode, expires)
	}
	return nil
}

func (e *appEnv) runPeerJoin(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	g := e.globals(c)
	inv, err := peer.ParseInvite(c.Args().First())
	if err != nil {
		return fmt.Errorf("peer join: %w", err)
	}
	name := c.String("name")
	if err := peer.ValidName(name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	dest := c.String("add")
	if dest != "" {
		if err := repo.ValidDestinationName(dest); err != nil {
			return fmt.Errorf("--add: %w", err)
		}
	}
	label := c.String("label")
	if label == "" {
		label, _ = os.Hostname() // a label only; none is fine
		label = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, label)
		for len(label) > 64 {
			_, size := utf8.DecodeLastRuneInString(label)
			label = label[:len(label)-size]
		}
	}
	id, err := g.device().Identity()
	if err != nil {
		return err
	}
	got, err := peer.Dialer{}.Join(c.Context, inv, id, label)
	if err != nil {
		return err
	}
	loc := inv.Location(name)
	if dest != "" {
		err := e.withRepo(c, appendLock, func(ctx context.Context, s *session) error {
			return s.repo.AddDestination(ctx, repo.Destination{Name: dest, Location: loc.String()})
		})
		if err != nil {
			return fmt.Errorf("joined, but saving the destination failed (save it with 'cairn peer add %s %s'): %w", dest, loc, err)
		}
	}
	if g.JSON {
		e.printer(g).JSON(struct {
			MessageType string `json:"message_type"`
			Location    string `json:"location"`
			Mode        string `json:"mode"`
			Quota       int64  `json:"quota"`
		}{"joined", loc.String(), got.Mode.String(), got.Quota})
		return nil
	}
	fmt.Fprintln(e.stdout, loc.String())
	if !g.Quiet && dest != "" {
		fmt.Fprintf(e.stderr, "saved as destination %s: 'cairn mirror' with no argument mirrors there\n", dest)
	}
	if !g.Quiet {
		fmt.Fprintf(e.stderr, "joined %s as %s (%s, quota %s): use the location above with 'cairn mirror' or -r\n",
			inv.Addr, id.PeerID().Short(), got.Mode, peer.FormatQuota(got.Quota))
	}
	return nil
}
