package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
)

// scheme opens and creates backends of one kind from the part of a
// location after "scheme:".
type scheme struct {
	// open returns the backend of an existing repository; a location
	// without one must give an error wrapping backend.ErrNoRepository.
	open func(ctx context.Context, path string) (backend.Backend, error)
	// create prepares the location for a new repository (init).
	create func(ctx context.Context, path string) (backend.Backend, error)
}

// schemes is the table of repository location kinds, built in code so the
// list is visible in one place. A new backend (sftp:, peer://) is one more
// row.
func schemes() map[string]scheme {
	return map[string]scheme{
		"local": {
			open: func(ctx context.Context, p string) (backend.Backend, error) {
				return local.Open(ctx, p)
			},
			create: func(ctx context.Context, p string) (backend.Backend, error) {
				return local.Create(ctx, p)
			},
		},
	}
}

// errNoLocation says no repository was given.
var errNoLocation = errors.New("no repository given (use -r/--repo or $" + envRepository + ")")

// parseLocation splits a repository location into its scheme and the rest.
// A location is "scheme:rest" or "scheme://rest" when it starts with a
// scheme name (letters, digits, "+", "-", "." after a first letter)
// followed by ":" before any "/"; anything else is a local path.
func parseLocation(loc string) (name, rest string, err error) {
	if loc == "" {
		return "", "", errNoLocation
	}
	i := strings.IndexByte(loc, ':')
	if i <= 0 || strings.Contains(loc[:i], "/") || !isSchemeName(loc[:i]) {
		return "local", loc, nil
	}
	name, rest = loc[:i], loc[i+1:]
	if strings.HasPrefix(rest, "//") && name == "local" {
		rest = rest[2:] // local:///srv/repo
	}
	if name == "local" && rest == "" {
		return "", "", errors.New("empty path in repository location \"local:\"")
	}
	return name, rest, nil
}

func isSchemeName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// lookupScheme finds the scheme for a location.
func lookupScheme(loc string) (scheme, string, error) {
	name, rest, err := parseLocation(loc)
	if err != nil {
		return scheme{}, "", err
	}
	table := schemes()
	s, ok := table[strings.ToLower(name)]
	if !ok {
		known := make([]string, 0, len(table))
		for k := range table {
			known = append(known, k+":")
		}
		slices.Sort(known)
		// Only the scheme is printed: the rest may hold a password.
		return scheme{}, "", fmt.Errorf("unknown repository scheme %q (known: a plain path, %s)", name+":", strings.Join(known, ", "))
	}
	return s, rest, nil
}

// openBackend opens the backend of an existing repository.
func openBackend(ctx context.Context, loc string) (backend.Backend, error) {
	s, rest, err := lookupScheme(loc)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, rest)
}

// createBackend prepares a location for a new repository.
func createBackend(ctx context.Context, loc string) (backend.Backend, error) {
	s, rest, err := lookupScheme(loc)
	if err != nil {
		return nil, err
	}
	return s.create(ctx, rest)
}

// redactLocation returns loc fit for messages: a password in a URL's user
// info is replaced by "xxxxx".
func redactLocation(loc string) string {
	if !strings.Contains(loc, "://") {
		return loc
	}
	u, err := url.Parse(loc)
	if err != nil {
		// Unparseable: keep the scheme only rather than risk a secret.
		if i := strings.Index(loc, "://"); i >= 0 {
			return loc[:i] + "://..."
		}
		return "..."
	}
	return u.Redacted()
}
