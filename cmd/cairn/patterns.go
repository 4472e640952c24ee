package main

import (
	"github.com/urfave/cli/v2"
)

// excludeFlags are the exclude pattern flags of backup and rewrite;
// excludes says what --exclude does with the paths it matches.
func excludeFlags(excludes string) []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "exclude", Aliases: []string{"e"}, Usage: excludes + " paths matching `PATTERN` (repeatable)"},
		&cli.StringSliceFlag{Name: "iexclude", Usage: "like --exclude `PATTERN`, ignoring case (repeatable)"},
		&cli.StringSliceFlag{Name: "exclude-file", Usage: "read exclude patterns from `FILE`, one a line (repeatable)"},
		&cli.StringSliceFlag{Name: "iexclude-file", Usage: "like --exclude-file `FILE`, ignoring case (repeatable)"},
	}
}

// patternsOf returns the patterns given with --NAME followed by those
// read from each file given with --NAME-file, a file's lines passed
// through expand (nil: taken as they are). An unreadable file's error is
// returned as readPatternFile gives it.
func patternsOf(c *cli.Context, name string, expand func([]string) []string) ([]string, error) {
	pats := c.StringSlice(name)
	for _, f := range c.StringSlice(name + "-file") {
		read, err := readPatternFile(f)
		if err != nil {
			return nil, err
		}
		if expand != nil {
			read = expand(read)
		}
		pats = append(pats, read...)
	}
	return pats, nil
}
