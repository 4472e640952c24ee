package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"
)

// applyServeConfig gives "peer serve" the configuration file's [serve]
// settings for the flags its command line does not give: the file named
// by --config (which must then have a [serve] section), else the default
// file if there is one and it has the section. The flags' own checks
// then apply to either.
func (e *appEnv) applyServeConfig(c *cli.Context) error {
	explicit := globalString(c, "config", "") != ""
	cf, err := e.loadConfig(c)
	switch {
	case errors.Is(err, errNoConfig):
		return nil
	case err != nil:
		return err
	case cf.Serve == nil && explicit:
		return fmt.Errorf("peer serve: %s has no [serve] section", cf.Path)
	case cf.Serve == nil:
		return nil
	}
	s := cf.Serve
	set := func(name, value string) error {
		if value == "" || c.IsSet(name) {
			return nil
		}
		if err := c.Set(name, value); err != nil {
			return fmt.Errorf("%s: [serve] %s %q: %w", cf.Path, name, value, err)
		}
		return nil
	}
	var maxRepos string
	if s.MaxRepos != 0 {
		maxRepos = strconv.Itoa(s.MaxRepos)
	}
	for _, kv := range [][2]string{{"listen", s.Listen}, {"root", s.Root}, {"quota", s.Quota}, {"max-repos", maxRepos}} {
		if err := set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if !c.IsSet("allow") {
		for _, a := range s.Allow {
			if err := c.Set("allow", a); err != nil {
				return fmt.Errorf("%s: [serve] allow %q: %w", cf.Path, a, err)
			}
		}
	}
	return nil
}
