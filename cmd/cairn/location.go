package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"

	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/limit"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/backend/retry"
	"github.com/cairn-backup/cairn/backend/sftp"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// scheme opens and creates backends of one kind. loc is the whole
// location, rest the part after "scheme:".
type scheme struct {
	// open returns the backend of an existing repository; a location
	// without one must give an error wrapping backend.ErrNoRepository.
	open func(ctx context.Context, loc, rest string, env locEnv) (backend.Backend, error)
	// create prepares the location for a new repository (init).
	create func(ctx context.Context, loc, rest string, env locEnv) (backend.Backend, error)
	// probe opens a location that open refused for lack of a config, to
	// look into it (repo.CheckInterruptedInit); it must create nothing.
	probe func(ctx context.Context, loc, rest string, env locEnv) (backend.Backend, error)
}

// locEnv is what opening a location may need besides the location.
type locEnv struct {
	// ConfigDir holds this device's identity, which authenticates it to
	// peers.
	ConfigDir string
	// Warn reports retries of remote operations.
	Warn func(format string, args ...any)
	// TestFaults asks for fault injection (testonly.go); always "" in a
	// release build.
	TestFaults string
	// TestThrottle slows the backends to this many bytes a second
	// (testonly.go); always 0 in a release build.
	TestThrottle int64
	// PeerDialer connects to peer servers: the default timeouts, unless
	// a test seam (testonly.go) shortens them.
	PeerDialer peer.Dialer
	// Options are the -o backend options; each scheme applies its own.
	Options []backendOption
	// LimitUpload and LimitDownload bound the bytes per second to and
	// from every location opened (limit.NewRate); 0 means no limit.
	LimitUpload, LimitDownload int64
	// Identity, if set, authenticates this device to peers instead of
	// the one in ConfigDir (a recovery kit's).
	Identity *crypt.Identity
}

// limitRate wraps a location's backend in the bandwidth limits.
func (env locEnv) limitRate(be backend.Backend, err error) (backend.Backend, error) {
	if err != nil {
		return be, err
	}
	return limit.NewRate(be, env.LimitUpload, env.LimitDownload), nil
}

// sftpConfig parses an sftp: location and applies the sftp.* options.
func sftpConfig(loc string, env locEnv) (sftp.Config, error) {
	cfg, err := sftp.ParseLocation(loc)
	if err != nil {
		return cfg, err
	}
	for _, o := range env.Options {
		if o.scheme == "sftp" {
			if err := cfg.SetOption(o.key, o.value); err != nil {
				return cfg, err
			}
		}
	}
	return cfg, nil
}

// locationForms names every form of location schemes() opens, for the
// help of --repo (TestRepoHelpNamesEverySchema keeps it complete).
const locationForms = "a path, local:PATH, sftp:[USER@]HOST:PATH, sftp://[USER@]HOST[:PORT]/PATH or peer://PEERID@HOST:PORT/NAME"

// schemes is the table of repository location kinds, built in code so the
// list is visible in one place.
func schemes() map[string]scheme {
	return map[string]scheme{
		"local": {
			open: func(ctx context.Context, _, p string, env locEnv) (backend.Backend, error) {
				return env.injectTestFaults(local.Open(ctx, p))
			},
			create: func(ctx context.Context, _, p string, env locEnv) (backend.Backend, error) {
				return env.injectTestFaults(local.Create(ctx, p))
			},
			probe: func(ctx context.Context, _, p string, _ locEnv) (backend.Backend, error) {
				return local.OpenDir(ctx, p)
			},
		},
		"sftp": {
			open: func(ctx context.Context, loc, _ string, env locEnv) (backend.Backend, error) {
				cfg, err := sftpConfig(loc, env)
				if err != nil {
					return nil, err
				}
				be, err := connectRetry(ctx, env, func() (*sftp.Backend, error) { return sftp.Open(ctx, cfg) })
				if err != nil {
					return nil, err
				}
				return remote(be, env)
			},
			create: func(ctx context.Context, loc, _ string, env locEnv) (backend.Backend, error) {
				cfg, err := sftpConfig(loc, env)
				if err != nil {
					return nil, err
				}
				be, err := connectRetry(ctx, env, func() (*sftp.Backend, error) { return sftp.Create(ctx, cfg) })
				if err != nil {
					return nil, err
				}
				return remote(be, env)
			},
			probe: func(ctx context.Context, loc, _ string, env locEnv) (backend.Backend, error) {
				cfg, err := sftpConfig(loc, env)
				if err != nil {
					return nil, err
				}
				be, err := sftp.OpenDir(ctx, cfg)
				if err != nil {
					return nil, err
				}
				return remote(be, env)
			},
		},
		"peer": {
			open: func(ctx context.Context, loc, _ string, env locEnv) (backend.Backend, error) {
				pl, id, err := peerLocation(loc, env)
				if err != nil {
					return nil, err
				}
				be, err := connectRetry(ctx, env, func() (*peer.Backend, error) { return env.PeerDialer.Dial(ctx, pl, id) })
				if err != nil {
					return nil, err
				}
				return remote(be, env)
			},
			create: func(ctx context.Context, loc, _ string, env locEnv) (backend.Backend, error) {
				pl, id, err := peerLocation(loc, env)
				if err != nil {
					return nil, err
				}
				be, err := connectRetry(ctx, env, func() (*peer.Backend, error) { return env.PeerDialer.Create(ctx, pl, id) })
				if err != nil {
					return nil, err
				}
				return remote(be, env)
			},
			// peer.Create creates nothing: the server makes a
			// repository's folder at its first put.
			probe: func(ctx context.Context, loc, _ string, env locEnv) (backend.Backend, error) {
				pl, id, err := peerLocation(loc, env)
				if err != nil {
					return nil, err
				}
				be, err := peer.Create(ctx, pl, id)
				if err != nil {
					return nil, err
				}
				return remote(be, env)
			},
		},
	}
}

