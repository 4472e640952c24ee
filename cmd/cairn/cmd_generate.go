package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/cmd/cairn/clidoc"
)

func (e *appEnv) generateCommand() *cli.Command {
	return &cli.Command{
		Name:      "generate",
		Usage:     "write shell completions and man pages",
		ArgsUsage: " ",
		Description: "Writes completion scripts for bash, zsh and fish, and man pages (one per\n" +
			"command: cairn.1, cairn-backup.1, cairn-key-add.1, ...), all made from the\n" +
			"same definition of the command line that \"cairn help\" shows. A completion\n" +
			"FILE of \"-\" is standard output. The man pages' date is $SOURCE_DATE_EPOCH's\n" +
			"when set (for reproducible builds), else today's. With --json it prints one\n" +
			"JSON object listing the files written.\n\n" +
			"   cairn generate --bash-completion /usr/share/bash-completion/completions/cairn\n" +
			"   cairn generate --zsh-completion /usr/local/share/zsh/site-functions/_cairn\n" +
			"   cairn generate --fish-completion ~/.config/fish/completions/cairn.fish\n" +
			"   cairn generate --man /usr/local/share/man/man1",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "bash-completion", Usage: "write the bash completion script to `FILE`"},
			&cli.StringFlag{Name: "zsh-completion", Usage: "write the zsh completion script to `FILE`"},
			&cli.StringFlag{Name: "fish-completion", Usage: "write the fish completion script to `FILE`"},
			&cli.StringFlag{Name: "man", Usage: "write man pages to `DIR` (made if missing)"},
		},
		Action: e.runGenerate,
	}
}

func (e *appEnv) runGenerate(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	g := e.globals(c)
	p := e.printer(g)
	root, err := clidoc.FromApp(c.App)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	var written []string
	did := false
	for _, s := range []struct {
		flag string
		gen  func(*clidoc.Command) string
	}{
		{"bash-completion", clidoc.Bash},
		{"zsh-completion", clidoc.Zsh},
		{"fish-completion", clidoc.Fish},
	} {
		file := c.String(s.flag)
		if file == "" {
			continue
		}
		did = true
		script := s.gen(root)
		if file == "-" {
			if g.JSON {
				return fmt.Errorf("generate: --json and --%s - would both write to standard output", s.flag)
			}
			if _, err := fmt.Fprint(e.stdout, script); err != nil {
				return fmt.Errorf("generate --%s: %w", s.flag, err)
			}
			continue
		}
		if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
			return fmt.Errorf("generate --%s: %w", s.flag, err)
		}
		p.Printf("wrote %s", file)
		written = append(written, file)
	}
	if dir := c.String("man"); dir != "" {
		did = true
		date, err := e.sourceDate()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("generate --man: %w", err)
		}
		files, err := clidoc.WriteMan(dir, root, clidoc.ManInfo{Date: date, Version: programVersion().Version, ExitStatus: exitStatusHelp})
		if err != nil {
			return fmt.Errorf("generate --man: %w", err)
		}
		p.Printf("wrote %d man pages to %s", len(files), dir)
		written = append(written, files...)
	}
	if !did {
		return errors.New("generate: nothing to do: give --bash-completion, --zsh-completion, --fish-completion or --man")
	}
	if g.JSON {
		p.JSON(struct {
			MessageType string   `json:"message_type"`
			Files       []string `json:"files"`
		}{"generated", written})
	}
	return nil
}

// sourceDate is $SOURCE_DATE_EPOCH (reproducible builds), else now.
func (e *appEnv) sourceDate() (time.Time, error) {
	s := e.getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return e.now(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("generate: $SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return time.Unix(sec, 0), nil
}
