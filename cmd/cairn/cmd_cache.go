package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/repo"
)

// defaultCacheMaxAge is restic's: a cache unused for 30 days is old.
const defaultCacheMaxAge = 30

func (e *appEnv) cacheCommand() *cli.Command {
	return &cli.Command{
		Name:      "cache",
		Usage:     "list and remove local caches",
		ArgsUsage: " ",
		Description: "Lists the local cache folders, one per repository (named by the repository's\n" +
			"ID), under the cache folder (--cache-dir, $CAIRN_CACHE_DIR, else\n" +
			"$XDG_CACHE_HOME/cairn or ~/.cache/cairn): when each was last used (a command\n" +
			"that opens the repository marks it), whether it is old (unused for more than\n" +
			"--max-age days), and its size. --cleanup removes the old ones. A cache holds\n" +
			"only copies of repository files and this device's lock sightings: removing\n" +
			"one costs the next command on that repository some downloads, nothing more.\n" +
			"It needs no repository and no password. With --json it prints one JSON array\n" +
			"(repo_id, path, last_used, old, size, removed).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "cleanup", Usage: "remove the old caches"},
			&cli.IntFlag{Name: "max-age", Value: defaultCacheMaxAge, Usage: "a cache unused for more than `DAYS` is old"},
			&cli.BoolFlag{Name: "no-size", Usage: "do not add up the caches' sizes (faster)"},
		},
		Action: e.runCache,
	}
}

// cacheJSON is one cache with --json.
type cacheJSON struct {
	ID       string    `json:"repo_id"`
	Path     string    `json:"path"`
	LastUsed time.Time `json:"last_used"`
	Old      bool      `json:"old"`
	Size     *int64    `json:"size,omitempty"`
	Removed  bool      `json:"removed,omitempty"`
}

func (e *appEnv) runCache(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	maxAgeDays := c.Int("max-age")
	if maxAgeDays < 0 {
		return fmt.Errorf("cache: --max-age %d: want a number of days, 0 or more", maxAgeDays)
	}
	g := e.globals(c)
	p := e.printer(g)
	if g.CacheDir == "" {
		if globalBool(c, "no-cache", "") {
			return errors.New("cache: --no-cache: there is no cache folder to list")
		}
		return errors.New("cache: no cache folder: set --cache-dir, $CAIRN_CACHE_DIR, $XDG_CACHE_HOME or $HOME")
	}
	caches, err := repo.ListCaches(g.CacheDir, !c.Bool("no-size"))
	if err != nil {
		return err
	}
	now := e.now()
	maxAge := time.Duration(maxAgeDays) * 24 * time.Hour
	out := make([]cacheJSON, len(caches))
	var removeErr error
	for i, cd := range caches {
		out[i] = cacheJSON{ID: cd.ID, Path: cd.Path, LastUsed: cd.LastUsed, Old: cd.Old(now, maxAge)}
		if cd.Size >= 0 {
			out[i].Size = &caches[i].Size
		}
		if out[i].Old && c.Bool("cleanup") {
			if err := repo.RemoveCache(g.CacheDir, cd.ID); err != nil {
				p.Warnf("%v", err)
				removeErr = errors.Join(removeErr, err)
				continue
			}
			out[i].Removed = true
		}
	}
	if g.JSON {
		p.JSON(out)
	} else {
		printCacheTable(p, out, g.CacheDir, now, c.Bool("no-size"))
	}
	if removeErr != nil {
		return fmt.Errorf("cache: some old caches could not be removed")
	}
	return nil
}

func printCacheTable(p *printer, caches []cacheJSON, root string, now time.Time, noSize bool) {
	if len(caches) == 0 {
		p.Printf("no caches in %s", root)
		return
	}
	const format = "%-10s  %-16s  %-3s  %s"
	header := strings.TrimRight(fmt.Sprintf(format, "Repo ID", "Last Used", "Old", "Size"), " ")
	if noSize {
		header = strings.TrimRight(fmt.Sprintf(format, "Repo ID", "Last Used", "Old", ""), " ")
	}
	rule := strings.Repeat("-", len(header)+8)
	p.Printf("%s", header)
	p.Printf("%s", rule)
	removed := 0
	for _, c := range caches {
		old := ""
		if c.Old {
			old = "yes"
		}
		size := ""
		if c.Size != nil {
			size = formatBytes(uint64(*c.Size))
		}
		p.Printf("%s", strings.TrimRight(fmt.Sprintf(format, c.ID[:10], daysAgo(now, c.LastUsed), old, size), " "))
		if c.Removed {
			removed++
		}
	}
	p.Printf("%s", rule)
	p.Printf("%d cache(s) in %s", len(caches), root)
	for _, c := range caches {
		if c.Removed {
			p.Printf("removed old cache %s", c.ID)
		}
	}
	if removed > 0 {
		p.Printf("%d old cache(s) removed", removed)
	}
}

// daysAgo says how long ago t was, in whole days as restic does.
func daysAgo(now, t time.Time) string {
	d := int(now.Sub(t).Hours() / 24)
	switch {
	case d < 0:
		return "in the future"
	case d == 1:
		return "1 day ago"
	}
	return fmt.Sprintf("%d days ago", d)
}
