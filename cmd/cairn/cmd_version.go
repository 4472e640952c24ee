package main

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// commit is the commit cairn was built from, set at build time with
// -ldflags "-X main.commit=..." (the Makefile does, with "-dirty" for a
// tree with uncommitted changes). Empty, the Go toolchain's VCS stamp is
// used when it is there (go install, go build in a git checkout).
var commit = ""

// devVersion is the version of a build that says no other: the next
// release, with "-dev". It is raised when a release is tagged.
const devVersion = "0.1.0-dev"

// buildVersion is what "cairn version" says about this binary.
type buildVersion struct {
	// Version is a release version ("0.4.0", "0.4.0-3-gabc1234-dirty"
	// between tags, "0.1.0-dev" without a tag), never a bare hash.
	Version string
	// Commit is the commit it was built from, "" when unknown.
	Commit string
}

// bareHash matches what "git describe --always" prints without a tag: a
// commit hash, possibly "-dirty", which is no version.
var bareHash = regexp.MustCompile(`^[0-9a-f]{7,40}(-dirty)?$`)

// programVersion is this binary's version, from the build's -ldflags or
// the module's build information.
func programVersion() buildVersion {
	bi, _ := debug.ReadBuildInfo()
	return resolveVersion(version, commit, bi)
}

// resolveVersion picks the version from, in order: the -ldflags version
// (the Makefile's "git describe --tags", a leading "v" dropped), the main
// module's version (go install ...@v0.4.0), else devVersion. The commit
// comes from -ldflags, else the VCS stamp; a bare hash given as version
// counts as the commit.
func resolveVersion(ldVersion, ldCommit string, bi *debug.BuildInfo) buildVersion {
	var v buildVersion
	ld := strings.TrimPrefix(strings.TrimSpace(ldVersion), "v")
	switch {
	case ld == "" || ld == "dev":
	case bareHash.MatchString(ld):
		v.Commit = ld
	default:
		v.Version = ld
	}
	if c := strings.TrimSpace(ldCommit); c != "" {
		v.Commit = c
	}
	if bi != nil {
		if m := bi.Main.Version; v.Version == "" && m != "" && m != "(devel)" {
			v.Version = strings.TrimPrefix(m, "v")
		}
		if v.Commit == "" {
			v.Commit = vcsCommit(bi)
		}
	}
	if v.Version == "" {
		v.Version = devVersion
	}
	return v
}

// vcsCommit is the short commit of the toolchain's VCS stamp, "-dirty"
// added for a modified tree, or "".
func vcsCommit(bi *debug.BuildInfo) string {
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && modified == "true" {
		rev += "-dirty"
	}
	return rev
}

// String is the version line: "cairn 0.4.0 (commit 0123456789ab)
// compiled with go1.26.8 on linux/amd64", restic's form with the commit.
func (v buildVersion) String() string {
	c := ""
	if v.Commit != "" {
		c = " (commit " + v.Commit + ")"
	}
	return fmt.Sprintf("cairn %s%s compiled with %s on %s/%s", v.Version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func (e *appEnv) versionCommand() *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print version information",
		ArgsUsage: " ",
		Description: "Prints cairn's version, the commit it was built from (when known), the Go\n" +
			"version it was compiled with and the platform; \"cairn --version\" prints the\n" +
			"same line. The version is the release (\"git describe --tags\" when built by\n" +
			"make, the module version when built by go install), or " + devVersion + " for\n" +
			"a build from an untagged tree. With --json it prints one JSON object.",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return errUnexpectedArgs(c)
			}
			return e.printVersion(c)
		},
	}
}

// versionFlag is the root's --version, which prints what "cairn version"
// does. It has no -v: that is --verbose.
func versionFlag() cli.Flag {
	return &cli.BoolFlag{Name: "version", Usage: "print the version and exit (as \"cairn version\")"}
}

func (e *appEnv) printVersion(c *cli.Context) error {
	g := e.globals(c)
	p := e.printer(g)
	v := programVersion()
	if g.JSON {
		p.JSON(struct {
			MessageType string `json:"message_type"`
			Version     string `json:"version"`
			Commit      string `json:"commit,omitempty"`
			GoVersion   string `json:"go_version"`
			GoOS        string `json:"go_os"`
			GoArch      string `json:"go_arch"`
		}{"version", v.Version, v.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH})
		return nil
	}
	// Printed even with --quiet: it is the command's one result.
	p.quiet = false
	p.Printf("%s", v)
	return nil
}
