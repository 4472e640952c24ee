package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot/fusefs"
)

func (e *appEnv) mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "browse snapshots as a read-only file system",
		ArgsUsage: "MOUNTPOINT",
		Description: "Mounts the repository's snapshots read-only at MOUNTPOINT (an existing folder)\n" +
			"with FUSE, and serves them until it is unmounted. Folders and files are\n" +
			"read when they are opened, so browsing costs no more than what is looked at.\n" +
			"Files show their stored size, mode, owner and times; symlinks their targets.\n" +
			"Every write fails (read-only file system). The snapshots are those in the\n" +
			"repository when it is mounted: mount again to see newer ones.\n\n" +
			"Ctrl-C (SIGINT) or SIGTERM unmounts and exits 0, and so does unmounting it\n" +
			"from elsewhere (\"fusermount3 -u MOUNTPOINT\", or \"umount MOUNTPOINT\" as root).\n" +
			"While mounted it holds a shared lock (unless --no-lock), so a prune waits.\n" +
			"A user other than root needs fusermount3 (Debian and Ubuntu: package fuse3).\n" +
			"With --json, a line {\"message_type\":\"mounted\",...} says when it serves.\n\n" +
			"LAYOUT:\n" +
			"   ids/ID/              each snapshot by its short ID\n" +
			"   snapshots/TIME/      by time, with \"latest\" a symlink to the newest\n" +
			"   hosts/HOST/TIME/     by host, each with its \"latest\"\n" +
			"   tags/TAG/TIME/       by tag, each with its \"latest\"\n" +
			"   Inside a snapshot's folder are the backed-up paths (e.g. home/me/docs).\n\n" +
			"TEMPLATES:\n" +
			"   --path-template replaces that layout (repeat it for several); in a\n" +
			"   template %i is the short ID, %I the full ID, %u the user, %h the host,\n" +
			"   %t a tag (one path per tag; a snapshot without tags is left out), %T the\n" +
			"   time in the --time-template layout, %% a %. A template ending in \"/%T\"\n" +
			"   adds a \"latest\" symlink beside the snapshots. The time template is a Go\n" +
			"   time layout of Mon Jan 2 15:04:05 -0700 MST 2006 (default\n" +
			"   " + fusefs.DefaultTimeTemplate + "); a \"/\" in it makes subfolders. Two snapshots\n" +
			"   given the same name get -1, -2, ... appended. A \"/\" in a host, user or\n" +
			"   tag becomes \"_\".",
		Flags: append(filterFlags(),
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users see the mount (they may read the files their stored modes allow them to; a user other than root needs user_allow_other in /etc/fuse.conf)"},
			&cli.BoolFlag{Name: "no-default-permissions", Usage: "with --allow-other: let every user read every file, whatever its stored mode and owner"},
			&cli.BoolFlag{Name: "owner-root", Usage: "show every file and folder as owned by root"},
			&cli.GenericFlag{Name: "path-template", Value: &repeatedString{}, Usage: "lay snapshots out by `TEMPLATE` (repeatable; replaces the default layout)"},
			&cli.StringFlag{Name: "time-template", Value: fusefs.DefaultTimeTemplate, Usage: "name snapshots by their time in Go time `LAYOUT`"},
		),
		Action: e.runMount,
	}
}

// repeatedString is a repeatable flag whose values are kept whole (a
// StringSliceFlag would split them at commas).
type repeatedString struct{ vals []string }

func (r *repeatedString) Set(v string) error { r.vals = append(r.vals, v); return nil }
func (r *repeatedString) String() string     { return strings.Join(r.vals, " ") }

