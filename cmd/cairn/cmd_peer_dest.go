package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/repo"
	"github.com/urfave/cli/v2"
)

// Saved destinations: peer add / remove / list, and what mirror with no
// DEST uses (repo.Destination).

func (e *appEnv) peerAddCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "save a mirror destination in the repository",
		ArgsUsage: "NAME LOCATION",
		Description: "Saves LOCATION (a path, sftp:..., peer://PEERID@HOST:PORT/NAME) as the destination\n" +
			"NAME (a-z, 0-9, '.', '_', '-') of the repository given by -r. 'cairn mirror' with no\n" +
			"DEST mirrors to every saved destination. The list is kept in the repository,\n" +
			"encrypted (a meta record), so it travels with every mirror and a restore on a new\n" +
			"machine finds it ('cairn peer list', 'cairn recovery-kit'). A relative path is saved\n" +
			"as an absolute one; a location holding a password is refused.",
		Action: e.runPeerAdd,
	}
}

func (e *appEnv) peerRemoveCommand() *cli.Command {
	return &cli.Command{
		Name:        "remove",
		Usage:       "forget a saved mirror destination",
		ArgsUsage:   "NAME",
		Description: "Removes the destination NAME from the repository's saved destinations; the copy\n" + "there is left as it is.",
		Action:      e.runPeerRemove,
	}
}

func (e *appEnv) peerListCommand() *cli.Command {
	return &cli.Command{
		Name:        "list",
		Usage:       "list the saved mirror destinations",
		ArgsUsage:   " ",
		Description: "Prints the repository's saved destinations, one per line: NAME and LOCATION\n" + "(with --json one {\"message_type\":\"destination\",\"name\",\"location\"} line each).",
		Action:      e.runPeerList,
	}
}

// destinationLocation checks a location for saving and returns the form
// saved: a peer location in canonical form, a local path made absolute.
func destinationLocation(loc string) (string, error) {
	if _, _, err := lookupScheme(loc); err != nil {
		return "", err
	}
	if strings.HasPrefix(loc, peer.Scheme) {
		l, err := peer.ParseLocation(loc)
		if err != nil {
			return "", err
		}
		return l.String(), nil
	}
	if strings.Contains(loc, "://") {
		if u, err := url.Parse(loc); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				return "", fmt.Errorf("%w: %s holds a password, which would be saved with it: use a key or agent instead", repo.ErrDestination, redactLocation(loc))
			}
		}
	}
	name, rest, err := parseLocation(loc)
	if err != nil {
		return "", err
	}
	if name == "local" {
		abs, err := filepath.Abs(rest)
		if err != nil {
			return "", err
		}
		return abs, nil
	}
	return loc, nil
}

func (e *appEnv) runPeerAdd(c *cli.Context) error {
	if err := wantArgs(c, 2, 2); err != nil {
		return err
	}
	name := c.Args().Get(0)
	if err := repo.ValidDestinationName(name); err != nil {
		return err
	}
	loc, err := destinationLocation(c.Args().Get(1))
	if err != nil {
		return err
	}
	return e.withRepo(c, appendLock, func(ctx context.Context, s *session) error {
		if err := s.repo.AddDestination(ctx, repo.Destination{Name: name, Location: loc}); err != nil {
			return err
		}
		s.p.Printf("saved destination %s: %s", name, redactLocation(loc))
		return nil
	})
}

func (e *appEnv) runPeerRemove(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	return e.withRepo(c, appendLock, func(ctx context.Context, s *session) error {
		d, err := s.repo.RemoveDestination(ctx, c.Args().First())
		if err != nil {
			return err
		}
		s.p.Printf("removed destination %s (%s)", d.Name, redactLocation(d.Location))
		return nil
	})
}

func (e *appEnv) runPeerList(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		list, err := s.repo.Destinations(ctx)
		if err != nil {
			return err
		}
		for _, d := range list {
			if s.g.JSON {
				s.p.JSON(struct {
					MessageType string `json:"message_type"`
					repo.Destination
				}{"destination", repo.Destination{Name: d.Name, Location: redactLocation(d.Location)}})
			} else {
				s.p.Printf("%-16s %s", d.Name, redactLocation(d.Location))
			}
		}
		if len(list) == 0 && !s.g.JSON {
			s.p.Printf("no destination saved (add one with 'cairn peer add NAME LOCATION')")
		}
		return nil
	})
}

// mirrorDestination is one destination of a mirror: a location, and the
// saved name it came from ("" for one given as an argument).
type mirrorDestination struct {
	name, location string
}

// String names the destination in messages.
func (d mirrorDestination) String() string {
	if d.name == "" {
		return redactLocation(d.location)
	}
	return d.name
}

// savedDestinations returns the destinations saved in r, refusing an
// empty list.
func savedDestinations(ctx context.Context, r *repo.Repository) ([]mirrorDestination, error) {
	list, err := r.Destinations(ctx)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("mirror: no DEST given and no destination saved (save some with 'cairn peer add NAME LOCATION')")
	}
	out := make([]mirrorDestination, len(list))
	for i, d := range list {
		out[i] = mirrorDestination{name: d.Name, location: d.Location}
	}
	return out, nil
}
