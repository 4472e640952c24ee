package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/urfave/cli/v2"
)

func (e *appEnv) initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a new repository",
		ArgsUsage: " ",
		Description: "Creates a repository at the location given by -r/--repo or $CAIRN_REPOSITORY,\n" +
			"with one key file for the password (from --password-file, --password-command,\n" +
			"$CAIRN_PASSWORD, or asked twice on a terminal).\n\n" +
			"A location that already holds a repository is refused and left unchanged.\n" +
			"An init that was interrupted between writing its key file and its config\n" +
			"(other commands then say \"repository initialisation was interrupted\", exit\n" +
			"status 10) is finished by running init again with the same password.\n" +
			"The global --pack-size MIB sets the repository's target pack size (16 MiB\n" +
			"otherwise).\n" +
			"Keep the password safe: without it the repository cannot be read.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "compression", Value: "auto", DefaultText: "$CAIRN_COMPRESSION, else auto", Usage: "the repository's default compression `MODE`: off, fastest, auto or max"},
		},
		Action: e.runInit,
	}
}

func (e *appEnv) runInit(c *cli.Context) error {
	if c.Args().Present() {
		return errUnexpectedArgs(c)
	}
	ctx := c.Context
	g := e.globals(c)
	p := e.printer(g)
	if g.runOptions.err != nil {
		return g.runOptions.err
	}
	mode, err := repo.ParseCompression(c.String("compression"))
	if err != nil {
		return err
	}
	if g.Compression != nil && !c.IsSet("compression") {
		mode = *g.Compression // $CAIRN_COMPRESSION
	}
	loc := redactLocation(g.Repo)
	if err := checkOptionsUsed(g.Options, g.Repo); err != nil {
		return err
	}
	// Refuse an existing repository before asking for a password.
	if be, err := openBackend(ctx, g.Repo, e.locEnv(g, p)); err == nil {
		be.Close()
		return fmt.Errorf("init %s: %w", loc, repo.ErrAlreadyInitialized)
	} else if !errors.Is(err, backend.ErrNoRepository) {
		return err
	}
	pw, kdf, err := e.keySecret(func() ([]byte, error) { return e.initPassword(ctx, g) })
	if err != nil {
		return err
	}
	defer zero(pw)
	be, err := createBackend(ctx, g.Repo, e.locEnv(g, p))
	if err != nil {
		return err
	}
	defer be.Close()
	r, err := repo.Init(ctx, be, pw, repo.InitOptions{Options: e.repoOptions(g, p), Compression: mode, KDF: kdf, PackSize: g.PackSize,
		TestOnlyAfterKeyFile: e.testPauseInit()})
	if err != nil {
		return err
	}
	defer r.Close()
	cfg := r.Config()
	if g.JSON {
		p.JSON(struct {
			MessageType string `json:"message_type"`
			ID          string `json:"id"`
			Repository  string `json:"repository"`
		}{"initialized", cfg.ID, loc})
		return nil
	}
	p.Printf("created cairn repository %s at %s", shortID(cfg.ID), loc)
	p.Printf("Keep the password safe: without it the data in the repository cannot be read.")
	return nil
}

// initPassword is the password for a new repository: from the usual
// sources, or asked twice on a terminal.
func (e *appEnv) initPassword(ctx context.Context, g globalOptions) ([]byte, error) {
	if g.PasswordFile == "" && g.PasswordCommand == "" && e.getenv(envPassword) == "" && e.stdinTTY {
		return promptNewPassword(ctx)
	}
	return e.password(ctx, g)
}

// shortID is the first 8 digits of a hex ID.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