func (e *appEnv) runMount(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	mountpoint := c.Args().First()
	var templates []string
	if r, ok := c.Generic("path-template").(*repeatedString); ok && len(r.vals) > 0 {
		templates = r.vals
	}
	timeTemplate := c.String("time-template")
	if err := fusefs.CheckTemplates(templates, timeTemplate); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	if c.Bool("no-default-permissions") && !c.Bool("allow-other") {
		return errors.New("mount: --no-default-permissions only applies with --allow-other")
	}
	if err := checkMountpoint(mountpoint, e.globals(c).Repo); err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		snaps := filterFrom(c).Apply(l.Snapshots())
		fsys, warnings, err := fusefs.New(s.repo, snaps, fusefs.Options{
			PathTemplates: templates,
			TimeTemplate:  timeTemplate,
			OwnerRoot:     c.Bool("owner-root"),
			UID:           uint32(os.Getuid()),
			GID:           uint32(os.Getgid()),
			Now:           s.now(),
			Warn:          func(msg string) { s.p.Warnf("mount: %s", msg) },
		})
		if err != nil {
			return fmt.Errorf("mount: %w", err)
		}
		for _, w := range warnings {
			s.p.Warnf("mount: %s", w)
		}
		mo := fusefs.MountOptions{
			AllowOther:         c.Bool("allow-other"),
			DefaultPermissions: c.Bool("allow-other") && !c.Bool("no-default-permissions"),
			FsName:             "cairn:" + shortRepoID(s.repo.Config().ID),
		}
		if s.g.Verbose {
			mo.Log = e.stderr
		}
		srv, err := fsys.Mount(mountpoint, mo)
		if err != nil {
			return err
		}
		if s.g.JSON {
			s.p.JSON(struct {
				MessageType string `json:"message_type"`
				Mountpoint  string `json:"mountpoint"`
				Snapshots   int    `json:"snapshots"`
			}{"mounted", mountpoint, len(snaps)})
		}
		s.p.Printf("serving %d snapshot(s) at %s: quit with Ctrl-C, or unmount it (fusermount3 -u %s)", len(snaps), mountpoint, mountpoint)
		return serveMount(ctx, srv, s.p, mountpoint)
	})
}

// mountServer is a mounted file system (*fusefs.Server).
type mountServer interface {
	Wait()
	Unmount() error
}

// serveMount returns once srv has been unmounted from outside, or, after
// unmounting it, once ctx ends: by a signal (nil: the usual way to end a
// mount), or because the lock was lost (an error wrapping
// repo.ErrLockLost: the repository may be pruned under the mount).
func serveMount(ctx context.Context, srv mountServer, p *printer, mountpoint string) error {
	unmounted := make(chan struct{})
	go func() {
		srv.Wait()
		close(unmounted)
	}()
	select {
	case <-unmounted:
		p.Printf("%s was unmounted", mountpoint)
		return nil
	case <-ctx.Done():
	}
	err := srv.Unmount()
	if errors.Is(err, fusefs.ErrBusy) {
		p.Warnf("mount: %s: %v", mountpoint, err)
		err = nil
	}
	if err != nil {
		return err
	}
	if cause := context.Cause(ctx); errors.Is(cause, repo.ErrLockLost) {
		return fmt.Errorf("mount: unmounted %s: %w", mountpoint, cause)
	}
	p.Printf("unmounted %s", mountpoint)
	return nil
}

func shortRepoID(id string) string {
	if len(id) > 10 {
		return id[:10]
	}
	return id
}

// checkMountpoint refuses a mountpoint that is not a folder, and one that
// overlaps a local repository: the file system would then read its own
// repository through itself and hang.
func checkMountpoint(dir, repoLoc string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mount: mountpoint %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("mount: mountpoint %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("mount: mountpoint %s is not a folder", dir)
	}
	name, path, err := parseLocation(repoLoc)
	if err != nil || name != "local" {
		return nil // the repository's own errors come when it is opened
	}
	mp, rp := resolvedPath(dir), resolvedPath(path)
	if mp == rp || strings.HasPrefix(mp, rp+string(filepath.Separator)) || strings.HasPrefix(rp, mp+string(filepath.Separator)) {
		return fmt.Errorf("mount: mountpoint %s and the repository %s overlap: the mount would read itself", dir, path)
	}
	return nil
}

// resolvedPath is p absolute with its symlinks resolved, as far as it
// exists.
func resolvedPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}
