package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"golang.org/x/term"
)

// maxPasswordSize caps a password read from a file or a command.
const maxPasswordSize = 64 << 10

// errNoPassword is returned when no password source is given and standard
// input is not a terminal.
var errNoPassword = errors.New("no password given (use --password-file, --password-command, $" +
	envPasswordFile + ", $" + envPasswordCommand + " or $" + envPassword + ")")

// password returns the repository password from the first source given:
// --password-file, --password-command, $CAIRN_PASSWORD, else a prompt on
// the terminal when standard input is one. The caller must zero it.
func (e *appEnv) password(ctx context.Context, g globalOptions) ([]byte, error) {
	switch {
	case g.PasswordFile != "":
		return readPasswordFile(g.PasswordFile)
	case g.PasswordCommand != "":
		return e.runPasswordCommand(ctx, g.PasswordCommand)
	case e.getenv(envPassword) != "":
		return []byte(e.getenv(envPassword)), nil
	case e.stdinTTY:
		return promptPassword(ctx, "enter password for repository: ")
	}
	return nil, errNoPassword
}

// newPassword returns the password for a new key: from file when given,
// else prompted for twice on a terminal. The caller must zero it.
func (e *appEnv) newPassword(ctx context.Context, file, flagName string) ([]byte, error) {
	if file != "" {
		return readPasswordFile(file)
	}
	if !e.stdinTTY {
		return nil, fmt.Errorf("no new password given (use %s)", flagName)
	}
	return promptNewPassword(ctx)
}

// readPasswordFile reads a password file, removing one trailing "\n" or
// "\r\n". An empty password is refused.
func readPasswordFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	defer f.Close()
	pw, err := readCapped(f)
	if err != nil {
		return nil, fmt.Errorf("read password file %s: %w", name, err)
	}
	return checkPassword(trimNewline(pw), "password file "+name)
}

// runPasswordCommand runs command with "sh -c" and takes its standard
// output as the password (one trailing newline removed). Its standard error
// goes to ours; it reads no input. A non-zero exit is an error. The command
// text is never printed: it may hold a secret.
func (e *appEnv) runPasswordCommand(ctx context.Context, command string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	out := &cappedBuffer{max: maxPasswordSize}
	cmd.Stdout = out
	cmd.Stderr = e.stderr
	// A command that leaves a child holding its output open must not keep
	// us waiting once it has exited or been killed.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if out.over {
		zero(out.buf.Bytes())
		return nil, fmt.Errorf("password command: output longer than %d bytes", maxPasswordSize)
	}
	if err != nil {
		zero(out.buf.Bytes())
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		return nil, fmt.Errorf("password command failed: %w", err)
	}
	return checkPassword(trimNewline(out.buf.Bytes()), "password command")
}

func checkPassword(pw []byte, source string) ([]byte, error) {
	if len(pw) == 0 {
		return nil, fmt.Errorf("empty password from %s", source)
	}
	return pw, nil
}

// readCapped reads all of r, refusing more than maxPasswordSize bytes.
func readCapped(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPasswordSize+1))
	if err != nil {
		zero(b)
		return nil, err
	}
	if len(b) > maxPasswordSize {
		zero(b)
		return nil, fmt.Errorf("longer than %d bytes", maxPasswordSize)
	}
	return b, nil
}

// cappedBuffer collects up to max bytes and notes whether more came.
type cappedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		c.over = true
		return 0, errors.New("too much output")
	}
	return c.buf.Write(p)
}

func trimNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	if bytes.HasSuffix(b, []byte("\n")) {
		return b[:len(b)-1]
	}
	return b
}

// zero overwrites a password in memory.
func zero(b []byte) {
	clear(b)
}

// promptPassword reads a password from /dev/tty with echo off. The prompt
// goes to the terminal too, so stdout stays clean for output. SIGINT or
// SIGTERM during the prompt restores the terminal and returns
// errInterrupted.
func promptPassword(ctx context.Context, prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open terminal for password prompt: %w", err)
	}
	defer tty.Close()
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("password prompt: %w", err)
	}
	if _, err := io.WriteString(tty, prompt); err != nil {
		return nil, fmt.Errorf("password prompt: %w", err)
	}
	type result struct {
		pw  []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		pw, err := term.ReadPassword(fd)
		done <- result{pw, err}
	}()
	select {
	case r := <-done:
		_, _ = io.WriteString(tty, "\n")
		if r.err != nil {
			return nil, fmt.Errorf("read password: %w", r.err)
		}
		return checkPassword(r.pw, "prompt")
	case <-ctx.Done():
		// The reading goroutine stays blocked until the process exits,
		// which it is about to do.
		_ = term.Restore(fd, state)
		_, _ = io.WriteString(tty, "\n")
		return nil, errInterrupted
	}
}

// promptNewPassword asks twice and checks both answers match.
func promptNewPassword(ctx context.Context) ([]byte, error) {
	pw, err := promptPassword(ctx, "enter new password: ")
	if err != nil {
		return nil, err
	}
	again, err := promptPassword(ctx, "enter new password again: ")
	if err != nil {
		zero(pw)
		return nil, err
	}
	defer zero(again)
	if !bytes.Equal(pw, again) {
		zero(pw)
		return nil, errors.New("passwords do not match")
	}
	return pw, nil
}
