package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/urfave/cli/v2"
)

// streamFlags are backup's flags for content that is not in files.
func streamFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "stdin", Usage: "back up standard input as one file (see --stdin-filename); no PATH is given"},
		&cli.StringFlag{Name: "stdin-filename", Value: "stdin", Usage: "`NAME` of the file --stdin or --stdin-from-command stores, a path in the snapshot"},
		&cli.BoolFlag{Name: "stdin-from-command", Usage: "run the arguments as a command (no shell) and back up its standard output as one file; if the command fails, no snapshot is made"},
	}
}

// streamSpec is what the stream flags ask for.
type streamSpec struct {
	fromStdin bool
	command   []string // --stdin-from-command: the program and its arguments
	name      string   // the file's absolute path in the snapshot
}

// streamOptions reads the stream flags; nil means a backup of paths.
func streamOptions(c *cli.Context) (*streamSpec, error) {
	stdin, fromCmd := c.Bool("stdin"), c.Bool("stdin-from-command")
	if !stdin && !fromCmd {
		if c.IsSet("stdin-filename") {
			return nil, errors.New("--stdin-filename needs --stdin or --stdin-from-command")
		}
		return nil, nil
	}
	for _, f := range []string{"files-from", "files-from-verbatim", "files-from-raw"} {
		if c.IsSet(f) {
			return nil, fmt.Errorf("--%s cannot be used with --stdin or --stdin-from-command", f)
		}
	}
	s := &streamSpec{fromStdin: stdin && !fromCmd, name: path.Join("/", c.String("stdin-filename"))}
	if err := archiver.CheckStreamName(s.name); err != nil {
		return nil, fmt.Errorf("--stdin-filename: %w", err)
	}
	switch {
	case stdin && fromCmd:
		return nil, errors.New("--stdin and --stdin-from-command cannot be used together")
	case stdin && c.Args().Present():
		return nil, fmt.Errorf("--stdin reads standard input: no PATH may be given (got %q)", c.Args().First())
	case fromCmd && !c.Args().Present():
		return nil, errors.New("--stdin-from-command: no command given (usage: cairn backup --stdin-from-command -- COMMAND [ARG...])")
	case fromCmd:
		s.command = c.Args().Slice()
	}
	return s, nil
}

// open starts the stream: standard input, or the command (under ctx, so
// that an interrupted backup ends it). The returned stream's Wait reports
// the command's failure; cleanup ends and reaps a command that Wait did
// not, and must be called.
func (s *streamSpec) open(ctx context.Context, e *appEnv, modTime time.Time) (st *archiver.Stream, cleanup func(), err error) {
	st = &archiver.Stream{Name: s.name, ModTime: modTime, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), User: username()}
	if g, err := user.LookupGroupId(strconv.Itoa(os.Getgid())); err == nil {
		st.Group = g.Name
	}
	if s.fromStdin {
		st.Reader = e.stdin
		return st, func() {}, nil
	}
	cmd := exec.CommandContext(ctx, s.command[0], s.command[1:]...)
	cmd.Stderr = e.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("--stdin-from-command: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("--stdin-from-command: start %s: %w", s.command[0], err)
	}
	var once sync.Once
	var waitErr error
	wait := func() error {
		once.Do(func() {
			if err := cmd.Wait(); err != nil {
				waitErr = fmt.Errorf("--stdin-from-command: %s failed (%v): no snapshot saved", s.command[0], err)
			}
		})
		return waitErr
	}
	st.Reader, st.Wait = out, wait
	cleanup = func() {
		// A command still running here is not needed any more: the
		// backup failed. Kill it (one that exited is not affected) and
		// reap it.
		_ = cmd.Process.Kill()
		_, _ = io.Copy(io.Discard, out)
		_ = wait()
	}
	return st, cleanup, nil
}
