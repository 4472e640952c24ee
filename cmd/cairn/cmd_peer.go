package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) peerCommand() *cli.Command {
	return &cli.Command{
		Name:  "peer",
		Usage: "this device's peer ID, and serving a folder to peers",
		Description: "Peers keep copies of each other's repositories. A device is known by its peer ID,\n" +
			"derived from the ed25519 identity in the config dir (created on first use).\n" +
			"'cairn peer serve' on a friend's machine stores what 'cairn mirror' sends it; the\n" +
			"friend sees only encrypted packs and hash names.",
		Subcommands: []*cli.Command{
			e.peerStatusCommand(),
			{
				Name:      "id",
				Usage:     "print this device's peer ID",
				ArgsUsage: " ",
				Action:    e.runPeerID,
			},
			{
				Name:      "serve",
				Usage:     "serve a folder per authorized peer over TLS",
				ArgsUsage: " ",
				Description: "Listens on --listen and stores, for each peer allowed with --allow, a folder under\n" +
					"--root named by its peer ID. Both sides are authenticated by pinned ed25519 keys\n" +
					"(TLS 1.3); a client whose ID is not allowed is refused. Modes: append-only (the\n" +
					"default: deletes and overwrites are refused, so a compromised client cannot\n" +
					"destroy its history here) or read-write. Each put is checked against its hash\n" +
					"before it becomes visible; in append-only mode a damaged file (its content no\n" +
					"longer hashes to its name) may be put again. Runs until interrupted (SIGINT or\n" +
					"SIGTERM), then exits 0.\n\n" +
					"--quota counts, over all of a peer's repositories, the bytes of its files plus\n" +
					"4 KiB for each file and each folder (what the files cost the disk, not only their\n" +
					"bytes); a repository's folders are made only when a file goes in them. Each peer\n" +
					"may keep --max-repos repositories. What each peer's folder holds is counted at\n" +
					"start, and again on SIGHUP (systemctl reload), for example after files were\n" +
					"added or removed by hand.\n\n" +
					"Besides --allow, the server serves the friends of its peers file (--peers-file,\n" +
					"by default DIR/.cairn/peers.toml; TOML, one [[peer]] table each with id, and\n" +
					"optionally name, mode and quota, the friend's quota overriding --quota). 'cairn\n" +
					"peer invite' and 'cairn peer join' add to it without a restart; edit it by hand\n" +
					"as well: it is read again on SIGHUP and when its content changes (checked every\n" +
					"--peers-poll; 0 for SIGHUP only). A file that does not parse is logged and the\n" +
					"previous list kept. The .cairn folder is never served.\n\n" +
					"Example: cairn peer serve --listen :7484 --root /srv/cairn \\\n" +
					"           --allow PEERID-OF-ALICE --allow PEERID-OF-BOB:read-write --quota 500G\n\n" +
					"Clients use the location peer://PEERID-OF-THIS-SERVER@host:7484/NAME, where NAME\n" +
					"names one of their repositories on this server (a-z, 0-9, '.', '_', '-').\n\n" +
					"The settings may also come from the configuration file's [serve] section (listen,\n" +
					"root, allow = [\"PEERID[:MODE]\", ...], quota, max-repos): the file --config names\n" +
					"(it must have the section), else the default file if it has one (see \"cairn\n" +
					"config\"). A flag on the command line wins over the file.\n\n" +
					"The scrub re-hashes the stored files in the background at --scrub-rate (default\n" +
					"8M: 8 MiB/s; 0 turns it off), one pass over every peer's files at most every\n" +
					"--scrub-interval. A file whose content no longer hashes to its name is moved to\n" +
					"ROOT/PEERID/.quarantine/NAME/ (no longer served), logged, and reported to its\n" +
					"owner at the next mirror, which puts it again. Verifications and audits the peers\n" +
					"ask for read at most as fast.",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "listen", Value: ":7484", Usage: "listen on `ADDR` (host:port)"},
					&cli.StringFlag{Name: "root", Usage: "store peers' folders under `DIR` (required)"},
					&cli.StringSliceFlag{Name: "allow", Usage: "allow `PEERID[:append-only|:read-write]` (repeatable; default mode append-only)"},
					&cli.StringFlag{Name: "quota", Usage: "limit each peer to `SIZE` (e.g. 500G: bytes, plus 4 KiB per file and folder); default none"},
					&cli.IntFlag{Name: "max-repos", Value: peer.DefaultMaxRepos, Usage: "let each peer keep at most `N` repositories"},
					&cli.StringFlag{Name: "peers-file", Usage: "the friends served, with mode and quota, in TOML `FILE` (default DIR/.cairn/peers.toml)"},
					&cli.DurationFlag{Name: "peers-poll", Value: 2 * time.Second, Usage: "check the peers file for changes every `DURATION` (0: only on SIGHUP)"},
				}, scrubFlags()...),
				Action: e.runPeerServe,
			},
			e.peerAuditCommand(),
			e.peerInviteCommand(),
			e.peerJoinCommand(),
			e.peerAddCommand(),
			e.peerRemoveCommand(),
			e.peerListCommand(),
		},
	}
}