// peerLocation parses a peer:// location and loads this device's identity.
func peerLocation(loc string, env locEnv) (peer.Location, *crypt.Identity, error) {
	pl, err := peer.ParseLocation(loc)
	if err != nil {
		return pl, nil, err
	}
	if env.Identity != nil {
		return pl, env.Identity, nil
	}
	id, err := snapshot.DeviceAt(env.ConfigDir).Identity()
	return pl, id, err
}

// connectAttempts bounds the attempts to reach a remote location. A server
// that is restarting, or busy with a flood of connections, turns a client
// away for a moment; a wrong address still fails within seconds.
const connectAttempts = 4

// connectRetry calls connect until it succeeds, fails in a way retrying
// cannot fix (backend.IsPermanent: refused keys, unknown host keys, no
// repository), or has been tried connectAttempts times, waiting about 1,
// 2 and 4 seconds (jittered down by up to half) in between. The retry
// wrapper (see remote) takes over once connected.
func connectRetry[B any](ctx context.Context, env locEnv, connect func() (B, error)) (B, error) {
	wait := time.Second
	for attempt := 1; ; attempt++ {
		be, err := connect()
		if err == nil || backend.IsPermanent(err) || attempt == connectAttempts || ctx.Err() != nil {
			return be, err
		}
		d := wait - rand.N(wait/2+1)
		if env.Warn != nil {
			env.Warn("%v; retrying in %s", err, d.Round(time.Second/10))
		}
		if backend.Sleep(ctx, d) != nil {
			return be, err
		}
		wait *= 2
	}
}

// remote stacks the wrappers every network backend gets: a bound on
// concurrent requests, and retries with backoff for transient errors.
func remote(be backend.Backend, env locEnv) (backend.Backend, error) {
	be, err := env.injectTestFaults(be, nil)
	if err != nil {
		return nil, err
	}
	opts := retry.Options{}
	if env.Warn != nil {
		opts.Report = func(op string, err error, wait time.Duration) {
			env.Warn("%s failed (%v); retrying in %s", op, err, wait.Round(time.Second/10))
		}
	}
	return retry.New(limit.New(be, 0), opts)
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

// openBackend opens the backend of an existing repository. A location
// without a config gives an error wrapping backend.ErrNoRepository, and
// one wrapping repo.ErrInitInterrupted when an interrupted init left it.
func openBackend(ctx context.Context, loc string, env locEnv) (backend.Backend, error) {
	s, rest, err := lookupScheme(loc)
	if err != nil {
		return nil, err
	}
	be, err := env.limitRate(s.open(ctx, loc, rest, env))
	if errors.Is(err, backend.ErrNoRepository) {
		// Look closer; if that fails, the first answer stands.
		if pb, perr := s.probe(ctx, loc, rest, env); perr == nil {
			if ierr := repo.CheckInterruptedInit(ctx, pb); ierr != nil {
				err = fmt.Errorf("open %s: %w", redactLocation(loc), repo.ErrInitInterrupted)
			}
			_ = pb.Close() // a read-only look: nothing to lose
		}
	}
	return be, err
}

// createBackend prepares a location for a new repository.
func createBackend(ctx context.Context, loc string, env locEnv) (backend.Backend, error) {
	s, rest, err := lookupScheme(loc)
	if err != nil {
		return nil, err
	}
	return env.limitRate(s.create(ctx, loc, rest, env))
}

// locEnv returns what opening locations needs from the global options.
func (e *appEnv) locEnv(g globalOptions, p *printer) locEnv {
	return locEnv{ConfigDir: g.ConfigDir, Warn: p.Warnf, TestFaults: e.testFaultSpec(), TestThrottle: e.testThrottle(), PeerDialer: e.testPeerDialer(), Options: g.Options,
		LimitUpload: g.LimitUpload, LimitDownload: g.LimitDownload}
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
