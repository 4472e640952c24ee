package sftp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"

	"github.com/cairn-backup/cairn/backend"
)

const (
	// stopGrace is how long a command has to exit after SIGTERM before
	// it is killed.
	stopGrace = 5 * time.Second
	// exitGrace is how long a command that broke off the SFTP start is
	// given to finish on its own, so that what it printed is complete.
	exitGrace = 2 * time.Second
	// stderrKeep is how much of the end of a command's error output is
	// kept for messages.
	stderrKeep = 4 << 10
)

// permanentSSHMessages are what OpenSSH prints when trying again cannot
// help: a refused host key or login, a name that does not resolve, no
// SFTP on the server.
var permanentSSHMessages = []string{
	"Host key verification failed",
	"Permission denied",
	"Could not resolve hostname",
	"subsystem request failed",
	"REMOTE HOST IDENTIFICATION HAS CHANGED",
}

var errConfigWithSSH = fmt.Errorf("%w: sftp.config is read by the built-in client only; with the system ssh give -F FILE in sftp.args or sftp.command", ErrOption)

var errCommandAndArgs = fmt.Errorf("%w: give sftp.command or sftp.args, not both (sftp.args adds to the ssh command cairn builds; sftp.command replaces it)", ErrOption)

// sshCommand is the command to run in place of the built-in client: the
// Command, or the system ssh with SSHArgs; nil when neither is set.
func (c Config) sshCommand() ([]string, error) {
	if c.Command == nil && c.SSHArgs == nil {
		return nil, nil
	}
	// Retrying cannot fix any of these.
	switch {
	case c.Command != nil && c.SSHArgs != nil:
		return nil, backend.Permanent(errCommandAndArgs)
	case c.Command != nil && len(c.Command) == 0:
		return nil, backend.Permanent(fmt.Errorf("%w: sftp.command is empty", ErrOption))
	case c.Password != "":
		return nil, backend.Permanent(fmt.Errorf("%w: the system ssh (sftp.command, sftp.args) cannot be given the password in the location: use a key", ErrOption))
	case c.SSHConfigFile != "":
		return nil, backend.Permanent(errConfigWithSSH)
	case c.KnownHostsFile != "" || c.IdentityFiles != nil || c.HostKeyCallback != nil:
		return nil, backend.Permanent(fmt.Errorf("%w: KnownHostsFile, IdentityFiles and HostKeyCallback are for the built-in client; the system ssh reads its own files", ErrOption))
	}
	if c.Command != nil {
		return c.Command, nil
	}
	// The location's port and user come first: ssh keeps the first value
	// it is given for each, so they win over SSHArgs, which win over the
	// ssh config files. "--" keeps a host from being read as an option.
	cmd := []string{"ssh"}
	if c.Port != 0 {
		cmd = append(cmd, "-p", strconv.Itoa(c.Port))
	}
	if c.User != "" {
		cmd = append(cmd, "-l", c.User)
	}
	cmd = append(cmd, c.SSHArgs...)
	return append(cmd, "-s", "--", c.Host, "sftp"), nil
}

// dialCommand runs d.command and starts SFTP over its standard input and
// output.
func (d *dialer) dialCommand(ctx context.Context) (*conn, error) {
	p, err := startProcess(d.command)
	if err != nil {
		return nil, err
	}
	stopCtx := context.AfterFunc(ctx, p.stop)
	timer := time.AfterFunc(dialTimeout, p.stop)
	s, err := sftp.NewClientPipe(p.stdout, p.stdin,
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(maxConcurrentRequests))
	timedOut := !timer.Stop()
	cancelled := !stopCtx()
	switch {
	case cancelled || timedOut:
		if s != nil {
			_ = s.Close() // the process is stopped: nothing to report
		}
		p.stop()
		if cancelled {
			return nil, fmt.Errorf("connect: %w", ctx.Err())
		}
		return nil, fmt.Errorf("connect: %s did not start SFTP within %s%s", p.name(), dialTimeout, p.said())
	case err != nil:
		return nil, p.failure(err)
	}
	c := &conn{proc: p, sftp: s, dead: make(chan struct{})}
	c.setExtensions()
	return c, nil
}