func (e *appEnv) runPeerID(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	g := e.globals(c)
	p := e.printer(g)
	id, err := g.device().Identity()
	if err != nil {
		return err
	}
	if g.JSON {
		p.JSON(struct {
			PeerID string `json:"peer_id"`
		}{id.PeerID().String()})
		return nil
	}
	fmt.Fprintln(e.stdout, id.PeerID().String())
	return nil
}

func (e *appEnv) runPeerServe(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	if err := e.applyServeConfig(c); err != nil {
		return err
	}
	g := e.globals(c)
	root := c.String("root")
	if root == "" {
		return errors.New("peer serve: --root DIR is required")
	}
	allows := c.StringSlice("allow")
	allow := make(map[crypt.PeerID]peer.Mode, len(allows))
	for _, a := range allows {
		id, mode, err := peer.ParseAllow(a)
		if err != nil {
			return fmt.Errorf("--allow: %w", err)
		}
		allow[id] = mode
	}
	var quota int64
	if q := c.String("quota"); q != "" {
		v, err := parseSize(q)
		if err != nil {
			return fmt.Errorf("--quota: %w", err)
		}
		quota = v
	}
	maxRepos := c.Int("max-repos")
	if maxRepos < 1 {
		return fmt.Errorf("--max-repos: %d is not a positive number", maxRepos)
	}
	scrubRate, scrubEvery, err := scrubOptions(c)
	if err != nil {
		return err
	}
	peersFile := c.String("peers-file")
	if peersFile == "" {
		peersFile = peer.DefaultPeersFile(root)
	}
	if c.Duration("peers-poll") < 0 {
		return fmt.Errorf("--peers-poll: %v is negative", c.Duration("peers-poll"))
	}
	id, err := g.device().Identity()
	if err != nil {
		return err
	}
	srv, err := peer.NewServer(peer.ServerConfig{
		Identity:  id,
		Root:      root,
		Allow:     allow,
		PeersFile: peersFile,
		Pairing:   true,
		Quota:     quota,
		MaxRepos:  maxRepos,
		Logf: func(format string, args ...any) {
			if !g.Quiet {
				fmt.Fprintf(e.stderr, "%s %s\n", time.Now().Format("2006-01-02 15:04:05"), escapeControl(fmt.Sprintf(format, args...)))
			}
		},
		ScrubRate:     scrubRate,
		ScrubInterval: scrubEvery,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("peer serve: %w", err)
	}
	if !g.Quiet {
		// stderr, so scripts can read the address from a known place
		// without parsing stdout.
		fmt.Fprintf(e.stderr, "serving peer %s on %s\n", id.PeerID(), ln.Addr())
	}
	// SIGHUP: read the peers file and count the peers' folders again.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	wg.Go(func() {
		for {
			select {
			case <-hup:
				_ = srv.Reload("on SIGHUP") // a bad file is logged and the old list kept
				srv.Recount()
			case <-ctx.Done():
				return
			}
		}
	})
	wg.Go(func() { srv.WatchPeersFile(ctx, c.Duration("peers-poll")) })
	return srv.Serve(ctx, ln)
}
