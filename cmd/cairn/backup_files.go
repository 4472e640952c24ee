package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

// fileListFlags are backup's flags that read the paths to back up from
// files.
func fileListFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "files-from", Usage: "back up the paths listed in `FILE`, one a line; lines are globs, \"#\" starts a comment; - is standard input (repeatable)"},
		&cli.StringSliceFlag{Name: "files-from-verbatim", Usage: "back up the paths listed in `FILE`, one a line, taken as they are (repeatable)"},
		&cli.StringSliceFlag{Name: "files-from-raw", Usage: "back up the paths listed in `FILE`, each ended by a NUL byte (find -print0) (repeatable)"},
	}
}

// maxListedPath caps one path of a --files-from list: far above PATH_MAX
// (4096), it keeps a wrong file (a binary without newlines) from being
// read whole into one line.
const maxListedPath = 1 << 20

// listedPaths returns the paths the --files-from flags list, in the order
// given, and warns (through warn) of globs that match nothing, as restic
// does. stdin is read for a FILE of "-".
func listedPaths(c *cli.Context, stdin io.Reader, warn func(string)) ([]string, error) {
	var out []string
	each := func(flag string, split bufio.SplitFunc, take func(line string) ([]string, error)) error {
		for _, name := range c.StringSlice(flag) {
			err := readList(name, stdin, split, func(line string) error {
				paths, err := take(line)
				out = append(out, paths...)
				return err
			})
			if err != nil {
				return fmt.Errorf("--%s %s: %w", flag, name, err)
			}
		}
		return nil
	}
	if err := each("files-from", bufio.ScanLines, func(line string) ([]string, error) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			return nil, nil
		}
		m, err := filepath.Glob(line)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", line, err)
		}
		if len(m) == 0 {
			warn(fmt.Sprintf("pattern %q matches no file, skipping", line))
		}
		return m, nil
	}); err != nil {
		return nil, err
	}
	if err := each("files-from-verbatim", bufio.ScanLines, func(line string) ([]string, error) {
		if line == "" {
			return nil, nil
		}
		return []string{line}, nil
	}); err != nil {
		return nil, err
	}
	if err := each("files-from-raw", scanNUL, func(name string) ([]string, error) {
		if name == "" {
			return nil, errors.New("empty file name in the list")
		}
		return []string{name}, nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// readList calls fn with each item of the list in the file name ("-" for
// stdin), as split cuts it.
func readList(name string, stdin io.Reader, split bufio.SplitFunc, fn func(string) error) error {
	var rd io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		rd = f
	}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), maxListedPath)
	sc.Split(split)
	for sc.Scan() {
		if err := fn(sc.Text()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("an entry longer than %d bytes", maxListedPath)
		}
		return err
	}
	return nil
}

// errNoFinalNUL says a --files-from-raw list does not end with a NUL.
var errNoFinalNUL = errors.New("the list does not end with a NUL byte (was it written with -print0?)")

// scanNUL is a bufio.SplitFunc for NUL-terminated items; a last item
// without its NUL is an error, as restic has it.
func scanNUL(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, errNoFinalNUL
	}
	return 0, nil, nil
}

// expandPatterns replaces $VAR and ${VAR} in exclude-file patterns with
// the variable's value (empty when unset), as restic does.
func expandPatterns(pats []string, getenv func(string) string) []string {
	for i, p := range pats {
		pats[i] = os.Expand(p, getenv)
	}
	return pats
}