// process is a command that carries SFTP on its standard input and
// output. It runs in a session of its own: a terminal's Ctrl-C reaches
// cairn, which ends the command after unlocking, and the command has no
// terminal to ask questions on.
type process struct {
	argv   []string
	cmd    *exec.Cmd
	stdout *os.File // the read end of the command's standard output
	stdin  *os.File // the write end of its standard input; the SFTP client closes it
	stderr *tailBuffer
	exited chan struct{} // closed once the command has exited and been waited for
	err    error         // cmd.Wait's; read only after exited is closed
	once   sync.Once
}

func startProcess(argv []string) (*process, error) {
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, backend.Permanent(fmt.Errorf("run %s: %w", argv[0], err))
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = inR.Close()
		_ = inW.Close()
		return nil, err
	}
	p := &process{argv: argv, stdout: outR, stdin: inW, stderr: &tailBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdin = inR
	p.cmd.Stdout = outW
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = p.cmd.Start()
	// The command has its own copies of these ends now.
	_ = inR.Close()
	_ = outW.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		return nil, backend.Permanent(fmt.Errorf("run %s: %w", argv[0], err))
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// name is the program's name for messages; its arguments are left out,
// as they may hold something private.
func (p *process) name() string { return strconv.Quote(p.argv[0]) }

// stop ends the command and its children (SIGTERM, then SIGKILL after
// stopGrace) and waits for it. It may be called more than once and from
// any goroutine.
func (p *process) stop() {
	p.once.Do(func() {
		pid := p.cmd.Process.Pid
		select {
		case <-p.exited:
		default:
			_ = syscall.Kill(-pid, syscall.SIGTERM) // its session's process group
		}
		// Unblocks the SFTP client's reader even if the command lingers;
		// a write to stdin after this fails, as it would on a dead pipe.
		_ = p.stdout.Close()
		_ = p.stdin.Close()
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-p.exited:
		case <-t.C:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.exited
		}
	})
}

// said is the end of what the command printed on its error output, for
// a message: "; ssh said: ...", or "".
func (p *process) said() string {
	if t := p.stderr.lastLines(3); t != "" {
		return "; " + p.name() + " said: " + t
	}
	return ""
}

// failure explains why the command did not start SFTP. Messages that
// OpenSSH prints when trying again cannot help make it permanent.
func (p *process) failure(err error) error {
	t := time.NewTimer(exitGrace)
	select {
	case <-p.exited:
	case <-t.C:
	}
	t.Stop()
	p.stop()
	exit := ""
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		exit = " (" + ee.ProcessState.String() + ")"
	}
	e := fmt.Errorf("start sftp over %s%s: %v%s", p.name(), exit, err, p.said())
	out := p.stderr.String()
	for _, m := range permanentSSHMessages {
		if strings.Contains(out, m) {
			return backend.Permanent(e)
		}
	}
	return e
}

// tailBuffer keeps the last stderrKeep bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrKeep; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lastLines is up to n last non-empty lines, joined with "; ", without
// control characters.
func (t *tailBuffer) lastLines(n int) string {
	var lines []string
	for _, l := range strings.Split(t.String(), "\n") {
		l = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, l)
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// SplitCommandLine splits s into words as a POSIX shell would, without
// running anything: words are separated by blanks; single quotes keep
// everything up to the next single quote; double quotes keep everything
// but a backslash escaping '"', '\', '$' or '`'; a backslash outside
// quotes keeps the next character. Unclosed quotes and a trailing
// backslash are errors. No variable, glob or tilde expansion is done.
func SplitCommandLine(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // a word has started (it may be empty: '')
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unclosed single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			in = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unclosed double quote")
			}
			in = true
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("backslash at the end")
			}
			i++
			cur.WriteByte(s[i])
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
